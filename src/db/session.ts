import { Socket } from 'node:net';
import pg, { type ClientBase } from 'pg';
import { BelayError } from '../errors.js';
import { describeTarget, toPgConfig, type ConnectionParams, type SessionOptions } from './connection.js';
import { quoteIdent } from './ident.js';
import { SQLSTATE } from './sqlstate.js';

export interface Session {
  client: pg.Client;
  serverVersionNum: number;
  /** The server process serving this session (pg_backend_pid()). */
  backendPid: number;
  close(): Promise<void>;
  /**
   * Ends the connection without waiting for the server to close its side,
   * and lets the process exit before it has: for a command that has read
   * all it needs (status). The server ends the session on the Terminate
   * sent here, or on the closed socket.
   */
  release(): void;
  /**
   * Ends the connection at once, failing every statement waiting on it with
   * `reason` (a connection lost): for a server that does not answer, where
   * an orderly close would wait until TCP gives up.
   */
  sever(reason: string): void;
}

/**
 * End a connection, never waiting on the server longer than `timeoutMs`: one
 * that never answers the Terminate (a network path that stopped passing data)
 * would hold an orderly close until TCP gives up. Never throws.
 */
export async function endClient(client: pg.Client, timeoutMs: number): Promise<void> {
  const timer = setTimeout(() => client.connection.stream.destroy(), timeoutMs);
  await client.end().catch(() => {});
  clearTimeout(timer);
}

/**
 * Two sessions opened at once (a login each). When either cannot be, the
 * other is closed and the first failure, in argument order, is thrown.
 */
export async function openBoth(first: Promise<Session>, second: Promise<Session>): Promise<[Session, Session]> {
  const [a, b] = await Promise.allSettled([first, second]);
  if (a.status === 'fulfilled' && b.status === 'fulfilled') return [a.value, b.value];
  for (const opened of [a, b]) if (opened.status === 'fulfilled') await opened.value.close();
  throw a.status === 'rejected' ? a.reason : (b as PromiseRejectedResult).reason;
}

/** How often the server checks that a belay client is still there (PostgreSQL ≥ 14). */
const CONNECTION_CHECK_INTERVAL_MS = 2000;

/**
 * Open one connection with belay's session settings: bounded statement and
 * lock waits, and a server-side check that cancels our statement soon after
 * this process dies instead of letting it run on holding locks.
 */
export async function openSession(params: ConnectionParams, options: SessionOptions): Promise<Session> {
  const client = new pg.Client(toPgConfig(params, options));
  // an error on an idle connection (server restart, network loss) must not crash the process
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    // a failed handshake (e.g. SCRAM without a password) can leave the socket open and the process alive
    await endClient(client, options.connectTimeoutMs);
    throw connectError(params, error);
  }
  // belay's settings made in the same round trip
  const { rows } = await client.query<{ v: string; pid: number }>(
    `SELECT current_setting('server_version_num') AS v, pg_backend_pid() AS pid, (${SESSION_SETTINGS}) AS settings`,
  );
  const serverVersionNum = Number(rows[0]?.v);
  const backendPid = rows[0]!.pid;
  origins.set(client, { params, options, backendPid });
  return {
    client,
    serverVersionNum,
    backendPid,
    close: () => endClient(client, options.connectTimeoutMs),
    release: () => {
      void client.end().catch(() => {});
      const socket = client.connection.stream;
      if (socket instanceof Socket) socket.unref();
    },
    sever: (reason) => {
      client.connection.stream.destroy(Object.assign(new Error(reason), { code: 'ETIMEDOUT' }));
    },
  };
}

interface Origin {
  params: ConnectionParams;
  options: SessionOptions;
  backendPid: number;
}

/** How each session was opened, so that a second connection can look at it from outside while it waits. */
const origins = new WeakMap<ClientBase, Origin>();

/** The server process and lock_timeout of a session belay opened; undefined for a client belay did not open. */
export function sessionOrigin(client: ClientBase): { backendPid: number; lockTimeoutMs: number } | undefined {
  const origin = origins.get(client);
  return origin && { backendPid: origin.backendPid, lockTimeoutMs: origin.options.lockTimeoutMs };
}

/** A second connection like `client`'s (same target and role), named for `purpose`. */
export async function openSibling(client: ClientBase, purpose: string): Promise<Session | undefined> {
  const origin = origins.get(client);
  if (!origin) return undefined;
  const { connectTimeoutMs, statementTimeoutMs, lockTimeoutMs } = origin.options;
  // belay's own, with ISO dates even beside the session that runs revisions
  return openSession(origin.params, { applicationName: `${origin.options.applicationName} ${purpose}`.slice(0, 63), connectTimeoutMs, statementTimeoutMs, lockTimeoutMs });
}

/**
 * The settings belay makes after connecting, as one statement without
 * parameters (it shares round trips). The others (application_name,
 * statement_timeout, lock_timeout) come in the startup packet, which is what
 * RESET returns to. Only where the parameter exists (PostgreSQL 14 on):
 * current_setting(…, true) is null elsewhere. Not through the pg_settings view,
 * which builds a row for every setting: 2–5 ms on a new session, 0.3–2 ms after.
 */
const SESSION_SETTINGS = `SELECT set_config('client_connection_check_interval', '${CONNECTION_CHECK_INTERVAL_MS}', false) WHERE current_setting('client_connection_check_interval', true) IS NOT NULL`;

/** Back to the role and the settings belay connected with. */
const RESET_SETTINGS = `SET SESSION AUTHORIZATION DEFAULT; RESET ALL; ${SESSION_SETTINGS}`;

/**
 * The rest of DISCARD ALL, spelled out as the statements the PostgreSQL
 * documentation says it stands for (with RESET_SETTINGS's first two): unlike
 * DISCARD ALL, they can share a round trip with belay's settings. Unlike
 * DISCARD ALL, they also run inside an open transaction block: the engine
 * checks that no revision leaves one open. None of them depends on the role.
 * All but DISCARD PLANS: a cached plan is made again whenever what it
 * depends on changes (a table, the search_path, the role under row
 * security), so a revision's plans cannot change what the next one does,
 * and discarding them would throw away the plans of belay's own function
 * (ensureTrackerFunction) every revision.
 */
const DISCARD_SESSION_STATE = 'CLOSE ALL; DEALLOCATE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES';

/**
 * The session as belay opened it, so that what one revision did to its
 * session (SET, SET ROLE, SET SESSION AUTHORIZATION, set_config(…, false),
 * temporary tables, prepared statements, cursors, LISTEN, session advisory
 * locks) does not carry into the next: statements to send at the head of a
 * simple query. Inside a transaction, it holds once the transaction commits
 * (a revision's record sends it before its COMMIT).
 */
export const SESSION_RESET = `${DISCARD_SESSION_STATE}; ${RESET_SETTINGS}`;

/** SESSION_RESET in a round trip of its own. */
export async function resetSession(client: ClientBase): Promise<void> {
  await client.query(SESSION_RESET);
}

const CONNECT_FAILURES = new WeakSet<BelayError>();

/** Whether the error is openSession's "cannot connect" (the server down, unreachable, or refusing the login). */
export const isConnectFailure = (error: unknown): error is BelayError => error instanceof BelayError && CONNECT_FAILURES.has(error);

/** openSession's "cannot connect" because the database does not exist. */
export const isMissingDatabase = (error: unknown): boolean => isConnectFailure(error) && (error.cause as { code?: string } | undefined)?.code === SQLSTATE.invalidCatalogName;

/** A connection the server refused, told with what to check (exit 2). */
export function connectError(params: ConnectionParams, error: unknown): BelayError {
  const raw = error instanceof Error ? error.message : String(error);
  // node-postgres words a missing password as "client password must be a string"
  const message = params.password === undefined && /password/i.test(raw) ? 'the server asks for a password and none was given (URL, PGPASSWORD or the passfile)' : raw;
  const code = (error as { code?: string }).code;
  const hint =
    code === '28P01' || /password/i.test(message)
      ? 'Check the password (URL, PGPASSWORD or PGPASSFILE) for this role.'
      : code === SQLSTATE.invalidCatalogName
        ? `Create the database first, or point --database-url at an existing one. If a belay swap restore was interrupted between its two renames, \`belay recover\` with the --backups its journal is in renames the restored copy (${params.database}_belay_restore_<time>; the damaged one is ${params.database}_quarantine_<time>) into place; without that journal, rename it to ${params.database} with ALTER DATABASE … RENAME TO …, then \`belay recover\`.`
        : code === SQLSTATE.objectNotInPrerequisiteState
          ? `belay may have turned connections off during a swap restore that did not finish: \`belay recover\` (with the same --backups) turns them back on and settles that run; if it cannot, as the owner of ${params.database} or a superuser, connected to another database: ALTER DATABASE ${quoteIdent(params.database)} WITH ALLOW_CONNECTIONS true; then \`belay recover\`.`
          : code === SQLSTATE.tooManyConnections
            ? `Its connection limit is reached: that of role ${params.user}, of database ${params.database}, or the server's max_connections (the message says which). End sessions that are not needed (pg_stat_activity), or raise the limit (ALTER ROLE ${quoteIdent(params.user)} CONNECTION LIMIT n, ALTER DATABASE ${quoteIdent(params.database)} CONNECTION LIMIT n, or max_connections); a changing run opens at least two.`
            : code === SQLSTATE.insufficientPrivilege
              ? `Role ${params.user} may not connect to ${params.database}: as its owner or a superuser, GRANT CONNECT ON DATABASE ${quoteIdent(params.database)} TO ${quoteIdent(params.user)}; or connect as a role that may.`
              : 'Check that the server is running and the connection settings (--database-url, DATABASE_URL, PG* variables) are right.';
  const failure = new BelayError('usage', `cannot connect to ${describeTarget(params)}: ${message}`, { hint, cause: error });
  CONNECT_FAILURES.add(failure);
  return failure;
}
