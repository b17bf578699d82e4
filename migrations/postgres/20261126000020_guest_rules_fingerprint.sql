-- The fingerprint of the rule set each guest decision was made with (NULL: decided before
-- rule sets were recorded, or never decided by the rules).
ALTER TABLE guests ADD COLUMN rules_fingerprint TEXT;
