-- The admin console's guests table: a case-insensitive prefix search on userName, name or
-- e-mail, filters, and keyset pages in (lower(userName), id) order, each an index range.
-- A prefix range is a byte range only in the "C" collation (SQLite's binary order), so the
-- searched columns compare in it, as text that is ordered does elsewhere (architecture.md).
ALTER TABLE guests ALTER COLUMN user_name TYPE TEXT COLLATE "C";
ALTER TABLE guests ALTER COLUMN display_name TYPE TEXT COLLATE "C";
ALTER TABLE guests ALTER COLUMN email TYPE TEXT COLLATE "C";
ALTER TABLE guests ALTER COLUMN sponsor TYPE TEXT COLLATE "C";
CREATE INDEX guests_console_name ON guests(lower(user_name), id);
CREATE INDEX guests_console_partner_name ON guests(partner_id, lower(user_name), id);
CREATE INDEX guests_console_display ON guests(lower(display_name));
CREATE INDEX guests_console_email ON guests(lower(email));
-- A filter by state or sponsor reads its rows already in table order, so a page stops
-- after 51 rows instead of sorting every active guest.
CREATE INDEX guests_console_state_name ON guests(state, lower(user_name), id);
CREATE INDEX guests_console_sponsor_name ON guests(sponsor, lower(user_name), id);
