DO $$
BEGIN
  IF to_regclass('account.users_email_lower_key') IS NULL THEN
    RAISE EXCEPTION 'account.users_email_lower_key is missing: emails would not be unique';
  END IF;
END $$;
