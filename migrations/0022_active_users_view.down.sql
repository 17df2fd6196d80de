DROP VIEW account.active_users;
