-- Admin API (issue 19): partners an admin disabled (their SCIM tokens are refused until
-- enabled again), partner tokens with a name and an optional end, and the people an admin
-- invited by hand rather than their partner's HR system.
ALTER TABLE partners ADD COLUMN disabled_at INTEGER;
ALTER TABLE partner_tokens ADD COLUMN name TEXT NOT NULL DEFAULT 'unnamed';
ALTER TABLE partner_tokens ADD COLUMN expires_at INTEGER;

CREATE TABLE admin_created_people (
    user_id     TEXT PRIMARY KEY REFERENCES scim_users(id) ON DELETE CASCADE,
    partner_id  TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    actor       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
