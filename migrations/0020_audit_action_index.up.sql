CREATE INDEX audit_log_action_idx ON account.audit_log (action, at);
