DROP SCHEMA account;
