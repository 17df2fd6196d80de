DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                  WHERE conname = 'onboarding_registrations_step_check'
                    AND conrelid = 'account.onboarding_registrations'::regclass AND convalidated) THEN
    RAISE EXCEPTION 'onboarding_registrations_step_check is missing or not validated';
  END IF;
END $$;
