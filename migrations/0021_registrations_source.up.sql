ALTER TABLE account.onboarding_registrations ADD COLUMN source text NOT NULL DEFAULT 'web';
