-- CSV roster imports: who ran which file when, and what it did.
CREATE TABLE imports (
    id           TEXT PRIMARY KEY,
    partner_id   TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    actor        TEXT NOT NULL,
    file_name    TEXT NOT NULL,
    file_sha256  TEXT NOT NULL,
    mode         TEXT NOT NULL,
    dry_run      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    rows_read    INTEGER NOT NULL,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL,
    deactivated  INTEGER NOT NULL,
    unchanged    INTEGER NOT NULL,
    errors       INTEGER NOT NULL,
    outcome      TEXT NOT NULL
);
CREATE INDEX imports_partner ON imports(partner_id, started_at);
