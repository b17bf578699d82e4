-- Outbound sync: one row per change and target, written in the transaction of the change,
-- delivered in order per guest and target, with retries and a dead-letter state.
CREATE TABLE sync_outbox (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    target           TEXT NOT NULL,
    guest_id         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER,
    delivered_at     INTEGER,
    dead_at          INTEGER,
    last_error       TEXT
);
CREATE INDEX sync_outbox_due ON sync_outbox(next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX sync_outbox_order ON sync_outbox(target, guest_id, seq);
CREATE INDEX sync_outbox_dead ON sync_outbox(dead_at);
