-- Scheduled jobs: run records, single-runner leases, and the unique rows that make every
-- effect happen once (one reminder per invitation and number, one warning per grant end).

CREATE TABLE job_runs (
    id           TEXT PRIMARY KEY,
    job          TEXT NOT NULL,
    instance     TEXT NOT NULL,
    run_for      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    outcome      TEXT NOT NULL,
    counts       TEXT NOT NULL,
    error        TEXT
);
CREATE INDEX job_runs_job ON job_runs(job, started_at);

CREATE TABLE job_leases (
    job     TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    until   INTEGER NOT NULL
);

CREATE TABLE invitation_reminders (
    invitation_id  TEXT NOT NULL REFERENCES invitations(id) ON DELETE CASCADE,
    number         INTEGER NOT NULL,
    sent_at        INTEGER NOT NULL,
    PRIMARY KEY (invitation_id, number)
);

CREATE TABLE notices (
    key      TEXT PRIMARY KEY,
    guest_id TEXT NOT NULL,
    at       INTEGER NOT NULL
);

ALTER TABLE invitations ADD COLUMN next_action_at INTEGER;
CREATE INDEX invitations_next_action ON invitations(next_action_at) WHERE used_at IS NULL AND revoked_at IS NULL;
ALTER TABLE guests ADD COLUMN last_seen_at INTEGER;
CREATE INDEX guests_last_seen ON guests(state, last_seen_at);
