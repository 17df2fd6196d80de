import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

// A second SIGTERM/SIGINT aborts at once, without waiting for the run to undo itself, and says so truthfully:
// exit 12, the run left for `belay recover`, the journal and `status` agreeing.

const REVISIONS: Record<string, string> = {
  '0001_base.up.sql': 'CREATE TABLE base (id int PRIMARY KEY, v text);\nINSERT INTO base SELECT g, md5(g::text) FROM generate_series(1, 500) g;',
  '0001_base.down.sql': 'DROP TABLE base;',
  '0002_a.up.sql': 'CREATE TABLE a (id int);',
  '0002_a.down.sql': 'DROP TABLE a;',
  // its down is slow: the second signal lands while the run undoes it
  '0003_c.up.sql': 'CREATE TABLE c (id int);',
  '0003_c.down.sql': "SELECT pg_sleep(4), 'belay-test slow down';\nDROP TABLE c;",
  // the first signal lands while this runs (the run cancels it and rolls back)
  '0004_slow.up.sql': "SELECT pg_sleep(30), 'belay-test slow up';\nCREATE TABLE slow (id int);",
  '0004_slow.down.sql': 'DROP TABLE slow;',
  '0005_d.up.sql': 'CREATE TABLE d (id int);',
  '0005_d.down.sql': 'DROP TABLE d;',
};

/** Wait until a statement containing `marker` runs in the database (polled, bounded by a count). */
async function running(db: TestDatabase, marker: string): Promise<void> {
  for (let i = 0; i < 6000; i++) {
    const rows = await db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()", [marker]);
    if (rows.length > 0) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never saw a statement with ${marker} run`);
}

const applied = async (db: TestDatabase): Promise<string[]> => (await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => String(r.name));

describe('a second signal', () => {
  for (const json of [true, false]) {
    it(`while \`migrate up --with-backup\` rolls back: exit 12, ${json ? 'the one JSON document' : 'a `next: … belay recover` line'}, the run left interrupted for recover`, async () => {
      const db = await freshDatabase();
      const project = await makeProject(REVISIONS);
      const args = baseArgs(project, db.url);
      expect((await belay([...args, 'migrate', 'up', '--to', '0002'], { cwd: project.dir })).code).toBe(0);

      const run = startBelay([...args, ...(json ? ['--json'] : []), 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
      await running(db, 'belay-test slow up');
      run.child.kill('SIGTERM');
      // the first signal cancelled 0004's up: the run now undoes 0003
      await running(db, 'belay-test slow down');
      run.child.kill('SIGTERM');
      const result = await run.done;
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(12);
      expect(result.signal).toBeNull();

      let runId: string;
      let journalFile: string;
      if (json) {
        const envelope = JSON.parse(result.stdout) as {
          command: string;
          exitCode: number;
          outcome: string;
          message: string;
          next: string;
          journal: string;
          target: { database: string };
          result: { runId: string; outcome: string; exitCode: number; fromRevision: string; toRevision: string; revisions: Array<{ name: string; status: string }>; snapshot: { id: string } | null; failure: Record<string, unknown> };
        };
        expect(envelope).toMatchObject({ command: 'migrate up', exitCode: 12, outcome: 'manual-action-needed' });
        expect(envelope.message).toMatch(/^abandoned at once \(a second SIGTERM\) during "down 0003_c": the run is left where it stands/);
        expect(envelope.next).toMatch(/^Run `belay recover`/);
        expect(envelope.target.database).toContain(db.name);
        expect(envelope.result).toMatchObject({ outcome: 'manual-action-needed', exitCode: 12, fromRevision: '0002_a', toRevision: '0003_c', failure: { abandoned: 'a second SIGTERM', during: 'down 0003_c' } });
        expect(envelope.result.revisions.map((r) => `${r.name} ${r.status}`)).toEqual(['0003_c applied', '0004_slow failed', '0005_d pending']);
        expect(envelope.result.snapshot?.id).toEqual(expect.any(String));
        runId = envelope.result.runId;
        journalFile = envelope.journal;
      } else {
        const lines = result.stdout.trimEnd().split('\n');
        expect(lines[0]).toMatch(/^migrate-up: abandoned at once \(a second SIGTERM\) during "down 0003_c"/);
        expect(lines.at(-2)).toMatch(/^ {2}next: Run `belay recover`/);
        expect(lines.at(-1)).toMatch(/^target belay_app@127\.0\.0\.1:\d+\//);
        journalFile = lines.find((line) => line.startsWith('  journal  '))!.slice('  journal  '.length);
        runId = journalFile.replace(/^.*\//, '').replace(/\.jsonl$/, '');
      }

      // the journal: the abandon noted, durably, and no outcome: the run is unsettled, as after a kill
      const journal = (await readFile(journalFile, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(journal.some((line) => line.type === 'outcome')).toBe(false);
      expect(journal.at(-1)).toMatchObject({ type: 'step', step: 'journal', event: 'note', detail: { abandoned: true, reason: 'a second SIGTERM' } });
      expect(await db.query('SELECT status FROM belay.runs WHERE id = $1', [runId])).toEqual([{ status: 'running' }]);

      const status = jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as { interrupted: { run: { runId: string }; action: string; interruptedAt: string } | null };
      expect(status.interrupted).toMatchObject({ run: { runId }, action: 'down', interruptedAt: 'down 0003_c' });
      expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(4);

      const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
      expect(recover.code, `${recover.stdout}\n${recover.stderr}`).toBe(10);
      expect(await applied(db)).toEqual(['0001_base', '0002_a']);
      expect(await db.query("SELECT to_regclass('c') AS c, to_regclass('slow') AS slow")).toEqual([{ c: null, slow: null }]);
      expect((jsonResult(await belay([...args, '--json', 'status'], { cwd: project.dir })) as { interrupted: unknown }).interrupted).toBeNull();
    }, 120_000);
  }
});

describe('a first signal during a rollback', () => {
  it('says that the rollback goes on to its end, and it does: exit 0, every down run (it said it was "rolling back what this run did" and would stop)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0003'], { cwd: project.dir })).code).toBe(0);

    const run = startBelay([...args, 'rollback', '--to', '0001', '--yes', '--no-backup'], { cwd: project.dir });
    await running(db, 'belay-test slow down');
    run.child.kill('SIGINT');
    const result = await run.done;
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stderr).toContain(
      'SIGINT: a rollback stops here if its downs have not begun (nothing changed: exit 4); once they have, it is not stopped halfway: its downs, hooks and checks go on to their end (a snapshot or a restore still running is stopped, and the result says where that leaves the database); send it again to abort at once and leave it for `belay recover`',
    );
    expect(result.stderr).not.toMatch(/rolling back what this run did|next safe point/);
    expect(await applied(db)).toEqual(['0001_base']);
  }, 120_000);
});
