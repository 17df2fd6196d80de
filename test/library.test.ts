import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BelayError, migrateUp, plan, status } from '../src/index.js';
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
