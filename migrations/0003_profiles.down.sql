DROP TABLE account.profiles;
