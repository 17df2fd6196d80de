ALTER TABLE account.users ADD COLUMN last_login timestamptz;
