import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, startBelay, type CliRun } from './support/cli.js';
import { pollUntil } from './support/kill.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

const GOOD = {
  '0001_accounts.up.sql': 'CREATE TABLE accounts (id int PRIMARY KEY, email text);\nINSERT INTO accounts SELECT g, g::text FROM generate_series(1, 50) g;',
  '0001_accounts.down.sql': 'DROP TABLE accounts;',
  '0002_notes.up.sql': 'CREATE TABLE notes (id int);',
  '0002_notes.down.sql': 'DROP TABLE notes;',
};

/** 0002 fails: the run goes down the rollback path and reverts 0001. */
const FAILING = { ...GOOD, '0002_notes.up.sql': 'CREATE TABLE notes (id int);\nSELECT 1 / 0;' };

interface Envelope {
  result: { runId: string; exitCode: number; message: string; journalFile: string };
  next: string | null;
}

interface HookEnd {
  outcome: string;
  detail: { exitCode: number | null; signal: string | null; timedOut: boolean; outputTail: string };
}

/** A project with these hooks, and `run` to run belay (--json) in it. */
async function setUp(revisions: Record<string, string>, hooks: object): Promise<{ project: TestProject; run: (...args: string[]) => Promise<Envelope>; current: () => Promise<unknown> }> {
  const db = await freshDatabase();
  const project = await makeProject(revisions, { hooks });
  const current = async (): Promise<unknown> => (await db.query('SELECT max(name) AS m FROM belay.migrations'))[0]?.m;
  const run = async (...args: string[]): Promise<Envelope> => envelope(await belay([...baseArgs(project, db.url), '--json', ...args], { cwd: project.dir, timeoutMs: 60_000 }));
  return { project, run, current };
}

function envelope(run: CliRun): Envelope {
  expect(run.stdout, run.stderr).not.toBe('');
  return JSON.parse(run.stdout) as Envelope;
}

async function hookEnd(json: Envelope, name: string): Promise<HookEnd> {
  const lines = (await readFile(json.result.journalFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const end = lines.find((l) => l.type === 'step' && l.event === 'end' && l.step === 'hook' && l.subject === name);
  expect(end, name).toBeDefined();
  return end as unknown as HookEnd;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function killAll(pidFile: string): Promise<void> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  for (const pid of text.split('\n').filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

describe('hooks that leave a process behind', () => {
  it('a hook that starts a background child and exits 0 succeeds when its shell exits; the child keeps running', async () => {
    const dir = await makeProject({});
    const pids = join(dir.dir, 'pids');
    const { run } = await setUp(GOOD, { afterApply: { run: `sleep 30 & echo $! >> ${pids}; echo started`, timeoutSeconds: 3 } });
    try {
      const json = await run('migrate', 'up');
      expect(json.result.exitCode, json.result.message).toBe(0);
      expect((await hookEnd(json, 'afterApply')).detail).toEqual({ exitCode: 0, signal: null, timedOut: false, outputTail: 'started' });
      const [pid] = (await readFile(pids, 'utf8')).split('\n').map(Number);
      expect(alive(pid!)).toBe(true);
    } finally {
      await killAll(pids);
    }
  });

  it('a daemon (setsid) holding the pipes keeps belay waiting neither for a hook that exited nor past the timeout of one that did not', async () => {
    const dir = await makeProject({});
    const pids = join(dir.dir, 'pids');
    try {
      const started = await setUp(GOOD, { afterApply: { run: `setsid sleep 60 & echo $! >> ${pids}; echo started`, timeoutSeconds: 2 } });
      const ok = await started.run('migrate', 'up');
      expect(ok.result.exitCode, ok.result.message).toBe(0);
      expect((await hookEnd(ok, 'afterApply')).detail).toMatchObject({ exitCode: 0, timedOut: false, outputTail: 'started' });

      const hung = await setUp(GOOD, { afterApply: { run: `setsid sleep 60 & echo $! >> ${pids}; echo waiting; sleep 60`, timeoutSeconds: 2 } });
      const json = await hung.run('migrate', 'up');
      expect(json.result.exitCode).toBe(10);
      expect(json.result.message).toMatch(/the afterApply hook failed \(timed out after 2s\)/);
      expect((await hookEnd(json, 'afterApply')).detail).toEqual({ exitCode: null, signal: 'SIGKILL', timedOut: true, outputTail: 'waiting' });
      expect(await hung.current()).toBeNull();
    } finally {
      await killAll(pids);
    }
  });

  it('a command health check that starts a background child passes when its shell exits 0', async () => {
    const dir = await makeProject({});
    const pids = join(dir.dir, 'pids');
    const db = await freshDatabase();
    const project = await makeProject(GOOD, { health: { command: [{ name: 'app started', run: `sleep 30 & echo $! >> ${pids}; echo up`, timeoutSeconds: 3 }], timeoutSeconds: 5 } });
    try {
      const run = await belay([...baseArgs(project, db.url), 'migrate', 'up'], { cwd: project.dir, timeoutMs: 60_000 });
      expect(run.code, run.stdout + run.stderr).toBe(0);
    } finally {
      await killAll(pids);
    }
  });
});

describe('hook output', () => {
  it('a long line is read in linear time and journaled cut, a long output as its last 20 lines', async () => {
    const long = await setUp(GOOD, { afterApply: { run: "head -c 50000000 /dev/zero | tr '\\0' a", timeoutSeconds: 5 } });
    const json = await long.run('migrate', 'up');
    expect(json.result.exitCode, json.result.message).toBe(0);
    const tail = (await hookEnd(json, 'afterApply')).detail.outputTail;
    expect(tail).toBe(`[…cut] ${'a'.repeat(500)}`);

    const many = await setUp(GOOD, { afterApply: { run: 'seq 1 200000; exit 7', timeoutSeconds: 5 } });
    const failed = await many.run('migrate', 'up');
    expect(failed.result.exitCode).toBe(10);
    const end = await hookEnd(failed, 'afterApply');
    expect(end.detail).toMatchObject({ exitCode: 7, timedOut: false });
    expect(end.detail.outputTail.split('\n')).toEqual(Array.from({ length: 20 }, (_, i) => String(199_981 + i)));
  });
});

describe('hooks failing on the rollback path', () => {
  it('onRollback failing in migrate up: exit 10 (verified), the hook named in the message and next, its output in the journal', async () => {
    const { run, current } = await setUp(FAILING, { onRollback: { run: 'echo redeploy failed >&2; exit 3', timeoutSeconds: 5 } });
    const json = await run('migrate', 'up');
    expect(json.result.exitCode).toBe(10);
    expect(json.result.message).toMatch(/rolled back to the start, data verified intact; the onRollback hook failed \(exit 3\)$/);
    expect(json.next).toMatch(/The onRollback hook failed \(exit 3\); its output is in the journal \(`belay history .+`\): do by hand what it was to do \(`echo redeploy failed >&2; exit 3`\)/);
    expect(await hookEnd(json, 'onRollback')).toMatchObject({ outcome: 'failed', detail: { exitCode: 3, signal: null, timedOut: false, outputTail: 'redeploy failed' } });
    expect(await current()).toBeNull();
  });

  it('afterRollback killed by a signal in migrate up: exit 10, not 12, since the data was verified; the signal journaled by name', async () => {
    const { run, current } = await setUp(FAILING, { afterRollback: { run: 'kill -TERM $$', timeoutSeconds: 5 } });
    const json = await run('migrate', 'up');
    expect(json.result.exitCode, json.result.message).toBe(10);
    expect(json.result.message).toMatch(/data verified intact; the afterRollback hook failed \(killed by SIGTERM\)$/);
    expect(json.next).toMatch(/The afterRollback hook failed \(killed by SIGTERM\)/);
    expect((await hookEnd(json, 'afterRollback')).detail).toEqual({ exitCode: null, signal: 'SIGTERM', timedOut: false, outputTail: '' });
    expect(await current()).toBeNull();
  });

  it('rollback --to with onRollback failing: the downs landed and verified, but a configured step failed: exit 12, not 0', async () => {
    const { run, current } = await setUp(GOOD, { onRollback: { run: 'exit 5', timeoutSeconds: 5 } });
    expect((await run('migrate', 'up')).result.exitCode).toBe(0);
    const json = await run('--yes', 'rollback', '--to', '0001');
    expect(json.result.exitCode).toBe(12);
    expect(json.result.message).toMatch(/^rolled back to 0001_accounts; healthy, data verified.*; the onRollback hook failed \(exit 5\)$/);
    expect(json.next).toMatch(/The onRollback hook failed \(exit 5\); its output is in the journal .*do by hand what it was to do \(`exit 5`\)/);
    expect(await current()).toBe('0001_accounts');
  });

  it('afterRestore failing after a restore (exit 11): named in the message and next', async () => {
    const revisions = { ...FAILING, '0001_accounts.down.sql': 'SELECT 1 / 0;' };
    const { run, current } = await setUp(revisions, { afterRestore: { run: 'echo restart failed; exit 4', timeoutSeconds: 5 } });
    const json = await run('migrate', 'up', '--with-backup');
    expect(json.result.exitCode, json.result.message).toBe(11);
    expect(json.result.message).toMatch(/the down of 0001_accounts failed: .*; restored .*; the afterRestore hook failed \(exit 4\)$/);
    expect(json.next).toMatch(/The afterRestore hook failed \(exit 4\); its output is in the journal/);
    expect((await hookEnd(json, 'afterRestore')).detail).toEqual({ exitCode: 4, signal: null, timedOut: false, outputTail: 'restart failed' });
    expect(await current()).toBeNull();
  });

  it('belay restore of a verified snapshot settles the run it interrupted even when its afterRestore hook fails (exit 12 for the hook; the run stayed unsettled)', { timeout: 120_000 }, async () => {
    const revisions = { ...GOOD, '0003_slow.up.sql': 'SELECT pg_sleep(60);\nCREATE TABLE slow (id int);', '0003_slow.down.sql': 'DROP TABLE slow;' };
    const db = await freshDatabase();
    const project = await makeProject(revisions, { hooks: { afterRestore: { run: 'exit 4', timeoutSeconds: 5 } } });
    const args = [...baseArgs(project, db.url), '--json'];
    expect((await belay([...args, 'migrate', 'up', '--to', '0002'], { cwd: project.dir })).code).toBe(0);
    const snapshot = (JSON.parse((await belay([...args, 'backup'], { cwd: project.dir })).stdout) as { result: { snapshot: { id: string } } }).result.snapshot.id;
    const killed = startBelay([...args, 'migrate', 'up'], { cwd: project.dir });
    await pollUntil(async () => (await db.query("SELECT 1 FROM pg_stat_activity WHERE strpos(query, 'pg_sleep(60)') > 0 AND pid <> pg_backend_pid()")).length > 0, 'the slow revision running');
    killed.child.kill('SIGKILL');
    await killed.done;
    const status = async (): Promise<unknown> => (JSON.parse((await belay([...args, 'status'], { cwd: project.dir })).stdout) as { result: { interrupted: unknown } }).result.interrupted;
    expect(await status()).not.toBeNull();
    const json = envelope(await belay([...args, '--yes', 'restore', snapshot], { cwd: project.dir }));
    expect(json.result.exitCode, json.result.message).toBe(12);
    expect(json.result.message).toMatch(/the afterRestore hook failed \(exit 4\)$/);
    expect(await status()).toBeNull();
    // the killed run, begun after the snapshot, is recorded in the restored database as settled by this restore
    const killedRun = JSON.parse((await readFile(join(project.backups, 'journal', (await readdir(join(project.backups, 'journal'))).sort().at(-2)!), 'utf8')).split('\n')[0]!) as { runId: string };
    expect(await db.query('SELECT status FROM belay.runs WHERE id = $1', [killedRun.runId])).toEqual([{ status: 'interrupted' }]);
  });
});
