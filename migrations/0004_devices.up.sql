CREATE TABLE account.devices (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id     bigint NOT NULL REFERENCES account.users (id) ON DELETE CASCADE,
  platform    text NOT NULL CHECK (platform IN ('ios', 'android', 'web')),
  push_token  text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_user_id_idx ON account.devices (user_id);
