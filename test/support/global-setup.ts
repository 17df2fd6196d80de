import { chown, mkdtemp, rm, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import {
  findServerBinDir,
  freePort,
  initCluster,
  prepareLogFile,
  startCluster,
  stopCluster,
  type LocalClusterSpec,
} from '../../src/cluster/local-cluster.js';
import { serverUser } from '../../src/cluster/os-user.js';
import { TEST_APP_PASSWORD, TEST_APP_ROLE, TEMPLATE_DB, type TestCluster } from './constants.js';

/** One throwaway PostgreSQL cluster for the whole run; each test makes its own database from a template. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const root = await mkdtemp(join(tmpdir(), 'belay-test-cluster-'));
  await chmod(root, 0o755);
  const user = serverUser();
  if (user) await chown(root, user.uid, user.gid);
  const spec: LocalClusterSpec = {
    dataDir: join(root, 'data'),
    socketDir: join(root, 'run'),
    port: await freePort(),
    listenAddresses: '127.0.0.1',
    superuser: 'postgres',
    binDir: await findServerBinDir(process.env.PG_BIN, process.env.PATH),
    passwordAuthOnTcp: true,
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: 300 },
  };
  await initCluster(spec);
  const logFile = join(root, 'server.log');
  await prepareLogFile(logFile);
  await startCluster(spec, logFile);

  const admin = new pg.Client({ host: spec.socketDir, port: spec.port, user: spec.superuser, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE ROLE ${TEST_APP_ROLE} LOGIN CREATEDB PASSWORD '${TEST_APP_PASSWORD}'`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB} OWNER ${TEST_APP_ROLE}`);
  await admin.end();

  const cluster: TestCluster = {
    socketDir: spec.socketDir,
    port: spec.port,
    superuser: spec.superuser,
    binDir: spec.binDir,
    root,
  };
  project.provide('pgCluster', cluster);

  return async () => {
    await stopCluster(spec, 'immediate');
    await rm(root, { recursive: true, force: true });
  };
}
