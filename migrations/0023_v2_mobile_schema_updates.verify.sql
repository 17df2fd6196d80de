SELECT count(*) = 5 FROM information_schema.columns
 WHERE table_schema = 'account' AND table_name = 'users'
   AND column_name IN ('passcode_hash', 'pin_hash', 'passcode_set_at', 'pin_set_at', 'auth_version');
