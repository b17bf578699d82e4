-- CSV roster imports: who ran which file when, and what it did.
CREATE TABLE imports (
    id           TEXT PRIMARY KEY,
    partner_id   TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    actor        TEXT NOT NULL,
    file_name    TEXT NOT NULL,
    file_sha256  TEXT NOT NULL,
    mode         TEXT NOT NULL,
    dry_run      BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT NOT NULL,
    rows_read    BIGINT NOT NULL,
    created      BIGINT NOT NULL,
    updated      BIGINT NOT NULL,
    deactivated  BIGINT NOT NULL,
    unchanged    BIGINT NOT NULL,
    errors       BIGINT NOT NULL,
    outcome      TEXT NOT NULL
);
CREATE INDEX imports_partner ON imports(partner_id, started_at);
