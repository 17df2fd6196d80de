DROP INDEX account.users_auth_version_idx;
ALTER TABLE account.users
  DROP COLUMN auth_version,
  DROP COLUMN pin_set_at,
  DROP COLUMN passcode_set_at,
  DROP COLUMN pin_hash,
  DROP COLUMN passcode_hash;
