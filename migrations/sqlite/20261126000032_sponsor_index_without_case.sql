-- Sponsors are e-mail addresses and are matched without case (the console's filter, the
-- API's, a sponsor's own scope); the index follows the comparison.
DROP INDEX guests_console_sponsor_name;
CREATE INDEX guests_console_sponsor_name ON guests(lower(sponsor), lower(user_name), id);
