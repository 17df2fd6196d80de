import { userInfo, homedir } from 'node:os';
import { join } from 'node:path';
import type { ClientConfig } from 'pg';
import { usageError } from '../errors.js';
import { findPgpassPassword, privatePassfile } from './pgpass.js';
import { carriesSecret, EXAMPLE_URL } from './secret-forms.js';

/** Where to connect. `password` never leaves this process except through a 0600 passfile. */
export interface ConnectionParams {
  /** Host name, IP address, or a Unix-socket directory (starts with `/`). */
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
  sslmode?: string;
  /** How the target was chosen, for status output: "--database-url", "DATABASE_URL", "libpq", "embedded". */
  source: string;
}

const DEFAULT_SOCKET_DIRS = ['/var/run/postgresql', '/tmp'];

const LIBPQ_URI = /^(postgres(?:ql)?):\/\/(?:([^@/?#]*)@)?([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?$/;

/**
 * Parse a libpq connection URI. WHATWG URL cannot: libpq allows an empty
 * host (`postgresql://user@/db?host=/socket/dir`) and bracketed IPv6 hosts.
 */
export function parseDatabaseUrl(url: string, source: string): ConnectionParams {
  const match = LIBPQ_URI.exec(url.trim());
  // never echoed: where it does not parse, nothing tells which part is the password
  const invalid = (why: string): never => {
    throw usageError(`${source} is not a valid PostgreSQL URL (${why})`, {
      hint: `Use the form ${EXAMPLE_URL} (a reserved character in the user name or password percent-encoded, @ as %40, / as %2F), or postgresql://USER@/DATABASE?host=/socket/dir`,
    });
  };
  if (!match) return invalid('expected postgresql://…');
  const [, , userinfo = '', hostport = '', path = '', queryString = ''] = match;
  const decode = (text: string, what: string): string => {
    try {
      return decodeURIComponent(text);
    } catch {
      return invalid(`bad percent-encoding in the ${what}`);
    }
  };
  const query = new URLSearchParams(queryString);
  if (hostport.includes(',')) invalid('several hosts are not supported');
  // an unencoded "@" in the password leaves part of it in the host
  if (hostport.includes('@')) invalid('an "@" in the user name or password must be written %40');
  // an unencoded "/" in the password ends the host there: the rest, up to its "@", looks like the database
  if (match[2] === undefined && path.includes('@')) invalid('a "/" in the user name or password must be written %2F');
  const hostMatch = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(hostport);
  if (!hostMatch) return invalid('bad host:port');
  const hostText = decode(hostMatch[1]!.replace(/^\[|\]$/g, ''), 'host');
  const host = query.get('host') ?? (hostText || DEFAULT_SOCKET_DIRS[0]!);
  const port = Number(query.get('port') ?? (hostMatch[2] || 5432));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) invalid('bad port');
  const colon = userinfo.indexOf(':');
  const userText = decode(colon === -1 ? userinfo : userinfo.slice(0, colon), 'user');
  const user = userText || query.get('user') || userInfo().username;
  const database = decode(path, 'database') || query.get('dbname') || user;
  const params: ConnectionParams = { host, port, user, database, source };
  const password = colon === -1 ? query.get('password') : decode(userinfo.slice(colon + 1), 'password');
  if (password) params.password = password;
  const sslmode = query.get('sslmode');
  if (sslmode) params.sslmode = sslmode;
  return params;
}

const LIBPQ_TARGET_VARS = ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD'] as const;

/** The libpq variables, when any of them names a target; otherwise undefined. */
export function fromLibpqEnv(env: NodeJS.ProcessEnv): ConnectionParams | undefined {
  if (!LIBPQ_TARGET_VARS.some((name) => env[name])) return undefined;
  const user = env.PGUSER || userInfo().username;
  const port = Number(env.PGPORT || 5432);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw usageError(`PGPORT is not a valid port: ${env.PGPORT}`);
  const params: ConnectionParams = {
    host: env.PGHOST || DEFAULT_SOCKET_DIRS[0]!,
    port,
    user,
    database: env.PGDATABASE || user,
    source: 'libpq environment',
  };
  if (env.PGPASSWORD) params.password = env.PGPASSWORD;
  if (env.PGSSLMODE) params.sslmode = env.PGSSLMODE;
  return params;
}

/**
 * What a URL leaves out, libpq takes from the environment: the password from
 * PGPASSWORD, else the passfile; the sslmode from PGSSLMODE.
 */
export async function withLibpqFallbacks(params: ConnectionParams, env: NodeJS.ProcessEnv): Promise<ConnectionParams> {
  const filled = { ...params };
  if (filled.sslmode === undefined && env.PGSSLMODE) filled.sslmode = env.PGSSLMODE;
  if (filled.password !== undefined) return filled;
  if (env.PGPASSWORD) return { ...filled, password: env.PGPASSWORD };
  const password = await findPgpassPassword(env.PGPASSFILE || join(homedir(), '.pgpass'), filled);
  return password === undefined ? filled : { ...filled, password };
}

/** user@host:port/database, never with a password. */
export function describeTarget(params: ConnectionParams): string {
  const host = params.host.startsWith('/') ? `[${params.host}]` : params.host;
  return `${params.user}@${host}:${params.port}/${params.database}`;
}

/** A URL for display and `cluster url`; includes no password. */
export function toDisplayUrl(params: ConnectionParams): string {
  const user = encodeURIComponent(params.user);
  const db = encodeURIComponent(params.database);
  if (params.host.startsWith('/')) {
    return `postgresql://${user}@/${db}?host=${encodeURIComponent(params.host)}&port=${params.port}`;
  }
  const host = params.host.includes(':') ? `[${params.host}]` : params.host;
  const ssl = params.sslmode ? `?sslmode=${encodeURIComponent(params.sslmode)}` : '';
  return `postgresql://${user}@${host}:${params.port}/${db}${ssl}`;
}

export function withDatabase(params: ConnectionParams, database: string): ConnectionParams {
  return { ...params, database };
}

function sslOption(mode: string | undefined): ClientConfig['ssl'] {
  switch (mode) {
    case undefined:
    case 'disable':
    case 'allow':
    case 'prefer':
      return false;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
    case 'verify-full':
      return true;
    default:
      throw usageError(`unknown sslmode "${mode}"`, { hint: 'Use disable, require, verify-ca or verify-full.' });
  }
}

export interface SessionOptions {
  applicationName: string;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  /**
   * The database's DateStyle, for the session that runs revisions: their
   * date literals and `::text` read and write as the database says. Every
   * other session has ISO, the only output node-postgres parses timestamps from.
   */
  keepDateStyle?: boolean;
}

const KEEPALIVE_IDLE_MS = 10_000;

export function toPgConfig(params: ConnectionParams, options: SessionOptions): ClientConfig {
  const config: ClientConfig = {
    host: params.host,
    port: params.port,
    user: params.user,
    database: params.database,
    ssl: sslOption(params.sslmode),
    application_name: options.applicationName.slice(0, 63),
    connectionTimeoutMillis: options.connectTimeoutMs,
    // a network path that stops passing packets while belay waits for an answer, with nothing of its own unacknowledged,
    // is noticed no other way. Node 20's libuv then probes every 1 s, 10 times (Linux's TCP_KEEPINTVL, TCP_KEEPCNT): such
    // a wait fails ~20 s after the server's last packet. The server's kernel answers the probes however long a statement runs
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS,
    // in the startup packet, above what ALTER ROLE/DATABASE … SET gives the role, and what RESET returns to;
    // as options, since node-postgres leaves out a timeout of 0, which would leave the role's in force
    options: `-c statement_timeout=${Math.round(options.statementTimeoutMs)} -c lock_timeout=${Math.round(options.lockTimeoutMs)} -c idle_in_transaction_session_timeout=0${options.keepDateStyle ? '' : ' -c DateStyle=ISO'}`,
  };
  if (params.password !== undefined) config.password = params.password;
  return config;
}

function escapePassfileField(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll(':', '\\:');
}

/** What a libpq child may see of belay's environment: locale, home, paths, and the TLS settings; nothing else. */
const CHILD_ENV_KEPT = /^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|SYSTEMROOT|PGSSLCERT|PGSSLKEY|PGSSLROOTCERT|PGSSLCRL|PGSSLCRLDIR|PGSSLSNI|PGGSSENCMODE|PGKRBSRVNAME)$/;

/**
 * The smallest environment a child of belay runs with: the kept variables
 * of `base` (see CHILD_ENV_KEPT), less any that carries a secret in any
 * spelling (plain, percent-encoded, inside a URL).
 */
function minimalChildEnv(base: NodeJS.ProcessEnv, secrets: readonly string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) {
    if (value !== undefined && CHILD_ENV_KEPT.test(key) && !carriesSecret(value, secrets)) env[key] = value;
  }
  return env;
}

export interface LibpqChild {
  env: NodeJS.ProcessEnv;
  /** Open descriptors the child must get as fds 3, 4, … (the passfile); pass them in spawn's stdio. */
  extraFds: number[];
  /** Call when the child has exited. */
  cleanup: () => Promise<void>;
}

/**
 * pg_restore's `--dbname` for `database`, as a connection string: the name
 * alone would be read as one when it holds `=` or starts like a URI. The
 * rest of the target comes from the child's PG* variables (libpqChildEnv).
 */
export const dbnameArgument = (database: string): string => `--dbname=dbname='${database.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;

/**
 * Environment for a libpq child (pg_dump, pg_restore, psql): the target in
 * PG* variables, the password in a passfile that has no name on disk (see
 * privatePassfile), never in argv or a PGPASSWORD variable.
 */
export async function libpqChildEnv(params: ConnectionParams, base: NodeJS.ProcessEnv, applicationName: string): Promise<LibpqChild> {
  const secrets = params.password === undefined ? [] : [params.password];
  const env = minimalChildEnv(base, secrets);
  env.PGHOST = params.host;
  env.PGPORT = String(params.port);
  env.PGUSER = params.user;
  env.PGDATABASE = params.database;
  env.PGAPPNAME = applicationName.slice(0, 63);
  env.PGCONNECT_TIMEOUT = '10';
  if (params.sslmode) env.PGSSLMODE = params.sslmode;
  if (params.password === undefined) {
    env.PGPASSFILE = '/dev/null';
    return { env, extraFds: [], cleanup: async () => {} };
  }
  const passfile = await privatePassfile(`*:*:*:*:${escapePassfileField(params.password)}\n`);
  env.PGPASSFILE = passfile.path;
  return { env, extraFds: passfile.fd === undefined ? [] : [passfile.fd], cleanup: passfile.cleanup };
}
