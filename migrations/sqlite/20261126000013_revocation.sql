-- What each guest's sync targets were last told: a digest of the snapshot and a version that
-- grows with each event. An event is written only when the snapshot changed, and the row is
-- written before the event, so on PostgreSQL its lock orders a guest's events by commit.
CREATE TABLE guest_sync (
    guest_id    TEXT PRIMARY KEY REFERENCES guests(id) ON DELETE CASCADE,
    digest      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- A grant's end is noticed once (the expiry job tells targets about it); a window moved
-- forward clears it. Only grants whose end is still to be noticed are indexed.
ALTER TABLE guest_grants ADD COLUMN end_seen_at INTEGER;
CREATE INDEX guest_grants_end_due ON guest_grants(valid_until) WHERE end_seen_at IS NULL;

-- A replayed dead letter is superseded by a new event carrying the guest's current state.
ALTER TABLE sync_outbox ADD COLUMN replayed_at INTEGER;
