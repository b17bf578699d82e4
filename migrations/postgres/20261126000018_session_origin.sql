-- How each guest session began, so a second factor is never the same proof as the first: a
-- session begun from an e-mailed link (invitation or sign-in link) may not pass MFA with an
-- e-mailed code. Sessions from before this column came from e-mailed links too.
ALTER TABLE guest_sessions ADD COLUMN origin TEXT NOT NULL DEFAULT 'signin_link';
