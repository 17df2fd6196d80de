ALTER TABLE account.onboarding_registrations
  ADD COLUMN user_id bigint REFERENCES account.users (id) ON DELETE SET NULL;
