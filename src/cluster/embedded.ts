import { access, chown, lstat, readdir, readFile, realpath, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import pg from 'pg';
import type { ConnectionParams } from '../db/connection.js';
import { quoteIdent } from '../db/ident.js';
import { endClient } from '../db/session.js';
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
import { errnoCode } from '../unreadable.js';

// not "belay": with search_path "$user", public, a role named like belay's own schema would create its tables there
const SUPERUSER = 'postgres';
const DATABASE = 'belay';
const PORT = 5432;
/** How long a connection to it may take to open and to close. */
const CONNECT_TIMEOUT_MS = 10_000;
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

const everyOutsideRoot = (): string[] => ['/var/lib/belay', tmpdir()];

/** Where outsideFolder tries, in order: /var/lib/belay only for a server account of its own. */
const outsideRoots = (user: OsUser | undefined): string[] => (user ? everyOutsideRoot() : [tmpdir()]);

/**
 * Refuse a path of the layout that is a symbolic link: belay makes these
 * folders and files itself, and chowning, starting or deleting through a link
 * would reach whatever it points at.
 */
async function refuseLink(path: string): Promise<void> {
  if (!(await lstat(path).then((info) => info.isSymbolicLink(), () => false))) return;
  const target = await realpath(path).catch(() => 'a path that does not exist');
  throw usageError(`${path} is a symbolic link to ${target}: belay keeps the embedded cluster's files in folders of its own; nothing was used or changed`, {
    hint: `Delete the link ${path}, or connect to a server with --database-url or DATABASE_URL.`,
  });
}

/**
 * Where the server's own files go when it cannot reach the project: root runs
 * the server as an unprivileged account, which cannot enter a 0700 folder such
 * as root's home. belay never loosens the permissions of the user's folders;
 * the cluster's data goes where such state lives (/var/lib), the socket dir
 * beside it, and .belay/cluster.json records where. An ordinary user runs the
 * server as itself and needs the temp dir only for a socket path too long.
 */
async function outsideFolder(home: string, user: OsUser | undefined, reachable: boolean): Promise<Layout> {
  const name = outsideName(home);
  const roots = outsideRoots(user);
  let lastError: unknown;
  for (const root of roots) {
    try {
      const dir = join(root, name);
      // refused before anything is made: a refusal leaves nothing behind
      const where = await withoutLinks(movedOut(home, dir, reachable));
      await makeDir(root, 0o755);
      await makeDir(dir, 0o700);
      if (user) await chown(dir, user.uid, user.gid);
      return where;
    } catch (error) {
      if (error instanceof BelayError) throw error;
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

/** The socket folder in `outside`, and the data and log too when the server account cannot reach .belay/. */
const movedOut = (home: string, outside: string, reachable: boolean): Layout => ({
  ...inHome(home),
  socketDir: join(outside, 'run'),
  ...(reachable ? {} : { dataDir: join(outside, 'cluster'), logFile: join(outside, 'postgresql.log') }),
});

const LAYOUT_FIELDS = ['home', 'dataDir', 'socketDir', 'logFile'] as const;

/**
 * The layout .belay/cluster.json keeps, when it is one this project's cluster
 * can have (see layout). The file holds absolute paths: in a copy of the
 * project it names the original's cluster, and edited by hand any folder;
 * belay uses, stops and deletes only this project's own.
 */
async function checkKept(home: string, kept: Layout): Promise<Layout> {
  const outside = everyOutsideRoot().map((root) => join(root, outsideName(home)));
  const ours = [inHome(home), ...outside.flatMap((folder) => [movedOut(home, folder, true), movedOut(home, folder, false)])];
  if (ours.some((where) => LAYOUT_FIELDS.every((field) => where[field] === kept[field]))) return kept;
  if (kept.home !== home) {
    const other = dirname(kept.home);
    const moved = !(await access(kept.home).then(() => true, () => false));
    throw usageError(
      `.belay/cluster.json names the embedded cluster of another project: this .belay/ was ${moved ? 'moved' : 'copied'} from ${other} (data ${kept.dataDir}); nothing was used or changed`,
      {
        hint: moved
          ? `Move the project back to ${other} to use that cluster, or delete .belay/cluster.json to get a cluster of this project's own.`
          : `Delete .belay/cluster.json (and .belay/cluster and .belay/run, if they are copies) to get a cluster of this project's own; ${other}'s stays as it is.`,
      },
    );
  }
  throw usageError(
    `.belay/cluster.json names ${kept.dataDir}, ${kept.socketDir} and ${kept.logFile}, which are not where belay keeps this project's cluster (${home} or ${outside.join(' or ')}); nothing was used or changed`,
    { hint: "Delete .belay/cluster.json: belay writes it again with the paths of this project's own cluster." },
  );
}

async function readKept(saved: string): Promise<Layout | undefined> {
  const kept = await readFile(saved, 'utf8')
    .then((text): unknown => JSON.parse(text))
    .catch(() => undefined);
  // one belay did not write names nothing to use, and is decided again as a missing one is
  const valid = typeof kept === 'object' && kept !== null && LAYOUT_FIELDS.every((field) => typeof (kept as Record<string, unknown>)[field] === 'string');
  return valid ? (kept as Layout) : undefined;
}

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
  const read = await readKept(saved);
  const kept = read && (await checkKept(home, read));
  if (kept && (!create || (await isInitialised(kept.dataDir)))) return withoutLinks(kept);
  const user = serverUser();
  // .belay/ is made 0755: before it exists, the project folder decides
  const made = await stat(home).then(() => true, () => false);
  const reachable = reachableBy(made ? home : dirname(home), user);
  let chosen = inHome(home);
  if (!reachable || join(home, 'run').length > MAX_SOCKET_DIR) {
    chosen = create ? await outsideFolder(home, user, reachable) : movedOut(home, join(outsideRoots(user)[0]!, outsideName(home)), reachable);
  }
  await withoutLinks(chosen);
  if (create) {
    // a cluster that is not this project's is refused before .belay/ and cluster.json are made
    await initialisedHere(chosen);
    try {
      await makeDir(home, 0o755);
    } catch (error) {
      throw usageError(`cannot create ${home} for the embedded cluster: ${errorMessage(error)}`, {
        hint: 'Run belay where it may create .belay/, or connect to a server with --database-url or DATABASE_URL.',
        cause: error,
      });
    }
    await writeFile(saved, `${JSON.stringify(chosen, null, 2)}\n`);
  }
  return chosen;
}

async function withoutLinks(where: Layout): Promise<Layout> {
  const folders = [where.dataDir, where.socketDir, where.logFile].map(dirname).filter((folder) => folder !== where.home);
  for (const path of new Set([...folders, where.dataDir, where.socketDir, where.logFile])) await refuseLink(path);
  return where;
}

/** The socket folder belay set in the postgresql.conf of the cluster in `dataDir` when it initialised it. */
async function socketDirSet(dataDir: string): Promise<string | undefined> {
  const conf = await readFile(join(dataDir, 'postgresql.conf'), 'utf8').catch(() => '');
  const set = [...conf.matchAll(/^unix_socket_directories = '((?:[^']|'')*)'$/gm)].at(-1);
  return set?.[1]?.replaceAll("''", "'");
}

/**
 * Whether this layout's cluster exists. A data folder copied with its project
 * (cp -a) still names the original's socket folder, and is refused, not
 * adopted: its postmaster.pid may name the original's running server, which
 * pg_ctl would then stop, and a copy of a running cluster's files is no
 * consistent cluster; the original's databases are where to take its data from.
 */
async function initialisedHere(where: Layout): Promise<boolean> {
  if (!(await isInitialised(where.dataDir))) return false;
  const socketDir = await socketDirSet(where.dataDir);
  if (socketDir === where.socketDir) return true;
  const other = socketDir !== undefined && basename(dirname(socketDir)) === '.belay' ? dirname(dirname(socketDir)) : undefined;
  if (other === undefined) {
    throw usageError(`${where.dataDir} holds a PostgreSQL cluster belay did not make for this project (its socket folder is ${socketDir ?? 'not set by belay'}); nothing was used or changed`, {
      hint: `Move ${where.dataDir} away (it may hold databases someone needs) to get a cluster of this project's own.`,
    });
  }
  const moved = !(await access(other).then(() => true, () => false));
  const what = moved ? `the cluster of ${other}, moved from there` : `a copy of the cluster of ${other}`;
  throw usageError(`${where.dataDir} is ${what}; nothing was used or changed`, {
    hint: moved
      ? `Move the project back to ${other} to use that cluster, or delete ${where.dataDir} and ${where.socketDir} to get a new one (every database in it is lost).`
      : `Delete ${where.dataDir} and ${where.socketDir} (copies of ${other}'s, its server's lock file in it) to get a cluster of this project's own; ${other}'s databases stay there.`,
  });
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
  const client = new pg.Client({ host: where.socketDir, port: PORT, user: SUPERUSER, database: 'postgres', connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await endClient(client, CONNECT_TIMEOUT_MS);
    throw usageError(`the embedded cluster in ${where.dataDir} runs but does not answer on ${where.socketDir}: ${errorMessage(error)}`, {
      hint: `Look at ${where.logFile}; \`belay cluster stop\` then \`belay cluster start\` restarts it.`,
      cause: error,
    });
  }
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${quoteIdent(DATABASE)}`);
  } finally {
    await endClient(client, CONNECT_TIMEOUT_MS);
  }
}

/** Initialise (first time) and start the project's cluster; returns how to connect to it. */
export async function startEmbeddedCluster(options: EmbeddedOptions): Promise<ConnectionParams> {
  // the binaries first: a machine without them (or a PG_BIN without them) gets no .belay/
  const binDir = await findServerBinDir(options.pgBin, options.path);
  const where = await layout(options.projectDir, { create: true });
  const spec = specFor(where, binDir);
  if (!(await initialisedHere(where))) await initCluster(spec);
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
  if (!(await initialisedHere(where))) return false;
  const spec = specFor(where, await findServerBinDir(options.pgBin, options.path));
  const wasRunning = await isRunning(spec);
  await stopCluster(spec);
  return wasRunning;
}

/** The sessions on the running cluster other than the asking one: belay runs, psql, an application. */
async function otherSessions(where: Layout): Promise<string[]> {
  const client = new pg.Client({ host: where.socketDir, port: PORT, user: SUPERUSER, database: 'postgres', connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
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
    await endClient(client, CONNECT_TIMEOUT_MS);
  }
}

/** Delete a file or folder the embedded cluster is made of; one that cannot be deleted is left to the operator, named. */
async function deleteMade(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch(async (error: unknown) => {
    // a folder above it is a file (.belay not made by belay): there is nothing there to delete (rm says ENOTDIR for
    // a file inside it it could not delete, too)
    if (errnoCode(error) === 'ENOTDIR' && !(await stat(dirname(path)).then((found) => found.isDirectory(), () => false))) return;
    throw new BelayError('manual', `the embedded cluster is stopped, but ${path} could not be deleted: ${errorMessage(error)}`, {
      hint: `Delete ${path} as a user who may, then run \`belay cluster remove --yes\` again for the rest.`,
      cause: error,
    });
  });
}

/** What marks a data folder as the cluster (see initialisedHere): deleted last. */
const MARKERS = ['postgresql.conf', 'PG_VERSION'];

/** Delete a cluster's data folder so that a deletion cut short leaves one still known as the cluster, which the next removal finishes. */
async function deleteCluster(dataDir: string): Promise<void> {
  for (const entry of await readdir(dataDir).catch((): string[] => [])) if (!MARKERS.includes(entry)) await deleteMade(join(dataDir, entry));
  for (const marker of MARKERS) await deleteMade(join(dataDir, marker));
  await deleteMade(dataDir);
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
  const initialised = await initialisedHere(where);
  const present = await stat(where.dataDir).then(() => true, () => false);
  // an empty one is what a failed initdb leaves; anything else in it belay did not put there
  if (!initialised && present && (await readdir(where.dataDir).then((entries) => entries.length > 0, () => true))) {
    throw usageError(`${where.dataDir} is not a PostgreSQL cluster belay made (no PG_VERSION) but holds files; nothing was removed`, {
      hint: `Look at what it holds and move it away, then run \`belay cluster remove --yes\` again.`,
    });
  }
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
  if (present) {
    await deleteCluster(where.dataDir);
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
  const initialised = await initialisedHere(where);
  const running = initialised && (await isRunning(specFor(where, await findServerBinDir(options.pgBin, options.path))));
  return { ...where, port: PORT, running, initialised, params: embeddedParams(where) };
}
