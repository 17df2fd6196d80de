ALTER TABLE account.profiles RENAME COLUMN phone_number TO phone;
