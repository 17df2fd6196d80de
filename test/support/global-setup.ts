import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startTempCluster } from '../../src/cluster/temp-cluster.js';
import { TEST_APP_PASSWORD, TEST_APP_ROLE, TEMPLATE_DB, type TestCluster } from './constants.js';

/** One throwaway PostgreSQL cluster for the whole run; each test makes its own database from a template. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const temp = await startTempCluster({ prefix: 'belay-test-cluster-', superuser: 'postgres', tcp: true, pgBin: process.env.PG_BIN, path: process.env.PATH });
  const { spec } = temp;
  const admin = new pg.Client({ host: spec.socketDir, port: spec.port, user: spec.superuser, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE ROLE ${TEST_APP_ROLE} LOGIN CREATEDB PASSWORD '${TEST_APP_PASSWORD}'`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB} OWNER ${TEST_APP_ROLE}`);
  await admin.end();

  const cluster: TestCluster = { socketDir: spec.socketDir, port: spec.port, superuser: spec.superuser, binDir: spec.binDir, root: temp.root };
  project.provide('pgCluster', cluster);
  return temp.remove;
}
