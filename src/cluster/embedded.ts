import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import type { ConnectionParams } from '../db/connection.js';
import { quoteIdent } from '../db/ident.js';
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
import { serverUser } from './os-user.js';

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
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/**
 * Where the cluster lives. Normally all under .belay/; when the server account
 * (root runs the server as "postgres") cannot reach the project folder, or the
 * socket path would be too long, that part moves to a per-project folder in
 * the temp dir, and .belay/cluster.json records where.
 */
async function layout(projectDir: string): Promise<Layout> {
  const home = join(resolve(projectDir), '.belay');
  const saved = join(home, 'cluster.json');
  try {
    return JSON.parse(await readFile(saved, 'utf8')) as Layout;
  } catch {
    // first use: decide below
  }
  await mkdir(home, { recursive: true, mode: 0o755 });
  const user = serverUser();
  const outside = join(tmpdir(), `belay-${shortHash(home)}`);
  const dataDir = reachableBy(home, user) ? join(home, 'cluster') : join(outside, 'cluster');
  const socketDir = join(home, 'run').length <= MAX_SOCKET_DIR && reachableBy(home, user) ? join(home, 'run') : join(outside, 'run');
  const chosen: Layout = { home, dataDir, socketDir, logFile: join(home, 'postgresql.log') };
  await writeFile(saved, `${JSON.stringify(chosen, null, 2)}\n`);
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
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${quoteIdent(DATABASE)}`);
  } finally {
    await client.end();
  }
}

/** Initialise (first time) and start the project's cluster; returns how to connect to it. */
export async function startEmbeddedCluster(options: EmbeddedOptions): Promise<ConnectionParams> {
  const where = await layout(options.projectDir);
  const spec = specFor(where, await findServerBinDir(options.pgBin, options.path));
  if (!(await isInitialised(where.dataDir))) await initCluster(spec);
  if (!(await isRunning(spec))) {
    await prepareLogFile(where.logFile);
    await startCluster(spec, where.logFile);
  }
  await ensureDatabase(where);
  return embeddedParams(where);
}

export async function stopEmbeddedCluster(options: EmbeddedOptions): Promise<boolean> {
  const where = await layout(options.projectDir);
  if (!(await isInitialised(where.dataDir))) return false;
  const spec = specFor(where, await findServerBinDir(options.pgBin, options.path));
  const wasRunning = await isRunning(spec);
  await stopCluster(spec);
  return wasRunning;
}

export async function embeddedClusterStatus(options: EmbeddedOptions): Promise<EmbeddedClusterInfo> {
  const where = await layout(options.projectDir);
  const initialised = await isInitialised(where.dataDir);
  const running = initialised && (await isRunning(specFor(where, await findServerBinDir(options.pgBin, options.path))));
  return { ...where, port: PORT, running, initialised, params: embeddedParams(where) };
}
