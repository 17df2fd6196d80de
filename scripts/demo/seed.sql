-- Realistic data for the account schema at 0022: deterministic, no random().
INSERT INTO account.users (email, password_hash, is_active, date_joined, last_login, email_verified)
SELECT format('user%s@example.com', g), md5('pw' || g), g % 17 <> 0,
       timestamptz '2024-01-01' + g * interval '37 minutes',
       CASE WHEN g % 5 = 0 THEN NULL ELSE timestamptz '2025-06-01' + g * interval '11 minutes' END,
       g % 10 <> 0  -- 0015's invariant: whoever completed onboarding has a verified email
  FROM generate_series(1, 2000) g;
UPDATE account.users SET status = 'suspended' WHERE NOT is_active;
INSERT INTO account.profiles (user_id, first_name, last_name, phone_number, locale)
SELECT id, 'First' || id, 'Last' || id, CASE WHEN id % 4 = 0 THEN NULL ELSE '+1555' || lpad(id::text, 7, '0') END,
       (ARRAY['en', 'fr', 'de', 'es'])[1 + id % 4]
  FROM account.users;
INSERT INTO account.devices (user_id, platform, push_token, created_at, last_seen_at)
SELECT id, (ARRAY['ios', 'android', 'web'])[1 + id % 3], md5('token' || id), date_joined, last_login
  FROM account.users WHERE id % 2 = 0;
INSERT INTO account.sessions (id, user_id, created_at, expires_at, user_agent, ip)
SELECT md5('session' || id)::uuid, id, date_joined, date_joined + interval '30 days', 'demo-agent/' || (id % 7), ('10.0.' || (id % 250) || '.' || (id % 200))::inet
  FROM account.users WHERE id % 3 = 0;
INSERT INTO account.onboarding_registrations (email, step, started_at, completed_at, user_id, source)
SELECT email, CASE WHEN id % 10 = 0 THEN 'profile' ELSE 'completed' END, date_joined,
       CASE WHEN id % 10 = 0 THEN NULL ELSE date_joined + interval '5 minutes' END, id,
       (ARRAY['web', 'ios', 'android'])[1 + id % 3]
  FROM account.users;
INSERT INTO account.audit_log (user_id, action, detail, at)
SELECT 1 + g % 2000, (ARRAY['login', 'logout', 'password_change', 'profile_update'])[1 + g % 4],
       jsonb_build_object('n', g, 'ok', g % 9 <> 0), timestamptz '2025-01-01' + g * interval '3 minutes'
  FROM generate_series(1, 6000) g;
INSERT INTO account.password_reset_tokens (token_hash, user_id, expires_at, used_at)
SELECT md5('reset' || id), id, last_login + interval '1 hour', CASE WHEN id % 2 = 0 THEN last_login + interval '10 minutes' END
  FROM account.users WHERE id % 25 = 1 AND last_login IS NOT NULL;
