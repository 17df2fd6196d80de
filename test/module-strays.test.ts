import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

// A module revision's errors that nothing can catch (a throw in a timer, a promise it never awaited) and a module
// that never settles: belay neither dies of them (exit 1, no --json document, the run left unsettled) nor hangs.

const FIRST: Record<string, string> = {
  '0001_accounts.up.sql': 'CREATE TABLE accounts (id int PRIMARY KEY);\nINSERT INTO accounts SELECT generate_series(1, 10);',
  '0001_accounts.down.sql': 'DROP TABLE accounts;',
};

type Line = Record<string, unknown>;
interface Envelope {
  outcome: string;
  exitCode: number;
  message: string;
  result: { runId: string };
}

async function journalLines(project: TestProject): Promise<Line[]> {
  const dir = join(project.backups, 'journal');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.jsonl'));
  const texts = await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')));
  return texts.flatMap((text) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line));
}

const tables = async (db: TestDatabase): Promise<unknown> =>
  (await db.query("SELECT to_regclass('k4') IS NOT NULL AS k4, to_regclass('k5') IS NOT NULL AS k5, (SELECT array_agg(name ORDER BY name) FROM belay.migrations) AS applied"))[0];

async function project(up: string, config: object = {}): Promise<{ db: TestDatabase; project: TestProject; args: string[] }> {
  const db = await freshDatabase();
  const made = await makeProject({ ...FIRST, '0002_mod.mjs': `${up}\nexport async function down(ctx) { await ctx.sql('DROP TABLE IF EXISTS k4'); }\n` }, config);
  return { db, project: made, args: baseArgs(made, db.url) };
}

async function unsettled(args: string[], cwd: string): Promise<unknown> {
  return (jsonResult(await belay([...args, '--json', 'status'], { cwd })) as { interrupted: unknown }).interrupted;
}

describe('errors a module revision throws where nothing can catch them', () => {
  it('a timer that throws after its step ended (during health): a warning naming the revision, and the run goes on to its outcome (exit 0)', async () => {
    const up = "export async function up(ctx) { await ctx.sql('CREATE TABLE k4 (id int)'); setTimeout(() => { throw new Error('uncaught in timer'); }, 50); }";
    const { db, project: p, args } = await project(up, { health: { command: [{ name: 'slow', run: 'sleep 1' }] } });
    const run = await belay([...args, '--json', 'migrate', 'up', '--yes'], { cwd: p.dir });

    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    const envelope = JSON.parse(run.stdout) as Envelope;
    expect(envelope.outcome).toBe('ok');
    expect(await tables(db)).toEqual({ k4: true, k5: false, applied: ['0001_accounts', '0002_mod'] });
    const warning = (await journalLines(p)).find((l) => l.event === 'note' && String((l.detail as Line).message).includes('uncaught in timer'));
    expect(warning).toMatchObject({ step: 'apply', revision: '0002_mod' });
    expect(String((warning!.detail as Line).message)).toMatch(/^warning: .*after its up ended, by revision 0002_mod: uncaught in timer/);
    expect(await unsettled(args, p.dir)).toBeNull();
  }, 60_000);

  it('a promise it rejects and never awaits: its revision fails, the run rolls back (exit 10)', async () => {
    const up = "export async function up(ctx) { await ctx.sql('CREATE TABLE k4 (id int)'); Promise.reject(new Error('floating rejection')); }";
    const { db, project: p, args } = await project(up);
    const run = await belay([...args, '--json', 'migrate', 'up', '--yes'], { cwd: p.dir });

    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(10);
    const envelope = JSON.parse(run.stdout) as Envelope;
    expect(envelope.outcome).toBe('rolled-back');
    expect(envelope.message).toMatch(/floating rejection/);
    expect(await tables(db)).toEqual({ k4: false, k5: false, applied: null });
    expect((await journalLines(p)).find((l) => l.event === 'end' && l.step === 'apply' && l.revision === '0002_mod')).toMatchObject({ outcome: 'failed' });
    expect(await unsettled(args, p.dir)).toBeNull();
  }, 60_000);
});

describe('a module revision that never settles', () => {
  it('the first SIGTERM gives its step up (rolled back, its later statements refused) and the run rolls back (exit 10)', async () => {
    // it wakes after the signal and tries belay's session again, then never settles
    const up = `export async function up(ctx) {
  await ctx.sql('CREATE TABLE k4 (id int)');
  await new Promise((resolve) => process.once('SIGTERM', () => setTimeout(resolve, 0)));
  await ctx.client.query('COMMIT').catch(() => {});
  await ctx.sql('CREATE TABLE k5 (id int)').catch(() => {});
  return new Promise(() => {});
}`;
    const { db, project: p, args } = await project(up);
    const run = startBelay([...args, '--json', 'migrate', 'up', '--yes'], { cwd: p.dir, timeoutMs: 30_000 });
    for (let i = 0; ; i++) {
      // its own statement the last one: not 0001's transaction, idle between its statements
      const rows = await db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'belay migrate-up % work' AND state = 'idle in transaction' AND query = 'CREATE TABLE k4 (id int)'");
      if (rows.length > 0) break;
      if (i > 2000) throw new Error('the module never held its transaction open');
      await new Promise((r) => setTimeout(r, 10));
    }
    // its transaction has created k4 and waits
    await new Promise((r) => setTimeout(r, 200));
    run.child.kill('SIGTERM');
    const result = await run.done;

    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(10);
    const envelope = JSON.parse(result.stdout) as Envelope;
    expect(envelope.outcome).toBe('rolled-back');
    expect(envelope.message).toMatch(/^change rejected \(interrupted by a signal\); rolled back to /);
    await new Promise((r) => setTimeout(r, 500));
    expect(await tables(db)).toEqual({ k4: false, k5: false, applied: null });
    const ended = (await journalLines(p)).find((l) => l.event === 'end' && l.step === 'apply' && l.revision === '0002_mod');
    expect(ended).toMatchObject({ outcome: 'failed' });
    expect(JSON.stringify(ended)).toContain('interrupted by a signal while 0002_mod ran');
    expect(await unsettled(args, p.dir)).toBeNull();
  }, 60_000);
});

describe('a module that ends its transaction and then fails in one of its own', () => {
  // its COMMIT landed k4; the block its BEGIN opened is aborted and refuses belay's question whether its transaction is still open
  const up = `export async function up(ctx) {
  await ctx.sql('CREATE TABLE k4 (id int)');
  await ctx.sql('COMMIT');
  await ctx.sql('BEGIN');
  await ctx.sql('CREATE TABLE k5 (id int)');
  await ctx.sql('SELECT 1/0');
}`;

  it('a transactional one: cut halfway, the snapshot restored (exit 11)', async () => {
    const { db, project: p, args } = await project(up);
    const run = await belay([...args, '--json', 'migrate', 'up', '--yes', '--with-backup'], { cwd: p.dir });

    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(11);
    const envelope = JSON.parse(run.stdout) as Envelope;
    expect(envelope.message).toContain("0002_mod up failed at 0002_mod.mjs: it ended belay's transaction (a COMMIT or ROLLBACK of its own): what it did may be partly committed; then it failed: division by zero");
    expect(await tables(db)).toEqual({ k4: false, k5: false, applied: null });
    expect(await unsettled(args, p.dir)).toBeNull();
  }, 60_000);

  for (const [how, body] of [
    ['its COMMIT, BEGIN and a failed statement', up],
    // k4 lands outside any transaction, between its ROLLBACK of belay's and its own
    ['its ROLLBACK, BEGIN and a failed statement', "export async function up(ctx) {\n  await ctx.sql('ROLLBACK');\n  await ctx.sql('CREATE TABLE k4 (id int)');\n  await ctx.sql('BEGIN; CREATE TABLE k5 (id int)');\n  await ctx.sql('SELECT 1/0');\n}"],
    ['COMMIT; BEGIN; and what fails, in one query', "export async function up(ctx) {\n  await ctx.sql('CREATE TABLE k4 (id int)');\n  await ctx.sql('COMMIT; BEGIN; CREATE TABLE k5 (id int); SELECT 1/0');\n}"],
  ] as const) {
    it(`a transactional one without a snapshot (${how}): says what landed (exit 12)`, async () => {
      const { db, project: p, args } = await project(body);
      const run = await belay([...args, '--json', 'migrate', 'up', '--yes'], { cwd: p.dir });

      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(12);
      const envelope = JSON.parse(run.stdout) as Envelope;
      expect(envelope.message).toContain("it ended belay's transaction (a COMMIT or ROLLBACK of its own): what it did may be partly committed; then it failed: division by zero");
      expect(envelope.message).toContain('no snapshot was taken to restore');
      expect(await tables(db)).toEqual({ k4: true, k5: false, applied: ['0001_accounts'] });
    }, 60_000);
  }
});

describe('a no-transaction module that ends with a transaction of its own open', () => {
  for (const [how, fail] of [
    ['a statement fails it', "await ctx.sql('SELECT 1/0');"],
    ['a throw fails it', "throw new Error('gave up');"],
    // it returns, its transaction left aborted
    ['a statement it catches', "await ctx.sql('SELECT 1/0').catch(() => {});"],
  ] as const) {
    it(`${how}: belay rolls its transaction back, and says so (exit 12 without a snapshot)`, async () => {
      const up = `// belay:no-transaction
export async function up(ctx) {
  await ctx.sql('CREATE TABLE k4 (id int)');
  await ctx.sql('BEGIN');
  await ctx.sql('CREATE TABLE k5 (id int)');
  ${fail}
}`;
      const { db, project: p, args } = await project(up);
      const run = await belay([...args, '--json', 'migrate', 'up', '--yes'], { cwd: p.dir });

      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(12);
      const envelope = JSON.parse(run.stdout) as Envelope;
      expect(envelope.message).toContain('it left a transaction open (a BEGIN without its COMMIT); belay rolled that transaction back: what it ran after its BEGIN did not land');
      expect(envelope.message).toContain('no snapshot was taken to restore');
      // what it ran before its BEGIN landed, what it ran after did not
      expect(await tables(db)).toEqual({ k4: true, k5: false, applied: ['0001_accounts'] });
      expect(await db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'")).toEqual([{ n: 0 }]);
      expect(await unsettled(args, p.dir)).toBeNull();
    }, 60_000);
  }
});

describe('a no-transaction SQL file that fails inside a transaction of its own', () => {
  it('belay rolls its transaction back, and says so (exit 12 without a snapshot)', async () => {
    const db = await freshDatabase();
    const p = await makeProject({
      ...FIRST,
      '0002_mod.up.sql': '-- belay:no-transaction\nCREATE TABLE k4 (id int);\nBEGIN;\nCREATE TABLE k5 (id int);\nSELECT 1/0;\nCOMMIT;\n',
      '0002_mod.down.sql': 'DROP TABLE IF EXISTS k4;',
    });
    const args = baseArgs(p, db.url);
    const run = await belay([...args, '--json', 'migrate', 'up', '--yes'], { cwd: p.dir });

    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(12);
    const envelope = JSON.parse(run.stdout) as Envelope;
    expect(envelope.message).toContain('0002_mod up failed at 0002_mod.up.sql:5: it left a transaction open (a BEGIN without its COMMIT); belay rolled that transaction back: what it ran after its BEGIN did not land; it failed: division by zero');
    expect(await tables(db)).toEqual({ k4: true, k5: false, applied: ['0001_accounts'] });
    expect(await unsettled(args, p.dir)).toBeNull();
  }, 60_000);
});

describe('a module revision that ends the process (process.exit)', () => {
  const up = "export async function up(ctx) { await ctx.sql('CREATE TABLE k4 (id int)'); process.exit(0); }";

  it('migrate up does not exit 0 with no word: the run is left for recover (exit 12, its result printed), which reverts it', async () => {
    const { db, project: p, args } = await project(up);
    const run = await belay([...args, '--json', 'migrate', 'up', '--yes'], { cwd: p.dir });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(12);
    const envelope = JSON.parse(run.stdout) as Envelope & { next: string };
    expect(envelope.outcome).toBe('manual-action-needed');
    expect(envelope.message).toContain('abandoned at once (process.exit called by code belay loaded: a module revision or a config file) during "apply 0002_mod"');
    expect(envelope.next).toMatch(/^Run `belay recover`/);
    expect(await unsettled(args, p.dir)).toMatchObject({ interruptedAt: 'apply 0002_mod' });
    const recover = await belay([...args, 'recover'], { cwd: p.dir });
    expect(recover.code, recover.stderr).toBe(10);
    expect(await tables(db)).toEqual({ k4: false, k5: false, applied: null });
  }, 60_000);

  it('rehearse does not pass: exit 12, naming the throwaway that may be left', async () => {
    const { project: p, args } = await project(up);
    const run = await belay([...args, '--json', 'rehearse'], { cwd: p.dir });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(12);
    expect((JSON.parse(run.stdout) as Envelope).message).toMatch(/process\.exit called by code belay loaded.*may be left behind/);
  }, 60_000);
});
