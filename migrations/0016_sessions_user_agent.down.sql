ALTER TABLE account.sessions DROP COLUMN ip, DROP COLUMN user_agent;
