CREATE TABLE account.sessions (
  id          uuid PRIMARY KEY,
  user_id     bigint NOT NULL REFERENCES account.users (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_user_id_idx ON account.sessions (user_id);
