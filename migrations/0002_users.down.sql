DROP TABLE account.users;
