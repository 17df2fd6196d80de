import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startTempCluster } from '../../src/cluster/temp-cluster.js';
import { TEST_APP_PASSWORD, TEST_APP_ROLE, TEMPLATE_DB, type TestCluster } from './constants.js';

/**
 * One throwaway PostgreSQL cluster for the whole run; each test makes its own
 * database from a template. Every temp folder of the run (the cluster's, the
 * tests', belay's own) goes under one TMPDIR that the workers and the belay
 * processes they start inherit, removed at the end. Readable by all, as the
 * server's unprivileged user must reach its folders in it.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const runTemp = await mkdtemp(join(tmpdir(), 'belay-tests-'));
  await chmod(runTemp, 0o755);
  process.env.TMPDIR = runTemp;
  const temp = await startTempCluster({ prefix: 'belay-test-cluster-', superuser: 'postgres', tcp: true, pgBin: process.env.PG_BIN, path: process.env.PATH });
  const { spec } = temp;
  const admin = new pg.Client({ host: spec.socketDir, port: spec.port, user: spec.superuser, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE ROLE ${TEST_APP_ROLE} LOGIN CREATEDB PASSWORD '${TEST_APP_PASSWORD}'`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB} OWNER ${TEST_APP_ROLE}`);
  await admin.end();

  const cluster: TestCluster = { socketDir: spec.socketDir, port: spec.port, superuser: spec.superuser, binDir: spec.binDir, root: temp.root };
  project.provide('pgCluster', cluster);
  return async () => {
    await temp.remove();
    await rm(runTemp, { recursive: true, force: true });
  };
}
