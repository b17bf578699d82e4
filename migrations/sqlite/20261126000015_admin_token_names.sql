-- Admin tokens carry a name (who or what holds them) and may expire; tokens issued before
-- have neither.
ALTER TABLE admin_tokens ADD COLUMN name TEXT NOT NULL DEFAULT 'unnamed';
ALTER TABLE admin_tokens ADD COLUMN expires_at INTEGER;
