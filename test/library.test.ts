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
});
