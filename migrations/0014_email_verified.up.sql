ALTER TABLE account.users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
