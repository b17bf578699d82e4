-- Invitations, consent, MFA, guest sessions, sign-in links, app-launch signing keys, the mail
-- outbox and rate-limit counters. Secrets are stored hashed (tokens) or sealed with the
-- instance's secret key (TOTP secrets, private keys, queued mail bodies).

CREATE TABLE invitations (
    id                TEXT PRIMARY KEY,
    guest_id          TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    token_hash        TEXT NOT NULL UNIQUE,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    used_at           BIGINT,
    revoked_at        BIGINT,
    reminders_sent    BIGINT NOT NULL DEFAULT 0,
    last_reminder_at  BIGINT
);
CREATE INDEX invitations_guest ON invitations(guest_id, created_at);
CREATE INDEX invitations_open ON invitations(expires_at) WHERE used_at IS NULL AND revoked_at IS NULL;

CREATE TABLE consents (
    id            TEXT PRIMARY KEY,
    guest_id      TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    at            BIGINT NOT NULL,
    text_version  TEXT NOT NULL,
    accepted      BIGINT NOT NULL
);
CREATE INDEX consents_guest ON consents(guest_id, at);

CREATE TABLE guest_mfa (
    guest_id           TEXT PRIMARY KEY REFERENCES guests(id) ON DELETE CASCADE,
    totp_secret_sealed TEXT NOT NULL,
    enrolled_at        BIGINT,
    last_step          BIGINT
);

CREATE TABLE email_codes (
    id          TEXT PRIMARY KEY,
    guest_id    TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX email_codes_guest ON email_codes(guest_id, created_at);

CREATE TABLE guest_sessions (
    id_hash       TEXT PRIMARY KEY,
    guest_id      TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    mfa_passed    BIGINT NOT NULL,
    csrf_secret   TEXT NOT NULL
);
CREATE INDEX guest_sessions_guest ON guest_sessions(guest_id);

CREATE TABLE signin_links (
    token_hash  TEXT PRIMARY KEY,
    guest_id    TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    private_sealed  TEXT NOT NULL,
    public_raw      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT
);

CREATE TABLE mail_outbox (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    to_addr          TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body_sealed      TEXT,
    guest_id         TEXT,
    idempotency_key  TEXT NOT NULL UNIQUE,
    created_at       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    sent_at          BIGINT,
    failed_at        BIGINT,
    last_error       TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox(next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX mail_outbox_guest ON mail_outbox(guest_id, created_at);

CREATE TABLE rate_limits (
    key           TEXT PRIMARY KEY,
    window_start  BIGINT NOT NULL,
    count         BIGINT NOT NULL
);
CREATE INDEX guests_email ON guests(email);
