import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BelayError, migrateUp, plan, status } from '../src/index.js';
import { cleanEnv, ROOT } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { GOOD_REVISIONS, makeProject } from './support/project.js';

describe('the library API', () => {
  it('is what the CLI calls: results are returned, refusals thrown with their exit code', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const options = { cwd: project.dir, databaseUrl: db.url, migrations: project.migrations, backups: project.backups, env: {} };
    const events: string[] = [];
    const result = await migrateUp({ ...options, to: '0002', onEvent: (e) => void (e.type === 'step-end' && events.push(e.step)) });
    expect(result).toMatchObject({ exitCode: 0, outcome: 'ok', toRevision: '0002_profiles' });
    expect(events).toContain('apply');
    expect((await status(options)).pending).toEqual(['0003_accounts_name']);
    expect((await plan({ ...options, to: '0001' })).direction).toBe('down');
    const refusal = await migrateUp({ ...options, to: '0099' }).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(BelayError);
    expect((refusal as BelayError).exitCode).toBe(2);
  });

  it('a run that dies of an error that is not a refusal (a bug) before it changed anything ends exit 1, not unfinished', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const options = { cwd: project.dir, databaseUrl: db.url, migrations: project.migrations, backups: project.backups, env: {} };
    const thrown = await migrateUp({
      ...options,
      onEvent: (e) => {
        if (e.type === 'step-start' && e.step === 'preflight') throw new TypeError("Cannot read properties of undefined (reading 'slice')");
      },
    }).catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(TypeError);
    const [file] = await readdir(join(project.backups, 'journal'));
    const last = JSON.parse((await readFile(join(project.backups, 'journal', file!), 'utf8')).trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(last).toMatchObject({ type: 'outcome', status: 'internal-error', exitCode: 1, toRevision: null, summary: { message: "Cannot read properties of undefined (reading 'slice')" } });
    expect((await status(options)).lastRun).toMatchObject({ command: 'migrate-up', status: 'internal-error', exitCode: 1 });
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
    // nothing left to settle: the next run goes ahead
    expect(await migrateUp(options)).toMatchObject({ exitCode: 0, outcome: 'ok' });
  });
});

describe('a module revision\'s stray error in a library caller\'s later run', () => {
  it('is told against the revision and the run it came from: the later run\'s module it did not come from applies', async () => {
    const [dbA, dbB] = await Promise.all([freshDatabase(), freshDatabase()]);
    // A's timer fires while B's step waits on the server
    const a = await makeProject({ '0001_a.mjs': "export async function up(ctx) { await ctx.sql('CREATE TABLE a (id int)'); setTimeout(() => { throw new Error('thrown by a'); }, 1000); }\nexport async function down(ctx) { await ctx.sql('DROP TABLE a'); }\n" });
    const b = await makeProject({ '0001_b.mjs': "export async function up(ctx) { await ctx.sql('SELECT pg_sleep(3)'); await ctx.sql('CREATE TABLE b (id int)'); }\nexport async function down(ctx) { await ctx.sql('DROP TABLE b'); }\n" });
    // in a process of its own: the test runner's handlers of uncaught errors would take it for the test's
    const script = join(a.dir, 'caller.mjs');
    await writeFile(
      script,
      `import { migrateUp } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/index.js')).href)};
const notes = { a: [], b: [] };
const run = (name, project, url) => migrateUp({ cwd: project.dir, databaseUrl: url, migrations: project.migrations, backups: project.backups, env: {},
  onEvent: (e) => void (e.type === 'note' && e.message.startsWith('warning: ') && notes[name].push(e.revision + ': ' + e.message)) });
const ranA = await run('a', ${JSON.stringify(a)}, ${JSON.stringify(dbA.url)});
const ranB = await run('b', ${JSON.stringify(b)}, ${JSON.stringify(dbB.url)});
console.log(JSON.stringify({ a: ranA.exitCode, b: ranB.exitCode, message: ranB.message ?? null, notes }));
`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, [script], { env: cleanEnv(), timeout: 60_000 });
    const told = JSON.parse(stdout) as { a: number; b: number; message: string | null; notes: { a: string[]; b: string[] } };

    expect(told, stdout).toMatchObject({ a: 0, b: 0, notes: { b: [] } });
    expect(told.notes.a).toEqual(['0001_a: warning: an error thrown where nothing could catch it, after its up ended, by revision 0001_a: thrown by a']);
    expect(await dbB.query("SELECT to_regclass('b')::text AS b")).toEqual([{ b: 'b' }]);
  }, 60_000);
});
