import { describe, expect, it } from 'vitest';
import { belay } from './support/cli.js';
import { adminQuery, freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

/** The databases named `name_…`: what a swap restore would leave (a quarantine, a restored copy). */
const besides = async (name: string): Promise<string[]> =>
  (await adminQuery<{ datname: string }>('postgres', "SELECT datname FROM pg_database WHERE datname LIKE $1 || '\\_%'", [name])).map((row) => row.datname);

describe('a database its role cannot write (default_transaction_read_only)', () => {
  it('every changing command refuses before touching it (exit 4), naming the setting', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const args = baseArgs(project, db.url);
    const up = await belay([...args, 'migrate', 'up', '--to', '0002']);
    expect(up.code, up.stderr).toBe(0);
    await db.query(`ALTER DATABASE ${db.name} SET default_transaction_read_only = on`);
    const runs = [
      ['migrate', 'up', '--with-backup'],
      ['backup'],
      ['rollback', '--to', '0001', '--yes'],
    ];
    for (const command of runs) {
      const run = await belay([...args, ...command]);
      expect(run.code, `${command.join(' ')}: ${run.stderr}`).toBe(4);
      expect(run.stderr).toContain(`${db.name} is read-only for role belay_app (default_transaction_read_only = on, set on the database or the role)`);
      expect(run.stderr).toContain(`ALTER DATABASE "${db.name}" SET default_transaction_read_only = off`);
      expect(run.stderr).toContain('Nothing was changed.');
    }
    expect(await besides(db.name)).toEqual([]);
    expect(await db.query("SELECT name FROM belay.migrations ORDER BY name")).toEqual([{ name: '0001_accounts' }, { name: '0002_profiles' }]);
    expect(await db.query("SELECT to_regclass('profiles') IS NOT NULL AS there")).toEqual([{ there: true }]);
  });
});
