-- belay:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_log_at_idx ON account.audit_log (at);
