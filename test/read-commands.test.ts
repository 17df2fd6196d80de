import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, startBelay, type CliRun } from './support/cli.js';
import { pollUntil } from './support/kill.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

/**
 * `belay history` lists what there is to see, says when it shows less, and
 * finds a run by whatever id belay printed for it (the lock holder's session
 * names the last 12 hex digits of its run's id).
 */

interface Envelope {
  exitCode: number;
  message: string;
  next: string | null;
  result: unknown;
}

type Run = Record<string, unknown> & { runId: string };

const envelope = (run: CliRun): Envelope => JSON.parse(run.stdout) as Envelope;

const journaledIds = async (project: TestProject): Promise<string[]> =>
  (await readdir(join(project.backups, 'journal'))).map((file) => file.replace(/\.jsonl$/, '')).sort().reverse();

const sleeping = (db: TestDatabase, what: string) => async (): Promise<boolean> =>
  (await db.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%${what}%' AND query NOT LIKE '%pg_stat_activity%'`)).length > 0;

describe('history', () => {
  it('lists the newest 50 runs and says how many more there are; --limit N the newest N, --limit 0 every one; a run found by a prefix or a suffix of its id', { timeout: 240_000 }, async () => {
    const db = await freshDatabase();
    const project = await makeProject({ '0001_a.up.sql': 'CREATE TABLE a (id int);', '0001_a.down.sql': 'DROP TABLE a;' });
    const args = baseArgs(project, db.url);
    const cli = (...rest: string[]): Promise<CliRun> => belay([...args, ...rest], { cwd: project.dir });
    // one run the database records, then runs with nothing to do, which only their journal file tells of
    expect((await cli('migrate', 'up')).code).toBe(0);
    for (let i = 0; i < 54; i++) expect((await cli('migrate', 'up')).code).toBe(0);
    const ids = await journaledIds(project);
    expect(ids).toHaveLength(55);

    const shown = await cli('--json', 'history');
    expect(shown.code, shown.stdout).toBe(0);
    const cut = envelope(shown);
    expect((cut.result as Run[]).map((r) => r.runId)).toEqual(ids.slice(0, 50));
    expect(cut.message).toBe('the newest 50 of 55 runs');
    expect(cut.next).toContain('`belay history --limit 0` lists every run');
    const text = (await cli('history')).stdout.trimEnd().split('\n');
    expect(text.filter((line) => /^[0-9a-f]{8}-/.test(line))).toHaveLength(50);
    expect(text.slice(-2)).toEqual(['(the newest 50 of 55 runs)', expect.stringMatching(/^ *next: `belay history --limit 0` lists every run/)]);

    const every = envelope(await cli('--json', 'history', '--limit', '0'));
    expect((every.result as Run[]).map((r) => r.runId)).toEqual(ids);
    expect(every).toMatchObject({ message: '55 run(s)', next: null });
    // the oldest, the one the database records, made whole as before
    expect((every.result as Run[]).at(-1)).toMatchObject({ command: 'migrate-up', status: 'ok', toRevision: '0001_a' });
    const three = envelope(await cli('--json', 'history', '--limit', '3', '--all'));
    expect((three.result as Run[]).map((r) => r.runId)).toEqual(ids.slice(0, 3));
    expect(three.message).toBe('the newest 3 of 55 runs');
    const bad = await cli('--json', 'history', '--limit', 'all');
    expect(bad.code).toBe(2);
    expect(envelope(bad).message).toContain('--limit takes a whole number');

    // by the last 12 hex digits of its id, as the lock holder's session names it; by a prefix as before
    const oldest = ids.at(-1)!;
    const bySuffix = await cli('--json', 'history', oldest.slice(-12));
    expect(bySuffix.code, bySuffix.stdout).toBe(0);
    expect((envelope(bySuffix).result as { run: Run }).run.runId).toBe(oldest);
    expect((envelope(await cli('--json', 'history', oldest.slice(0, 30))).result as { run: Run }).run.runId).toBe(oldest);
    // 55 ids, 16 hex digits: some last digit ends two of them, which is then ambiguous (exit 2), each named
    const last = [...'0123456789abcdef'].find((digit) => ids.filter((id) => id.endsWith(digit)).length > 1)!;
    const ambiguous = await cli('--json', 'history', last);
    expect(ambiguous.code).toBe(2);
    expect(envelope(ambiguous).message).toMatch(new RegExp(`^run ${last} is ambiguous: `));
    for (const id of ids.filter((i) => i.endsWith(last))) expect(envelope(ambiguous).message).toContain(id);
    // a run id starts with a time: a short prefix is ambiguous too
    expect((await cli('history', oldest.slice(0, 4))).code).toBe(2);
  });
});

describe('the lock holder belay names is a run `belay history` finds', () => {
  const holderOf = (refused: CliRun): { suffix: string; runId: string | undefined } => {
    const { message } = envelope(refused);
    return { suffix: /"belay migrate-up ([0-9a-f]{12})"/.exec(message)![1]!, runId: /, run ([0-9a-f-]{36}) \(/.exec(message)?.[1] };
  };

  it.each([
    ['inside a revision, journaled in the database too', "SELECT pg_sleep(30) AS held_in_revision;\nCREATE TABLE a (id int);", {}],
    ['in its health baseline, before it wrote anything in the database', 'CREATE TABLE a (id int);', { health: { sql: [{ name: 'slow', query: 'SELECT pg_sleep(30) AS held_in_baseline', expect: 'some-rows' }] } }],
  ])('held %s', async (_when, up, config) => {
    const db = await freshDatabase();
    const project = await makeProject({ '0001_a.up.sql': up, '0001_a.down.sql': 'DROP TABLE a;' }, config);
    const args = baseArgs(project, db.url);
    const cli = (...rest: string[]): Promise<CliRun> => belay([...args, ...rest], { cwd: project.dir });
    const holding = startBelay([...args, 'migrate', 'up'], { cwd: project.dir });
    await pollUntil(sleeping(db, 'AS held_in_'), 'the run holding the lock asleep');
    const [runId] = await journaledIds(project);

    const refused = await cli('--json', 'migrate', 'up');
    expect(refused.code, refused.stdout).toBe(3);
    const holder = holderOf(refused);
    expect(runId!.endsWith(holder.suffix)).toBe(true);
    expect(holder.runId).toBe(runId);
    const found = await cli('--json', 'history', holder.suffix);
    expect(found.code, found.stdout).toBe(0);
    expect((envelope(found).result as { run: Run }).run).toMatchObject({ runId, command: 'migrate-up', status: 'running' });

    holding.child.kill('SIGINT');
    await holding.done;
  });
});
