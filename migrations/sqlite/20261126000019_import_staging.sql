-- An import stages the rows it read here, in short transactions that take their turn with
-- other writers, instead of holding the one SQLite writer for the whole file. A run still
-- 'staging' when no import holds the import lock died before its commit point: nothing of
-- it was published, and the next import deletes it.
CREATE TABLE import_staging_runs (
    import_id TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    next_seq BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE import_staging (
    import_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    row_json TEXT NOT NULL,
    PRIMARY KEY (import_id, seq)
);
