import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { freshJournal, pollUntil } from './support/kill.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

// belay's run lock is a session advisory lock on the run's control connection: when that session is ended under a
// running `migrate up`, the lock is free for another run at once. The run must stop there: cancel the revision it is
// running, commit nothing more, revert nothing (the lock may be another run's now), and end 12 for `belay recover`.

const REVISIONS: Record<string, string> = {
  '0001_t.up.sql': 'CREATE TABLE t (id int);',
  '0001_t.down.sql': 'DROP TABLE t;',
  '0002_slow.up.sql': 'SELECT pg_sleep(600);\nCREATE TABLE slow (id int);',
  '0002_slow.down.sql': 'DROP TABLE slow;',
  '0003_u.up.sql': 'CREATE TABLE u (id int);',
  '0003_u.down.sql': 'DROP TABLE u;',
};

describe('the session holding the run lock is terminated while a revision runs', () => {
  it('stops at once: the revision cancelled, nothing more committed, no rollback, exit 12; status and recover then settle it', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS, { database: { lockTimeoutSeconds: 3, connectTimeoutSeconds: 5 } });
    const args = baseArgs(project, db.url);
    const journals = new Set(await readdir(join(project.backups, 'journal')).catch(() => [] as string[]));

    const run = startBelay([...args, 'migrate', 'up'], { cwd: project.dir });
    // the work session sleeping in 0002: its control session is the one named without " work"
    let work: { pid: number; application_name: string } | undefined;
    await pollUntil(async () => {
      [work] = await db.query<{ pid: number; application_name: string }>(
        "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'belay migrate-up % work' AND state = 'active' AND query LIKE '%pg_sleep%'",
      );
      return work !== undefined;
    }, '0002 sleeping');
    const control = work!.application_name.replace(/ work$/, '');
    const terminated = await db.query('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [control]);
    expect(terminated).toEqual([{ ok: true }]);

    // another run finds the lock free at once, and the run it held interrupted
    const other = await belay([...args, 'migrate', 'up'], { cwd: project.dir });
    expect(other.code, other.stderr).toBe(4);
    expect(other.stderr).toMatch(/run [0-9a-f-]+ \(migrate-up by .*\) was interrupted at step "apply 0002_slow"/);

    const result = await run.done;
    // it did not wait out the 10-minute sleep (the test would time out first): the statement was cancelled
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(12);
    expect(result.stdout).toContain(
      "migrate-up: the session holding the run's lock ended (terminated by the server: terminating connection due to administrator command): stopped before committing 0002_slow; what this run committed before stays: 0001_t",
    );
    expect(result.stdout).toMatch(/next: Another run may hold the lock now: `belay status` shows who holds the lock; once it is free, `belay recover` settles this run/);
    expect(`${result.stdout}${result.stderr}`).not.toMatch(/stopped answering|rolling back|restor/);

    // nothing committed after the loss, nothing reverted, and no session of the run left
    expect(await db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_t' }]);
    expect(await db.query("SELECT to_regclass('t') IS NOT NULL AS t, to_regclass('slow') AS slow, to_regclass('u') AS u")).toEqual([{ t: true, slow: null, u: null }]);
    expect(await db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'belay migrate-up %'")).toEqual([]);
    // its row stays unfinished for recover
    const [row] = await db.query<{ id: string; status: string }>("SELECT id::text, status FROM belay.runs WHERE command = 'migrate-up'");
    expect(row?.status).toBe('running');

    // the journal file: 0002 failed, nothing applied after it, no down, and the outcome said as printed
    const lines = await freshJournal(project.backups, journals);
    expect(lines[0]).toMatchObject({ type: 'run', runId: row!.id });
    const steps = lines.filter((l) => l.type === 'step');
    expect(steps.filter((l) => l.step === 'apply' && l.event === 'end').map((l) => [l.revision, l.outcome])).toEqual([
      ['0001_t', 'ok'],
      ['0002_slow', 'failed'],
    ]);
    expect(steps.some((l) => l.step === 'down' || l.step === 'restore')).toBe(false);
    expect(lines.find((l) => l.type === 'outcome')).toMatchObject({ status: 'manual-action-needed', exitCode: 12 });

    // status tells the run interrupted, and what recover does; recover reverts 0001_t and settles it
    const status = jsonResult<{ interrupted: { run: { runId: string }; action: string; revert: string[] } | null; lock: unknown }>(
      await belay([...args, '--json', 'status'], { cwd: project.dir }),
    );
    expect(status.interrupted).toMatchObject({ run: { runId: row!.id }, action: 'down', revert: ['0001_t'] });
    const recover = await belay([...args, 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stderr).toBe(10);
    expect(recover.stdout).toMatch(/rolled back to the start, data verified intact/);
    expect(await db.query("SELECT count(*)::int AS n, to_regclass('t') AS t FROM belay.migrations")).toEqual([{ n: 0, t: null }]);
    expect(jsonResult<{ interrupted: unknown }>(await belay([...args, '--json', 'status'], { cwd: project.dir })).interrupted).toBeNull();
    expect((await db.query<{ status: string }>('SELECT status FROM belay.runs WHERE id = $1', [row!.id]))[0]?.status).not.toBe('running');
  }, 60_000);
});
