import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BelayError, status } from '../src/index.js';
import pg from 'pg';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { TEST_APP_ROLE } from './support/constants.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

/** The sessions named `belay status` still open on `db`, once those closing have gone (polled, within 10 s). */
async function statusSessions(db: TestDatabase): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const rows = await db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'belay status'");
    if (rows.length === 0 || Date.now() > deadline) return rows.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// status connects while it reads and hashes the revision files: what it reports when one of the two fails
describe('status opens its connection beside reading the revisions', () => {
  it('a revision file it cannot read is the error, and the session opened meanwhile is closed (library)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const file = join(project.migrations, '0004_tags.up.sql');
    await mkdir(file);
    const options = { cwd: project.dir, databaseUrl: db.url, migrations: project.migrations, backups: project.backups, env: {} };
    const error = await status(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BelayError);
    expect((error as BelayError).exitCode).toBe(2);
    expect((error as BelayError).message).toContain(`cannot read the revision file ${file}: EISDIR`);
    expect(await statusSessions(db)).toBe(0);
    // and with the folder sound again, the same process reads the database
    await rmdir(file);
    expect((await status(options)).pending).toEqual(['0001_accounts', '0002_profiles', '0003_accounts_name']);
    // it lets its session go without waiting for the server to close it: the server ends it all the same
    expect(await statusSessions(db)).toBe(0);
  });

  it('a revision file it cannot read is the error even when the server cannot be reached (exit 2, the file named)', async () => {
    const project = await makeProject(GOOD_REVISIONS);
    const file = join(project.migrations, '0004_tags.up.sql');
    await mkdir(file);
    const run = await belay([...baseArgs(project, 'postgresql://belay@127.0.0.1:1/belay'), 'status']);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`cannot read the revision file ${file}: EISDIR`);
    expect(run.stderr).not.toContain('cannot connect');
  });

  it('a server it cannot reach is the error when the revisions are sound (exit 2, next: hint)', async () => {
    const project = await makeProject(GOOD_REVISIONS);
    const run = await belay([...baseArgs(project, 'postgresql://belay@127.0.0.1:1/belay'), 'status']);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain('cannot connect to');
    expect(run.stderr).toMatch(/next: .*server is running/);
  });
});

// status reads the lock holder, the leftovers and whether belay's tables exist in one statement, and the runs in another
describe('status while a run holds the lock', () => {
  it('names the holder and its run, counts that run as the last one and not as interrupted', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_first.up.sql': 'CREATE TABLE first (id int);',
      '0001_first.down.sql': 'DROP TABLE first;',
      // waits for a session advisory lock this test holds: the run stays in this revision until the test lets it go
      '0002_gated.up.sql': 'SELECT pg_advisory_xact_lock(4242);\nCREATE TABLE gated (id int);',
      '0002_gated.down.sql': 'DROP TABLE gated;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const gate = new pg.Client({ connectionString: db.url });
    await gate.connect();
    try {
      await gate.query('SELECT pg_advisory_lock(4242)');
      const live = startBelay([...args, '--json', 'migrate', 'up']);
      let waiting = false;
      for (let i = 0; i < 2000 && !waiting; i++) {
        // pg_locks is the cluster's: another test's waiter on the same key, in its own database, is not this run
        waiting = (await db.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).length > 0;
        if (!waiting) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(waiting).toBe(true);
      const [running] = await db.query<{ id: string; pid: number }>(
        "SELECT r.id::text AS id, a.pid FROM belay.runs r JOIN pg_stat_activity a ON a.application_name LIKE '%' || right(r.id::text, 12) WHERE r.status = 'running' AND a.datname = current_database()",
      );
      const status = await belay([...args, '--json', 'status']);
      expect(status.code, status.stderr).toBe(0);
      const report = jsonResult<{ lock: { pid: number; applicationName: string; user: string; run: { runId: string; command: string } | undefined } | null; lastRun: { runId: string; status: string }; interrupted: unknown; current: string; pending: string[] }>(status);
      expect(report.lock).toMatchObject({
        pid: running!.pid,
        applicationName: `belay migrate-up ${running!.id.slice(-12)}`,
        user: TEST_APP_ROLE,
        clientAddress: '127.0.0.1/32',
        backendStart: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
        run: { runId: running!.id, command: 'migrate-up' },
      });
      expect(report.lastRun).toMatchObject({ runId: running!.id, status: 'running' });
      expect(report.interrupted).toBeNull();
      expect(report).toMatchObject({ current: '0001_first', pending: ['0002_gated'] });
      await gate.query('SELECT pg_advisory_unlock(4242)');
      expect((await live.done).code).toBe(0);
    } finally {
      await gate.end();
    }
    const after = jsonResult<{ lock: unknown; lastRun: { status: string }; interrupted: unknown; current: string }>(await belay([...args, '--json', 'status']));
    expect(after).toMatchObject({ lock: null, lastRun: { status: 'ok' }, interrupted: null, current: '0002_gated' });
  });
});

// a revision's journal rows are written in batches; one that runs long must not leave the holder named at an earlier step
describe('the step a run holding the lock is in', () => {
  it('status and a second run name the revision running, a module after an SQL one and an SQL one sent behind it', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_first.up.sql': 'CREATE TABLE first (id int);',
      '0001_first.down.sql': 'DROP TABLE first;',
      '0002_quick.up.sql': 'ALTER TABLE first ADD COLUMN y int;',
      '0002_quick.down.sql': 'ALTER TABLE first DROP COLUMN y;',
      // each waits for a session advisory lock this test holds
      '0003_module.mjs':
        "export async function up(ctx) {\n  await ctx.sql('SELECT pg_advisory_xact_lock(4243)');\n  await ctx.sql('CREATE TABLE module_made (id int)');\n}\nexport async function down(ctx) {\n  await ctx.sql('DROP TABLE module_made');\n}\n",
      '0004_gated.up.sql': 'SELECT pg_advisory_xact_lock(4244);\nCREATE TABLE gated (id int);',
      '0004_gated.down.sql': 'DROP TABLE gated;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const gate = new pg.Client({ connectionString: db.url });
    await gate.connect();
    type Holder = { run: { runId: string; lastStep: string | null } | undefined } | null;
    const holderAt = async (step: string): Promise<Holder> => {
      // within the revision's lock timeout (10 s), which would fail it
      const deadline = Date.now() + 6_000;
      for (;;) {
        const status = await belay([...args, '--json', 'status']);
        const { lock } = jsonResult<{ lock: Holder }>(status);
        if (lock?.run?.lastStep === step || Date.now() > deadline) return lock;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    try {
      await gate.query('SELECT pg_advisory_lock(4243), pg_advisory_lock(4244)');
      const live = startBelay([...args, '--json', 'migrate', 'up']);
      expect(await holderAt('apply 0003_module')).toMatchObject({ run: { lastStep: 'apply 0003_module' } });
      const second = await belay([...args, '--json', 'migrate', 'up']);
      expect(second.code).toBe(3);
      expect(JSON.parse(second.stdout)).toMatchObject({ message: expect.stringContaining('at step apply 0003_module)') });
      expect(jsonResult<{ details: { holder: Holder } }>(second).details.holder).toMatchObject({ run: { lastStep: 'apply 0003_module' } });
      await gate.query('SELECT pg_advisory_unlock(4243)');
      // 0004 is sent as soon as 0003's record commits, and waits at the second gate
      expect(await holderAt('apply 0004_gated')).toMatchObject({ run: { lastStep: 'apply 0004_gated' } });
      await gate.query('SELECT pg_advisory_unlock(4244)');
      expect((await live.done).code).toBe(0);
    } finally {
      await gate.end();
    }
  }, 90_000);
});
