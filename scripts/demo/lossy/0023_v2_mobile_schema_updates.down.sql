-- Drops the V2 columns, but the emails the up rewrote stay rewritten.
ALTER TABLE account.users
  DROP COLUMN auth_version,
  DROP COLUMN pin_set_at,
  DROP COLUMN passcode_set_at,
  DROP COLUMN pin_hash,
  DROP COLUMN passcode_hash;
