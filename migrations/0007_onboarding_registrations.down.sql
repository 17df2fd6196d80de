DROP TABLE account.onboarding_registrations;
