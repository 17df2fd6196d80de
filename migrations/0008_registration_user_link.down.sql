ALTER TABLE account.onboarding_registrations DROP COLUMN user_id;
