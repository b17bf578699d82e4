-- Housekeeping deletes console sessions past their absolute end and setup links past their
-- end; these indexes let each batch find them without scanning the tables.
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
CREATE INDEX admin_login_links_expires ON admin_login_links (expires_at);
