CREATE VIEW account.active_users AS
  SELECT u.id, u.email, p.first_name, p.last_name, u.last_login
    FROM account.users u LEFT JOIN account.profiles p ON p.user_id = u.id
   WHERE u.status = 'active';
