ALTER TABLE account.users DROP COLUMN email_verified;
