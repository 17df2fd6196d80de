ALTER TABLE account.sessions ADD COLUMN user_agent text, ADD COLUMN ip inet;
