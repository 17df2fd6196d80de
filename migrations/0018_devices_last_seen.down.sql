ALTER TABLE account.devices DROP COLUMN last_seen_at;
