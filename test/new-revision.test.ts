import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

describe('belay new', () => {
  it('scaffolds the next number in the folder\'s width, SQL or TypeScript, and the result runs', async () => {
    const project = await makeProject(GOOD_REVISIONS);
    const sql = await belay(['--migrations', project.migrations, 'new', 'Add user email!']);
    expect(sql.code, sql.stderr).toBe(0);
    expect(sql.stdout).toContain('created 0004_add_user_email');
    const ts = await belay(['--migrations', project.migrations, '--json', 'new', 'backfill', '--ts']);
    expect(jsonResult(ts).name).toBe('0005_backfill');
    expect((await readdir(project.migrations)).filter((f) => f.startsWith('0004') || f.startsWith('0005')).sort()).toEqual([
      '0004_add_user_email.down.sql',
      '0004_add_user_email.up.sql',
      '0005_backfill.ts',
    ]);
    const db = await freshDatabase();
    const up = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up']);
    expect(up.code, up.stderr).toBe(0);
    expect(jsonResult(up).toRevision).toBe('0005_backfill');
    expect((await belay(['--migrations', project.migrations, 'new', '!!!'])).code).toBe(2);
  });
});
