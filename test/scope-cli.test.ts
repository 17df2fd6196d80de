import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
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
    expect(manifest.sizeBytes * 20).toBeLessThan(fullManifest.sizeBytes);
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
});
