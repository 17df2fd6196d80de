import { chown, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import pg from 'pg';
import type { ConnectionParams } from '../db/connection.js';
import { quoteIdent } from '../db/ident.js';
import { BelayError, errorMessage, preflightError, usageError } from '../errors.js';
import { sha256Hex } from '../sha256.js';
import {
  findServerBinDir,
  initCluster,
  isInitialised,
  isRunning,
  prepareLogFile,
  reachableBy,
  startCluster,
  stopCluster,
  type LocalClusterSpec,
} from './local-cluster.js';
import { serverUser, type OsUser } from './os-user.js';
import { makeDir } from '../make-dir.js';

// not "belay": with search_path "$user", public, a role named like belay's own schema would create its tables there
const SUPERUSER = 'postgres';
const DATABASE = 'belay';
const PORT = 5432;
/** sun_path holds 108 bytes; leave room for "/.s.PGSQL.5432". */
const MAX_SOCKET_DIR = 90;

export interface EmbeddedClusterInfo {
  /** The project's .belay folder. */
  home: string;
  dataDir: string;
  socketDir: string;
  logFile: string;
  port: number;
  running: boolean;
  initialised: boolean;
  params: ConnectionParams;
}

export interface EmbeddedOptions {
  /** The project directory; the cluster lives in its .belay/ folder. */
  projectDir: string;
  pgBin: string | undefined;
  path: string | undefined;
}

interface Layout {
  home: string;
  dataDir: string;
  socketDir: string;
  logFile: string;
}

function shortHash(text: string): string {
  return sha256Hex(text).slice(0, 12);
}

const outsideName = (home: string): string => `belay-${shortHash(home)}`;

/** Where outsideFolder tries, in order. */
const outsideRoots = (user: OsUser | undefined): string[] => (user ? ['/var/lib/belay', tmpdir()] : [tmpdir()]);

/**
 * Where the server's own files go when it cannot reach the project: root runs
 * the server as an unprivileged account, which cannot enter a 0700 folder such
 * as root's home. belay never loosens the permissions of the user's folders;
 * the cluster's data goes where such state lives (/var/lib), the socket dir
 * beside it, and .belay/cluster.json records where. An ordinary user runs the
 * server as itself and needs the temp dir only for a socket path too long.
 */
async function outsideFolder(home: string, user: OsUser | undefined): Promise<string> {
  const name = outsideName(home);
  const roots = outsideRoots(user);
  let lastError: unknown;
  for (const root of roots) {
    try {
      await makeDir(root, 0o755);
      const dir = join(root, name);
      await makeDir(dir, 0o700);
      if (user) await chown(dir, user.uid, user.gid);
      return dir;
    } catch (error) {
      lastError = error;
    }
  }
  throw usageError(`cannot create a folder for the embedded cluster in ${roots.join(' or ')}: ${errorMessage(lastError)}`, {
    hint: 'Run belay from a folder the server account can reach, or connect to a server with --database-url or DATABASE_URL.',
    cause: lastError,
  });
}

/** Everything under .belay/, where the server account can reach it. */
const inHome = (home: string): Layout => ({ home, dataDir: join(home, 'cluster'), socketDir: join(home, 'run'), logFile: join(home, 'postgresql.log') });

/**
 * Where the cluster lives. Normally all under .belay/; when the server account
 * cannot reach the project folder, or the socket path would be too long, that
 * part moves outside (see outsideFolder). A layout is kept once a cluster was
 * initialised in it; until then it is decided again. `create: false` (the
 * commands that only look or take away: status, stop, remove) returns the
 * layout kept, else where a start would put the cluster, and creates nothing.
 */
async function layout(projectDir: string, { create }: { create: boolean }): Promise<Layout> {
  const home = join(resolve(projectDir), '.belay');
  const saved = join(home, 'cluster.json');
  const kept = await readFile(saved, 'utf8')
    .then((text) => JSON.parse(text) as Layout)
    .catch(() => undefined);
  if (kept && (!create || (await isInitialised(kept.dataDir)))) return kept;
  if (create) {
    try {
      await makeDir(home, 0o755);
    } catch (error) {
      throw usageError(`cannot create ${home} for the embedded cluster: ${errorMessage(error)}`, {
        hint: 'Run belay where it may create .belay/, or connect to a server with --database-url or DATABASE_URL.',
        cause: error,
      });
    }
  }
  const user = serverUser();
  // .belay/ is made 0755: before it exists, the project folder decides
  const made = create || (await stat(home).then(() => true, () => false));
  const reachable = reachableBy(made ? home : dirname(home), user);
  const chosen = inHome(home);
  if (!reachable || join(home, 'run').length > MAX_SOCKET_DIR) {
    const outside = create ? await outsideFolder(home, user) : join(outsideRoots(user)[0]!, outsideName(home));
    chosen.socketDir = join(outside, 'run');
    if (!reachable) Object.assign(chosen, { dataDir: join(outside, 'cluster'), logFile: join(outside, 'postgresql.log') });
  }
  if (create) await writeFile(saved, `${JSON.stringify(chosen, null, 2)}\n`);
  return chosen;
}

function specFor(where: Layout, binDir: string): LocalClusterSpec {
  return {
    dataDir: where.dataDir,
    socketDir: where.socketDir,
    port: PORT,
    listenAddresses: '',
    superuser: SUPERUSER,
    binDir,
  };
}

export function embeddedParams(where: Pick<Layout, 'socketDir'>): ConnectionParams {
  return { host: where.socketDir, port: PORT, user: SUPERUSER, database: DATABASE, source: 'embedded cluster' };
}

async function ensureDatabase(where: Layout): Promise<void> {
  const client = new pg.Client({ host: where.socketDir, port: PORT, user: SUPERUSER, database: 'postgres', connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw usageError(`the embedded cluster in ${where.dataDir} runs but does not answer on ${where.socketDir}: ${errorMessage(error)}`, {
      hint: `Look at ${where.logFile}; \`belay cluster stop\` then \`belay cluster start\` restarts it.`,
      cause: error,
    });
  }
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${quoteIdent(DATABASE)}`);
  } finally {
    await client.end();
  }
}

/** Initialise (first time) and start the project's cluster; returns how to connect to it. */
export async function startEmbeddedCluster(options: EmbeddedOptions): Promise<ConnectionParams> {
  const where = await layout(options.projectDir, { create: true });
  const spec = specFor(where, await findServerBinDir(options.pgBin, options.path));
  if (!(await isInitialised(where.dataDir))) await initCluster(spec);
  if (!(await isRunning(spec))) {
    try {
      await prepareLogFile(where.logFile);
    } catch (error) {
      throw usageError(`cannot prepare the embedded cluster's log file ${where.logFile}: ${errorMessage(error)}`, {
        hint: 'Make that folder writable for the user running belay, or connect to a server with --database-url or DATABASE_URL.',
        cause: error,
      });
    }
    await startCluster(spec, where.logFile);
  }
  await ensureDatabase(where);
  return embeddedParams(where);
}

export async function stopEmbeddedCluster(options: EmbeddedOptions): Promise<boolean> {
  const where = await layout(options.projectDir, { create: false });
  if (!(await isInitialised(where.dataDir))) return false;
  const spec = specFor(where, await findServerBinDir(options.pgBin, options.path));
  const wasRunning = await isRunning(spec);
  await stopCluster(spec);
  return wasRunning;
}

/** The sessions on the running cluster other than the asking one: belay runs, psql, an application. */
async function otherSessions(where: Layout): Promise<string[]> {
  const client = new pg.Client({ host: where.socketDir, port: PORT, user: SUPERUSER, database: 'postgres', connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  try {
    await client.connect().catch((error: unknown) => {
      throw preflightError(`the embedded cluster in ${where.dataDir} runs but does not answer on ${where.socketDir}: ${errorMessage(error)}; nothing was removed`, {
        hint: `Look at ${where.logFile}; \`belay cluster stop\` stops it, then remove it.`,
        cause: error,
      });
    });
    const { rows } = await client.query<{ who: string }>(
      `SELECT format('%s on %s (pid %s)', coalesce(nullif(application_name, ''), 'a client'), datname, pid) AS who
         FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid() ORDER BY pid`,
    );
    return rows.map((row) => row.who);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Delete a file or folder the embedded cluster is made of; one that cannot be deleted is left to the operator, named. */
async function deleteMade(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch((error: unknown) => {
    throw new BelayError('manual', `the embedded cluster is stopped, but ${path} could not be deleted: ${errorMessage(error)}`, {
      hint: `Delete ${path} as a user who may, then run \`belay cluster remove --yes\` again for the rest.`,
      cause: error,
    });
  });
}

/** Remove `path` when it is an empty folder; a folder holding anything else stays. */
async function removeIfEmpty(path: string): Promise<void> {
  await rmdir(path).catch(() => {});
}

/**
 * Stop the project's cluster and delete what belay made for it: its data
 * folder, its log, its socket folder and the folder outside the project that
 * held them, and .belay/cluster.json. Nothing else under .belay/ (snapshots,
 * journals) is touched. Refused while another session is connected: a run
 * or an application is using it.
 */
export async function removeEmbeddedCluster(options: EmbeddedOptions): Promise<{ removed: string[] }> {
  const where = await layout(options.projectDir, { create: false });
  const removed: string[] = [];
  const initialised = await isInitialised(where.dataDir);
  if (initialised) {
    const spec = specFor(where, await findServerBinDir(options.pgBin, options.path));
    if (await isRunning(spec)) {
      const others = await otherSessions(where);
      if (others.length > 0) {
        throw preflightError(`the embedded cluster is in use: ${others.join(', ')}; nothing was removed`, {
          hint: 'Let them finish (a belay run ends by itself), or end them with `belay cluster stop`, then remove it.',
        });
      }
      await stopCluster(spec);
    }
  }
  // what an earlier removal could not delete whole is no cluster any more, and goes too
  if (initialised || (await stat(where.dataDir).then(() => true, () => false))) {
    await deleteMade(where.dataDir);
    removed.push(where.dataDir);
  }
  await deleteMade(where.logFile);
  await removeIfEmpty(where.socketDir);
  // the folder outside the project that held the server's files (see outsideFolder), once it holds nothing
  for (const folder of new Set([dirname(where.dataDir), dirname(where.socketDir)])) {
    if (folder !== where.home && basename(folder).startsWith('belay-')) await removeIfEmpty(folder);
  }
  await deleteMade(join(where.home, 'cluster.json'));
  await removeIfEmpty(where.home);
  return { removed };
}

export async function embeddedClusterStatus(options: EmbeddedOptions): Promise<EmbeddedClusterInfo> {
  const where = await layout(options.projectDir, { create: false });
  const initialised = await isInitialised(where.dataDir);
  const running = initialised && (await isRunning(specFor(where, await findServerBinDir(options.pgBin, options.path))));
  return { ...where, port: PORT, running, initialised, params: embeddedParams(where) };
}
