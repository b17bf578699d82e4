-- Outbound sync: one row per change and target, written in the transaction of the change,
-- delivered in order per guest and target, with retries and a dead-letter state.
CREATE TABLE sync_outbox (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    target           TEXT NOT NULL,
    guest_id         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    delivered_at     BIGINT,
    dead_at          BIGINT,
    last_error       TEXT
);
CREATE INDEX sync_outbox_due ON sync_outbox(next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX sync_outbox_order ON sync_outbox(target, guest_id, seq);
CREATE INDEX sync_outbox_dead ON sync_outbox(dead_at);
