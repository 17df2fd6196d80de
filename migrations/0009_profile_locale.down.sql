ALTER TABLE account.profiles DROP COLUMN locale;
