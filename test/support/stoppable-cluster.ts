import { chown } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { startCluster, stopCluster } from '../../src/cluster/local-cluster.js';
import { serverUser } from '../../src/cluster/os-user.js';
import { startTempCluster, type TempCluster } from '../../src/cluster/temp-cluster.js';

/**
 * A cluster of a test's own, for tests that stop it mid-run: an asynchronous
 * commit reaches the disk up to 10 s later, as after a busy moment, so a stop
 * loses what only that would have flushed.
 */
export async function startStoppableCluster(prefix: string): Promise<TempCluster> {
  const server = await startTempCluster({ prefix, superuser: 'postgres', tcp: false, pgBin: process.env.PG_BIN, path: process.env.PATH });
  const user = serverUser();
  if (user) await chown(server.root, user.uid, user.gid).catch(() => {});
  const admin = new pg.Client({ host: server.spec.socketDir, port: server.spec.port, user: 'postgres', database: 'postgres' });
  await admin.connect();
  await admin.query("ALTER SYSTEM SET wal_writer_delay = '10s'");
  await admin.end();
  await stopCluster(server.spec);
  await startCluster(server.spec, join(server.root, 'server.log'));
  return server;
}
