DO $$
DECLARE found int;
BEGIN
  SELECT count(*) INTO found FROM information_schema.columns
   WHERE table_schema = 'account' AND table_name = 'users'
     AND column_name IN ('passcode_hash', 'pin_hash', 'passcode_set_at', 'pin_set_at', 'auth_version');
  IF found <> 5 OR to_regclass('account.users_auth_version_idx') IS NULL THEN
    RAISE EXCEPTION 'V2 mobile auth columns incomplete: % of 5 present, index %', found,
      coalesce(to_regclass('account.users_auth_version_idx')::text, 'missing');
  END IF;
END $$;
