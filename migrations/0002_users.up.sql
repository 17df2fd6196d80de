CREATE TABLE account.users (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email      text NOT NULL,
  password_hash text NOT NULL,
  is_active  boolean NOT NULL DEFAULT true,
  date_joined timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON account.users (lower(email));
