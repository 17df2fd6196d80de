import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveBackupTools, type BackupTools } from '../src/backup/pg-tools.js';
import { restoreSnapshotInto } from '../src/backup/restore-snapshot.js';
import { takeSnapshot } from '../src/backup/take-snapshot.js';
import { ensureBelaySchema } from '../src/db/belay-schema.js';
import { parseDatabaseUrl, toPgConfig, type ConnectionParams } from '../src/db/connection.js';
import { BelayError } from '../src/errors.js';
import { discoverRevisions } from '../src/migrations/discover.js';
import { MigrationEngine } from '../src/migrations/engine.js';
import type { Revision } from '../src/migrations/revision.js';
import { RevisionFailedError } from '../src/migrations/revision-error.js';
import { decideScope } from '../src/scope/choose-scope.js';
import { formatRevisionScope, formatScopeTotal, measureScope } from '../src/scope/format-scope.js';
import { learnScope } from '../src/scope/learn-scope.js';
import { objectLabel } from '../src/scope/scope.js';
import { restoreTouched } from '../src/scope/touched-restore.js';
import { takeTouchedSnapshot } from '../src/scope/touched-snapshot.js';
import { adminQuery, cluster, freshDatabase, type TestDatabase } from './support/pg.js';

const SESSION = { applicationName: 'belay scope test', connectTimeoutMs: 10_000, statementTimeoutMs: 0, lockTimeoutMs: 10_000 };
const BIG_ROWS = 2_000_000;

let tools: BackupTools;
const scratch: string[] = [];

async function scratchDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

async function revisionsIn(files: Record<string, string>): Promise<Revision[]> {
  const dir = await scratchDir('belay-scope-revisions-');
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return discoverRevisions(dir);
}

async function withClient<T>(params: ConnectionParams, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(toPgConfig(params, SESSION));
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

let seededTemplate: string;

/** Once: a database with a large table (millions of rows) and small ones, owned by the application role; each test clones it. */
async function seedTemplate(): Promise<string> {
  const db = await freshDatabase('scope_seed');
  await db.appQuery(`
    CREATE TABLE big (id bigint PRIMARY KEY, n integer NOT NULL, note text NOT NULL);
    INSERT INTO big SELECT g, g % 1000, 'row ' || g FROM generate_series(1, ${BIG_ROWS}) g;
    CREATE TABLE small (id serial PRIMARY KEY, name text NOT NULL, nickname text);
    INSERT INTO small (name, nickname) SELECT 'user ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'nick ' || g END FROM generate_series(1, 200) g;
    CREATE INDEX small_name ON small (name);
    CREATE TABLE notes (id int PRIMARY KEY, small_id int NOT NULL REFERENCES small (id), body text);
    INSERT INTO notes SELECT g, g, 'note ' || g FROM generate_series(1, 50) g;
    GRANT SELECT ON small TO PUBLIC;
  `);
  await withClient(parseDatabaseUrl(db.url, 'test'), (client) => ensureBelaySchema(client));
  return db.name;
}

async function seeded(): Promise<{ db: TestDatabase; params: ConnectionParams; backups: string }> {
  const db = await freshDatabase('scope', seededTemplate);
  return { db, params: parseDatabaseUrl(db.url, 'test'), backups: await scratchDir('belay-scope-backups-') };
}

const bigState = async (db: TestDatabase): Promise<{ node: string; rows: string; hash: string }> =>
  (
    await db.query<{ node: string; rows: string; hash: string }>(
      "SELECT pg_relation_filenode('big')::text AS node, count(*)::text AS rows, sum(hashtext(id::text || n::text || note))::text AS hash FROM big",
    )
  )[0]!;

const smallRows = (db: TestDatabase, table = 'public.small'): Promise<unknown[]> => db.query(`SELECT id, name, nickname FROM ${table} ORDER BY id`);

/** The throwaway copies of this file's databases (scope_…, scope_nocreatedb_…, scope_seed_…): other test files learn scopes on the same cluster at the same time. */
const throwawayCopies = async (): Promise<string[]> =>
  (await adminQuery<{ datname: string }>('postgres', "SELECT datname FROM pg_database WHERE datname ~ '^scope_(nocreatedb_|seed_)?[0-9a-f]{12}_belay_scope'")).map((r) => r.datname);

const snapshotOptions = (params: ConnectionParams, backups: string) => ({
  params,
  backupsDir: backups,
  format: 'custom' as const,
  jobs: 1,
  compress: undefined,
  revision: '0001_seed',
  runId: null,
  tools,
  env: { PATH: process.env.PATH ?? '' },
  signal: undefined,
  lockTimeoutMs: 10_000,
});

const NICKNAMES_UP = `UPDATE small SET nickname = upper(name);
ALTER TABLE small ADD COLUMN seen_at timestamptz;
DO $$ BEGIN PERFORM 1 FROM big LIMIT 1; END $$;
CREATE TABLE small_devices (id serial PRIMARY KEY, small_id int NOT NULL REFERENCES small (id));
`;
// lossy: the nicknames the up overwrote are gone, and it forgets small_devices
const NICKNAMES_DOWN = `ALTER TABLE small DROP COLUMN seen_at;
UPDATE small SET nickname = NULL WHERE id % 2 = 0;
`;

beforeAll(async () => {
  tools = await resolveBackupTools({ search: { pgBin: cluster().binDir, path: process.env.PATH }, serverMajor: 15 });
  seededTemplate = await seedTemplate();
});

afterAll(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

describe('touched snapshots', () => {
  it('learns that a revision touches only the small table, snapshots it alone, and a targeted restore brings it back without rewriting the large one', async () => {
    const { db, params, backups } = await seeded();
    const revisions = await revisionsIn({ '0002_nicknames.up.sql': NICKNAMES_UP, '0002_nicknames.down.sql': NICKNAMES_DOWN });
    const learned = await learnScope({ params, session: SESSION, tools, env: { PATH: process.env.PATH ?? '' }, signal: undefined, revisions, direction: 'up', lockTimeoutMs: 10_000 });

    expect(learned.unknown).toBeNull();
    expect(learned.dataTables.map(objectLabel)).toEqual(['public.small']);
    expect(learned.revisions.map((r) => `${r.revision} ${r.direction}`)).toEqual(['0002_nicknames up', '0002_nicknames down']);
    const [scope] = learned.revisions;
    expect(scope!.touches.find((t) => t.name === 'big')).toMatchObject({ need: 'definition', modes: ['AccessShareLock'] });
    expect(scope!.touches.find((t) => t.name === 'small')).toMatchObject({ need: 'data' });
    expect(scope!.creates.map(objectLabel)).toContain('public.small_devices');
    expect(learned.created.map(objectLabel)).toEqual(expect.arrayContaining(['public.small_devices', 'public.small_devices_id_seq']));
    expect(await throwawayCopies()).toEqual([]);

    const line = await withClient(params, async (client) => formatRevisionScope(scope!, await measureScope(client, learned)));
    expect(line).toMatch(/^0002 touches public\.small \(\d+(\.\d)? kB\), reads public\.big, creates public\.small_devices(, .*)?; snapshot: 1 table, \d+(\.\d)? kB of \d+(\.\d)? MB$/);
    const total = await withClient(params, async (client) => formatScopeTotal(learned, await measureScope(client, learned)));
    expect(total).toMatch(/^snapshot: touched, 1 table, /);

    const before = { big: await bigState(db), small: await smallRows(db) };
    const { manifest, fingerprint, guard } = await withClient(params, (client) =>
      takeTouchedSnapshot({ ...snapshotOptions(params, backups), client, scope: learned, sums: { perColumn: true } }),
    );
    expect(manifest.scope).toMatchObject({
      kind: 'touched',
      tables: [
        { schema: 'public', name: 'small', kind: 'table' },
        { schema: 'public', name: 'small_id_seq', kind: 'sequence' },
      ],
      learnedFrom: expect.stringContaining('schema-only copy'),
    });
    expect(manifest.tableCount).toBe(1);
    expect(Object.keys(fingerprint.tables)).toEqual(['public.small']);
    const full = await takeSnapshot({ ...snapshotOptions(params, backups), fingerprint: null });
    expect(manifest.sizeBytes * 50).toBeLessThan(full.sizeBytes);

    // the real apply, under the guard: the revision stays inside its scope and commits
    await withClient(params, async (client) => {
      const engine = new MigrationEngine(revisions, client, '00000000-0000-4000-8000-000000000002', { log: () => {} }, (inside) => guard.check(inside));
      await engine.up('0002_nicknames');
    });
    // what the down touches, learned the same way (for rollback --to): the copy is at 0002 now
    const downs = await learnScope({ params, session: SESSION, tools, env: { PATH: process.env.PATH ?? '' }, signal: undefined, revisions, direction: 'down', lockTimeoutMs: 10_000 });
    expect(downs.unknown).toBeNull();
    expect(downs.dataTables.map(objectLabel)).toEqual(['public.small']);
    expect(downs.revisions[0]!.touches.map(objectLabel)).toEqual(['public.small']);
    await withClient(params, async (client) => {
      await new MigrationEngine(revisions, client, '00000000-0000-4000-8000-000000000002', { log: () => {} }, (inside) => guard.check(inside)).down('0002_nicknames');
    });
    expect(await smallRows(db)).not.toEqual(before.small);

    // a restore whose result does not match the fingerprint is rolled back whole: the damaged table stays, no quarantine schema
    const damaged = await smallRows(db);
    const wrongFingerprint = structuredClone(fingerprint);
    wrongFingerprint.tables['public.small']!.rowHash = '12345';
    const refused = await withClient(params, (client) =>
      restoreTouched({ client, manifest: { ...manifest, fingerprint: wrongFingerprint }, tools, env: { PATH: process.env.PATH ?? '' } }).then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    expect(refused).toBeInstanceOf(BelayError);
    expect((refused as BelayError).exitCode).toBe(12);
    expect((refused as BelayError).message).toMatch(/rolled back.*public\.small: 200 rows/);
    expect(await smallRows(db)).toEqual(damaged);
    expect(await db.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'belay_quarantine%'")).toEqual([]);
    // nor can it be restored as a whole database: every other table would come back empty
    await expect(restoreSnapshotInto(manifest, params, { tools, env: {}, jobs: 1, clean: true, privileges: true, signal: undefined })).rejects.toMatchObject({
      exitCode: 4,
      hint: `Nothing was restored. \`belay restore ${manifest.id}\` puts a touched snapshot's tables back in place; for a whole database pick a full snapshot: \`belay backups list\` says which are full.`,
    });

    const outcome = await withClient(params, (client) => restoreTouched({ client, manifest, tools, env: { PATH: process.env.PATH ?? '' } }));
    expect(await smallRows(db)).toEqual(before.small);
    expect(await bigState(db)).toEqual(before.big);
    // the damaged table and what the run left are kept, in the quarantine schema
    const q = outcome.quarantineSchema;
    expect(outcome.quarantined).toEqual(expect.arrayContaining([`public.small → ${q}.small`, `table public.small_devices → ${q}.small_devices`]));
    expect(await smallRows(db, `"${q}".small`)).not.toEqual(before.small);
    expect(await db.query("SELECT to_regclass('public.small_devices') AS r")).toEqual([{ r: null }]);
    // what hangs on the restored table is back: index, grant, sequence position, the foreign key of notes onto it (valid)
    expect(await db.query("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'small' ORDER BY 1")).toEqual([{ indexname: 'small_name' }, { indexname: 'small_pkey' }]);
    expect(await db.query("SELECT has_table_privilege('public', 'public.small', 'SELECT') AS granted")).toEqual([{ granted: true }]);
    expect(await db.query("SELECT nextval('public.small_id_seq')::int AS next")).toEqual([{ next: 201 }]);
    expect(
      await db.query("SELECT confrelid::regclass::text AS target, convalidated FROM pg_constraint WHERE conrelid = 'public.notes'::regclass AND contype = 'f'"),
    ).toEqual([{ target: 'small', convalidated: true }]);
  });

  it('stops, before it commits, a revision that writes outside the learned scope on a branch the empty copy never took', async () => {
    const { db, params, backups } = await seeded();
    const revisions = await revisionsIn({
      '0002_touch_big_when_rows.up.sql': `UPDATE small SET name = name || '!';
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM big) THEN UPDATE big SET note = 'changed' WHERE id <= 10; END IF;
END $$;
`,
      '0002_touch_big_when_rows.down.sql': "UPDATE small SET name = rtrim(name, '!');\n",
    });
    const env = { PATH: process.env.PATH ?? '' };
    const learned = await learnScope({ params, session: SESSION, tools, env, signal: undefined, revisions, direction: 'up', lockTimeoutMs: 10_000 });
    expect(learned.unknown).toBeNull();
    expect(learned.dataTables.map(objectLabel)).toEqual(['public.small']);
    const before = { big: await bigState(db), small: await smallRows(db) };
    const { guard } = await withClient(params, (client) => takeTouchedSnapshot({ ...snapshotOptions(params, backups), client, scope: learned, sums: { perColumn: false } }));

    const failure = await withClient(params, async (client) => {
      const engine = new MigrationEngine(revisions, client, '00000000-0000-4000-8000-000000000003', { log: () => {} }, (inside) => guard.check(inside));
      return engine.up('0002_touch_big_when_rows').then(
        () => undefined,
        (error: unknown) => error,
      );
    });
    expect(failure).toBeInstanceOf(RevisionFailedError);
    const cause = (failure as RevisionFailedError).cause;
    expect(cause).toBeInstanceOf(BelayError);
    expect((cause as BelayError).exitCode).toBe(10);
    expect((cause as BelayError).message).toMatch(/public\.big \(RowExclusiveLock\).*--backup-scope full/);
    expect(await bigState(db)).toEqual(before.big);
    expect(await smallRows(db)).toEqual(before.small);
    expect(await db.query("SELECT name FROM belay.migrations WHERE name LIKE '0002%'")).toEqual([]);
  });

  it('auto takes a full snapshot, saying why, when a revision runs outside a transaction or the copy cannot be made; touched refuses', async () => {
    const revisions = await revisionsIn({
      '0002_index.up.sql': '-- belay:no-transaction\nCREATE INDEX CONCURRENTLY big_n ON big (n);\n',
      '0002_index.down.sql': 'DROP INDEX big_n;\n',
    });
    const never = (): Promise<never> => {
      throw new Error('not learned: the revision runs outside a transaction');
    };
    const auto = await decideScope('auto', revisions, 'up', never);
    expect(auto).toMatchObject({ kind: 'full', learned: null });
    expect(auto.why).toMatch(/0002_index runs outside a transaction/);
    await expect(decideScope('touched', revisions, 'up', never)).rejects.toMatchObject({ code: 'preflight', message: expect.stringMatching(/--backup-scope touched: 0002_index/) });

    // a real role without CREATEDB: the copy cannot be made, so auto falls back to full and touched refuses (exit 4)
    const db = await freshDatabase('scope_nocreatedb');
    const role = `nocreatedb_${db.name.slice(-6)}`;
    await db.query(`CREATE ROLE ${role} LOGIN NOCREATEDB PASSWORD 'pw-${role}'`);
    await db.query(`ALTER DATABASE ${db.name} OWNER TO ${role}`);
    await db.query(`GRANT CREATE ON SCHEMA public TO ${role}`);
    const params: ConnectionParams = { host: '127.0.0.1', port: cluster().port, user: role, password: `pw-${role}`, database: db.name, source: 'test' };
    await withClient(params, async (client) => {
      await client.query('CREATE TABLE t (id int)');
      await ensureBelaySchema(client);
    });
    const transactional = await revisionsIn({ '0002_t.up.sql': 'INSERT INTO t VALUES (1);\n', '0002_t.down.sql': 'DELETE FROM t;\n' });
    const learn = () => learnScope({ params, session: SESSION, tools, env: { PATH: process.env.PATH ?? '' }, signal: undefined, revisions: transactional, direction: 'up', lockTimeoutMs: 10_000 });
    const fallback = await decideScope('auto', transactional, 'up', learn);
    expect(fallback.kind).toBe('full');
    expect(fallback.why).toMatch(/cannot create the throwaway copy .*permission denied/);
    await expect(decideScope('touched', transactional, 'up', learn)).rejects.toMatchObject({ exitCode: 4 });
    expect(await throwawayCopies()).toEqual([]);

    // a revision that fails on the empty copy (its foreign key needs a row): scope unknown, copy dropped all the same
    const seededDb = await seeded();
    const needsRows = await revisionsIn({ '0002_note.up.sql': "INSERT INTO notes VALUES (999, 1, 'needs user 1');\n", '0002_note.down.sql': 'DELETE FROM notes WHERE id = 999;\n' });
    const learnNeedsRows = () =>
      learnScope({ params: seededDb.params, session: SESSION, tools, env: { PATH: process.env.PATH ?? '' }, signal: undefined, revisions: needsRows, direction: 'up', lockTimeoutMs: 10_000 });
    const unknown = await decideScope('auto', needsRows, 'up', learnNeedsRows);
    expect(unknown.kind).toBe('full');
    expect(unknown.why).toMatch(/0002_note up fails on a schema-only copy.*foreign key/);
    expect(await throwawayCopies()).toEqual([]);
    expect(await seededDb.db.query('SELECT count(*)::int AS n FROM notes')).toEqual([{ n: 50 }]);

    // the safety net runs the downs under the same snapshot: a down that writes elsewhere widens the scope
    const downWrites = await revisionsIn({ '0002_names.up.sql': "UPDATE small SET name = name || '.';\n", '0002_names.down.sql': "UPDATE small SET name = rtrim(name, '.');\nUPDATE notes SET body = body;\n" });
    const widened = await decideScope('auto', downWrites, 'up', () =>
      learnScope({ params: seededDb.params, session: SESSION, tools, env: { PATH: process.env.PATH ?? '' }, signal: undefined, revisions: downWrites, direction: 'up', lockTimeoutMs: 10_000 }),
    );
    expect(widened.kind).toBe('touched');
    expect(widened.learned!.revisions.map((r) => `${r.revision} ${r.direction}`)).toEqual(['0002_names up', '0002_names down']);
    expect(widened.learned!.dataTables.map(objectLabel).sort()).toEqual(['public.notes', 'public.small']);

    // a sequence that moves while its table does not: it cannot be restored alone, so a full snapshot
    const sequenceOnly = await revisionsIn({ '0002_skip.up.sql': "SELECT nextval('small_id_seq');\n", '0002_skip.down.sql': 'SELECT 1;\n' });
    const fullForSequence = await decideScope('auto', sequenceOnly, 'up', () =>
      learnScope({ params: seededDb.params, session: SESSION, tools, env: { PATH: process.env.PATH ?? '' }, signal: undefined, revisions: sequenceOnly, direction: 'up', lockTimeoutMs: 10_000 }),
    );
    expect(fullForSequence.kind).toBe('full');
    expect(fullForSequence.why).toMatch(/sequence public\.small_id_seq may change, and it belongs to public\.small/);
  });
});
