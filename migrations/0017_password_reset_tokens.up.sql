CREATE TABLE account.password_reset_tokens (
  token_hash  text PRIMARY KEY,
  user_id     bigint NOT NULL REFERENCES account.users (id) ON DELETE CASCADE,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz
);
