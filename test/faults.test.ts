import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareLogFile, startCluster, stopCluster } from '../src/cluster/local-cluster.js';
import { serverUser } from '../src/cluster/os-user.js';
import type { TempCluster } from '../src/cluster/temp-cluster.js';
import { renameDatabase } from '../src/db/databases.js';
import { quoteIdent } from '../src/db/ident.js';
import { belay, cliRunnableBy, startBelay, type CliRun } from './support/cli.js';
import { adminQuery, cluster, freshDatabase, type TestDatabase } from './support/pg.js';
import { startStoppableCluster } from './support/stoppable-cluster.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

/**
 * One row per fault: each provokes it for real (a kill -9 at a point found by
 * polling real state, a stopped server, a file where a folder should be, a
 * role without a privilege) and asserts the exit code, the database, the
 * journal, `status` and `history`.
 */

type Row = Record<string, unknown>;

/** The payload of a --json document, whether the command's fields are at the top or under `result`. */
function payload(stdout: string): Row {
  const doc = JSON.parse(stdout) as Row;
  return doc.result && typeof doc.result === 'object' && !Array.isArray(doc.result) ? { ...doc, ...(doc.result as Row) } : doc;
}

function list(stdout: string): Row[] {
  const doc = JSON.parse(stdout) as Row | Row[];
  return Array.isArray(doc) ? doc : (doc.result as Row[]);
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, done?: Promise<unknown>): Promise<T> {
  let finished = false;
  void done?.then(() => (finished = true));
  for (let i = 0; i < 6000 && !finished; i++) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never saw ${what}`);
}

async function journals(project: TestProject): Promise<Map<string, Row[]>> {
  const dir = join(project.backups, 'journal');
  const out = new Map<string, Row[]>();
  for (const file of (await readdir(dir).catch(() => [] as string[])).sort()) {
    const text = await readFile(join(dir, file), 'utf8');
    out.set(file.replace(/\.jsonl$/, ''), text.split('\n').filter(Boolean).flatMap((l) => {
      try {
        return [JSON.parse(l) as Row];
      } catch {
        return [];
      }
    }));
  }
  return out;
}

/** The journal's outcome line of the newest run whose command is `command`. */
async function lastOutcome(project: TestProject, command: string): Promise<Row | undefined> {
  const runs = [...(await journals(project)).values()].filter((lines) => lines.some((l) => l.type === 'run' && l.command === command));
  return runs[runs.length - 1]?.find((l) => l.type === 'outcome');
}

const label = (line: Row): string => [line.step, line.revision ?? line.subject].filter(Boolean).join(' ');

/** Start belay; SIGKILL it once `reached` sees the state; wait for it to die. */
async function killWhen(project: TestProject, args: string[], what: string, reached: () => Promise<boolean>): Promise<CliRun> {
  const run = startBelay(args, { cwd: project.dir });
  await until(what, async () => (await reached()) || undefined, run.done);
  run.child.kill('SIGKILL');
  return run.done;
}

const journalShows = (project: TestProject, command: string, point: string) => async (): Promise<boolean> =>
  [...(await journals(project)).values()].some(
    (lines) => lines.some((l) => l.type === 'run' && l.command === command) && lines.some((l) => l.type === 'step' && l.event === 'start' && label(l) === point),
  );

const restoreCopyExists = (database: string) => async (): Promise<boolean> =>
  (await adminQuery('postgres', "SELECT 1 FROM pg_database WHERE datname LIKE $1 || '_belay_restore_%'", [database])).length > 0;

async function digest(query: (sql: string) => Promise<Row[]>): Promise<Row[]> {
  return query("SELECT count(*)::int AS n, md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS h FROM base");
}

const BASE: Record<string, string> = {
  '0001_base.up.sql': "CREATE TABLE base (id int PRIMARY KEY, v text);\nINSERT INTO base SELECT g, md5(g::text) FROM generate_series(1, 20000) g;",
  '0001_base.down.sql': 'DROP TABLE base;',
};

const BIG_BASE: Record<string, string> = {
  '0001_base.up.sql': "CREATE TABLE base (id int PRIMARY KEY, v text);\nINSERT INTO base SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 400000) g;",
  '0001_base.down.sql': 'DROP TABLE base;',
};

interface Context {
  db: TestDatabase;
  project: TestProject;
  args: string[];
}

async function cli(ctx: Context, ...rest: string[]): Promise<CliRun> {
  return belay([...ctx.args, ...rest], { cwd: ctx.project.dir });
}

async function status(ctx: Context): Promise<Row> {
  const run = await cli(ctx, '--json', 'status');
  expect(run.code, run.stderr).toBe(0);
  return payload(run.stdout);
}

async function history(ctx: Context): Promise<Row[]> {
  const run = await cli(ctx, '--json', 'history');
  expect(run.code, run.stderr).toBe(0);
  return list(run.stdout);
}

async function settledEverything(ctx: Context): Promise<void> {
  const report = await status(ctx);
  expect(report.interrupted).toBeNull();
  expect(report.lock).toBeNull();
  // a run with no outcome (running, or interrupted and not settled) has no end
  expect((await history(ctx)).filter((r) => r.finishedAt === null)).toEqual([]);
  const again = await cli(ctx, '--json', 'recover');
  expect(again.code, again.stderr).toBe(0);
  expect(payload(again.stdout).message).toBe('no interrupted run: nothing to recover');
}

async function setUp(files: Record<string, string>, config?: object): Promise<Context> {
  const db = await freshDatabase();
  const project = await makeProject(files, config);
  return { db, project, args: baseArgs(project, db.url) };
}

interface FaultCase {
  name: string;
  run: () => Promise<void>;
}

const NON_TRANSACTIONAL: Record<string, string> = {
  ...BASE,
  '0002_nt.up.sql': '-- belay:no-transaction\nCREATE TABLE nt (id int);\nSELECT pg_sleep(1);',
  '0002_nt.down.sql': 'DROP TABLE nt;',
};

const ROLLING_BACK: Record<string, string> = {
  ...BASE,
  '0002_a.up.sql': 'CREATE TABLE a (id int);',
  '0002_a.down.sql': 'DROP TABLE a;',
  '0003_slow.up.sql': 'ALTER TABLE base ADD COLUMN c int;\nSELECT pg_sleep(1);',
  '0003_slow.down.sql': 'ALTER TABLE base DROP COLUMN c;\nSELECT pg_sleep(1);',
  '0004_b.up.sql': 'CREATE TABLE b (id int);',
  '0004_b.down.sql': 'DROP TABLE b;',
};
// healthy before, unhealthy after 0004: the run walks the rollback path
const UNHEALTHY_AFTER = { health: { sql: [{ name: 'no table b', query: "SELECT 1 FROM pg_tables WHERE tablename = 'b'", expect: 'no-rows' }], timeoutSeconds: 0.3, intervalSeconds: 0.1 } };

/** A forward run killed in its rollback, then the recover settling it killed at `point`: the next recover settles both. */
function recoverKilledAt(point: string): FaultCase {
  return {
    name: `recover killed -9 at "${point}" while settling a killed run: the next recover settles both, every row back`,
    run: async () => {
      const ctx = await setUp(ROLLING_BACK, UNHEALTHY_AFTER);
      expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
      const before = await digest(ctx.db.query);
      await killWhen(ctx.project, [...ctx.args, 'migrate', 'up', '--with-backup'], 'down 0004_b', journalShows(ctx.project, 'migrate-up', 'down 0004_b'));
      await killWhen(ctx.project, [...ctx.args, 'recover'], point, journalShows(ctx.project, 'recover', point));
      const pending = (await status(ctx)).interrupted as Row;
      expect(pending).toMatchObject({ run: { command: 'migrate-up' } });
      expect((pending.recoveries as string[]).length).toBe(1);
      const recover = await cli(ctx, '--json', 'recover');
      expect([0, 10, 11], `${recover.stdout}${recover.stderr}`).toContain(recover.code);
      expect(await digest(ctx.db.query)).toEqual(before);
      expect(await ctx.db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_base' }]);
      expect(await ctx.db.query("SELECT to_regclass('a') AS a, to_regclass('b') AS b")).toEqual([{ a: null, b: null }]);
      expect(await lastOutcome(ctx.project, 'recover')).toMatchObject({ exitCode: recover.code });
      const runs = await history(ctx);
      expect(runs.filter((r) => r.command === 'migrate-up').map((r) => r.status)).toEqual(['interrupted', 'ok']);
      expect(runs.filter((r) => r.command === 'recover').map((r) => r.status)).toEqual([payload(recover.stdout).outcome, 'interrupted']);
      await settledEverything(ctx);
    },
  };
}

const CASES: FaultCase[] = [
  ...['plan', 'down 0003_slow', 'health after-rollback', 'integrity'].map(recoverKilledAt),
  {
    name: 'recover killed -9 while it restores: the next recover restores again, drops the copy it left, and settles both runs',
    run: async () => {
      const ctx = await setUp(NON_TRANSACTIONAL);
      expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
      const before = await digest(ctx.db.query);
      // the run is killed inside a revision that runs outside a transaction: only its snapshot can be trusted
      await killWhen(ctx.project, [...ctx.args, 'migrate', 'up', '--with-backup'], 'apply 0002_nt', journalShows(ctx.project, 'migrate-up', 'apply 0002_nt'));
      expect((await status(ctx)).interrupted).toMatchObject({ action: 'restore' });
      await killWhen(ctx.project, [...ctx.args, 'recover'], 'a restore copy', restoreCopyExists(ctx.db.name));
      const pending = (await status(ctx)).interrupted as Row;
      expect(pending).toMatchObject({ action: 'restore', run: { command: 'migrate-up' } });
      expect((pending.leftovers as string[]).length).toBe(1);
      const recover = await cli(ctx, '--json', 'recover');
      expect(recover.code, recover.stderr).toBe(11);
      expect(await digest(ctx.db.query)).toEqual(before);
      expect(await ctx.db.query("SELECT to_regclass('nt') AS nt")).toEqual([{ nt: null }]);
      expect(await adminQuery('postgres', "SELECT datname FROM pg_database WHERE datname LIKE $1 || '_belay_restore_%'", [ctx.db.name])).toEqual([]);
      expect(await lastOutcome(ctx.project, 'recover')).toMatchObject({ status: 'restored', exitCode: 11 });
      const runs = await history(ctx);
      expect(runs.filter((r) => r.command === 'migrate-up').map((r) => r.status)).toEqual(['interrupted', 'ok']);
      expect(runs.filter((r) => r.command === 'recover').map((r) => r.status).sort()).toEqual(['interrupted', 'restored']);
      await settledEverything(ctx);
    },
  },
  {
    name: 'a killed run recover cannot settle (no snapshot of it) stays unsettled; a verified `belay restore` of an earlier snapshot settles it',
    run: async () => {
      const ctx = await setUp(NON_TRANSACTIONAL);
      expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
      const backup = await cli(ctx, '--json', 'backup');
      expect(backup.code, backup.stderr).toBe(0);
      const snapshot = (payload(backup.stdout).snapshot as Row).id as string;
      const before = await digest(ctx.db.query);
      await killWhen(ctx.project, [...ctx.args, 'migrate', 'up'], 'apply 0002_nt', journalShows(ctx.project, 'migrate-up', 'apply 0002_nt'));
      const recover = await cli(ctx, 'recover');
      expect(recover.code, recover.stderr).toBe(12);
      expect(`${recover.stdout}${recover.stderr}`).toMatch(/no snapshot was taken[\s\S]*next: .*belay restore ID/);
      expect(await lastOutcome(ctx.project, 'recover')).toMatchObject({ exitCode: 12 });
      // still unsettled: new work is refused, status says so
      expect((await cli(ctx, 'migrate', 'up')).code).toBe(4);
      expect((await status(ctx)).interrupted).toMatchObject({ action: 'restore', run: { command: 'migrate-up' } });
      const restore = await cli(ctx, '--json', 'restore', snapshot);
      expect(restore.code, restore.stderr).toBe(0);
      expect(await digest(ctx.db.query)).toEqual(before);
      expect(await ctx.db.query("SELECT to_regclass('nt') AS nt")).toEqual([{ nt: null }]);
      expect(await lastOutcome(ctx.project, 'restore')).toMatchObject({ status: 'ok', exitCode: 0 });
      const runs = await history(ctx);
      expect(runs.filter((r) => r.command === 'migrate-up').map((r) => r.status)).toEqual(['interrupted', 'ok']);
      await settledEverything(ctx);
    },
  },
  {
    name: 'restore killed -9 while it restores: recover drops its copy, restores the snapshot again and settles it',
    run: async () => {
      const ctx = await setUp(BASE);
      expect((await cli(ctx, 'migrate', 'up')).code).toBe(0);
      const backup = await cli(ctx, '--json', 'backup');
      expect(backup.code, backup.stderr).toBe(0);
      const snapshot = (payload(backup.stdout).snapshot as Row).id as string;
      const before = await digest(ctx.db.query);
      await ctx.db.appQuery('DELETE FROM base WHERE id > 100');
      await killWhen(ctx.project, [...ctx.args, 'restore', snapshot], 'a restore copy', restoreCopyExists(ctx.db.name));
      const blocked = await cli(ctx, 'migrate', 'up');
      expect(blocked.code).toBe(4);
      expect(blocked.stderr).toMatch(/next: .*belay recover/);
      expect((await status(ctx)).interrupted).toMatchObject({ action: 'restore', snapshotId: snapshot, run: { command: 'restore' } });
      const recover = await cli(ctx, '--json', 'recover');
      expect(recover.code, recover.stderr).toBe(11);
      expect(await digest(ctx.db.query)).toEqual(before);
      expect(await adminQuery('postgres', "SELECT datname FROM pg_database WHERE datname LIKE $1 || '_belay_restore_%'", [ctx.db.name])).toEqual([]);
      expect(await lastOutcome(ctx.project, 'recover')).toMatchObject({ exitCode: 11 });
      expect((await history(ctx)).find((r) => r.command === 'restore')).toMatchObject({ status: 'interrupted' });
      await settledEverything(ctx);
    },
  },
  {
    name: 'an in-place restore pg_restore cannot finish (a table the role may not drop): exit 4 with what to run, the database as it was',
    run: async () => {
      const ctx = await setUp(BASE);
      expect((await cli(ctx, 'migrate', 'up')).code).toBe(0);
      const backup = await cli(ctx, '--json', 'backup');
      expect(backup.code, backup.stderr).toBe(0);
      const snapshot = (payload(backup.stdout).snapshot as Row).id as string;
      await ctx.db.appQuery('DELETE FROM base WHERE id > 100');
      // the role can still read base (so the damaged state can be kept first), but no longer drop it
      await ctx.db.query('ALTER TABLE base OWNER TO postgres; GRANT SELECT ON base TO belay_app');
      const damaged = await digest(ctx.db.query);
      const run = await cli(ctx, 'restore', snapshot, '--strategy', 'in-place');
      const said = `${run.stdout}${run.stderr}`;
      // pg_restore's one transaction rolled back and belay had dropped nothing before it: refused, not manual action
      expect(run.code, said).toBe(4);
      expect(said).toContain('nothing of it was restored (pg_restore runs as one transaction)');
      expect(said).toMatch(/next: [\s\S]*belay restore/);
      expect(said).not.toMatch(/bug in belay/);
      expect(await digest(ctx.db.query)).toEqual(damaged);
      expect(await lastOutcome(ctx.project, 'restore')).toMatchObject({ exitCode: 4 });
      expect((await status(ctx)).interrupted).toBeNull();
    },
  },
  {
    name: 'a backups folder that is a file: exit 4 with next:, nothing changed',
    run: async () => {
      const ctx = await setUp(BASE);
      await writeFile(ctx.project.backups, 'not a folder');
      const run = await cli(ctx, 'migrate', 'up', '--with-backup');
      expect(run.code, run.stderr).toBe(4);
      expect(run.stderr).toMatch(/backups folder/);
      expect(run.stderr).toMatch(/next: /);
      expect(run.stderr).not.toMatch(/bug in belay/);
      expect(await ctx.db.query("SELECT to_regclass('base') AS b, to_regclass('belay.runs') AS r")).toEqual([{ b: null, r: null }]);
      expect(await status(ctx)).toMatchObject({ current: null, lastRun: null, interrupted: null });
      expect(await history(ctx)).toEqual([]);
    },
  },
  {
    name: 'a backups folder the kernel will not make (under /proc, where mkdir answers ENOENT and its parent EEXIST): exit 4 with next:, nothing changed',
    run: async () => {
      const ctx = await setUp(BASE);
      const args = ctx.args.map((arg, i) => (ctx.args[i - 1] === '--backups' ? `/proc/belay-${process.pid}` : arg));
      const run = await belay([...args, 'migrate', 'up', '--with-backup'], { cwd: ctx.project.dir, timeoutMs: 30_000 });
      expect(run.code, run.stderr).toBe(4);
      expect(run.stderr).toMatch(/next: .*--backups DIR/);
      expect(await ctx.db.query("SELECT to_regclass('base') AS b, to_regclass('belay.runs') AS r")).toEqual([{ b: null, r: null }]);
    },
  },
  {
    name: 'a backups folder the user cannot write: exit 4 with next:, nothing changed',
    run: async () => {
      const user = serverUser();
      // not root (the folder below is the user's own), or a checkout the unprivileged user cannot reach
      if (!user || !cliRunnableBy(user)) return;
      const ctx = await setUp(BASE);
      await mkdir(ctx.project.backups, { mode: 0o755 });
      await chmod(ctx.project.backups, 0o755); // root's, not writable by the unprivileged user
      const run = await belay([...ctx.args, 'migrate', 'up'], { cwd: ctx.project.dir, uid: user.uid, gid: user.gid });
      expect(run.code, run.stderr).toBe(4);
      expect(run.stderr).toMatch(/next: .*--backups DIR/);
      expect(await ctx.db.query("SELECT to_regclass('base') AS b, to_regclass('belay.runs') AS r")).toEqual([{ b: null, r: null }]);
      expect(await readdir(ctx.project.backups)).toEqual([]);
      expect(await status(ctx)).toMatchObject({ current: null, lastRun: null, interrupted: null });
      expect(await history(ctx)).toEqual([]);
    },
  },
  {
    name: 'a role without CREATE on the database: exit 4 with the GRANT to run',
    run: async () => {
      const ctx = await setUp(BASE);
      const role = `nocreate_${ctx.db.name.slice(2)}`;
      await adminQuery('postgres', `CREATE ROLE ${quoteIdent(role)} LOGIN PASSWORD 'pw-nocreate'`);
      const url = new URL(ctx.db.url);
      url.username = role;
      url.password = 'pw-nocreate';
      const args = ['--database-url', url.toString(), '--migrations', ctx.project.migrations, '--backups', ctx.project.backups];
      const run = await belay([...args, 'migrate', 'up'], { cwd: ctx.project.dir });
      expect(run.code, run.stderr).toBe(4);
      expect(run.stderr).toContain(`GRANT CREATE ON DATABASE ${quoteIdent(ctx.db.name)} TO ${quoteIdent(role)}`);
      expect(await ctx.db.query("SELECT to_regclass('base') AS b, to_regclass('belay.runs') AS r")).toEqual([{ b: null, r: null }]);
      expect(await lastOutcome(ctx.project, 'migrate-up')).toMatchObject({ status: 'refused', exitCode: 4 });
      expect(await status(ctx)).toMatchObject({ current: null, interrupted: null });
      expect((await history(ctx)).map((r) => `${r.command}:${r.status}`)).toEqual(['migrate-up:refused']);
    },
  },
  {
    name: 'a role without CREATE on the database: following the advice (CREATE SCHEMA belay AUTHORIZATION it) lets the run go on',
    run: async () => {
      const ctx = await setUp(BASE);
      const role = `nocreate_${ctx.db.name.slice(2)}`;
      await adminQuery('postgres', `CREATE ROLE ${quoteIdent(role)} LOGIN PASSWORD 'pw-nocreate'`);
      // it may make tables in public, not schemas: only belay's own schema stands in its way
      await ctx.db.query(`GRANT CREATE ON SCHEMA public TO ${quoteIdent(role)}`);
      const url = new URL(ctx.db.url);
      url.username = role;
      url.password = 'pw-nocreate';
      const args = ['--database-url', url.toString(), '--migrations', ctx.project.migrations, '--backups', ctx.project.backups];
      const refused = await belay([...args, 'migrate', 'up'], { cwd: ctx.project.dir });
      expect(refused.code, refused.stderr).toBe(4);
      const advice = /next: .*\(or create the schema once: (CREATE SCHEMA [^;]+;)\)/.exec(refused.stderr)?.[1];
      expect(advice, refused.stderr).toBe(`CREATE SCHEMA belay AUTHORIZATION ${quoteIdent(role)};`);
      await ctx.db.query(advice!);
      const run = await belay([...args, 'migrate', 'up'], { cwd: ctx.project.dir });
      expect(run.code, run.stderr).toBe(0);
      expect(await ctx.db.query("SELECT to_regclass('base')::text AS b, (SELECT tableowner FROM pg_tables WHERE schemaname = 'belay' AND tablename = 'runs') AS owner")).toEqual([{ b: 'base', owner: role }]);
      const runs = await belay([...args, '--json', 'history'], { cwd: ctx.project.dir });
      expect(runs.code, runs.stderr).toBe(0);
      expect(list(runs.stdout).map((r) => `${r.command}:${r.status}`)).toEqual(['migrate-up:ok', 'migrate-up:refused']);
    },
  },
  {
    name: 'a role that may not read or write belay\'s record: every command refuses (exit 4) with the role to use or the GRANT, and the record is untouched',
    run: async () => {
      const ctx = await setUp({ ...BASE, '0002_x.up.sql': 'CREATE TABLE x (id int);', '0002_x.down.sql': 'DROP TABLE x;' });
      expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
      const role = `reader_${ctx.db.name.slice(2)}`;
      await adminQuery('postgres', `CREATE ROLE ${quoteIdent(role)} LOGIN PASSWORD 'pw-reader'`);
      await ctx.db.query(`GRANT SELECT ON base TO ${quoteIdent(role)}`);
      const url = new URL(ctx.db.url);
      url.username = role;
      url.password = 'pw-reader';
      const args = ['--database-url', url.toString(), '--migrations', ctx.project.migrations, '--backups', ctx.project.backups];
      const as = (...more: string[]): Promise<CliRun> => belay([...args, ...more], { cwd: ctx.project.dir });
      const before = await ctx.db.query('SELECT count(*)::int AS runs FROM belay.runs');
      // no USAGE on schema belay: PostgreSQL's "permission denied for schema belay" was an exit 1 with a stack trace
      for (const command of [['status'], ['history'], ['plan'], ['migrate', 'up'], ['backup'], ['rollback', '--to', '0', '--yes', '--no-backup'], ['recover']]) {
        const run = await as(...command);
        expect(run.code, `${command.join(' ')}: ${run.stderr}`).toBe(4);
        expect(run.stderr).toContain(`role ${role} may not read belay's record`);
        expect(run.stderr).toMatch(new RegExp(`next: Run belay as the role that runs this database's migrations .*GRANT USAGE ON SCHEMA belay TO ${quoteIdent(role)}`));
        expect(run.stderr).not.toMatch(/this is a bug/);
      }
      // reading granted, writing not: the reads work, a changing run is refused before it changes anything (it ended 12, "the database stopped answering")
      await ctx.db.query(`GRANT USAGE ON SCHEMA belay TO ${quoteIdent(role)}; GRANT SELECT ON ALL TABLES IN SCHEMA belay TO ${quoteIdent(role)}`);
      expect((await as('status')).code).toBe(0);
      expect((await as('history')).code).toBe(0);
      for (const command of [['migrate', 'up'], ['backup'], ['rollback', '--to', '0', '--yes', '--no-backup']]) {
        const run = await as(...command);
        expect(run.code, `${command.join(' ')}: ${run.stderr}`).toBe(4);
        expect(run.stderr).toContain(`role ${role} may not write belay's record of this run`);
        expect(run.stderr).toContain(`GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA belay TO ${quoteIdent(role)}`);
      }
      expect(await ctx.db.query('SELECT count(*)::int AS runs FROM belay.runs')).toEqual(before);
      expect(await ctx.db.query("SELECT to_regclass('x') AS x, (SELECT count(*)::int FROM base) AS n")).toEqual([{ x: null, n: 20000 }]);
      expect(await status(ctx)).toMatchObject({ current: '0001_base', interrupted: null });
      expect(await lastOutcome(ctx.project, 'rollback')).toMatchObject({ status: 'refused', exitCode: 4 });
    },
  },
  {
    name: '--allow-unhealthy: the final line and --json name the checks that still fail, never "healthy"',
    run: async () => {
      const ctx = await setUp(
        { ...BASE, '0002_x.up.sql': 'CREATE TABLE x (id int);', '0002_x.down.sql': 'DROP TABLE x;' },
        { health: { sql: [{ name: 'always broken', query: 'SELECT 1', expect: 'no-rows' }], timeoutSeconds: 0.2, intervalSeconds: 0.1 } },
      );
      const human = await cli(ctx, 'migrate', 'up', '--to', '0001', '--allow-unhealthy');
      expect(human.code, human.stderr).toBe(0);
      const said = `${human.stdout}${human.stderr}`;
      expect(said).toMatch(/applied 1 revision\(s\); now at 0001_base; not healthy: always broken still fails/);
      expect(said).not.toMatch(/; healthy/);
      const json = await cli(ctx, '--json', 'migrate', 'up', '--allow-unhealthy');
      expect(json.code, json.stderr).toBe(0);
      const result = payload(json.stdout);
      expect(result.message).toMatch(/not healthy: always broken/);
      expect(result.unhealthy).toEqual(['always broken']);
      expect(await lastOutcome(ctx.project, 'migrate-up')).toMatchObject({ exitCode: 0, summary: { unhealthy: ['always broken'] } });
      expect((await history(ctx))[0]).toMatchObject({ status: 'ok', toRevision: '0002_x' });
    },
  },
  {
    name: 'rollback --to 0 reverts every revision',
    run: async () => {
      const ctx = await setUp({ ...BASE, '0002_x.up.sql': 'CREATE TABLE x (id int);', '0002_x.down.sql': 'DROP TABLE x;' });
      expect((await cli(ctx, 'migrate', 'up')).code).toBe(0);
      const plan = await cli(ctx, '--json', 'plan', '--to', '0');
      expect(plan.code, plan.stderr).toBe(0);
      expect(payload(plan.stdout)).toMatchObject({ direction: 'down', to: null });
      const run = await cli(ctx, '--json', '--yes', 'rollback', '--to', '0');
      expect(run.code, run.stderr).toBe(0);
      expect((payload(run.stdout).revisions as Row[]).map((r) => `${r.name}:${r.status}`)).toEqual(['0002_x:reverted', '0001_base:reverted']);
      expect(await ctx.db.query('SELECT count(*)::int AS n FROM belay.migrations')).toEqual([{ n: 0 }]);
      expect(await ctx.db.query("SELECT to_regclass('base') AS b, to_regclass('x') AS x")).toEqual([{ b: null, x: null }]);
      expect((await status(ctx)).current).toBeNull();
      expect((await history(ctx))[0]).toMatchObject({ command: 'rollback', status: 'ok', exitCode: 0 });
      expect(await lastOutcome(ctx.project, 'rollback')).toMatchObject({ status: 'ok', exitCode: 0 });
    },
  },
];

describe('faults, one row each', () => {
  for (const row of CASES) it(row.name, row.run, 120_000);
});

/** Its own server, to stop it under a run. */
describe('the server stops under a run', () => {
  let server: TempCluster;
  let db = '';
  let n = 0;
  const url = (): string => `postgresql://postgres@/${db}?host=${encodeURIComponent(server.spec.socketDir)}&port=${server.spec.port}`;
  const query = async (sql: string): Promise<Row[]> => {
    const client = new pg.Client({ connectionString: url() });
    await client.connect();
    try {
      return (await client.query(sql)).rows as Row[];
    } finally {
      await client.end();
    }
  };
  const restart = async (): Promise<void> => {
    const log = join(server.root, 'server.log');
    await prepareLogFile(log);
    await startCluster(server.spec, log);
  };
  const activity = (pattern: string) => async (): Promise<boolean> => {
    const client = new pg.Client({ host: server.spec.socketDir, port: server.spec.port, user: 'postgres', database: 'postgres' });
    await client.connect();
    try {
      return (await client.query("SELECT 1 FROM pg_stat_activity WHERE (application_name = $1 OR query LIKE $1) AND pid <> pg_backend_pid()", [pattern])).rowCount! > 0;
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    server = await startStoppableCluster('belay-faults-');
  }, 120_000);
  afterAll(() => server?.remove());

  async function fresh(files: Record<string, string>): Promise<Context & { query: typeof query }> {
    db = `stop_${++n}`;
    const admin = new pg.Client({ host: server.spec.socketDir, port: server.spec.port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${quoteIdent(db)}`);
    await admin.end();
    const project = await makeProject(files);
    return { db: { name: db } as TestDatabase, project, args: ['--database-url', url(), '--migrations', project.migrations, '--backups', project.backups], query };
  }

  /** A shell command, for a health check or a hook, that holds the run until `gate` exists. */
  const holdUntil = (gate: string): string => `while [ ! -e '${gate}' ]; do sleep 0.05; done`;

  /**
   * Run belay with `args` until its new journal names `subject` (a step held by holdUntil(gate)), stop the
   * server there, let the run go on, and start the server again once the run ended.
   */
  async function stopServerAt(ctx: Context, args: string[], subject: string, gate: string): Promise<{ code: number | null; said: string }> {
    const journals = join(ctx.project.backups, 'journal');
    const earlier = new Set(await readdir(journals));
    const run = startBelay([...ctx.args, ...args], { cwd: ctx.project.dir });
    await until(
      `the ${subject} step`,
      async () => {
        for (const file of await readdir(journals)) {
          if (!earlier.has(file) && (await readFile(join(journals, file), 'utf8')).includes(`"subject":"${subject}"`)) return true;
        }
        return undefined;
      },
      run.done,
    );
    await stopCluster(server.spec, 'immediate');
    await writeFile(gate, '');
    const ended = await run.done;
    await restart();
    return { code: ended.code, said: `${ended.stdout}${ended.stderr}` };
  }

  const STOP_CASES: Array<{ name: string; files: Record<string, string>; args: string[]; stopWhen: string }> = [
    {
      name: 'during pg_dump: exit 12, saying the run must be settled by recover',
      files: { ...BIG_BASE, '0002_x.up.sql': 'CREATE TABLE x (id int);', '0002_x.down.sql': 'DROP TABLE x;' },
      // full: a touched snapshot of this revision holds no rows, so pg_dump would copy none
      args: ['migrate', 'up', '--with-backup', '--backup-scope', 'full'],
      // pg_dump copying the table's rows
      stopWhen: 'COPY %',
    },
    {
      name: 'mid-apply: exit 12, pointing to recover',
      files: { ...BASE, '0002_slow.up.sql': 'CREATE TABLE slow (id int);\nSELECT pg_sleep(30);', '0002_slow.down.sql': 'DROP TABLE slow;' },
      args: ['migrate', 'up'],
      stopWhen: '%pg_sleep(30)%',
    },
  ];

  it('in preflight, before the run changed anything: exit 4, nothing was changed, nothing left to recover', async () => {
    const ctx = await fresh({ ...BASE, '0002_x.up.sql': 'CREATE TABLE x (id int);', '0002_x.down.sql': 'DROP TABLE x;' });
    expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
    const before = await digest(ctx.query);
    // the health baseline (preflight) holds the run until the server is stopped
    const gate = join(ctx.project.dir, 'server-stopped');
    const config = join(ctx.project.dir, 'belay.config.json');
    await writeFile(config, JSON.stringify({ health: { command: [{ name: 'waits for the stop', run: holdUntil(gate), timeoutSeconds: 60 }] } }));
    const { code, said } = await stopServerAt(ctx, ['migrate', 'up'], 'baseline', gate);
    expect(code, said).toBe(4);
    expect(said).toMatch(/stopped answering before this run changed anything/);
    expect(said).toMatch(/next: Nothing was changed/);
    expect(said).not.toMatch(/bug in belay/);
    expect(await lastOutcome(ctx.project, 'migrate-up')).toMatchObject({ status: 'refused', exitCode: 4 });
    expect(await digest(ctx.query)).toEqual(before);
    expect(await ctx.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_base' }]);
    expect((await status(ctx)).interrupted).toBeNull();
    await writeFile(config, '{}');
    expect((await cli(ctx, 'migrate', 'up')).code).toBe(0);
  }, 120_000);

  it("a database rename (a swap restore's) is on disk when it returns, on a server whose commits are asynchronous: a stop right after keeps it", async () => {
    const from = `renamed_${++n}`;
    const to = `${from}_now`;
    const admin = new pg.Client({ host: server.spec.socketDir, port: server.spec.port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${quoteIdent(from)}`);
      await renameDatabase(admin, from, to);
    } finally {
      await admin.end();
    }
    await stopCluster(server.spec, 'immediate');
    await restart();
    db = 'postgres';
    expect(await query(`SELECT datname FROM pg_database WHERE datname IN (${[from, to].map((name) => pg.escapeLiteral(name)).join(', ')})`)).toEqual([{ datname: to }]);
  }, 60_000);

  it('an in-place restore is on disk before its afterRestore hook runs, on a server whose commits are asynchronous: a stop there keeps what it restored', async () => {
    const ctx = await fresh({ '0001_base.up.sql': "CREATE TABLE base (id int PRIMARY KEY, v text);\nINSERT INTO base VALUES (1, 'a'), (2, 'b');", '0001_base.down.sql': 'DROP TABLE base;' });
    expect((await cli(ctx, 'migrate', 'up')).code).toBe(0);
    const backup = await cli(ctx, '--json', 'backup');
    expect(backup.code, backup.stderr).toBe(0);
    const snapshot = (payload(backup.stdout).snapshot as Row).id as string;
    const before = await digest(ctx.query);
    await ctx.query('DELETE FROM base WHERE id = 2');
    const gate = join(ctx.project.dir, 'server-stopped');
    await writeFile(join(ctx.project.dir, 'belay.config.json'), JSON.stringify({ hooks: { afterRestore: { run: holdUntil(gate), timeoutSeconds: 60 } } }));
    const { said } = await stopServerAt(ctx, ['restore', snapshot, '--strategy', 'in-place'], 'afterRestore', gate);
    expect(said).not.toMatch(/bug in belay/);
    expect(await digest(ctx.query)).toEqual(before);
  }, 120_000);

  it('after a restore, while its afterRestore hook runs: exit 12 pointing to recover, never exit 1; recover then settles it with the data as before', async () => {
    const ctx = await fresh({
      ...BASE,
      // cut halfway outside a transaction: only the snapshot can be trusted, so the run restores it
      '0002_nt.up.sql': '-- belay:no-transaction\nCREATE TABLE nt (id int);\nCREATE INDEX CONCURRENTLY nt_missing ON nt (no_such_column);',
      '0002_nt.down.sql': 'DROP TABLE nt;',
    });
    expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
    const before = await digest(ctx.query);
    const gate = join(ctx.project.dir, 'server-stopped');
    await writeFile(join(ctx.project.dir, 'belay.config.json'), JSON.stringify({ hooks: { afterRestore: { run: holdUntil(gate), timeoutSeconds: 60 } } }));
    const { code, said } = await stopServerAt(ctx, ['migrate', 'up', '--with-backup'], 'afterRestore', gate);
    expect(code, said).toBe(12);
    expect(said).toMatch(/next: .*belay recover/);
    expect(said).not.toMatch(/bug in belay/);
    expect(await lastOutcome(ctx.project, 'migrate-up')).toMatchObject({ status: 'manual-action-needed', exitCode: 12 });
    const recover = await cli(ctx, '--json', 'recover');
    expect([0, 10, 11], `${recover.stdout}${recover.stderr}`).toContain(recover.code);
    expect(await digest(ctx.query)).toEqual(before);
    expect(await ctx.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_base' }]);
    expect(await ctx.query("SELECT to_regclass('nt') AS nt")).toEqual([{ nt: null }]);
    await settledEverything(ctx);
  }, 120_000);

  for (const row of STOP_CASES) {
    it(row.name, async () => {
      const ctx = await fresh(row.files);
      expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
      const before = await digest(ctx.query);
      const run = startBelay([...ctx.args, row.args[0]!, ...row.args.slice(1)], { cwd: ctx.project.dir });
      await until(row.stopWhen, async () => (await activity(row.stopWhen)()) || undefined, run.done);
      await stopCluster(server.spec, 'immediate');
      const ended = await run.done;
      await restart();
      const said = `${ended.stdout}${ended.stderr}`;
      expect(ended.code, said).toBe(12);
      expect(said).toMatch(/next: .*belay recover/);
      expect(said).not.toMatch(/Nothing was changed|bug in belay/);
      expect(await lastOutcome(ctx.project, 'migrate-up')).toMatchObject({ status: 'manual-action-needed', exitCode: 12 });
      const report = await status(ctx);
      expect(report.interrupted).toMatchObject({ run: { command: 'migrate-up' } });
      const blocked = await cli(ctx, 'migrate', 'up');
      expect(blocked.code).toBe(4);
      const recover = await cli(ctx, '--json', 'recover');
      expect([0, 10], recover.stderr).toContain(recover.code);
      expect(await digest(ctx.query)).toEqual(before);
      expect(await ctx.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_base' }]);
      // what the run printed and journaled, though its database copy could not take it down
      expect((await history(ctx)).find((r) => r.command === 'migrate-up' && r.startedAt !== undefined && r.exitCode === 12)).toMatchObject({ status: 'manual-action-needed' });
      await settledEverything(ctx);
    }, 120_000);
  }

  /** migrate up of CUT_IN_0003 from 0001, the server stopped while 0003 sleeps (0002 committed), started again by `startAgain`. */
  async function stopIn0003(connectTimeoutSeconds: number, startAgain: (run: Promise<CliRun>) => Promise<CliRun>): Promise<{ ctx: Context & { query: typeof query }; ended: CliRun; before: Row[] }> {
    const ctx = await fresh(CUT_IN_0003);
    await writeFile(join(ctx.project.dir, 'belay.config.json'), JSON.stringify({ database: { connectTimeoutSeconds } }));
    expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
    const before = await digest(ctx.query);
    const run = startBelay([...ctx.args, '--json', 'migrate', 'up'], { cwd: ctx.project.dir });
    await until('0003 sleeping', async () => (await activity('%pg_sleep(30)%')()) || undefined, run.done);
    // fast: what committed is on disk (this server's commits are asynchronous), as with pg_ctl restart -m fast
    await stopCluster(server.spec, 'fast');
    return { ctx, ended: await startAgain(run.done), before };
  }

  const rolledBackTo0001 = async (ctx: Context & { query: typeof query }, before: Row[]): Promise<void> => {
    expect(await ctx.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_base' }]);
    expect(await ctx.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'base' AND column_name = 'x'")).toEqual([{ n: 0 }]);
    expect(await ctx.query("SELECT to_regclass('s2') AS s2")).toEqual([{ s2: null }]);
    expect(await digest(ctx.query)).toEqual(before);
  };

  it('mid-revision after an earlier revision of the run committed, started again at once: the lock went with the restart, so the run changes nothing more and ends 12; recover reverts that revision', async () => {
    const { ctx, ended, before } = await stopIn0003(15, async (done) => {
      await restart();
      return done;
    });
    const said = `${ended.stdout}${ended.stderr}`;
    expect(ended.code, said).toBe(12);
    expect(payload(ended.stdout).message).toMatch(/the session holding the run's lock ended \(.*\): stopped before committing 0003_sleep; what this run committed before stays: 0002_x/);
    expect(said).toMatch(/belay recover/);
    // nothing reverted by the run itself: 0002 stays until recover
    expect(await ctx.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_base' }, { name: '0002_x' }]);
    const recover = await cli(ctx, '--json', 'recover');
    expect(recover.code, `${recover.stdout}${recover.stderr}`).toBe(10);
    await rolledBackTo0001(ctx, before);
    await settledEverything(ctx);
  }, 120_000);

  it('mid-revision after an earlier revision of the run committed, down past the connect timeout: exit 12 pointing to recover, which reverts that revision', async () => {
    const { ctx, ended, before } = await stopIn0003(2, async (done) => {
      const run = await done;
      await restart();
      return run;
    });
    const said = `${ended.stdout}${ended.stderr}`;
    expect(ended.code, said).toBe(12);
    expect(said).toMatch(/belay recover/);
    expect((await status(ctx)).interrupted).toMatchObject({ run: { command: 'migrate-up' } });
    const recover = await cli(ctx, '--json', 'recover');
    expect(recover.code, `${recover.stdout}${recover.stderr}`).toBe(10);
    await rolledBackTo0001(ctx, before);
    await settledEverything(ctx);
  }, 120_000);

  it('inside a down of rollback --to, started again: no restore without the lock (it swap-restored the snapshot over the intact database); recover finishes the downs', async () => {
    // it sleeps until the test says the server was started again
    const ctx = await fresh(downSleepsUntil('belay_test.restarted'));
    expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
    const before = await digest(ctx.query);
    expect((await cli(ctx, 'migrate', 'up')).code).toBe(0);
    const run = startBelay([...ctx.args, '--json', 'rollback', '--to', '0001', '--yes'], { cwd: ctx.project.dir });
    await until('the down of 0002 sleeping', async () => (await activity('%belay_test.restarted%')()) || undefined, run.done);
    await stopCluster(server.spec, 'fast');
    const ended = await run.done;
    await restart();
    const said = `${ended.stdout}${ended.stderr}`;
    expect(ended.code, said).toBe(12);
    expect(payload(ended.stdout).message).toMatch(/^the session holding the run's lock ended \(.*\): stopped before committing 0002_x; what this run committed before stays: 0003_t \(reverted\)/);
    expect(said).toMatch(/belay recover/);
    const lines = (await readFile(join(ctx.project.backups, 'journal', `${String(payload(ended.stdout).runId)}.jsonl`), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
    expect(lines.filter((l) => l.step === 'restore')).toEqual([]);
    await ctx.query(`ALTER DATABASE ${quoteIdent(ctx.db.name)} SET belay_test.restarted = 'yes'`);
    // recover runs the down again: it restores nothing, and keeps no quarantined copy
    const recover = await cli(ctx, '--json', 'recover');
    expect(recover.code, `${recover.stdout}${recover.stderr}`).toBe(10);
    expect(payload(recover.stdout).message).toMatch(/finish its downs; rolled back to 0001_base, data verified intact/);
    expect(await ctx.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_base' }]);
    expect(await ctx.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'base' AND column_name = 'x'")).toEqual([{ n: 0 }]);
    expect(await digest(ctx.query)).toEqual(before);
    expect(await ctx.query(`SELECT datname FROM pg_database WHERE starts_with(datname, '${ctx.db.name}_quarantine_')`)).toEqual([]);
    await settledEverything(ctx);
  }, 120_000);
});

describe('a connection lost after the downs', () => {
  it("ends 12 naming the run by its id in next:, never by a placeholder ('belay history RUN')", async () => {
    const db = await freshDatabase();
    const c = cluster();
    // the afterRollback hook cuts belay's working connection: the checks after the downs lose it
    const cut = `${c.binDir}/psql -X -q -h ${c.socketDir} -p ${c.port} -U ${c.superuser} -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}' AND application_name LIKE 'belay % work'"`;
    const project = await makeProject(
      { ...BASE, '0002_a.up.sql': 'CREATE TABLE a (id int);', '0002_a.down.sql': 'DROP TABLE a;', '0003_bad.up.sql': 'SELECT 1/0;', '0003_bad.down.sql': 'SELECT 1;' },
      { hooks: { afterRollback: { run: cut, timeoutSeconds: 30 } } },
    );
    const ctx: Context = { db, project, args: baseArgs(project, db.url) };
    expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
    const run = await cli(ctx, '--json', 'migrate', 'up');
    expect(run.code, run.stderr).toBe(12);
    const document = payload(run.stdout);
    expect(document.message).toMatch(/the rollback could not finish: .*connection/);
    expect(document.next).toBe(`The journal (\`belay history ${String(document.runId)}\`) says which steps ended; \`belay status\` and \`belay verify\` show where the database stands now.`);
    const text = await cli(ctx, 'history', String(document.runId));
    expect(text.code, text.stderr).toBe(0);
    expect(await lastOutcome(ctx.project, 'migrate-up')).toMatchObject({ exitCode: 12 });
  }, 120_000);
});

/** 0002 adds a column, 0003 a table; 0002's down sleeps 30 s on sessions opened before the test sets `setting` on the database. */
const downSleepsUntil = (setting: string): Record<string, string> => ({
  ...BASE,
  '0002_x.up.sql': 'ALTER TABLE base ADD COLUMN x int;',
  '0002_x.down.sql': `SELECT pg_sleep(CASE WHEN current_setting('${setting}', true) IS NULL THEN 30 ELSE 0 END);\nALTER TABLE base DROP COLUMN x;`,
  '0003_t.up.sql': 'CREATE TABLE t3 (id int);',
  '0003_t.down.sql': 'DROP TABLE t3;',
});

/** 0002 commits, then 0003 sleeps: long enough to cut the run's connections there. */
const CUT_IN_0003: Record<string, string> = {
  ...BASE,
  '0002_x.up.sql': 'ALTER TABLE base ADD COLUMN x int;',
  '0002_x.down.sql': 'ALTER TABLE base DROP COLUMN x;',
  '0003_sleep.up.sql': 'SELECT pg_sleep(30);\nCREATE TABLE s2 (id int);',
  '0003_sleep.down.sql': 'DROP TABLE s2;',
};

describe('the work connection is lost while a revision runs', () => {
  it('ended by pg_terminate_backend inside a down of rollback --to, the lock held: the down runs again on a new work session, no restore, exit 0 (it restored the snapshot, exit 11)', async () => {
    // it sleeps on the session the test ends, not on the one belay opens after it
    const ctx = await setUp(downSleepsUntil('belay_test.cut'), { database: { connectTimeoutSeconds: 5 } });
    expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
    const before = await digest(ctx.db.query);
    expect((await cli(ctx, 'migrate', 'up')).code).toBe(0);
    const run = startBelay([...ctx.args, '--json', 'rollback', '--to', '0001', '--yes'], { cwd: ctx.project.dir });
    const sleeping = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'belay % work' AND query LIKE '%belay_test.cut%'";
    const work = await until('the down of 0002 sleeping', async () => (await adminQuery<{ pid: number }>('postgres', sleeping, [ctx.db.name]))[0], run.done);
    await adminQuery('postgres', `ALTER DATABASE ${quoteIdent(ctx.db.name)} SET belay_test.cut = 'yes'`);
    await adminQuery('postgres', 'SELECT pg_terminate_backend($1)', [work.pid]);
    const ended = await run.done;
    expect(ended.code, `${ended.stdout}${ended.stderr}`).toBe(0);
    const document = payload(ended.stdout);
    expect(document.message).toMatch(/^rolled back to 0001_base; healthy, data verified/);
    expect(await ctx.db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_base' }]);
    expect(await ctx.db.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'base' AND column_name = 'x'")).toEqual([{ n: 0 }]);
    expect(await digest(ctx.db.query)).toEqual(before);
    const lines = [...(await journals(ctx.project)).values()].find((l) => l.some((line) => line.type === 'run' && line.runId === document.runId))!;
    const downs = lines.filter((l) => l.type === 'step' && l.event === 'end' && l.step === 'down' && l.revision === '0002_x').map((l) => l.outcome);
    expect(downs).toEqual(['failed', 'ok']);
    expect(lines.some((l) => l.step === 'down' && l.event === 'note' && String((l.detail as Row).message).startsWith('the down of 0002_x was cut off with its connection (the work connection was lost: a new one carried on): it committed nothing, and runs again'))).toBe(true);
    expect(lines.some((l) => l.step === 'restore')).toBe(false);
    expect(await adminQuery('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${ctx.db.name}_quarantine_`])).toEqual([]);
    expect((JSON.parse(ended.stdout) as { result: { revisions: Array<{ name: string; status: string }> } }).result.revisions.map((r) => `${r.name}:${r.status}`)).toEqual(['0003_t:reverted', '0002_x:reverted']);
    await settledEverything(ctx);
  }, 120_000);

  it('ended by pg_terminate_backend after an earlier revision of the run committed, the server up: a new work session, the earlier revision\'s down runs, exit 10', async () => {
    const ctx = await setUp(CUT_IN_0003, { database: { lockTimeoutSeconds: 3, connectTimeoutSeconds: 5 } });
    expect((await cli(ctx, 'migrate', 'up', '--to', '0001')).code).toBe(0);
    const before = await digest(ctx.db.query);
    const run = startBelay([...ctx.args, '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: ctx.project.dir });
    const sleeping = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'belay % work' AND query LIKE '%pg_sleep(30)%'";
    const work = await until('0003 sleeping on the work connection', async () => (await adminQuery<{ pid: number }>('postgres', sleeping, [ctx.db.name]))[0], run.done);
    await adminQuery('postgres', 'SELECT pg_terminate_backend($1)', [work.pid]);
    const ended = await run.done;
    expect(ended.code, `${ended.stdout}${ended.stderr}`).toBe(10);
    const document = payload(ended.stdout);
    expect(document.message).toMatch(/0003_sleep up failed .*terminating connection due to administrator command.*; the work connection was lost: a new one carried on/s);
    expect(document.message).toMatch(/rolled back to 0001_base, data verified intact/);
    expect(await ctx.db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_base' }]);
    expect(await ctx.db.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'base' AND column_name = 'x'")).toEqual([{ n: 0 }]);
    expect(await ctx.db.query("SELECT to_regclass('s2') AS s2")).toEqual([{ s2: null }]);
    expect(await digest(ctx.db.query)).toEqual(before);
    const lines = [...(await journals(ctx.project)).values()].find((l) => l.some((line) => line.type === 'run' && line.runId === document.runId))!;
    expect(lines.some((l) => l.type === 'step' && l.event === 'end' && l.step === 'down' && l.revision === '0002_x' && l.outcome === 'ok')).toBe(true);
    expect(lines.find((l) => l.type === 'outcome')).toMatchObject({ status: 'rolled-back', exitCode: 10 });
    expect((await history(ctx)).find((r) => r.runId === document.runId)).toMatchObject({ status: 'rolled-back', exitCode: 10 });
    await settledEverything(ctx);
  }, 120_000);
});
