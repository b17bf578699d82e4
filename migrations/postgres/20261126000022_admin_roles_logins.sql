-- Admin roles: every principal (token or login) has a role; a partner-admin is bound to one
-- partner, a sponsor to the sponsor e-mail (lower-cased) the rules put on guests. Tokens
-- issued before roles existed keep full power.
ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE admin_tokens ADD COLUMN partner_id TEXT REFERENCES partners(id);
ALTER TABLE admin_tokens ADD COLUMN sponsor_email TEXT;

-- People who sign in to the console. A login is local (password_hash, set through a
-- one-time setup link) or, later, federated (oidc_issuer + oidc_subject, its role mapped
-- from groups at each sign-in); both kinds share the role, scope and disabling.
CREATE TABLE admin_logins (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    name_lower     TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    partner_id     TEXT REFERENCES partners(id),
    sponsor_email  TEXT,
    password_hash  TEXT,
    oidc_issuer    TEXT,
    oidc_subject   TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_login_at  BIGINT,
    disabled_at    BIGINT,
    UNIQUE (oidc_issuer, oidc_subject)
);

-- One-time links that let a login set its password; only the hash of the secret is kept.
CREATE TABLE admin_login_links (
    id           TEXT PRIMARY KEY,
    login_id     TEXT NOT NULL REFERENCES admin_logins(id),
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);
CREATE INDEX admin_login_links_login ON admin_login_links (login_id);

-- Console sessions: the cookie's secret hashed; idle (last_seen_at) and absolute
-- (expires_at) timeouts; ended_at on sign-out or when the login is disabled.
CREATE TABLE admin_sessions (
    id            TEXT PRIMARY KEY,
    login_id      TEXT NOT NULL REFERENCES admin_logins(id),
    secret_hash   TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    ended_at      BIGINT
);
CREATE INDEX admin_sessions_login ON admin_sessions (login_id);
