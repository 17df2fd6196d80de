-- CREATE INDEX CONCURRENTLY leaves an INVALID index behind when it fails.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_index
                  WHERE indexrelid = to_regclass('account.audit_log_at_idx') AND indisvalid AND indisready) THEN
    RAISE EXCEPTION 'account.audit_log_at_idx is missing or invalid: drop it and run 0013 again';
  END IF;
END $$;
