-- /metrics counts each outbox state through a partial index of that state, stopping at a
-- cap, so a scrape costs the same with ten rows or a million. Sent and failed mail are
-- counted through the sent_at / failed_at indexes of migration 14 (erasure pruning).
CREATE INDEX sync_outbox_pending ON sync_outbox(target, seq) WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX sync_outbox_dead_open ON sync_outbox(target) WHERE dead_at IS NOT NULL AND replayed_at IS NULL;
