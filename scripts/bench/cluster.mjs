// The benchmark's own throwaway cluster: the tests' helper (startTempCluster),
// listening on 127.0.0.1 with scram passwords, and one password role "bench"
// whose password only ever travels in a 0600 passfile (PGPASSFILE).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startTempCluster } from '../../dist/cluster/temp-cluster.js';
import { cleanEnv } from './exec.mjs';

export const ROLE = 'bench';

const REPORTED_SETTINGS = [
  'server_version',
  'shared_buffers',
  'work_mem',
  'maintenance_work_mem',
  'effective_cache_size',
  'fsync',
  'synchronous_commit',
  'full_page_writes',
  'wal_level',
  'max_wal_size',
  'checkpoint_timeout',
  'max_connections',
  'max_parallel_workers_per_gather',
  'jit',
  'autovacuum',
  'password_encryption',
];

/** Passfile fields escape ':' and '\' with a backslash. */
const passfileField = (value) => String(value).replace(/[\\:]/g, (ch) => `\\${ch}`);

export async function startBenchCluster() {
  const temp = await startTempCluster({ prefix: 'belay-bench-', superuser: 'postgres', tcp: true, pgBin: process.env.PG_BIN, path: process.env.PATH });
  let admin;
  let work;
  const remove = async () => {
    await admin?.end().catch(() => {});
    await temp.remove();
    if (work) await rm(work, { recursive: true, force: true });
  };
  try {
    const { spec } = temp;
    admin = new pg.Client({ host: spec.socketDir, port: spec.port, user: spec.superuser, database: 'postgres', connectionTimeoutMillis: 10_000 });
    admin.on('error', () => {});
    await admin.connect();
    // vacuums of the freshly loaded and restored tables would otherwise run during the timings
    await admin.query('ALTER SYSTEM SET autovacuum = off');
    await admin.query('SELECT pg_reload_conf()');
    const password = randomBytes(18).toString('base64url');
    await admin.query(`CREATE ROLE ${pg.escapeIdentifier(ROLE)} LOGIN CREATEDB PASSWORD ${pg.escapeLiteral(password)}`);
    work = await mkdtemp(path.join(tmpdir(), 'belay-bench-work-'));
    const passfile = path.join(work, 'pgpass');
    await writeFile(passfile, `127.0.0.1:${spec.port}:*:${ROLE}:${passfileField(password)}\n`, { mode: 0o600 });
    return new BenchCluster(temp, admin, work, passfile, password, remove);
  } catch (error) {
    await remove();
    throw error;
  }
}

class BenchCluster {
  #password;

  constructor(temp, admin, work, passfile, password, remove) {
    this.temp = temp;
    this.admin = admin;
    /** A scratch folder for projects, dumps and configs; removed with the cluster. */
    this.work = work;
    this.passfile = passfile;
    this.#password = password;
    this.port = temp.spec.port;
    this.binDir = temp.spec.binDir;
    this.remove = remove;
  }

  bin(name) {
    return path.join(this.binDir, name);
  }

  /** libpq variables for psql, pg_dump, pg_restore, pgbench and node-postgres: the password comes from the passfile. */
  env(database, extra = {}) {
    return cleanEnv({ PGHOST: '127.0.0.1', PGPORT: String(this.port), PGUSER: ROLE, ...(database ? { PGDATABASE: database } : {}), PGPASSFILE: this.passfile, ...extra });
  }

  /** A URL without a password: belay and libpq-style clients take it from PGPASSFILE. */
  url(database) {
    return `postgresql://${ROLE}@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  /** A client as the bench role over TCP, as the measured tools connect. */
  async connect(database) {
    const client = new pg.Client({ host: '127.0.0.1', port: this.port, user: ROLE, password: this.#password, database, connectionTimeoutMillis: 10_000 });
    client.on('error', () => {});
    await client.connect();
    return client;
  }

  async createDatabase(name, { template = 'template0' } = {}) {
    await this.admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(template)} OWNER ${pg.escapeIdentifier(ROLE)}`);
  }

  async dropDatabase(name) {
    await this.admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  }

  async databasesLike(prefix) {
    const { rows } = await this.admin.query('SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname', [prefix]);
    return rows.map((row) => row.datname);
  }

  async settings() {
    const { rows } = await this.admin.query(
      `SELECT name, current_setting(name) AS shown FROM pg_settings WHERE name = ANY($1) ORDER BY array_position($1, name)`,
      [REPORTED_SETTINGS],
    );
    const settings = Object.fromEntries(rows.map((row) => [row.name, row.shown]));
    const { rows: version } = await this.admin.query('SELECT version()');
    return { version: version[0].version, ...settings };
  }
}
