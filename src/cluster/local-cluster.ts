import { execFile, spawnSync } from 'node:child_process';
import { chown, readFile, stat, writeFile, appendFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BelayError, errorMessage, usageError } from '../errors.js';
import { findPgBinary } from './pg-bin.js';
import { serverUser, type OsUser } from './os-user.js';
import { makeDir } from '../make-dir.js';

const run = promisify(execFile);

/** A PostgreSQL cluster on this machine that belay created and manages. */
export interface LocalClusterSpec {
  dataDir: string;
  socketDir: string;
  port: number;
  /** '' for Unix socket only, or e.g. '127.0.0.1'. */
  listenAddresses: string;
  superuser: string;
  /** Where initdb/pg_ctl/postgres live. */
  binDir: string;
  /** Extra postgresql.conf lines (e.g. fsync = off for throwaway clusters). */
  settings?: Record<string, string | number>;
  /** Require scram-sha-256 passwords on TCP (local socket stays trust). */
  passwordAuthOnTcp?: boolean;
}

export async function findServerBinDir(pgBin: string | undefined, path: string | undefined): Promise<string> {
  const initdb = await findPgBinary('initdb', { pgBin, path });
  if (!initdb) {
    throw usageError('no PostgreSQL server binaries (initdb, pg_ctl) found', {
      hint: 'Install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql) or set PG_BIN to their directory; or connect to a server with --database-url or DATABASE_URL.',
    });
  }
  return join(initdb.path, '..');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

interface RunOptions {
  user: OsUser | undefined;
  timeoutMs: number;
}

async function runAs(file: string, args: string[], options: RunOptions): Promise<{ stdout: string; stderr: string }> {
  return run(file, args, {
    timeout: options.timeoutMs,
    uid: options.user?.uid,
    gid: options.user?.gid,
    // the server account may not be able to enter our working directory
    cwd: '/',
    // binaries are named by absolute path; initdb finds postgres beside itself
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' },
  });
}

async function ownDir(dir: string, user: OsUser | undefined, mode: number): Promise<void> {
  await makeDir(dir, mode);
  if (user) await chown(dir, user.uid, user.gid);
}

/** Whether the server account can reach `dir` (every parent must be searchable by it). */
export function reachableBy(dir: string, user: OsUser | undefined): boolean {
  if (!user) return true;
  const result = spawnSync('test', ['-x', dir], { uid: user.uid, gid: user.gid, cwd: '/', timeout: 5000 });
  return result.status === 0;
}

export async function isInitialised(dataDir: string): Promise<boolean> {
  try {
    await stat(join(dataDir, 'PG_VERSION'));
    return true;
  } catch {
    return false;
  }
}

/** A cluster belay could not set up or run: the environment's fault, named, with the server's own words. */
function clusterError(what: string, spec: Pick<LocalClusterSpec, 'dataDir'>, error: unknown, logTail = ''): BelayError {
  if (error instanceof BelayError) return error;
  const stderr = (error as { stderr?: unknown }).stderr;
  const said = typeof stderr === 'string' && stderr.trim() !== '' ? stderr.trim() : errorMessage(error);
  return usageError(`${what} (${spec.dataDir}): ${said}${logTail ? `\n${logTail}` : ''}`, {
    hint: `The server runs as ${serverUser()?.name ?? 'this user'}: it must be able to reach and write that folder. Fix that, or connect to a server with --database-url or DATABASE_URL.`,
    cause: error,
  });
}

export async function initCluster(spec: LocalClusterSpec): Promise<void> {
  try {
    await initClusterFiles(spec);
  } catch (error) {
    throw clusterError('cannot initialise the PostgreSQL cluster', spec, error);
  }
}

async function initClusterFiles(spec: LocalClusterSpec): Promise<void> {
  const user = serverUser();
  await ownDir(spec.dataDir, user, 0o700);
  await ownDir(spec.socketDir, user, 0o700);
  await runAs(
    join(spec.binDir, 'initdb'),
    ['-D', spec.dataDir, '-U', spec.superuser, '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'],
    { user, timeoutMs: 120_000 },
  );
  const settings: Record<string, string | number> = {
    port: spec.port,
    listen_addresses: `'${spec.listenAddresses}'`,
    unix_socket_directories: `'${spec.socketDir.replaceAll("'", "''")}'`,
    ...spec.settings,
  };
  const lines = Object.entries(settings).map(([key, value]) => `${key} = ${value}`);
  await appendFile(join(spec.dataDir, 'postgresql.conf'), `\n# belay\n${lines.join('\n')}\n`);
  if (spec.passwordAuthOnTcp) {
    const hba = [
      'local all all trust',
      'host all all 127.0.0.1/32 scram-sha-256',
      'host all all ::1/128 scram-sha-256',
    ].join('\n');
    await writeFile(join(spec.dataDir, 'pg_hba.conf'), `${hba}\n`);
  }
}

export async function isRunning(spec: Pick<LocalClusterSpec, 'dataDir' | 'binDir'>): Promise<boolean> {
  try {
    await runAs(join(spec.binDir, 'pg_ctl'), ['status', '-D', spec.dataDir], { user: serverUser(), timeoutMs: 10_000 });
    return true;
  } catch {
    return false;
  }
}

export async function startCluster(spec: LocalClusterSpec, logFile: string): Promise<void> {
  const user = serverUser();
  if (await isRunning(spec)) return;
  // the socket dir may live in a tmpfs that was cleared since the last start
  await ownDir(spec.socketDir, user, 0o700);
  try {
    await runAs(join(spec.binDir, 'pg_ctl'), ['start', '-D', spec.dataDir, '-l', logFile, '-w', '-t', '60', '-s'], {
      user,
      timeoutMs: 90_000,
    });
  } catch (error) {
    let tail = '';
    try {
      tail = (await readFile(logFile, 'utf8')).split('\n').slice(-15).join('\n');
    } catch {
      // no log yet
    }
    throw clusterError('the PostgreSQL server did not start', spec, error, tail);
  }
}

export async function stopCluster(spec: Pick<LocalClusterSpec, 'dataDir' | 'binDir'>, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (!(await isRunning(spec))) return;
  try {
    await runAs(join(spec.binDir, 'pg_ctl'), ['stop', '-D', spec.dataDir, '-m', mode, '-w', '-t', '60', '-s'], {
      user: serverUser(),
      timeoutMs: 90_000,
    });
  } catch (error) {
    throw clusterError('the PostgreSQL server did not stop', spec, error);
  }
}

/** Prepare a log file the server account may write to. */
export async function prepareLogFile(file: string): Promise<void> {
  await appendFile(file, '', { mode: 0o600 });
  const user = serverUser();
  if (user) await chown(file, user.uid, user.gid);
}
