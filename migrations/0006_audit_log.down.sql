DROP TABLE account.audit_log;
