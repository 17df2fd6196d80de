CREATE TABLE account.profiles (
  user_id    bigint PRIMARY KEY REFERENCES account.users (id) ON DELETE CASCADE,
  first_name text NOT NULL DEFAULT '',
  last_name  text NOT NULL DEFAULT '',
  phone      text
);
