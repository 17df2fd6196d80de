import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { belay } from './support/cli.js';
import { freshDatabase, TEST_APP_ROLE } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

const NEXT =
  `next: public.t is under FORCE ROW LEVEL SECURITY, which binds its owner too, and a fingerprint reads every row, not those a policy shows ${TEST_APP_ROLE}. ` +
  `Give the role BYPASSRLS (as a superuser: ALTER ROLE "${TEST_APP_ROLE}" BYPASSRLS); or, for the run, ALTER TABLE public.t NO FORCE ROW LEVEL SECURITY (FORCE again after it); ` +
  'or leave it out of the fingerprint: integrity.tables.exclude in the config. Nothing was changed.';

describe('a protected table under FORCE ROW LEVEL SECURITY, owned by the (non-superuser) role belay runs as', () => {
  it('backup and rollback --to are refused (exit 4) naming the table and the ways out, not a grant, nor the pg_dump failure that follows from it', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_u.up.sql': 'CREATE TABLE u (id int);',
      '0001_u.down.sql': 'DROP TABLE u;',
      '0002_v.up.sql': 'CREATE TABLE v (id int);',
      '0002_v.down.sql': 'DROP TABLE v;',
    });
    const args = baseArgs(project, db.url);
    await db.appQuery(`CREATE TABLE t (id int PRIMARY KEY, owner text); INSERT INTO t VALUES (1, 'someone else');
      ALTER TABLE t ENABLE ROW LEVEL SECURITY; CREATE POLICY mine ON t USING (owner = current_user)`);
    const up = await belay([...args, 'migrate', 'up']);
    expect(up.code, up.stderr).toBe(0);
    await db.appQuery('ALTER TABLE t FORCE ROW LEVEL SECURITY');

    for (const command of [['backup'], ['rollback', '--to', '0001_u', '--yes']]) {
      const run = await belay([...args, ...command]);
      expect(run.code, run.stderr).toBe(4);
      expect(run.stderr).toContain('row-level security policy for table "t"');
      expect(run.stderr).toContain(NEXT);
      expect(run.stderr).toContain("error: not taken: the fingerprint failed, and the dump is of the fingerprint's snapshot");
      expect(run.stderr).not.toMatch(/SIGTERM|terminated by user|Grant the role SELECT/);
    }
    expect((await readdir(project.backups)).filter((name) => name.endsWith('.dump'))).toEqual([]);
    expect(await db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_u' }, { name: '0002_v' }]);

    // the way out it names
    await db.appQuery('ALTER TABLE t NO FORCE ROW LEVEL SECURITY');
    const backup = await belay([...args, 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
  });
});
