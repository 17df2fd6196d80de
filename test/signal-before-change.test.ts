import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { belay, startBelay } from './support/cli.js';
import { adminQuery, cluster, freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

// The first SIGTERM of a `migrate up` that has changed nothing yet stops it there, as `belay backup` does: what runs
// is cancelled, no snapshot is taken after the signal, and the run ends 4 "nothing was changed", not 10 "rolled back".
// And a signal between health attempts after the change never journals an attempt that did not run as healthy.

const REVISIONS: Record<string, string> = {
  '0001_accounts.up.sql': 'CREATE TABLE accounts (id int PRIMARY KEY, note text NOT NULL);',
  '0001_accounts.down.sql': 'DROP TABLE accounts;',
  '0002_orders.up.sql': 'SELECT pg_sleep(600);\nCREATE TABLE orders (id int PRIMARY KEY);',
  '0002_orders.down.sql': 'DROP TABLE orders;',
};

type Line = Record<string, unknown>;

const journalFiles = async (project: TestProject): Promise<string[]> => (await readdir(join(project.backups, 'journal')).catch(() => [] as string[])).filter((f) => f.endsWith('.jsonl'));

/** The lines of the journals not in `earlier` (the last line may be caught half written). */
async function journalLines(project: TestProject, earlier: ReadonlySet<string>): Promise<Line[]> {
  const files = (await journalFiles(project)).filter((f) => !earlier.has(f));
  const texts = await Promise.all(files.map((f) => readFile(join(project.backups, 'journal', f), 'utf8')));
  return texts.flatMap((text) =>
    text.split('\n').filter(Boolean).flatMap((l) => {
      try {
        return [JSON.parse(l) as Line];
      } catch {
        return [];
      }
    }),
  );
}

/** Snapshot files and manifests in the backups folder (the journal folder aside). */
const snapshotFiles = async (project: TestProject): Promise<string[]> => (await readdir(project.backups).catch(() => [] as string[])).filter((f) => f !== 'journal').sort();

/** Poll until `done` answers true (bounded by a count). */
async function until(what: string, done: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never saw ${what}`);
}

const applied = async (db: TestDatabase): Promise<string[]> => (await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => String(r.name));

async function atRevision0001(db: TestDatabase): Promise<{ project: TestProject; args: string[] }> {
  const project = await makeProject(REVISIONS);
  const args = baseArgs(project, db.url);
  expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
  return { project, args };
}

/** Send SIGTERM once `ready` holds; the run must end 4, at once, having changed nothing and kept no new snapshot. */
async function stoppedBeforeChange(db: TestDatabase, project: TestProject, args: string[], runArgs: string[], ready: () => Promise<boolean>): Promise<void> {
  const earlier = new Set(await journalFiles(project));
  const snapshotsBefore = await snapshotFiles(project);
  const run = startBelay([...args, '--json', ...runArgs], { cwd: project.dir });
  await until('the moment to signal', ready);
  run.child.kill('SIGTERM');
  const result = await run.done;

  expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(4);
  const envelope = JSON.parse(result.stdout) as { outcome: string; message: string; next: string };
  expect(envelope).toMatchObject({ outcome: 'refused', exitCode: 4 });
  expect(envelope.message).toMatch(/^interrupted by a signal before it changed anything; nothing was changed/);
  expect(envelope.next).toBe('Nothing was changed. Run it again when you are ready.');
  // the 10-minute sleep (or the dump) was cancelled, not waited for: the test would time out first
  expect(await snapshotFiles(project)).toEqual(snapshotsBefore);
  expect(await applied(db)).toEqual(['0001_accounts']);
  expect(await db.query("SELECT to_regclass('orders') AS orders")).toEqual([{ orders: null }]);
  // the throwaway copy the scope was learned on is gone
  expect(await adminQuery('postgres', "SELECT datname FROM pg_database WHERE datname LIKE $1 AND datname LIKE '%belay_scope%'", [`${db.name}%`])).toEqual([]);

  const lines = await journalLines(project, earlier);
  expect(lines.filter((l) => l.type === 'outcome')).toMatchObject([{ status: 'refused', exitCode: 4 }]);
  expect(lines.some((l) => l.type === 'step' && l.step === 'backup' && l.event === 'end' && l.outcome === 'ok')).toBe(false);
  expect(lines.some((l) => l.type === 'step' && l.step === 'apply')).toBe(false);
  const history = await belay([...args, 'history'], { cwd: project.dir });
  expect(history.stdout).toMatch(/migrate-up.*refused/);
  expect(history.stdout).not.toMatch(/rolled-back/);
}

describe('the first SIGTERM of migrate up before it changed anything', () => {
  it('while the backup scope is learned: the revision running on the copy is cancelled, no snapshot is taken, exit 4', async () => {
    const db = await freshDatabase();
    const { project, args } = await atRevision0001(db);
    await stoppedBeforeChange(db, project, args, ['migrate', 'up', '--with-backup', '--yes'], async () => {
      const rows = await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid() AND datname LIKE $1 AND datname LIKE '%belay_scope%'", [`${db.name}%`]);
      return rows.length > 0;
    });
    // and nothing of the learning's sleep is left running
    expect(await adminQuery('postgres', "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid() AND datname LIKE $1", [`${db.name}%`])).toEqual([]);
  }, 90_000);

  it('while pg_dump takes the snapshot: pg_dump is ended, its partial file removed, exit 4', async () => {
    const db = await freshDatabase();
    const { project, args } = await atRevision0001(db);
    await writeFile(join(project.migrations, '0002_orders.up.sql'), 'CREATE TABLE orders (id int PRIMARY KEY);');
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ backup: { compress: 9 } }));
    // rows that compress slowly, so that the dump runs long enough to be caught in its COPY
    await db.query("INSERT INTO accounts SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 600000) g");
    await stoppedBeforeChange(db, project, args, ['migrate', 'up', '--with-backup', '--backup-scope', 'full', '--yes'], async () => {
      // the fingerprint is done (its transaction idle, holding the snapshot pg_dump reads), pg_dump still copying
      const rows = await adminQuery<{ dumping: boolean; fingerprinted: boolean }>(
        'postgres',
        `SELECT bool_or(application_name = 'belay' AND state = 'active' AND query LIKE 'COPY public.accounts%') AS dumping,
                bool_or(application_name LIKE 'belay migrate-up % work' AND state = 'idle in transaction') AS fingerprinted
           FROM pg_stat_activity WHERE datname = $1`,
        [db.name],
      );
      return rows[0]?.dumping === true && rows[0].fingerprinted === true;
    });
  }, 90_000);
});

describe('the first SIGTERM of rollback --to before its downs', () => {
  it('while its fingerprint waits on a lock: the wait is cancelled at once, exit 4, no down, the lock released (ended only by the lock timeout)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...REVISIONS, '0002_orders.up.sql': 'CREATE TABLE orders (id int PRIMARY KEY);' }, { database: { lockTimeoutSeconds: 600 } });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    // another session holds accounts, which the fingerprint reads: it waits for the lock
    const holder = new pg.Client({ host: cluster().socketDir, port: cluster().port, user: cluster().superuser, database: db.name });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE');
      const earlier = new Set(await journalFiles(project));
      const run = startBelay([...args, '--json', 'rollback', '--to', '0001', '--no-backup', '--yes'], { cwd: project.dir });
      await until('the fingerprint waiting on the lock', async () => {
        const fingerprinting = (await journalLines(project, earlier)).some((l) => l.type === 'step' && l.step === 'fingerprint' && l.event === 'start');
        const rows = await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND application_name LIKE 'belay rollback % work'", [db.name]);
        return fingerprinting && rows.length > 0;
      });
      run.child.kill('SIGTERM');
      const result = await run.done;

      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(4);
      const envelope = JSON.parse(result.stdout) as { outcome: string; message: string; next: string };
      expect(envelope).toMatchObject({ outcome: 'refused', exitCode: 4 });
      expect(envelope.message).toMatch(/^interrupted by a signal before it changed anything; nothing was changed/);
      expect(envelope.next).toBe('Nothing was changed. Run it again when you are ready.');
      expect(await applied(db)).toEqual(['0001_accounts', '0002_orders']);
      expect(await db.query("SELECT to_regclass('orders')::text AS orders")).toEqual([{ orders: 'orders' }]);
      // belay's sessions are gone with its run lock
      expect(await adminQuery('postgres', "SELECT application_name FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'belay%'", [db.name])).toEqual([]);
      expect(await adminQuery('postgres', "SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = $1", [db.name])).toEqual([]);

      const lines = await journalLines(project, earlier);
      expect(lines.filter((l) => l.type === 'outcome')).toMatchObject([{ status: 'refused', exitCode: 4 }]);
      expect(lines.some((l) => l.type === 'step' && l.step === 'down' && l.event === 'start')).toBe(false);
      const history = await belay([...args, 'history'], { cwd: project.dir });
      expect(history.stdout).toMatch(/rollback\s+refused\s+exit 4/);
    } finally {
      await holder.end();
    }
  }, 90_000);
});

describe('a signal between health attempts after the change', () => {
  it('journals no attempt that did not run, and the health step ends failed with what it last saw', async () => {
    const db = await freshDatabase();
    const { project, args } = await atRevision0001(db);
    await writeFile(join(project.migrations, '0002_orders.up.sql'), 'CREATE TABLE orders (id int PRIMARY KEY);');
    const noOrders = { name: 'no orders', query: "SELECT 1 FROM pg_tables WHERE tablename = 'orders'", expect: 'no-rows' };
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ health: { sql: [noOrders], timeoutSeconds: 30, intervalSeconds: 1 } }));
    const earlier = new Set(await journalFiles(project));
    const afterApply = (l: Line): boolean => l.type === 'step' && l.step === 'health' && l.subject === 'after-apply';
    const run = startBelay([...args, '--json', 'migrate', 'up', '--yes'], { cwd: project.dir });
    await until('attempt 1 failing', async () => (await journalLines(project, earlier)).some((l) => afterApply(l) && l.event === 'note'));
    // into the 1 s wait before attempt 2
    await new Promise((r) => setTimeout(r, 300));
    run.child.kill('SIGTERM');
    const result = await run.done;

    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(10);
    expect(JSON.parse(result.stdout)).toMatchObject({ outcome: 'rolled-back' });
    expect(await applied(db)).toEqual(['0001_accounts']);
    const lines = await journalLines(project, earlier);
    const notes = lines.filter((l) => afterApply(l) && l.event === 'note').map((l) => (l.detail as Line).message);
    expect(notes).toEqual(['attempt 1: failing no orders']);
    const end = lines.find((l) => afterApply(l) && l.event === 'end');
    expect(end).toMatchObject({ outcome: 'failed', detail: { attempts: 1, failing: [{ name: 'no orders', ok: false }], interrupted: true } });
  }, 90_000);
});
