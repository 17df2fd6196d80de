ALTER TABLE account.onboarding_registrations
  ADD CONSTRAINT onboarding_registrations_step_check
  CHECK (step IN ('started', 'email_verified', 'profile', 'completed'));
