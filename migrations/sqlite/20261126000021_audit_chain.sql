-- Tamper-evident audit log (docs/security.md, "Tamper-evident audit log"): see the
-- PostgreSQL migration of the same name. SQLite has one writer, so only chain 0 grows, but
-- the tables are the same. SQLite has no TRUNCATE; the DELETE trigger covers it.
ALTER TABLE audit_log ADD COLUMN chain INTEGER;
ALTER TABLE audit_log ADD COLUMN seq INTEGER;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE INDEX audit_log_chain ON audit_log(chain, id);
CREATE INDEX audit_log_actor ON audit_log(actor, id);
CREATE INDEX audit_log_action ON audit_log(action, id);
CREATE INDEX audit_log_at ON audit_log(at);

CREATE TABLE audit_chain_heads (
    chain  INTEGER PRIMARY KEY,
    seq    INTEGER NOT NULL,
    hash   TEXT NOT NULL
);
WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < 15)
INSERT INTO audit_chain_heads (chain, seq, hash)
SELECT n, 0, '0000000000000000000000000000000000000000000000000000000000000000' FROM c;

CREATE TRIGGER audit_chain_heads_forward BEFORE UPDATE ON audit_chain_heads
WHEN NEW.chain <> OLD.chain OR NEW.seq <= OLD.seq
BEGIN SELECT RAISE(ABORT, 'audit chain heads only move forward'); END;
CREATE TRIGGER audit_chain_heads_no_delete BEFORE DELETE ON audit_chain_heads
BEGIN SELECT RAISE(ABORT, 'audit_chain_heads rows are never deleted'); END;
