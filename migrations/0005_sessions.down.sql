DROP TABLE account.sessions;
