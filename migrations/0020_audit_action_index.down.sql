DROP INDEX account.audit_log_action_idx;
