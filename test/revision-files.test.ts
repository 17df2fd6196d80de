import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

describe('revision files belay cannot read', () => {
  it.each([
    { what: 'a broken link', code: 'ENOENT', make: (file: string) => symlink(`${file}.gone`, file), next: /next: Create the revision file \S+, or fix the link/ },
    { what: 'a folder', code: 'EISDIR', make: (file: string) => mkdir(file), next: /next: Replace the folder with the revision file \S+ itself/ },
  ])('$what named like a revision file: exit 2 naming the file and what to do about that cause, nothing touched', async ({ code, make, next }) => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const file = join(project.migrations, '0004_tags.down.sql');
    await writeFile(join(project.migrations, '0004_tags.up.sql'), 'CREATE TABLE tags (id int);');
    await make(file);
    for (const command of [['migrate', 'up'], ['status']]) {
      const run = await belay([...baseArgs(project, db.url), ...command]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(`cannot read the revision file ${file}: ${code}`);
      expect(run.stderr).toMatch(next);
      expect(run.stderr).toMatch(/Or move it out of the migrations folder/);
    }
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
  });
});
