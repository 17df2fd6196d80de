import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { belay, cleanEnv } from './support/cli.js';
import { adminQuery, cluster } from './support/pg.js';
import { makeProject } from './support/project.js';

const PASSWORD = 'rehearse-cluster-pw';
const BASE = {
  '0001_t1.up.sql': 'CREATE TABLE t1 (id int PRIMARY KEY);',
  '0001_t1.down.sql': 'DROP TABLE t1;',
};

/** Roles made for one test (the cluster is shared): its login role and those its revisions make, dropped afterwards. */
const made: string[] = [];
const databases: string[] = [];

afterEach(async () => {
  for (const database of databases.splice(0)) await adminQuery('postgres', `DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`);
  for (const role of made.splice(0).reverse()) await adminQuery('postgres', `DROP ROLE IF EXISTS ${quoteIdent(role)}`);
});

const unique = (prefix: string): string => {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  made.push(name);
  return name;
};

/** A database at 0001 owned by a role that may make roles (as a deploy role often may), the project, and a CLI run as that role. */
async function atFirstRevision(files: Record<string, string>) {
  const owner = unique('rh_owner');
  await adminQuery('postgres', `CREATE ROLE ${quoteIdent(owner)} LOGIN CREATEDB CREATEROLE PASSWORD '${PASSWORD}'`);
  const database = `rh_${randomBytes(5).toString('hex')}`;
  databases.push(database);
  await adminQuery('postgres', `CREATE DATABASE ${quoteIdent(database)} OWNER ${quoteIdent(owner)}`);
  const project = await makeProject({ ...BASE, ...files });
  const env = cleanEnv({ DATABASE_URL: `postgresql://${owner}:${PASSWORD}@127.0.0.1:${cluster().port}/${database}` });
  const run = (...args: string[]) => belay(['--migrations', project.migrations, '--backups', project.backups, ...args], { cwd: project.dir, env });
  expect((await run('migrate', 'up', '--to', '0001')).code).toBe(0);
  return { run, database };
}

const roleExists = async (role: string): Promise<boolean> => (await adminQuery('postgres', 'SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).length > 0;

describe('belay rehearse on a real server, and what lies beside its throwaway database', () => {
  it('a revision that makes a role and whose down drops it passes and leaves no role; migrate up then applies it (the role stayed: migrate up ended 10, role already exists)', async () => {
    const reader = unique('rh_reader');
    const { run } = await atFirstRevision({
      '0003_role.up.sql': `CREATE ROLE ${reader} NOLOGIN;\nGRANT SELECT ON t1 TO ${reader};`,
      '0003_role.down.sql': `REVOKE SELECT ON t1 FROM ${reader};\nDROP ROLE ${reader};`,
    });
    const rehearsal = await run('rehearse');
    expect(rehearsal.code, rehearsal.stderr).toBe(0);
    expect(rehearsal.stdout).toContain('passed');
    expect(await roleExists(reader)).toBe(false);
    const deploy = await run('migrate', 'up');
    expect(deploy.code, deploy.stderr).toBe(0);
    expect(await roleExists(reader)).toBe(true);
  });

  it('a down that forgets DROP ROLE fails naming the role; the role its up made is named with the DROP ROLE to run, exit 12, and a role that was there before is never dropped', async () => {
    const reader = unique('rh_reader');
    const existing = unique('rh_existing');
    await adminQuery('postgres', `CREATE ROLE ${quoteIdent(existing)} NOLOGIN`);
    const { run } = await atFirstRevision({
      '0003_role.up.sql': `CREATE ROLE ${reader} NOLOGIN;\nGRANT SELECT ON t1 TO ${reader};`,
      '0003_role.down.sql': `REVOKE SELECT ON t1 FROM ${reader};`,
    });
    const rehearsal = await run('--json', 'rehearse');
    expect(rehearsal.code, rehearsal.stderr).toBe(12);
    const doc = JSON.parse(rehearsal.stdout) as { message: string; next: string; result: { details: { cases: Array<{ direction: string; revision: string; ok: boolean; message?: string }> } } };
    const down = doc.result.details.cases.find((c) => c.direction === 'down' && c.revision === '0003_role');
    expect(down?.ok).toBe(false);
    expect(down?.message).toContain(`the down left role ${reader} on the server`);
    expect(doc.message).toContain(`left on the server what dropping its throwaway does not remove: role ${reader}`);
    expect(doc.message).not.toContain(existing);
    expect(doc.next).toContain(`DROP ROLE "${reader}";`);
    expect(doc.next).not.toMatch(/nothing real was touched/i);
    // told, not done: belay drops no role itself
    expect(await roleExists(reader)).toBe(true);
    expect(await roleExists(existing)).toBe(true);
  });
});
