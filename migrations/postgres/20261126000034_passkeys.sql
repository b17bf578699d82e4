-- Guests' passkeys (WebAuthn). The credential's public key and counters, as webauthn-rs
-- serialises a Passkey; nothing here is secret, but it is what a sign-in is checked against.
CREATE TABLE guest_passkeys (
    id             TEXT PRIMARY KEY,
    guest_id       TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    -- base64url of the credential id, as the browser reports it.
    credential_id  TEXT NOT NULL UNIQUE,
    passkey        TEXT NOT NULL,
    name           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT
);
CREATE INDEX guest_passkeys_guest ON guest_passkeys(guest_id);

-- A WebAuthn ceremony between its start and its finish: the challenge state, bound to what
-- started it (a guest session, or the pre-session cookie of the sign-in page), used once.
CREATE TABLE passkey_ceremonies (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Which factor passed MFA in a session (totp, email, passkey), for the ID token's amr.
ALTER TABLE guest_sessions ADD COLUMN mfa_method TEXT;
