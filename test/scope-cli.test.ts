import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { belay, cleanEnv, jsonResult } from './support/cli.js';
import { adminQuery, freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

// touched snapshots through the CLI (issue 16, docs/snapshots.md): a large table, a small one, and revisions that touch the small one
const BIG_ROWS = 300_000;

const SEED: Record<string, string> = {
  '0001_seed.up.sql': `CREATE TABLE big (id bigint PRIMARY KEY, n integer NOT NULL, note text NOT NULL);
INSERT INTO big SELECT g, g % 1000, 'row ' || g FROM generate_series(1, ${BIG_ROWS}) g;
CREATE TABLE small (id serial PRIMARY KEY, name text NOT NULL, nickname text);
INSERT INTO small (name, nickname) SELECT 'user ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'nick ' || g END FROM generate_series(1, 200) g;
`,
  '0001_seed.down.sql': 'DROP TABLE small; DROP TABLE big;',
};

let template: string;

beforeAll(async () => {
  const db = await freshDatabase('scope_cli_seed');
  const project = await makeProject(SEED);
  const run = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
  expect(run.code, run.stderr).toBe(0);
  template = db.name;
});

async function seeded(revisions: Record<string, string>, config?: object): Promise<{ db: TestDatabase; project: TestProject; args: string[] }> {
  const db = await freshDatabase('scope_cli', template);
  const project = await makeProject({ ...SEED, ...revisions }, config);
  return { db, project, args: [...baseArgs(project, db.url), ...(config ? ['--config', join(project.dir, 'belay.config.json')] : [])] };
}

const bigState = async (db: TestDatabase): Promise<{ node: string; rows: string; hash: string }> =>
  (await db.query<{ node: string; rows: string; hash: string }>("SELECT pg_relation_filenode('big')::text AS node, count(*)::text AS rows, sum(hashtext(id::text || n::text || note))::text AS hash FROM big"))[0]!;

const smallRows = (db: TestDatabase, table = 'public.small'): Promise<unknown[]> => db.query(`SELECT id, name, nickname FROM ${table} ORDER BY id`);

const applied = async (db: TestDatabase): Promise<string[]> => (await db.query<{ name: string }>('SELECT name FROM belay.migrations ORDER BY name')).map((r) => r.name);

interface Manifest {
  id: string;
  file: string;
  sizeBytes: number;
  scope?: { kind: string; tables: Array<{ schema: string; name: string; kind: string }> };
}

const manifestOf = async (project: TestProject, id: string): Promise<Manifest> => JSON.parse(await readFile(join(project.backups, `${id}.manifest.json`), 'utf8')) as Manifest;

async function journal(project: TestProject): Promise<Array<Record<string, unknown>>> {
  const dir = join(project.backups, 'journal');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.jsonl')).sort();
  const text = await readFile(join(dir, files[files.length - 1]!), 'utf8');
  return text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

const scopeCopies = async (): Promise<string[]> =>
  (await adminQuery<{ datname: string }>('postgres', "SELECT datname FROM pg_database WHERE datname LIKE 'scope_cli_%belay_scope%'")).map((r) => r.datname);

const NICKNAMES_UP = `UPDATE small SET nickname = upper(name);
ALTER TABLE small ADD COLUMN seen_at timestamptz;
`;

describe('touched snapshots through the CLI', () => {
  it("a snapshot before revisions that only create tables holds no table's rows, and says so (it said `touched ()` and `the rows of  only`)", async () => {
    const { args } = await seeded({ '0002_fresh.up.sql': 'CREATE TABLE fresh (id int);', '0002_fresh.down.sql': 'DROP TABLE fresh;' });
    const up = await belay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'touched']);
    expect(up.code, up.stderr).toBe(0);
    const list = await belay([...args, 'backups', 'list']);
    expect(list.stdout).toMatch(/@0001_seed {2}custom {2}touched \(no table\) /);
    const id = /^(\S+)/.exec(list.stdout)![1]!;
    const restore = await belay([...args, 'restore', id]);
    expect(restore.code, restore.stderr).toBe(4);
    expect(restore.stderr).toContain(`snapshot ${id} is a touched snapshot (the schema, and no table's rows) taken at 0001_seed, but`);
  });

  it('a revision touching only the small table takes a snapshot of it alone, much smaller than a full one', async () => {
    const { db, project, args } = await seeded({ '0002_nicknames.up.sql': NICKNAMES_UP, '0002_nicknames.down.sql': 'ALTER TABLE small DROP COLUMN seen_at;' });
    const full = await belay([...args, '--json', 'backup']);
    expect(full.code, full.stderr).toBe(0);
    const fullSnapshot = jsonResult<{ snapshot: { id: string } }>(full).snapshot;
    const bigBefore = await bigState(db);

    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(0);
    const result = jsonResult<{ snapshot: { id: string }; toRevision: string }>(run);
    expect(result.toRevision).toBe('0002_nicknames');
    const manifest = await manifestOf(project, result.snapshot.id);
    expect(manifest.scope?.kind, run.stderr).toBe('touched');
    expect(manifest.scope?.tables.filter((t) => t.kind === 'table').map((t) => `${t.schema}.${t.name}`)).toEqual(['public.small']);
    const fullManifest = await manifestOf(project, fullSnapshot.id);
    expect(fullManifest.scope).toBeUndefined();
    expect(manifest.sizeBytes).toBe((await stat(join(project.backups, manifest.file))).size);
    // (every snapshot holds belay's schema, its change-tracking function's ~95 KB of DDL among it, stored uncompressed)
    expect(manifest.sizeBytes * 10).toBeLessThan(fullManifest.sizeBytes);
    expect(await bigState(db)).toEqual(bigBefore);
    expect(await scopeCopies()).toEqual([]);

    // the decision and its why are journaled with the preflight step, and the backup step says which snapshot
    const lines = await journal(project);
    const preflight = lines.find((l) => l.type === 'step' && l.event === 'end' && l.step === 'preflight') as { detail: { scope: { mode: string; kind: string; why: string; tables: string[] } } };
    expect(preflight.detail.scope).toMatchObject({ mode: 'auto', kind: 'touched', tables: ['public.small'] });
    expect(preflight.detail.scope.why).toMatch(/^touched snapshot: every revision runs in a transaction/);
    const backup = lines.find((l) => l.type === 'step' && l.event === 'end' && l.step === 'backup') as { detail: { scope: string } };
    expect(backup.detail.scope).toBe('touched');

    const listing = await belay([...args, 'backups', 'list']);
    expect(listing.code, listing.stderr).toBe(0);
    expect(listing.stdout).toMatch(new RegExp(`${manifest.id}.*touched \\(public\\.small\\)`));
    expect(listing.stdout).toMatch(new RegExp(`${fullManifest.id}.*full`));

    // belay restore of a touched snapshot: refused while the database is at another revision (its tables only come back, not the revision)
    const refused = await belay([...args, 'restore', manifest.id, '--yes']);
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr).toContain('is a touched snapshot');

    // rollback with --backup-scope touched learns the downs' scope: a touched snapshot of small again (auto takes a full one there)
    const rollback = await belay([...args, '--json', 'rollback', '--to', '0001', '--yes', '--backup-scope', 'touched']);
    expect(rollback.code, rollback.stderr).toBe(0);
    const rollbackSnapshot = await manifestOf(project, jsonResult<{ snapshot: { id: string } }>(rollback).snapshot.id);
    expect(rollbackSnapshot.scope?.tables.filter((t) => t.kind === 'table').map((t) => t.name)).toEqual(['small']);

    // back at 0001, the first touched snapshot puts small back in place; big is not rewritten
    await db.query("UPDATE small SET name = 'damaged'");
    const restore = await belay([...args, 'restore', manifest.id, '--yes']);
    expect(restore.code, `${restore.stdout}\n${restore.stderr}`).toBe(0);
    expect(restore.stdout).toMatch(/kept in schema belay_quarantine_\w+/);
    expect(((await smallRows(db)) as Array<{ name: string }>).every((r) => r.name !== 'damaged')).toBe(true);
    expect(await bigState(db)).toEqual(bigBefore);
  });

  it('a lossy down ends 11 with the small table restored exactly, the large one never rewritten', async () => {
    // the up commits, the health check then fails, the down loses nicknames: integrity finds it, the touched snapshot puts small back
    const { db, project, args } = await seeded(
      {
        '0002_nicknames.up.sql': NICKNAMES_UP,
        '0002_nicknames.down.sql': 'ALTER TABLE small DROP COLUMN seen_at;\nUPDATE small SET nickname = NULL WHERE id % 2 = 0;\n',
      },
      { health: { sql: [{ name: 'nicknames kept', query: 'SELECT 1 FROM small WHERE nickname = upper(name)', expect: 'no-rows' }] } },
    );
    // a generated column computed as the restore loads the rows keeps the setting of the session that commits them
    await db.query(`SET synchronous_commit = on;
      CREATE FUNCTION commit_mode() RETURNS text IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN RETURN current_setting('synchronous_commit'); END $$;
      ALTER TABLE small ADD COLUMN mode text GENERATED ALWAYS AS (commit_mode()) STORED`);
    const smallBefore = await smallRows(db);
    const bigBefore = await bigState(db);
    const run = await belay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'touched', '--health-timeout', '0']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(11);
    // on this cluster, whose commits are asynchronous, the restore's commit is not: on disk before belay says "restored"
    expect(await db.query('SELECT DISTINCT mode FROM small')).toEqual([{ mode: 'on' }]);
    expect(run.stdout).toMatch(/restored public\.small, public\.small_id_seq from touched snapshot \S+ in place and verified/);
    const quarantine = /kept in schema (belay_quarantine_\w+)/.exec(run.stdout)?.[1];
    expect(quarantine).toBeDefined();
    expect(await smallRows(db)).toEqual(smallBefore);
    expect(await bigState(db)).toEqual(bigBefore);
    // the damaged table is kept in the quarantine schema, with what the down left
    const damaged = (await smallRows(db, `${quarantine!}.small`)) as Array<{ id: number; nickname: string | null }>;
    expect(damaged.filter((r) => r.id % 2 === 0).every((r) => r.nickname === null)).toBe(true);
    expect(await applied(db)).toEqual(['0001_seed']);
    const restore = (await journal(project)).find((l) => l.type === 'step' && l.event === 'end' && l.step === 'restore') as { outcome: string; detail: { ok: boolean; quarantineSchema: string } };
    expect(restore.outcome).toBe('ok');
    expect(restore.detail.quarantineSchema).toBe(quarantine);
  });

  it('a DO block that writes to the large table only when it has rows is stopped before commit: exit 10, nothing changed', async () => {
    const { db, project, args } = await seeded({
      '0002_touch_up.up.sql': `UPDATE small SET nickname = 'x' WHERE id = 1;
DO $$ BEGIN IF EXISTS (SELECT 1 FROM big) THEN UPDATE big SET n = n + 1 WHERE id = 1; END IF; END $$;
`,
      '0002_touch_up.down.sql': "UPDATE small SET nickname = 'nick 1' WHERE id = 1;",
    });
    const smallBefore = await smallRows(db);
    const bigBefore = await bigState(db);
    const run = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(10);
    const last = run.stdout.split('\n')[0]!;
    expect(last).toMatch(/public\.big \(RowExclusiveLock\), outside the touched snapshot/);
    expect(last).toContain('--backup-scope full');
    expect(run.stdout).toMatch(/next: .*--backup-scope full/);
    expect(await bigState(db)).toEqual(bigBefore);
    expect(await smallRows(db)).toEqual(smallBefore);
    expect(await applied(db)).toEqual(['0001_seed']);
    const end = (await journal(project)).find((l) => l.type === 'outcome') as { exitCode: number; summary: { next: string } };
    expect(end.exitCode).toBe(10);
    expect(end.summary.next).toContain('--backup-scope full');

    // with a full snapshot it goes through
    const again = await belay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'full']);
    expect(again.code, again.stderr).toBe(0);
    expect((await bigState(db)).node).toBe(bigBefore.node);
  });

  it('an UPDATE of a table with an audit trigger: auto takes a full snapshot (the copy has no rows to fire it) and ends 0; touched is stopped naming the trigger (exit 10)', async () => {
    const revisions = {
      '0002_emails.up.sql': 'UPDATE users SET email = upper(email) WHERE id % 2 = 0;\n',
      '0002_emails.down.sql': 'UPDATE users SET email = lower(email) WHERE id % 2 = 0;\n',
    };
    const setup = `CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
      INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 10) g;
      CREATE TABLE audit_log (id bigserial PRIMARY KEY, user_id int NOT NULL, old_email text, new_email text);
      CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO audit_log (user_id, old_email, new_email) VALUES (OLD.id, OLD.email, NEW.email); RETURN NEW; END $$;
      CREATE TRIGGER audit_users AFTER UPDATE ON users FOR EACH ROW EXECUTE FUNCTION audit();`;
    const state = async (db: TestDatabase): Promise<unknown[]> =>
      db.query("SELECT (SELECT string_agg(email, ',' ORDER BY id) FROM users) AS emails, (SELECT count(*)::int FROM audit_log) AS audited");

    const { db, project, args } = await seeded(revisions);
    await db.appQuery(setup);
    const run = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    const why = 'full snapshot: the tables the revisions write set off what may write other tables once rows are there, which the schema-only copy has none of, so where it writes cannot be learned: trigger audit_users on public.users';
    expect(run.stderr).toContain(why);
    const snapshotId = /snapshot (\S+) {2}/.exec(run.stdout)?.[1];
    expect((await manifestOf(project, snapshotId!)).scope).toBeUndefined();
    const preflight = (await journal(project)).find((l) => l.type === 'step' && l.event === 'end' && l.step === 'preflight') as { detail: { scope: { mode: string; kind: string; why: string } } };
    expect(preflight.detail.scope).toMatchObject({ mode: 'auto', kind: 'full' });
    expect(preflight.detail.scope.why).toContain(why);
    expect(await state(db)).toEqual([{ emails: Array.from({ length: 10 }, (_, i) => (i % 2 === 1 ? `U${i + 1}@EXAMPLE.COM` : `u${i + 1}@example.com`)).join(','), audited: 5 }]);
    expect(await applied(db)).toEqual(['0001_seed', '0002_emails']);
    expect(await scopeCopies()).toEqual([]);

    const stopped = await seeded(revisions);
    await stopped.db.appQuery(setup);
    const before = await state(stopped.db);
    const touched = await belay([...stopped.args, 'migrate', 'up', '--with-backup', '--backup-scope', 'touched']);
    expect(touched.code, `${touched.stdout}\n${touched.stderr}`).toBe(10);
    expect(touched.stdout).toContain('public.audit_log (RowExclusiveLock), outside the touched snapshot (whose scope was learned on a schema-only copy, without the rows that set off trigger audit_users on public.users, the likely writer)');
    expect(touched.stdout).toMatch(/next: .*--backup-scope full/);
    expect(await state(stopped.db)).toEqual(before);
    expect(await applied(stopped.db)).toEqual(['0001_seed']);
  });

  it('a DELETE from a table a foreign key cascades from: auto takes a full snapshot and names the foreign key; one the scope holds anyway does not count', async () => {
    const { db, project, args } = await seeded({
      '0002_prune.up.sql': 'DELETE FROM small WHERE id > 190;\n',
      '0002_prune.down.sql': 'SELECT 1;\n',
    });
    await db.appQuery('CREATE TABLE visits (id int PRIMARY KEY, small_id int REFERENCES small (id) ON DELETE CASCADE); INSERT INTO visits SELECT g, g FROM generate_series(1, 200) g;');
    const run = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stderr).toContain('cannot be learned: foreign key visits_small_id_fkey of public.visits onto public.small (ON DELETE CASCADE)');
    const snapshotId = /snapshot (\S+) {2}/.exec(run.stdout)?.[1];
    expect((await manifestOf(project, snapshotId!)).scope).toBeUndefined();
    expect(await db.query('SELECT count(*)::int AS n FROM visits')).toEqual([{ n: 190 }]);

    // the revision writes visits itself too: its rows are in the snapshot, so the cascade loses nothing
    const both = await seeded({
      '0002_prune.up.sql': 'UPDATE visits SET id = id WHERE id = 1;\nDELETE FROM small WHERE id > 190;\n',
      '0002_prune.down.sql': 'SELECT 1;\n',
    });
    await both.db.appQuery('CREATE TABLE visits (id int PRIMARY KEY, small_id int REFERENCES small (id) ON DELETE CASCADE); INSERT INTO visits SELECT g, g FROM generate_series(1, 200) g;');
    const scoped = await belay([...both.args, '--json', 'migrate', 'up', '--with-backup']);
    expect(scoped.code, scoped.stderr).toBe(0);
    const manifest = await manifestOf(both.project, jsonResult<{ snapshot: { id: string } }>(scoped).snapshot.id);
    expect(manifest.scope?.tables.filter((t) => t.kind === 'table').map((t) => `${t.schema}.${t.name}`)).toEqual(['public.small', 'public.visits']);
  });

  it('auto falls back to a full snapshot for a revision outside a transaction and for a rollback, and says so; touched refuses the former (exit 4)', async () => {
    const revisions = {
      '0002_index.up.sql': '-- belay:no-transaction\nCREATE INDEX CONCURRENTLY small_name ON small (name);\n',
      '0002_index.down.sql': '-- belay:no-transaction\nDROP INDEX CONCURRENTLY small_name;\n',
    };
    const { db, project, args } = await seeded(revisions);
    const refused = await belay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'touched']);
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr).toContain('0002_index runs outside a transaction');
    expect(await applied(db)).toEqual(['0001_seed']);

    const run = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/full snapshot: 0002_index runs outside a transaction/);
    const snapshotId = /snapshot (\S+) {2}/.exec(run.stdout)?.[1];
    expect(snapshotId).toBeDefined();
    expect((await manifestOf(project, snapshotId!)).scope).toBeUndefined();
    expect(await scopeCopies()).toEqual([]);

    // a rollback under auto takes a full snapshot: its restore must bring back the revision it started from
    const rollback = await belay([...args, 'rollback', '--to', '0001', '--yes']);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(rollback.stderr).toMatch(/full snapshot: a rollback restores the revision it started from/);
  });

  it('a temp dir belay cannot write (TMPDIR a file): touched and auto are refused (exit 4, next: TMPDIR), nothing changed (it was exit 1 and a process that never ended); so is the restore of a touched snapshot (it was exit 12)', async () => {
    const { db, project, args } = await seeded({ '0002_nicknames.up.sql': NICKNAMES_UP, '0002_nicknames.down.sql': 'ALTER TABLE small DROP COLUMN seen_at;' });
    const notAFolder = join(project.dir, 'not-a-folder');
    await writeFile(notAFolder, '');
    for (const scope of ['touched', 'auto']) {
      // auto falls back to a full snapshot, whose pg_dump gets the password through a file in the temp dir too
      const run = await belay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', scope], { env: cleanEnv({ TMPDIR: notAFolder }), timeoutMs: 30_000 });
      expect(run.code, `${scope}: ${run.stderr}`).toBe(4);
      expect(run.stderr).toContain(`cannot make a work folder in the temp dir ${notAFolder}: ENOTDIR`);
      expect(run.stderr).toMatch(/next: .*point TMPDIR at a folder it can write/);
    }
    expect(await applied(db)).toEqual(['0001_seed']);
    expect(await scopeCopies()).toEqual([]);

    // a touched snapshot's restore needs a work folder there too, before its transaction: refused, not manual action (exit 12)
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(0);
    const { snapshot } = jsonResult<{ snapshot: { id: string } }>(run);
    expect((await manifestOf(project, snapshot.id)).scope?.kind).toBe('touched');
    // a touched snapshot puts back tables, not the revision: the database must be at the snapshot's
    expect((await belay([...args, 'rollback', '--to', '0001', '--yes', '--no-backup'])).code).toBe(0);
    const before = await smallRows(db);
    const restore = await belay([...args, 'restore', snapshot.id, '--yes'], { env: cleanEnv({ TMPDIR: notAFolder }), timeoutMs: 30_000 });
    expect(restore.code, restore.stderr).toBe(4);
    expect(restore.stderr).toMatch(/failed before it changed anything: cannot make a work folder in the temp dir/);
    expect(restore.stderr).toMatch(/next: .*point TMPDIR at a folder it can write/);
    expect(await smallRows(db)).toEqual(before);
  });

  it('auto takes a full snapshot before a module revision, which learning would run twice: its effect outside the database happens once', async () => {
    const { db, project, args } = await seeded({
      '0002_effect.mjs': `import { appendFileSync } from 'node:fs';
export async function up(ctx) {
  appendFileSync(new URL('../effects.log', import.meta.url), 'up\\n');
  await ctx.sql("UPDATE small SET nickname = 'n' WHERE id = 1");
}
export async function down(ctx) {
  await ctx.sql('UPDATE small SET nickname = NULL WHERE id = 1');
}
`,
    });
    const run = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/full snapshot: 0002_effect is a module, which learning would run twice/);
    expect(await readFile(join(project.dir, 'effects.log'), 'utf8')).toBe('up\n');
    const snapshotId = /snapshot (\S+) {2}/.exec(run.stdout)?.[1];
    expect((await manifestOf(project, snapshotId!)).scope).toBeUndefined();
    expect(await applied(db)).toEqual(['0001_seed', '0002_effect']);
    expect(await scopeCopies()).toEqual([]);
  });

  it('plan --scope prints what each revision touches, with sizes', async () => {
    const { args } = await seeded({ '0002_nicknames.up.sql': NICKNAMES_UP, '0002_nicknames.down.sql': 'ALTER TABLE small DROP COLUMN seen_at;' });
    const plain = await belay([...args, 'plan']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).not.toContain('snapshot:');
    const run = await belay([...args, 'plan', '--scope']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/0002 touches public\.small \([\d.]+ kB\); snapshot: 1 table, [\d.]+ kB of [\d.]+ MB/);
    expect(run.stdout).toMatch(/snapshot: touched, 1 table/);
    expect(await scopeCopies()).toEqual([]);
  });

  it('plan --to --scope past a revision without a down says the scope is not learned, with the problem (it was exit 1, IrreversibleRevisionError)', async () => {
    const { args } = await seeded({ '0002_nicknames.up.sql': NICKNAMES_UP });
    expect((await belay([...args, 'migrate', 'up', '--allow-irreversible'])).code).toBe(0);
    const run = await belay([...args, 'plan', '--to', '0001', '--scope']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('snapshot: not learned, 0002_nicknames has no down');
    expect(run.stdout).toContain('problem: revisions without a down stand between 0002_nicknames and 0001_seed: 0002_nicknames');
  });
});

// a targeted restore moves a table aside and re-creates it: what ties the table to other live objects would stay with the moved copy
const TIES_SEED: Record<string, string> = {
  '0001_init.up.sql': `CREATE SCHEMA s1;
CREATE TABLE s1.par (id int PRIMARY KEY, v text);
CREATE TABLE s1.kid (extra int) INHERITS (s1.par);
INSERT INTO s1.par VALUES (1, 'a'), (2, 'b');
INSERT INTO s1.kid VALUES (3, 'c', 30), (4, 'd', 40);
CREATE TABLE s1.pt (id int PRIMARY KEY, v text);
INSERT INTO s1.pt VALUES (1, 'a'), (2, 'b');
CREATE TABLE s1.plain (id int PRIMARY KEY, v text);
INSERT INTO s1.plain VALUES (10, 'a'), (20, 'b');
`,
  '0001_init.down.sql': 'DROP SCHEMA s1 CASCADE;',
};

// the up commits, then the health check fails; the down drops breakme only, so integrity finds the up's write and a restore follows
const BREAK_CONFIG = { health: { timeoutSeconds: 0, sql: [{ name: 'no breakme', query: "SELECT 1 WHERE to_regclass('s1.breakme') IS NOT NULL", expect: 'no-rows' }] } };
const corrupting = (write: string): Record<string, string> => ({
  '0002_corrupt.up.sql': `${write}\nCREATE TABLE s1.breakme (id int);\n`,
  '0002_corrupt.down.sql': 'DROP TABLE s1.breakme;',
});

const TIES_REASON = 'a targeted restore moves a table aside into a quarantine schema and re-creates it, and cannot carry over what ties it to live objects (they would stay tied to the quarantined copy, or lose the table)';

let tiesTemplate: string;

async function tiesDb(revisions: Record<string, string>, setup: string): Promise<{ db: TestDatabase; project: TestProject; args: string[] }> {
  const db = await freshDatabase('scope_ties', tiesTemplate);
  if (setup !== '') await db.appQuery(setup);
  const project = await makeProject({ ...TIES_SEED, ...revisions }, BREAK_CONFIG);
  return { db, project, args: [...baseArgs(project, db.url), '--config', join(project.dir, 'belay.config.json')] };
}

const quarantines = async (db: TestDatabase): Promise<unknown[]> => db.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'belay_quarantine%'");

describe('a table a targeted restore cannot put back faithfully', () => {
  beforeAll(async () => {
    const db = await freshDatabase('scope_ties_seed');
    const project = await makeProject(TIES_SEED);
    const run = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(0);
    tiesTemplate = db.name;
  });

  const cases = [
    {
      name: 'an inheritance parent with a child',
      setup: '',
      write: "UPDATE ONLY s1.par SET v = 'zz' WHERE id = 1;",
      tie: 's1.kid inherits from s1.par',
      state: "SELECT i.inhrelid::regclass::text AS kid, i.inhparent::regclass::text AS parent, (SELECT string_agg(id || v, ',' ORDER BY id) FROM s1.par) AS rows FROM pg_inherits i",
    },
    {
      name: 'an inheritance child',
      setup: '',
      write: "UPDATE s1.kid SET v = 'zz' WHERE id = 3;",
      tie: 's1.kid inherits from s1.par',
      state: "SELECT i.inhrelid::regclass::text AS kid, i.inhparent::regclass::text AS parent, (SELECT string_agg(id || v || extra, ',' ORDER BY id) FROM s1.kid) AS rows FROM pg_inherits i",
    },
    {
      name: 'a table whose row type a live column uses',
      setup: "CREATE TABLE s1.holder (id int, r s1.pt); INSERT INTO s1.holder VALUES (1, ROW(9, 'x'));",
      write: "UPDATE s1.pt SET v = 'zz' WHERE id = 1;",
      tie: 'column r of table s1.holder uses the row type of s1.pt',
      state: "SELECT a.atttypid::regtype::text AS type, (SELECT string_agg((h.r).v, ',') FROM s1.holder h) AS held, (SELECT string_agg(id || v, ',' ORDER BY id) FROM s1.pt) AS rows FROM pg_attribute a WHERE a.attrelid = 's1.holder'::regclass AND a.attname = 'r'",
    },
    {
      name: 'a table in a publication',
      setup: 'CREATE PUBLICATION pub1 FOR TABLE s1.pt;',
      write: "UPDATE s1.pt SET v = 'zz' WHERE id = 1;",
      tie: 's1.pt is in publication pub1',
      state: "SELECT p.schemaname, p.tablename, (SELECT string_agg(id || v, ',' ORDER BY id) FROM s1.pt) AS rows FROM pg_publication_tables p",
    },
    {
      name: 'a table a partitioned table holds a foreign key onto',
      setup: `CREATE TABLE s1.pref (id int, plain_id int REFERENCES s1.plain (id), at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE s1.pref_d PARTITION OF s1.pref DEFAULT; INSERT INTO s1.pref VALUES (1, 20, '2024-01-01');`,
      write: "UPDATE s1.plain SET v = 'q' WHERE id = 20;",
      tie: 'foreign key pref_plain_id_fkey of partitioned table s1.pref references s1.plain',
      state: "SELECT conrelid::regclass::text AS rel, conname, confrelid::regclass::text AS onto, (SELECT string_agg(id || v, ',' ORDER BY id) FROM s1.plain) AS rows FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2",
    },
    {
      name: 'a table a view and a SQL-body function read',
      setup: 'CREATE VIEW s1.v AS SELECT id, v FROM s1.pt; CREATE FUNCTION s1.f() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM s1.pt; END;',
      write: "UPDATE s1.pt SET v = 'zz' WHERE id = 1;",
      tie: 'function s1.f() reads s1.pt; view s1.v reads s1.pt',
      state: "SELECT c.relnamespace::regnamespace::text AS schema, s1.f() AS counted, (SELECT string_agg(id || v, ',' ORDER BY id) FROM s1.v) AS rows FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class c ON c.oid = d.refobjid WHERE r.ev_class = 's1.v'::regclass AND c.relname = 'pt'",
    },
    {
      name: 'a table a policy of another table uses',
      setup: 'CREATE POLICY only_known ON s1.plain USING (id IN (SELECT id FROM s1.pt));',
      write: "UPDATE s1.pt SET v = 'zz' WHERE id = 1;",
      tie: 'policy only_known on s1.plain uses s1.pt',
      state: "SELECT policyname, qual, (SELECT string_agg(id || v, ',' ORDER BY id) FROM s1.pt) AS rows FROM pg_policies",
    },
    {
      name: 'a table a rule of another table uses',
      setup: 'CREATE RULE copy_plain AS ON INSERT TO s1.plain DO ALSO INSERT INTO s1.pt VALUES (NEW.id, NEW.v);',
      write: "UPDATE s1.pt SET v = 'zz' WHERE id = 1;",
      tie: 'rule copy_plain on s1.plain uses s1.pt',
      state: "SELECT rulename, definition, (SELECT string_agg(id || v, ',' ORDER BY id) FROM s1.pt) AS rows FROM pg_rules WHERE schemaname = 's1'",
    },
    {
      name: 'a partition written directly',
      setup: "CREATE TABLE s1.ev (id int, at date) PARTITION BY RANGE (at); CREATE TABLE s1.ev_d PARTITION OF s1.ev DEFAULT; INSERT INTO s1.ev VALUES (1, '2024-01-01'), (2, '2024-01-02');",
      write: 'UPDATE s1.ev_d SET id = id + 100;',
      tie: 's1.ev_d is a partition of s1.ev',
      state: "SELECT i.inhrelid::regclass::text AS part, i.inhparent::regclass::text AS parent, (SELECT string_agg(id::text, ',' ORDER BY id) FROM s1.ev) AS rows FROM pg_inherits i ORDER BY 1",
    },
  ];

  for (const c of cases) {
    it(`${c.name}: touched refuses (exit 4), auto takes a full snapshot and restores it whole (exit 11, the tie and the rows intact)`, async () => {
      const { db, project, args } = await tiesDb(corrupting(c.write), c.setup);
      const before = await db.query(c.state);

      const refused = await belay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'touched']);
      expect(refused.code, `${refused.stdout}\n${refused.stderr}`).toBe(4);
      expect(refused.stderr).toContain(c.tie);
      expect(refused.stderr).toMatch(/next: .*--backup-scope full/);
      expect(await applied(db)).toEqual(['0001_init']);
      expect(await db.query(c.state)).toEqual(before);

      const run = await belay([...args, 'migrate', 'up', '--with-backup']);
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(11);
      expect(run.stderr).toContain(`full snapshot: ${TIES_REASON}: ${c.tie}`);
      const preflight = (await journal(project)).find((l) => l.type === 'step' && l.event === 'end' && l.step === 'preflight') as { detail: { scope: { kind: string; why: string } } };
      expect(preflight.detail.scope.kind).toBe('full');
      expect(preflight.detail.scope.why).toContain(c.tie);
      expect(await db.query(c.state)).toEqual(before);
      expect(await applied(db)).toEqual(['0001_init']);
      expect(await quarantines(db)).toEqual([]);
    });
  }

  it('what the run itself created on the table is no tie: it goes into the quarantine with the damaged table (exit 11)', async () => {
    const { db, project, args } = await tiesDb(corrupting("UPDATE s1.pt SET v = 'zz' WHERE id = 1;\nCREATE VIEW s1.newv AS SELECT id, v FROM s1.pt;"), '');
    const run = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(11);
    expect(run.stdout).toMatch(/restored s1\.pt from touched snapshot \S+ in place and verified/);
    const quarantine = /kept in schema (belay_quarantine_\w+)/.exec(run.stdout)?.[1];
    expect(await db.query("SELECT string_agg(id || v, ',' ORDER BY id) AS rows FROM s1.pt")).toEqual([{ rows: '1a,2b' }]);
    expect(await db.query('SELECT relnamespace::regnamespace::text AS schema FROM pg_class WHERE relname = $1', ['newv'])).toEqual([{ schema: quarantine }]);
    const restore = (await journal(project)).find((l) => l.type === 'step' && l.event === 'end' && l.step === 'restore') as { detail: { ok: boolean } };
    expect(restore.detail.ok).toBe(true);
  });

  it('a tie gained after the touched snapshot: belay restore refuses it (exit 4, nothing changed) and names the full snapshot of that revision when there is one', async () => {
    const { db, project, args } = await tiesDb({ '0002_pt.up.sql': 'UPDATE s1.pt SET v = v WHERE id = 1;', '0002_pt.down.sql': 'SELECT 1;' }, '');
    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(0);
    const touched = jsonResult<{ snapshot: { id: string } }>(run).snapshot.id;
    expect((await manifestOf(project, touched)).scope?.kind).toBe('touched');
    const back = await belay([...args, 'rollback', '--to', '0001', '--yes', '--no-backup']);
    expect(back.code, back.stderr).toBe(0);
    await db.appQuery("CREATE PUBLICATION pub1 FOR TABLE s1.pt; UPDATE s1.pt SET v = 'damaged'");
    const state = "SELECT p.tablename, (SELECT string_agg(id || v, ',' ORDER BY id) FROM s1.pt) AS rows FROM pg_publication_tables p";
    const before = await db.query(state);
    expect(before).toEqual([{ tablename: 'pt', rows: '1damaged,2damaged' }]);

    const refused = await belay([...args, 'restore', touched, '--yes']);
    expect(refused.code, `${refused.stdout}\n${refused.stderr}`).toBe(4);
    expect(refused.stderr).toContain(`the tables of touched snapshot ${touched} were not put back, nothing was changed: a targeted restore moves`);
    expect(refused.stderr).toContain(`${TIES_REASON}: s1.pt is in publication pub1`);
    expect(refused.stderr).toMatch(/there is no full snapshot of \S+ at 0001_init/);
    expect(await db.query(state)).toEqual(before);
    expect(await quarantines(db)).toEqual([]);

    const full = await belay([...args, '--json', 'backup']);
    expect(full.code, full.stderr).toBe(0);
    const fullId = jsonResult<{ snapshot: { id: string } }>(full).snapshot.id;
    const again = await belay([...args, 'restore', touched, '--yes']);
    expect(again.code, `${again.stdout}\n${again.stderr}`).toBe(4);
    expect(again.stderr).toContain(`restore the full snapshot ${fullId} of 0001_init`);
    expect(again.stderr).toContain(`belay restore ${fullId}`);
    expect(await db.query(state)).toEqual(before);
    expect(await quarantines(db)).toEqual([]);
  });

  it('a tie the run itself made: the targeted restore inside the run is refused (exit 12, nothing restored, the publication kept), with what to do', async () => {
    const { db, project, args } = await tiesDb(corrupting("UPDATE s1.pt SET v = 'zz' WHERE id = 1;\nALTER PUBLICATION pub1 ADD TABLE s1.pt;"), 'CREATE PUBLICATION pub1 FOR TABLE s1.plain;');
    const run = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(12);
    expect(run.stdout).toMatch(/the tables of touched snapshot \S+ were not put back, nothing was changed/);
    expect(run.stdout).toContain('s1.pt is in publication pub1');
    expect(run.stdout).toMatch(/next: there is no full snapshot of \S+ at 0001_init/);
    expect(await db.query('SELECT tablename FROM pg_publication_tables ORDER BY 1')).toEqual([{ tablename: 'plain' }, { tablename: 'pt' }]);
    expect(await quarantines(db)).toEqual([]);
    const restore = (await journal(project)).find((l) => l.type === 'step' && l.event === 'end' && l.step === 'restore') as { detail: { ok: boolean; message: string; manualSteps: string[] } };
    expect(restore.detail.ok).toBe(false);
    expect(restore.detail.message).toContain('s1.pt is in publication pub1');
    expect(restore.detail.manualSteps[1]).toMatch(/^or undo what ties them, run `belay restore \S+` again/);
    const end = (await journal(project)).find((l) => l.type === 'outcome') as { exitCode: number };
    expect(end.exitCode).toBe(12);
  });
});

describe('a down that fails under a touched snapshot', () => {
  it("ends 12 saying why the down fails and what brings the database back (it said `belay rollback --to` and `belay restore ID`, which runs the down again and is refused): following it puts the rows back as before the run", async () => {
    const db = await freshDatabase('scope_cli_down');
    const project = await makeProject({
      '0001_shop.up.sql':
        'CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);\n' +
        'CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users, total_cents int NOT NULL, note varchar(20));',
      '0001_shop.down.sql': 'DROP TABLE orders;\nDROP TABLE users;',
      '0002_currency.up.sql':
        "ALTER TABLE orders ADD COLUMN currency char(3);\nALTER TABLE orders ALTER COLUMN note TYPE varchar(500);\nUPDATE orders SET currency = 'EUR', note = note || ' (amount converted to EUR)' WHERE note IS NOT NULL;",
      '0002_currency.down.sql': 'ALTER TABLE orders DROP COLUMN currency;\nALTER TABLE orders ALTER COLUMN note TYPE varchar(20);',
      '0003_email_format.up.sql': "ALTER TABLE users ADD CONSTRAINT users_email_format CHECK (email LIKE '%@%');",
      '0003_email_format.down.sql': 'ALTER TABLE users DROP CONSTRAINT users_email_format;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    await db.appQuery(`INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 1000) g;
      INSERT INTO orders (user_id, total_cents, note) SELECT 1 + g % 1000, g, CASE WHEN g % 100 = 0 THEN 'gift' END FROM generate_series(1, 5000) g`);
    const orders = "SELECT count(*)::int AS n, md5(string_agg(id || ':' || user_id || ':' || total_cents || ':' || coalesce(note, '-'), ',' ORDER BY id)) AS h FROM orders";
    const before = await db.query(orders);

    const run = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(12);
    const id = /touched snapshot (\S+) holds the rows of public\.orders, public\.orders_id_seq, public\.users, public\.users_id_seq at 0001_shop, but \S+ is at 0002_currency; nothing was restored/.exec(run.stdout)?.[1];
    expect(id, run.stdout).toBeDefined();
    expect(run.stdout).toContain(
      'next: The down of 0002_currency fails on this data (0002_currency.down.sql:2: value too long for type character varying(20)): `belay rollback --to` would run it again. ' +
        "Change the data so that it succeeds (not the down's file: an applied revision's files must not change), then run `belay rollback --to 0001_shop` (its own snapshot guards it), " +
        `then \`belay restore ${id!}\` to put back the rows of public.orders, public.users as they were before this run.`,
    );
    expect(run.stdout).toContain('Or restore a full backup of your own.');
    expect(run.stdout).not.toContain('bring ');
    expect(await applied(db)).toEqual(['0001_shop', '0002_currency']);

    // what it says works: the data changed so the down succeeds, the rollback verified, the touched snapshot's rows back
    await db.appQuery('UPDATE orders SET note = left(note, 20) WHERE length(note) > 20');
    const back = await belay([...args, '--yes', 'rollback', '--to', '0001_shop']);
    expect(back.code, `${back.stdout}\n${back.stderr}`).toBe(0);
    const restored = await belay([...args, '--yes', 'restore', id!]);
    expect(restored.code, `${restored.stdout}\n${restored.stderr}`).toBe(0);
    expect(await applied(db)).toEqual(['0001_shop']);
    expect(await db.query(orders)).toEqual(before);
  });
});
