import { chmod, chown, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findServerBinDir, freePort, initCluster, prepareLogFile, startCluster, stopCluster, type LocalClusterSpec } from './local-cluster.js';
import { errorMessage, usageError } from '../errors.js';
import { serverUser } from './os-user.js';
import { orphanedTempDirs, ownTempDir } from '../temp-dirs.js';

export interface TempClusterOptions {
  /** Name prefix of the temp folder (`<prefix><pid>-XXXXXX`). */
  prefix: string;
  superuser: string;
  /** Listen on 127.0.0.1 (a free port, scram passwords) as well as the socket. */
  tcp: boolean;
  pgBin: string | undefined;
  path: string | undefined;
}

export interface TempCluster {
  spec: LocalClusterSpec;
  root: string;
  /** What killed processes had left under the same prefix, and starting this removed (removeOrphanedClusters), or could not. */
  orphans: Awaited<ReturnType<typeof removeOrphanedClusters>>;
  /** Stop it (immediate) and delete it. Each call waits for the same removal. */
  remove(): Promise<void>;
}

/**
 * A throwaway cluster in a temp folder (tests, rehearsals, benchmarks):
 * durability off, owned by the unprivileged server account when run as root.
 * Those of the same prefix that killed processes left are removed first.
 */
export async function startTempCluster(options: TempClusterOptions): Promise<TempCluster> {
  const user = serverUser();
  const binDir = await findServerBinDir(options.pgBin, options.path);
  const orphans = await removeOrphanedClusters(options.prefix, binDir);
  let root: string;
  try {
    root = await ownTempDir(options.prefix);
    await chmod(root, 0o755);
    if (user) await chown(root, user.uid, user.gid);
  } catch (error) {
    throw usageError(`cannot create a folder for a throwaway PostgreSQL cluster in ${tmpdir()}: ${errorMessage(error)}`, {
      hint: 'Free space in the temp dir or point TMPDIR at a writable folder; or give a server to use with --database-url.',
      cause: error,
    });
  }
  const spec: LocalClusterSpec = {
    dataDir: join(root, 'data'),
    socketDir: join(root, 'run'),
    port: options.tcp ? await freePort() : 5432,
    listenAddresses: options.tcp ? '127.0.0.1' : '',
    superuser: options.superuser,
    binDir,
    passwordAuthOnTcp: options.tcp,
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: 300 },
  };
  let removing: Promise<void> | undefined;
  const remove = (): Promise<void> =>
    (removing ??= (async () => {
      await stopCluster(spec, 'immediate').catch(() => {});
      await rm(root, { recursive: true, force: true });
    })());
  try {
    await initCluster(spec);
    const logFile = join(root, 'server.log');
    await prepareLogFile(logFile);
    await startCluster(spec, logFile);
  } catch (error) {
    await remove();
    throw error;
  }
  return { spec, root, orphans, remove };
}

/**
 * Stop and delete the clusters startTempCluster(prefix) made for a belay
 * process that is gone (killed outright: nothing removed them): answers the
 * folders removed, and those kept with why (a server that would not stop).
 */
export async function removeOrphanedClusters(prefix: string, binDir: string): Promise<{ removed: string[]; kept: Array<{ root: string; why: string }> }> {
  const removed: string[] = [];
  const kept: Array<{ root: string; why: string }> = [];
  for (const root of await orphanedTempDirs(prefix, serverUser()?.uid)) {
    try {
      await stopCluster({ dataDir: join(root, 'data'), binDir }, 'immediate');
      await rm(root, { recursive: true, force: true });
      removed.push(root);
    } catch (error) {
      kept.push({ root, why: errorMessage(error) });
    }
  }
  return { removed, kept };
}
