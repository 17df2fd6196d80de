import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { belay, jsonResult } from './support/cli.js';
import { adminQuery, appUrl, cluster, TEST_APP_ROLE } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

interface Restored {
  restore: { strategy: string; message: string; ownersReplaced?: string[] };
}

/** A database made by the superuser with `options`, owned by `owner`. */
async function databaseWith(options: string, owner = TEST_APP_ROLE): Promise<string> {
  const name = `props_${randomBytes(6).toString('hex')}`;
  await adminQuery('postgres', `CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(owner)} TEMPLATE template0 ${options}`);
  return name;
}

const WORDS = "INSERT INTO t VALUES (1, 'a'), (2, 'B'), (3, 'ä'), (4, 'z'), (5, 'é');";

/** Table t with words in it, a full snapshot, the words upper-cased, then `belay restore` of the snapshot. */
async function backupThenRestore(url: string, database: string, strategy: 'swap' | 'in-place'): Promise<{ code: number | null; restore: Restored['restore']; output: string }> {
  const project = await makeProject({ '0001_t.up.sql': `CREATE TABLE t (id int PRIMARY KEY, v text);\n${WORDS}`, '0001_t.down.sql': 'DROP TABLE t;' });
  const args = baseArgs(project, url);
  expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
  const backup = await belay([...args, '--json', 'backup']);
  expect(backup.code, backup.stderr).toBe(0);
  const id = (jsonResult(backup) as { snapshot: { id: string } }).snapshot.id;
  await adminQuery(database, 'UPDATE t SET v = upper(v)');
  const run = await belay([...args, '--json', 'restore', id, '--strategy', strategy, '--yes']);
  return { code: run.code, restore: (jsonResult(run) as Restored).restore, output: run.stdout + run.stderr };
}

const properties = (database: string): Promise<unknown[]> =>
  adminQuery(database, `SELECT pg_encoding_to_char(encoding) AS encoding, datcollate, datctype, datlocprovider::text AS provider, daticulocale,
                               datconnlimit, shobj_description(oid, 'pg_database') AS comment
                          FROM pg_database WHERE datname = current_database()`);

describe('a swap restore makes the new database as the old one was made', () => {
  it('keeps the ICU locale (de-DE), the connection limit and the comment: text sorts as before', async () => {
    const database = await databaseWith("LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8' CONNECTION LIMIT 40");
    await adminQuery('postgres', `COMMENT ON DATABASE ${quoteIdent(database)} IS 'orders; Bestellungen ''de'''`);
    const before = await properties(database);
    const { code, restore, output } = await backupThenRestore(appUrl(database), database, 'swap');
    expect(code, output).toBe(0);
    expect(restore.strategy).toBe('swap');
    expect(restore.message).toMatch(/verified it/);
    expect(await properties(database)).toEqual(before);
    expect(before).toEqual([{ encoding: 'UTF8', datcollate: 'C.UTF-8', datctype: 'C.UTF-8', provider: 'i', daticulocale: 'de-DE', datconnlimit: 40, comment: "orders; Bestellungen 'de'" }]);
    expect((await adminQuery<{ v: string }>(database, 'SELECT v FROM t ORDER BY v')).map((r) => r.v)).toEqual(['a', 'ä', 'B', 'é', 'z']);
  });

  it('a LATIN1 database is restored as LATIN1 and verifies (it was made UTF8, and failed its own verification)', async () => {
    const database = await databaseWith("ENCODING 'LATIN1' LOCALE 'C'");
    const before = await properties(database);
    const { code, restore, output } = await backupThenRestore(appUrl(database), database, 'swap');
    expect(code, output).toBe(0);
    expect(restore.message).toMatch(/verified it/);
    expect(await properties(database)).toEqual(before);
    expect(before).toMatchObject([{ encoding: 'LATIN1', datcollate: 'C', provider: 'c' }]);
    // the C locale sorts by byte: in LATIN1 ä (0xe4) comes before é (0xe9), both after the ASCII letters
    expect((await adminQuery<{ v: string; n: number }>(database, 'SELECT v, octet_length(v) AS n FROM t ORDER BY v'))).toEqual([
      { v: 'B', n: 1 }, { v: 'a', n: 1 }, { v: 'z', n: 1 }, { v: 'ä', n: 1 }, { v: 'é', n: 1 },
    ]);
  });
});

describe('a database whose name is long in bytes (non-ASCII)', () => {
  it('a swap names its quarantine as the server keeps it (63 bytes, the time stamp whole): it exists, and status lists it (the name was cut by the server, and reported uncut)', async () => {
    const database = `${'ä'.repeat(22)}_${randomBytes(6).toString('hex')}`;
    await adminQuery('postgres', `CREATE DATABASE ${quoteIdent(database)} OWNER ${quoteIdent(TEST_APP_ROLE)} TEMPLATE template0`);
    const { code, restore, output } = await backupThenRestore(appUrl(database), database, 'swap');
    expect(code, output).toBe(0);
    const quarantine = (restore as { quarantine?: string }).quarantine!;
    expect(quarantine).toMatch(/^ä+_quarantine_\d{8}t\d{9}z$/);
    expect(Buffer.byteLength(quarantine)).toBeLessThanOrEqual(63);
    expect(await adminQuery('postgres', 'SELECT datname FROM pg_database WHERE datname = $1', [quarantine])).toEqual([{ datname: quarantine }]);
    const status = await belay(['--database-url', appUrl(database), '--json', 'status']);
    expect(status.code, status.stderr).toBe(0);
    expect((jsonResult(status) as { leftovers: Array<{ name: string }> }).leftovers.map((l) => l.name)).toContain(quarantine);
  });
});

describe('who owns the restored objects', () => {
  /** A role that is not a superuser (CREATEDB, owns the database and some objects), member of another role that owns the rest. */
  async function ownedByTwo(): Promise<{ database: string; url: string; role: string; other: string }> {
    const suffix = randomBytes(4).toString('hex');
    const role = `owner_${suffix}`;
    const other = `auditor_${suffix}`;
    await adminQuery('postgres', `CREATE ROLE ${role} LOGIN CREATEDB PASSWORD 'pw-${role}'; CREATE ROLE ${other} NOLOGIN; GRANT ${other} TO ${role}`);
    const database = await databaseWith('', role);
    await adminQuery(database, `ALTER SCHEMA public OWNER TO ${role}; CREATE SCHEMA audit AUTHORIZATION ${other}; CREATE TABLE audit.trail (id int, note text); ALTER TABLE audit.trail OWNER TO ${other}; INSERT INTO audit.trail VALUES (1, 'x')`);
    return { database, url: `postgresql://${role}:pw-${role}@127.0.0.1:${cluster().port}/${database}`, role, other };
  }

  const owners = (database: string): Promise<unknown[]> =>
    adminQuery(database, `SELECT c.oid::regclass::text AS rel, pg_get_userbyid(c.relowner) AS owner FROM pg_class c
                           WHERE c.oid IN ('audit.trail'::regclass, 'public.t'::regclass)
                          UNION ALL SELECT 'schema audit', pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'audit' ORDER BY 1`);

  for (const strategy of ['swap', 'in-place'] as const) {
    it(`${strategy}, as a role that is not a superuser: says that ownership was not restored and whose objects it took`, async () => {
      const { database, url, role, other } = await ownedByTwo();
      const { code, restore, output } = await backupThenRestore(url, database, strategy);
      expect(code, output).toBe(0);
      expect(restore.strategy).toBe(strategy);
      expect(restore.message).toMatch(/verified it/);
      expect(restore.ownersReplaced).toEqual([other]);
      expect(restore.message).toContain(`ownership was not restored: what ${other} owned in the snapshot now belongs to ${role}`);
      expect(await owners(database)).toEqual([{ rel: 'audit.trail', owner: role }, { rel: 'schema audit', owner: role }, { rel: 't', owner: role }]);
      expect(await adminQuery(database, 'SELECT count(*)::int AS n FROM audit.trail')).toEqual([{ n: 1 }]);
    });
  }

  it('swap, as a superuser: every object gets its snapshot owner back', async () => {
    const { database, other } = await ownedByTwo();
    const c = cluster();
    const { code, restore, output } = await backupThenRestore(`postgresql://${c.superuser}@/${database}?host=${encodeURIComponent(c.socketDir)}&port=${c.port}`, database, 'swap');
    expect(code, output).toBe(0);
    expect(await owners(database)).toEqual([{ rel: 'audit.trail', owner: other }, { rel: 'schema audit', owner: other }, { rel: 't', owner: c.superuser }]);
    expect(restore.ownersReplaced).toEqual([]);
    expect(restore.message).not.toContain('ownership');
  });
});
