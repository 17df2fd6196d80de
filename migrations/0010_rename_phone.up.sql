ALTER TABLE account.profiles RENAME COLUMN phone TO phone_number;
