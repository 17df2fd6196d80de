ALTER TABLE account.users DROP COLUMN status;
DROP TYPE account.user_status;
