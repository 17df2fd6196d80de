ALTER TABLE account.profiles ADD COLUMN locale text NOT NULL DEFAULT 'en';
