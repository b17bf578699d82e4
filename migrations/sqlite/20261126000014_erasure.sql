-- Personal data the audit log needs lives here, not in audit_log: an audit row's detail holds
-- {"subject_ref": REF} where the value was, and erasure deletes the subject's rows, so the
-- append-only log keeps every entry while the person's name, e-mail and userName go.
CREATE TABLE audit_subjects (
    ref         TEXT PRIMARY KEY,
    -- The SCIM user or guest id the values belong to (what erasure deletes by).
    subject_id  TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX audit_subjects_subject ON audit_subjects(subject_id);

-- Rows written before this migration carry userName in the clear: move it once. The
-- triggers are lifted for this statement only and restored as they were.
INSERT INTO audit_subjects (ref, subject_id, data)
SELECT 'legacy:' || id, target_id, json_object('userName', json_extract(detail, '$.userName'))
FROM audit_log
WHERE target_type = 'user' AND target_id IS NOT NULL AND json_valid(detail)
  AND json_type(detail, '$.userName') = 'text';
DROP TRIGGER audit_log_no_update;
UPDATE audit_log
SET detail = json_set(detail, '$.userName', json_object('subject_ref', 'legacy:' || id))
WHERE 'legacy:' || id IN (SELECT ref FROM audit_subjects);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- Retention pruning takes settled rows a batch at a time by these columns.
CREATE INDEX sync_outbox_delivered ON sync_outbox(delivered_at);
CREATE INDEX mail_outbox_sent ON mail_outbox(sent_at);
CREATE INDEX mail_outbox_failed ON mail_outbox(failed_at);
-- Erasure finds a guest's rows by these, so erasing one guest does not scan whole tables.
CREATE INDEX sync_outbox_guest ON sync_outbox(guest_id);
CREATE INDEX mail_outbox_to ON mail_outbox(lower(to_addr));
CREATE INDEX notices_guest ON notices(guest_id);
CREATE INDEX signin_links_guest ON signin_links(guest_id);

-- When a removed guest's personal data was erased; the job looks for removed guests not yet
-- erased by this index (before, "email IS NOT NULL" missed guests without an address).
ALTER TABLE guests ADD COLUMN erased_at INTEGER;
UPDATE guests SET erased_at = updated_at WHERE state = 'removed' AND user_name LIKE 'erased:%';
CREATE INDEX guests_erasure_due ON guests(updated_at) WHERE state = 'removed' AND erased_at IS NULL;
