-- Which downstream object each guest is at each sync target: created by Guestbridge
-- (adopted = 0) or an existing object it took over (adopted = 1). Connectors change and
-- reconcile only objects listed here; anything else at the target is someone else's.
CREATE TABLE sync_owned (
    target      TEXT NOT NULL,
    guest_id    TEXT NOT NULL,
    remote_id   TEXT NOT NULL,
    adopted     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (target, guest_id)
);
-- One guest per downstream object: two guests can never both act on one account.
CREATE UNIQUE INDEX sync_owned_remote ON sync_owned(target, remote_id);
