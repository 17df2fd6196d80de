-- belay:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS account.audit_log_at_idx;
