CREATE TABLE account.onboarding_registrations (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email       text NOT NULL,
  step        text NOT NULL DEFAULT 'started',
  started_at  timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);
