ALTER TABLE account.onboarding_registrations DROP COLUMN source;
