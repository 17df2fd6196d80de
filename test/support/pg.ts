import { readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { quoteIdent } from '../../src/db/ident.js';
import { TEMPLATE_DB, TEST_APP_PASSWORD, TEST_APP_ROLE, type TestCluster } from './constants.js';

export function cluster(): TestCluster {
  return inject('pgCluster');
}

export interface TestDatabase {
  name: string;
  /** The application role over TCP with a password: what an operator would pass. */
  url: string;
  /** The superuser over the Unix socket, for independent checks. */
  adminUrl: string;
  /** Run SQL as the superuser in this database; returns rows. */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Run SQL as the application role (objects it creates are its own). */
  appQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
}

function adminConfig(c: TestCluster, database: string): pg.ClientConfig {
  return { host: c.socketDir, port: c.port, user: c.superuser, database };
}

export async function adminQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(
  database: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client(adminConfig(cluster(), database));
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

export function appUrl(database: string): string {
  const c = cluster();
  return `postgresql://${TEST_APP_ROLE}:${encodeURIComponent(TEST_APP_PASSWORD)}@127.0.0.1:${c.port}/${encodeURIComponent(database)}`;
}

/** A new database for one test, cloned from the (empty) template, or from `template` when given. */
export async function freshDatabase(prefix = 't', template = TEMPLATE_DB): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await adminQuery('postgres', `CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)} OWNER ${quoteIdent(TEST_APP_ROLE)}`);
  const c = cluster();
  return {
    name,
    url: appUrl(name),
    adminUrl: `postgresql://${c.superuser}@/${name}?host=${encodeURIComponent(c.socketDir)}&port=${c.port}`,
    query: (sql, params) => adminQuery(name, sql, params),
    appQuery: async (sql, params) => {
      const client = new pg.Client({ connectionString: appUrl(name) });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
  };
}

export { TEST_APP_PASSWORD, TEST_APP_ROLE };

/**
 * Make pg_hba.conf reject `role` on the maintenance databases (postgres,
 * template1), as a hardened server does: for this role only, since the other
 * tests share the cluster.
 */
export async function rejectOnMaintenanceDatabases(role: string): Promise<void> {
  const hba = (await adminQuery<{ hba: string }>('postgres', "SELECT current_setting('hba_file') AS hba"))[0]!.hba;
  await writeFile(hba, `host postgres,template1 ${role} all reject\n${await readFile(hba, 'utf8')}`);
  await adminQuery('postgres', 'SELECT pg_reload_conf()');
}
