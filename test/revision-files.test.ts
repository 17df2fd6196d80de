import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

describe('revision files belay cannot read', () => {
  it.each([
    { what: 'a broken link', code: 'ENOENT', make: (file: string) => symlink(`${file}.gone`, file) },
    { what: 'a folder', code: 'EISDIR', make: (file: string) => mkdir(file) },
  ])('$what named like a revision file: exit 2 naming the file, nothing touched', async ({ code, make }) => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const file = join(project.migrations, '0004_tags.down.sql');
    await writeFile(join(project.migrations, '0004_tags.up.sql'), 'CREATE TABLE tags (id int);');
    await make(file);
    for (const command of [['migrate', 'up'], ['status']]) {
      const run = await belay([...baseArgs(project, db.url), ...command]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(`cannot read the revision file ${file}: ${code}`);
      expect(run.stderr).toMatch(/next: .*readable file/);
    }
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
  });
});
