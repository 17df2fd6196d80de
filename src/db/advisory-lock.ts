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

/**
 * The sessions holding belay's lock on this database, with who they are; its
 * two keys are the statement's first two parameters (LOCK_KEYS). The activity
 * of each holder's pid through pg_stat_get_activity, the function under the
 * pg_stat_activity view (same columns, same privilege rules): planning the view
 * and its joins cost a new session (status's) 2–4 ms more.
 */
export const LOCK_HOLDER_ROWS = `SELECT a.pid, a.application_name, pg_get_userbyid(a.usesysid) AS usename, a.client_addr::text AS client_addr, a.backend_start, a.state
       FROM pg_locks l, pg_stat_get_activity(l.pid) a
      WHERE l.locktype = 'advisory' AND l.granted
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2`;

export const LOCK_KEYS: readonly [number, number] = [LOCK_CLASS, LOCK_MIGRATIONS];

export interface LockHolderRow {
  pid: number;
  application_name: string;
  usename: string;
  client_addr: string | null;
  backend_start: Date;
  state: string | null;
}

export function toLockHolder(row: LockHolderRow): LockHolder {
  return {
    pid: row.pid,
    applicationName: row.application_name,
    user: row.usename,
    clientAddress: row.client_addr,
    backendStart: row.backend_start.toISOString(),
    state: row.state,
  };
}

/** Who holds belay's lock on this database, if anyone. */
export async function findLockHolder(client: ClientBase): Promise<LockHolder | undefined> {
  const { rows } = await client.query<LockHolderRow>(LOCK_HOLDER_ROWS, [...LOCK_KEYS]);
  return rows[0] && toLockHolder(rows[0]);
}
