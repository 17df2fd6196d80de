import { chmod, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { belay, cleanEnv } from './support/cli.js';
import { cluster, freshDatabase, TEST_APP_PASSWORD, TEST_APP_ROLE } from './support/pg.js';
import { makeProject } from './support/project.js';

/** The password-less URL of the test database: the password must come from elsewhere. */
function bareUrl(database: string): string {
  return `postgresql://${TEST_APP_ROLE}@127.0.0.1:${cluster().port}/${database}`;
}

/** `belay backup` runs pg_dump as well as belay's own sessions: both must find the password. */
async function backupWith(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string; snapshots: string[] }> {
  const project = await makeProject({});
  const run = await belay(['--migrations', project.migrations, '--backups', project.backups, 'backup'], { env: cleanEnv(env) });
  const snapshots = (await readdir(project.backups).catch(() => [])).filter((file) => file.endsWith('.manifest.json'));
  return { code: run.code, stderr: run.stderr, snapshots };
}

describe('connection resolution, as libpq does it', () => {
  it('a URL without a password takes PGPASSWORD', async () => {
    const db = await freshDatabase();
    const run = await backupWith({ DATABASE_URL: bareUrl(db.name), PGPASSWORD: TEST_APP_PASSWORD });
    expect(run.code, run.stderr).toBe(0);
    expect(run.snapshots).toHaveLength(1);
    expect(run.stderr).not.toContain(TEST_APP_PASSWORD);
  });

  it('a URL without a password takes it from PGPASSFILE', async () => {
    const db = await freshDatabase();
    const dir = await mkdtemp(join(tmpdir(), 'belay-passfile-'));
    const passfile = join(dir, 'pgpass');
    await writeFile(passfile, `127.0.0.1:${cluster().port}:*:${TEST_APP_ROLE}:${TEST_APP_PASSWORD}\n`);
    await chmod(passfile, 0o600);
    const run = await backupWith({ DATABASE_URL: bareUrl(db.name), PGPASSFILE: passfile });
    expect(run.code, run.stderr).toBe(0);
    expect(run.snapshots).toHaveLength(1);
  });

  it('the libpq variables alone name the target', async () => {
    const db = await freshDatabase();
    const run = await backupWith({
      PGHOST: '127.0.0.1',
      PGPORT: String(cluster().port),
      PGUSER: TEST_APP_ROLE,
      PGDATABASE: db.name,
      PGPASSWORD: TEST_APP_PASSWORD,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.snapshots).toHaveLength(1);
  });

  it('with no password anywhere it exits 2, writes nothing and says where a password goes', async () => {
    const db = await freshDatabase();
    const run = await backupWith({ DATABASE_URL: bareUrl(db.name), PGPASSFILE: '/dev/null' });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/next: .*password/i);
    expect(run.snapshots).toEqual([]);
  });

  it('a role without CONNECT on the database: exit 2 with the GRANT that lets it, not "check that the server is running"', async () => {
    const db = await freshDatabase();
    await db.query(`REVOKE CONNECT ON DATABASE ${db.name} FROM PUBLIC, ${TEST_APP_ROLE}`);
    const run = await backupWith({ DATABASE_URL: bareUrl(db.name), PGPASSWORD: TEST_APP_PASSWORD });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`permission denied for database "${db.name}"`);
    expect(run.stderr).toMatch(new RegExp(`next: Role ${TEST_APP_ROLE} may not connect to ${db.name}: .*GRANT CONNECT ON DATABASE ${quoteIdent(db.name)} TO ${quoteIdent(TEST_APP_ROLE)};`));
    expect(run.snapshots).toEqual([]);
  });
});
