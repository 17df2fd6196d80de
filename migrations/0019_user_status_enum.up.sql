CREATE TYPE account.user_status AS ENUM ('active', 'suspended', 'deleted');
ALTER TABLE account.users ADD COLUMN status account.user_status NOT NULL DEFAULT 'active';
UPDATE account.users SET status = 'suspended' WHERE NOT is_active;
