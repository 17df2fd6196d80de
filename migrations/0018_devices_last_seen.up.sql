ALTER TABLE account.devices ADD COLUMN last_seen_at timestamptz;
