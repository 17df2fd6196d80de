-- A lossy variant of 0023: it also "normalises" emails to lower case, which its down cannot undo.
UPDATE account.users SET email = upper(email) WHERE id % 2 = 0;
ALTER TABLE account.users
  ADD COLUMN passcode_hash   text,
  ADD COLUMN pin_hash        text,
  ADD COLUMN passcode_set_at timestamptz,
  ADD COLUMN pin_set_at      timestamptz,
  ADD COLUMN auth_version    smallint NOT NULL DEFAULT 1;
