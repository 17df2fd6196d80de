import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { belay } from './support/cli.js';
import { adminQuery, freshDatabase, TEST_APP_PASSWORD, TEST_APP_ROLE } from './support/pg.js';
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

describe("a role's own timeouts (ALTER ROLE … SET statement_timeout) do not apply to belay's sessions", () => {
  it('a restore by a role whose statement_timeout is 1 ms ends 0', async () => {
    const role = `stmt_${randomBytes(4).toString('hex')}`;
    await adminQuery('postgres', `CREATE ROLE ${role} LOGIN CREATEDB PASSWORD '${TEST_APP_PASSWORD}'`);
    const db = await freshDatabase();
    await db.query(`ALTER DATABASE ${db.name} OWNER TO ${role}`);
    const url = db.url.replace(`${TEST_APP_ROLE}:`, `${role}:`);
    const project = await makeProject(GOOD_REVISIONS);
    const args = baseArgs(project, url);
    const up = await belay([...args, 'migrate', 'up']);
    expect(up.code, up.stderr).toBe(0);
    const backup = await belay([...args, '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query('DELETE FROM accounts WHERE id > 10');
    await adminQuery('postgres', `ALTER ROLE ${role} SET statement_timeout = '1ms'; ALTER ROLE ${role} SET idle_in_transaction_session_timeout = '1ms'`);
    const run = await belay([...args, 'restore', id, '--yes']);
    expect(run.code, run.stderr).toBe(0);
    expect(await db.query('SELECT count(*)::int AS n FROM accounts')).toEqual([{ n: 500 }]);
    expect(await besides(db.name)).toHaveLength(1);
  });
});

describe('a role at its connection limit', () => {
  it('is told to raise the limit or end sessions, not to check that the server runs (exit 2)', async () => {
    const role = `limit_${randomBytes(4).toString('hex')}`;
    await adminQuery('postgres', `CREATE ROLE ${role} LOGIN PASSWORD '${TEST_APP_PASSWORD}' CONNECTION LIMIT 0`);
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const run = await belay([...baseArgs(project, db.url.replace(`${TEST_APP_ROLE}:`, `${role}:`)), 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`too many connections for role "${role}"`);
    expect(run.stderr).toContain(`ALTER ROLE "${role}" CONNECTION LIMIT n`);
    expect(run.stderr).toContain('End sessions that are not needed (pg_stat_activity)');
    expect(run.stderr).not.toContain('Check that the server is running');
  });
});
