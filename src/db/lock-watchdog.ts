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

/** A session that held a lock another one waited for. */
export interface LockBlocker {
  pid: number;
  applicationName: string;
  user: string;
  state: string | null;
  /** When its current (or last) query started, and its transaction. Not the query text: it may hold another user's secrets. */
  queryStart: string | null;
  transactionStart: string | null;
  /** The relations the waiting session waited for while this one blocked it, when seen. */
  relations?: string[];
}

/** A blocker as both queries below read it from pg_stat_activity (and the relations from pg_locks). */
interface BlockerRow {
  pid: number;
  application_name: string;
  usename: string;
  state: string | null;
  query_start: Date | null;
  xact_start: Date | null;
  relations: string[] | null;
}

const blockerOf = (row: BlockerRow): LockBlocker => ({
  pid: row.pid,
  applicationName: row.application_name,
  user: row.usename,
  state: row.state,
  queryStart: row.query_start?.toISOString() ?? null,
  transactionStart: row.xact_start?.toISOString() ?? null,
  ...(row.relations?.length ? { relations: row.relations } : {}),
});

/** For messages: `pid 123 (application_name "job", user app, idle in transaction, …) on public.t`. Not the query text: it may hold another user's secrets. */
export function describeBlocker(b: LockBlocker): string {
  const since = b.transactionStart ? `, transaction since ${b.transactionStart}` : '';
  const query = b.queryStart ? `, ${b.state === 'active' ? 'query' : 'last query'} started ${b.queryStart}` : '';
  const on = b.relations?.length ? ` on ${b.relations.join(', ')}` : '';
  return `pid ${b.pid} (application_name "${b.applicationName}", user ${b.user}, ${b.state ?? 'state unknown'}${since}${query})${on}`;
}

export interface BlockerWatch {
  /** The sessions seen blocking the watched one, the last time it waited. */
  seen(): LockBlocker[];
  stop(): Promise<void>;
}

/**
 * While `client` runs one long step, look from a second connection at who
 * blocks it (pg_blocking_pids), so that a lock timeout can name the session
 * holding the lock: once the waiting statement fails, the wait and what it
 * waited for are gone. The second connection is opened only when the step
 * lasts longer than a poll interval (a quarter of lock_timeout, 50 ms to 1 s).
 */
export function watchBlockers(
  openObserver: () => Promise<{ client: ClientBase; close(): Promise<void> } | undefined>,
  pid: number,
  lockTimeoutMs: number,
): BlockerWatch {
  const intervalMs = lockTimeoutMs > 0 ? Math.min(1000, Math.max(50, lockTimeoutMs / 4)) : 1000;
  let blockers: LockBlocker[] = [];
  let stopped = false;
  let observer: Promise<{ client: ClientBase; close(): Promise<void> } | undefined> | undefined;
  let pending: Promise<unknown> = Promise.resolve();
  const look = async (): Promise<void> => {
    if (stopped) return;
    observer ??= openObserver().catch(() => undefined);
    const session = await observer;
    if (!session || stopped) return;
    const { rows } = await session.client.query<BlockerRow>(
      `SELECT pid, application_name, usename, state, query_start, xact_start,
              (SELECT pg_catalog.array_agg(DISTINCT (SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = w.relation)) FROM pg_catalog.pg_locks w
                WHERE w.pid = $1 AND NOT w.granted AND w.relation IS NOT NULL) AS relations
         FROM pg_stat_activity WHERE pid = ANY (pg_blocking_pids($1)) ORDER BY pid`,
      [pid],
    );
    if (rows.length > 0) blockers = rows.map(blockerOf);
  };
  const timer = setInterval(() => {
    pending = pending.then(look).catch(() => {});
  }, intervalMs);
  return {
    seen: () => blockers,
    async stop() {
      stopped = true;
      clearInterval(timer);
      // closed first, which fails a look still waiting (node-postgres drops a connection with a statement in flight):
      // one sent as the path to the server froze is never answered, nor noticed by keepalive while unacknowledged
      await (await observer)?.close();
      await pending;
    },
  };
}

/**
 * After a lock wait failed (the wait, and what it waited for, are gone):
 * the other sessions that hold an ACCESS EXCLUSIVE lock on a relation of
 * this database now, the likeliest blockers of a reader. Best effort.
 */
export async function exclusiveLockHolders(client: ClientBase, except: number[] = []): Promise<LockBlocker[]> {
  const { rows } = await client.query<BlockerRow>(
    `SELECT a.pid, a.application_name, a.usename, a.state, a.query_start, a.xact_start,
            pg_catalog.array_agg(DISTINCT (SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = l.relation)) AS relations
       FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'AccessExclusiveLock'
        AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
        AND l.pid <> pg_catalog.pg_backend_pid() AND NOT (l.pid = ANY ($1::int[]))
      GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1`,
    [except],
  );
  return rows.map(blockerOf);
}
