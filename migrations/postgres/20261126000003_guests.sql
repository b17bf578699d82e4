-- Guests (a partner's person the mapping rules grant something) and their grants.

CREATE TABLE guests (
    id                TEXT PRIMARY KEY,
    partner_id        TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    -- The SCIM user; kept after the user is deleted so the removed guest stays explainable.
    user_id           TEXT NOT NULL UNIQUE,
    user_name         TEXT NOT NULL,
    email             TEXT,
    display_name      TEXT,
    state             TEXT NOT NULL,
    approved          BIGINT NOT NULL,
    mfa_required      BIGINT NOT NULL,
    sponsor           TEXT,
    template          TEXT,
    language          TEXT,
    access_until      BIGINT,
    invited_at        BIGINT,
    redeemed_at       BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX guests_partner_state ON guests(partner_id, state);
CREATE INDEX guests_state ON guests(state, created_at);
CREATE INDEX guests_access_until ON guests(access_until);

CREATE TABLE guest_grants (
    guest_id     TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    app_id       TEXT NOT NULL,
    role         TEXT NOT NULL,
    rule_id      TEXT NOT NULL,
    valid_from   BIGINT NOT NULL,
    valid_until  BIGINT,
    ends_by      TEXT,
    PRIMARY KEY (guest_id, app_id, role, rule_id)
);
CREATE INDEX guest_grants_app ON guest_grants(app_id);
CREATE INDEX guest_grants_valid_until ON guest_grants(valid_until);
