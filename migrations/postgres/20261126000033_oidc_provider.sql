-- The OpenID Connect provider for guests (issue 20): authorization codes (single use, a minute)
-- and refresh tokens (rotated on each use; a reused one revokes its whole family). Secrets are
-- kept as SHA-256 hashes only.
CREATE TABLE oauth_codes (
    code_hash       TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    guest_id        TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT,
    auth_time       BIGINT NOT NULL,
    amr             TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,
    -- The refresh-token family the exchange started, revoked if the code is replayed.
    family_id       TEXT NOT NULL
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

CREATE TABLE oauth_refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    guest_id    TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    auth_time   BIGINT NOT NULL,
    amr         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX oauth_refresh_family ON oauth_refresh_tokens (family_id);
CREATE INDEX oauth_refresh_expires ON oauth_refresh_tokens (expires_at);
