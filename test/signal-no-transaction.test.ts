import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, startBelay } from './support/cli.js';
import { adminQuery, freshDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

// A revision outside a transaction that the first SIGTERM cuts off between its statements has applied some of them:
// like one that fails on its own there, its down cannot be trusted to undo it, and the run ends 12 naming it.

const REVISIONS: Record<string, string> = {
  '0001_accounts.up.sql': 'CREATE TABLE accounts (id int PRIMARY KEY);',
  '0001_accounts.down.sql': 'DROP TABLE accounts;',
  '0002_nt.up.sql': '-- belay:no-transaction\nCREATE TABLE a (id int);\nSELECT pg_sleep(600);\nCREATE TABLE b (id int);',
  '0002_nt.down.sql': '-- belay:no-transaction\nDROP TABLE b;\nDROP TABLE a;',
};

type Line = Record<string, unknown>;

const journalFiles = async (project: TestProject): Promise<string[]> => (await readdir(join(project.backups, 'journal')).catch(() => [] as string[])).filter((f) => f.endsWith('.jsonl'));

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

/** Poll until `done` answers true (bounded by a count). */
async function until(what: string, done: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never saw ${what}`);
}

describe('the first SIGTERM inside a no-transaction revision', () => {
  it('between its statements: partly applied, exit 12 naming it, its down not run (exit 10 "rolled back", table a left)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const earlier = new Set(await journalFiles(project));
    const run = startBelay([...args, '--json', 'migrate', 'up', '--yes'], { cwd: project.dir });
    await until('the sleep between CREATE TABLE a and b', async () => {
      const rows = await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE '%pg_sleep(600)%' AND application_name LIKE 'belay migrate-up % work'", [db.name]);
      return rows.length > 0;
    });
    run.child.kill('SIGTERM');
    const result = await run.done;

    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(12);
    const envelope = JSON.parse(result.stdout) as { outcome: string; message: string; next: string; result: Line };
    expect(envelope).toMatchObject({ outcome: 'manual-action-needed', exitCode: 12, result: { revisions: [{ name: '0002_nt', status: 'failed' }], failure: { revision: '0002_nt', line: 3, sqlstate: '57014', transactional: false } } });
    expect(envelope.message).toMatch(/^interrupted by a signal; a revision that runs outside a transaction failed halfway: 0002_nt may be partly applied, which its down cannot undo; but no snapshot was taken to restore/);
    expect(envelope.next).toMatch(/^The database is at 0001_accounts and may be damaged\. Restore an earlier belay snapshot/);
    // what ran before the signal stays; nothing after it ran, and no down was sent
    expect(await db.query("SELECT to_regclass('a')::text AS a, to_regclass('b')::text AS b")).toEqual([{ a: 'a', b: null }]);
    expect((await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => r.name)).toEqual(['0001_accounts']);

    const lines = await journalLines(project, earlier);
    expect(lines.filter((l) => l.type === 'outcome')).toMatchObject([{ status: 'manual-action-needed', exitCode: 12 }]);
    expect(lines.some((l) => l.type === 'step' && l.step === 'down' && l.event === 'start')).toBe(false);
    expect(lines.find((l) => l.type === 'step' && l.step === 'apply' && l.event === 'end')).toMatchObject({ revision: '0002_nt', outcome: 'failed' });
    const history = await belay([...args, 'history'], { cwd: project.dir });
    expect(history.stdout).toMatch(/migrate-up\s+manual-action-needed\s+exit 12/);
    expect(history.stdout).not.toMatch(/rolled-back/);
  }, 90_000);
});
