-- The housekeeping job deletes rows whose use has passed, a batch at a time by these columns.
CREATE INDEX guest_sessions_expires ON guest_sessions(expires_at);
CREATE INDEX email_codes_expires ON email_codes(expires_at);
CREATE INDEX signin_links_expires ON signin_links(expires_at);
CREATE INDEX rate_limits_window ON rate_limits(window_start);
CREATE INDEX job_runs_started ON job_runs(started_at);
CREATE INDEX notices_at ON notices(at);
