import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

// The first SIGINT stops a forward run at its next safe point and rolls back what it applied: a running afterApply
// hook is ended, the health checks stop retrying, and the run ends 10, never "healthy".

const REVISIONS: Record<string, string> = {
  '0001_accounts.up.sql': 'CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);\nINSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g;',
  '0001_accounts.down.sql': 'DROP TABLE accounts;',
  '0002_orders.up.sql': 'CREATE TABLE orders (id int PRIMARY KEY);',
  '0002_orders.down.sql': 'DROP TABLE orders;',
};

type Line = Record<string, unknown>;

const journalFiles = async (project: TestProject): Promise<string[]> => (await readdir(join(project.backups, 'journal')).catch(() => [] as string[])).filter((f) => f.endsWith('.jsonl'));

/** The lines of the journals not in `earlier`. */
async function journalLines(project: TestProject, earlier: ReadonlySet<string>): Promise<Line[]> {
  const dir = join(project.backups, 'journal');
  const files = (await journalFiles(project)).filter((f) => !earlier.has(f));
  const texts = await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')));
  // the last line may be caught half written
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

/** Wait until the run's journal says `step subject` started (polled, bounded by a count). */
async function started(project: TestProject, earlier: ReadonlySet<string>, step: string, subject: string): Promise<void> {
  for (let i = 0; i < 6000; i++) {
    if ((await journalLines(project, earlier)).some((l) => l.type === 'step' && l.event === 'start' && l.step === step && l.subject === subject)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never saw ${step} ${subject} start`);
}

/** The processes of a process group that are not zombies (the container's init may be slow to reap the orphaned sleep). */
async function liveInGroup(group: number): Promise<string[]> {
  const live: string[] = [];
  for (const pid of (await readdir('/proc')).filter((name) => /^\d+$/.test(name))) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === group && state !== 'Z') live.push(pid);
  }
  return live;
}

const applied = async (db: TestDatabase): Promise<string[]> => (await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => String(r.name));

async function interrupted(config: object, step: string, subject: string): Promise<TestProject> {
  const db = await freshDatabase();
  const project = await makeProject(REVISIONS);
  const args = baseArgs(project, db.url);
  expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
  await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(config));

  const earlier = new Set(await journalFiles(project));
  const run = startBelay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
  await started(project, earlier, step, subject);
  await new Promise((r) => setTimeout(r, 1000));
  run.child.kill('SIGINT');
  const result = await run.done;

  expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(10);
  expect(result.stderr).toContain('SIGINT: stopping at the next safe point and rolling back what this run did');
  const envelope = JSON.parse(result.stdout) as { outcome: string; message: string; result: { runId: string } };
  expect(envelope.outcome).toBe('rolled-back');
  expect(envelope.message).toMatch(/^change rejected \(interrupted by a signal\); rolled back to 0001_accounts, data verified intact/);
  // it did not wait for the 10-minute hook or checks to end: the test would time out first
  expect(await applied(db)).toEqual(['0001_accounts']);
  expect(await db.query("SELECT to_regclass('orders') AS orders, (SELECT sum(balance)::int FROM accounts) AS total")).toEqual([{ orders: null, total: 1000 }]);

  // the journal: the step the signal stopped ended failed, then the rollback and its reason, then the outcome
  const { runId } = envelope.result;
  const lines = await journalLines(project, earlier);
  expect(lines[0]).toMatchObject({ type: 'run', runId });
  const stopped = lines.find((l) => l.type === 'step' && l.event === 'end' && l.step === step && l.subject === subject);
  expect(stopped).toMatchObject({ outcome: 'failed' });
  expect(lines.some((l) => l.type === 'step' && l.step === 'down' && l.event === 'note' && String((l.detail as Line).message).includes('rolling back to 0001_accounts: interrupted by a signal'))).toBe(true);
  expect(lines.some((l) => l.type === 'step' && l.step === 'health' && l.subject === 'after-rollback' && l.event === 'end' && l.outcome === 'ok')).toBe(true);
  expect(lines.find((l) => l.type === 'outcome')).toMatchObject({ status: 'rolled-back', exitCode: 10 });

  const history = await belay([...args, 'history', runId], { cwd: project.dir });
  expect(history.stdout).toMatch(/interrupted by a signal/);
  expect(history.stdout).toMatch(/rolled-back/);
  const status = jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as { interrupted: unknown };
  expect(status.interrupted).toBeNull();
  return project;
}

describe('the first SIGINT after the revisions are applied', () => {
  it('during the afterApply hook: the hook (its whole process group) is ended and the run rolls back (exit 10)', async () => {
    const project = await interrupted({ hooks: { afterApply: { run: 'echo $$ > hook.pid; sleep 600; echo done', timeoutSeconds: 600 } } }, 'hook', 'afterApply');
    const group = Number(await readFile(join(project.dir, 'hook.pid'), 'utf8'));
    expect(await liveInGroup(group)).toEqual([]);
  }, 60_000);

  it('during the health checks: no further attempt, the run rolls back (exit 10)', async () => {
    const slowOnceOrders = { name: 'slow once orders exist', query: 'SELECT pg_sleep(CASE WHEN to_regclass($$orders$$) IS NULL THEN 0 ELSE 600 END)', expect: 'some-rows' };
    await interrupted({ health: { sql: [slowOnceOrders], timeoutSeconds: 60, intervalSeconds: 0.2 } }, 'health', 'after-apply');
  }, 60_000);
});
