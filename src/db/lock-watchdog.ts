import type { ClientBase } from 'pg';

export interface LockWatchdog {
  /** Stop watching; whether it had to cancel a statement. */
  stop(): Promise<boolean>;
}

/**
 * Cancel any statement of the sessions named `applicationName` on `database`
 * that has waited for a lock longer than `timeoutMs`. For children that
 * cannot be given a lock_timeout: pg_restore replays the archive's own
 * `SET lock_timeout = 0`.
 */
export function watchLockWaits(client: ClientBase, database: string, applicationName: string, timeoutMs: number): LockWatchdog {
  let cancelled = false;
  let pending: Promise<unknown> = Promise.resolve();
  const check = (): void => {
    pending = client
      .query<{ cancelled: boolean }>(
        `SELECT pg_cancel_backend(pid) AS cancelled FROM pg_stat_activity
          WHERE datname = $1 AND application_name = $2 AND wait_event_type = 'Lock'
            AND query_start < clock_timestamp() - make_interval(secs => $3)`,
        [database, applicationName, timeoutMs / 1000],
      )
      .then(({ rows }) => {
        if (rows.some((row) => row.cancelled)) cancelled = true;
      })
      .catch(() => {});
  };
  const timer = setInterval(check, Math.min(1000, Math.max(100, timeoutMs / 4)));
  return {
    async stop() {
      clearInterval(timer);
      await pending;
      return cancelled;
    },
  };
}
