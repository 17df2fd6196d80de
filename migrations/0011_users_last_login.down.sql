ALTER TABLE account.users DROP COLUMN last_login;
