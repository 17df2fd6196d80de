import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { canMakeImmutable, immutable } from './support/immutable.js';
import { freshJournal, pollUntil } from './support/kill.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';


describe('a journal file that stops taking lines during a rollback', () => {
  it('the rollback goes on to its outcome and says the file stopped (EPERM, and what to do about that); `history` holds every step from the database', async (context) => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_base.up.sql': 'CREATE TABLE base (id int);',
      '0001_base.down.sql': 'DROP TABLE base;',
      '0002_t.up.sql': 'CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);',
      // slow enough for the test to see its start in the journal and make the file immutable while it runs
      '0002_t.down.sql': 'SELECT pg_sleep(1.5);\nDROP TABLE t;',
    });
    if (!(await canMakeImmutable(project.dir))) context.skip('chattr +i is not available here (needs root and a file system with the immutable flag)');
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    const journalDir = path.join(project.backups, 'journal');
    const before = new Set(await readdir(journalDir));
    const run = startBelay([...args, '--json', '--yes', 'rollback', '--to', '0001'], { cwd: project.dir });
    await pollUntil(async () => (await freshJournal(project.backups, before)).some((l) => l.step === 'down' && l.event === 'start'), 'the down started');
    const file = path.join(journalDir, (await readdir(journalDir)).find((name) => !before.has(name))!);
    expect(immutable(file, true)).toBe(true);
    let result;
    try {
      result = await run.done;
    } finally {
      immutable(file, false);
    }
    expect(result.code, result.stderr).toBe(0);
    const envelope = JSON.parse(result.stdout) as { message: string; next: string; result: { runId: string } };
    expect(envelope.message, result.stdout).toMatch(/rolled back to 0001_base; healthy, data verified/);
    expect(envelope.message).toMatch(/journal file .* could not be written \(EPERM: permission denied\) from then on: the database's copy of the journal \(`belay history`\) holds every step/);
    expect(envelope.next).toMatch(/^Make .* writable by the user running belay/);
    expect(await db.query("SELECT to_regclass('public.t') AS t")).toEqual([{ t: null }]);
    // the file stopped at the down's start; the database's copy goes on to the outcome
    const lines = await freshJournal(project.backups, before);
    expect(lines.some((l) => l.type === 'outcome')).toBe(false);
    const history = jsonResult<{ run: { status: string; exitCode: number }; steps: Array<{ step: string; event: string; revision?: string }> }>(
      await belay([...args, '--json', 'history', envelope.result.runId], { cwd: project.dir }),
    );
    expect(history.run).toMatchObject({ exitCode: 0 });
    expect(history.steps.some((s) => s.step === 'down' && s.revision === '0002_t' && s.event === 'end')).toBe(true);
  });
});
