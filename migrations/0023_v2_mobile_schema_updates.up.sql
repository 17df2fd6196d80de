-- V2 mobile authentication: passcode and PIN, on the users table.
ALTER TABLE account.users
  ADD COLUMN passcode_hash   text,
  ADD COLUMN pin_hash        text,
  ADD COLUMN passcode_set_at timestamptz,
  ADD COLUMN pin_set_at      timestamptz,
  ADD COLUMN auth_version    smallint NOT NULL DEFAULT 1;
CREATE INDEX users_auth_version_idx ON account.users (auth_version) WHERE auth_version > 1;
