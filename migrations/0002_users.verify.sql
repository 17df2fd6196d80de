SELECT to_regclass('account.users_email_lower_key') IS NOT NULL;
