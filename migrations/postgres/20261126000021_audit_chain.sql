-- Tamper-evident audit log (docs/security.md, "Tamper-evident audit log"). Each new row is
-- a link of one of a few hash chains: its chain, its number in the chain, the previous
-- link's hash and its own (SHA-256 over the row's fields and the previous hash). Several
-- chains so that concurrent writers each lock a different head instead of queueing on one.
-- Rows written before this migration keep NULLs: verify counts them as legacy.
ALTER TABLE audit_log ADD COLUMN chain BIGINT;
ALTER TABLE audit_log ADD COLUMN seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
-- Verify walks each chain in id order.
CREATE INDEX audit_log_chain ON audit_log(chain, id);
-- The admin API's filters (target and partner have theirs already); pages go newest first by id.
CREATE INDEX audit_log_actor ON audit_log(actor, id);
CREATE INDEX audit_log_action ON audit_log(action, id);
CREATE INDEX audit_log_at ON audit_log(at);

CREATE TABLE audit_chain_heads (
    chain  BIGINT PRIMARY KEY,
    seq    BIGINT NOT NULL,
    hash   TEXT NOT NULL
);
INSERT INTO audit_chain_heads (chain, seq, hash)
SELECT c, 0, repeat('0', 64) FROM generate_series(0, 15) AS c;

-- A head only moves forward and is never removed, so rewinding a chain takes disabling
-- triggers, which needs the table owner.
CREATE FUNCTION audit_chain_heads_forward() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit_chain_heads rows are never deleted';
    END IF;
    IF NEW.chain <> OLD.chain OR NEW.seq <= OLD.seq THEN
        RAISE EXCEPTION 'audit chain heads only move forward';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_chain_heads_forward BEFORE UPDATE OR DELETE ON audit_chain_heads
FOR EACH ROW EXECUTE FUNCTION audit_chain_heads_forward();

-- Row triggers do not fire on TRUNCATE.
CREATE FUNCTION audit_no_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% may not be truncated', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate();
CREATE TRIGGER audit_chain_heads_no_truncate BEFORE TRUNCATE ON audit_chain_heads
FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate();
