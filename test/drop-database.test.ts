import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTempCluster, type TempCluster } from '../src/cluster/temp-cluster.js';
import { dropDatabase } from '../src/db/databases.js';
import { pollUntil } from './support/kill.js';

// A server of its own: autovacuum is made to visit every second here, which the shared one must not do.
let server: TempCluster;
const urlOf = (user: string, database: string): string =>
  `postgresql://${user}@/${database}?host=${encodeURIComponent(server.spec.socketDir)}&port=${server.spec.port}`;

async function connected<T>(user: string, database: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: urlOf(user, database) });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  server = await startTempCluster({ prefix: 'belay-dropdb-', superuser: 'postgres', tcp: false, pgBin: process.env.PG_BIN, path: process.env.PATH });
  await connected('postgres', 'postgres', async (admin) => {
    await admin.query('ALTER SYSTEM SET autovacuum_naptime = 1');
    await admin.query('SELECT pg_reload_conf()');
    await admin.query('CREATE ROLE owner LOGIN CREATEDB');
    await admin.query('CREATE DATABASE doomed OWNER owner');
    await admin.query('CREATE DATABASE side OWNER owner');
  });
}, 120_000);

afterAll(async () => {
  await server?.remove();
});

describe('dropping a database belay made', () => {
  it('works for a role that is no superuser while an autovacuum worker is in that database (DROP … WITH (FORCE) refused, "must be a member of the role whose process is being terminated": rehearse ended exit 1)', async () => {
    // dead rows and a vacuum slowed down enough to be seen at work
    await connected('owner', 'doomed', (client) =>
      client.query(`CREATE TABLE big (id int, pad text) WITH (autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1,
        autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0);
        INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g; DELETE FROM big`),
    );
    await connected('postgres', 'postgres', (admin) =>
      pollUntil(
        async () => (await admin.query("SELECT 1 FROM pg_stat_activity WHERE datname = 'doomed' AND backend_type = 'autovacuum worker'")).rowCount === 1,
        'an autovacuum worker in the database',
        // 5 ms apart: up to 30 s for the launcher's next visit
        6000,
      ),
    );
    await connected('owner', 'side', (client) => dropDatabase(client, 'doomed'));
    const left = await connected('postgres', 'postgres', (admin) => admin.query("SELECT 1 FROM pg_database WHERE datname = 'doomed'"));
    expect(left.rowCount).toBe(0);
  }, 120_000);
});
