import type { ClientBase } from 'pg';

/** Two-key advisory lock: the first key spells "bela", the second names what is locked. */
const LOCK_CLASS = 0x62656c61;
const LOCK_MIGRATIONS = 1;

export interface LockHolder {
  pid: number;
  applicationName: string;
  user: string;
  clientAddress: string | null;
  backendStart: string;
  state: string | null;
}

export async function tryAdvisoryLock(client: ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LOCK_CLASS, LOCK_MIGRATIONS]);
  return rows[0]?.ok === true;
}

/** Who holds belay's lock on this database, if anyone. */
export async function findLockHolder(client: ClientBase): Promise<LockHolder | undefined> {
  const { rows } = await client.query<{
    pid: number;
    application_name: string;
    usename: string;
    client_addr: string | null;
    backend_start: Date;
    state: string | null;
  }>(
    `SELECT a.pid, a.application_name, a.usename, a.client_addr::text AS client_addr, a.backend_start, a.state
       FROM pg_locks l
       JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2`,
    [LOCK_CLASS, LOCK_MIGRATIONS],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    pid: row.pid,
    applicationName: row.application_name,
    user: row.usename,
    clientAddress: row.client_addr,
    backendStart: row.backend_start.toISOString(),
    state: row.state,
  };
}
