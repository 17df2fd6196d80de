DROP TABLE account.password_reset_tokens;
