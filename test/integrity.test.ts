import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkIntegrity } from '../src/integrity/check-integrity.js';
import { compareFingerprints } from '../src/integrity/compare.js';
import { describeDataAtRisk, measureDownsAtRisk } from '../src/integrity/data-at-risk.js';
import { fingerprintTables, type Fingerprint } from '../src/integrity/fingerprint.js';
import { selectProtectedTables } from '../src/integrity/table-selection.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';

let db: TestDatabase;
let client: pg.Client;

const STRICT = { mode: 'strict' as const, tables: { include: ['t'], exclude: [] }, invariants: [] };

async function fingerprint(perColumn: boolean | ReadonlySet<string> = true): Promise<Fingerprint> {
  return fingerprintTables(client, await selectProtectedTables(client, { include: ['t'], exclude: [] }), { perColumn });
}

/** A fresh copy of the seeded table for each comparison. */
async function resetTable(): Promise<void> {
  await client.query('DROP TABLE IF EXISTS t; CREATE TABLE t AS SELECT * FROM seed_t');
}

async function changes(mutation: string, perColumn = true): Promise<boolean> {
  await resetTable();
  const before = await fingerprint(perColumn);
  await client.query(mutation);
  return compareFingerprints(before, await fingerprint(perColumn), 'same-schema').length > 0;
}

describe('integrity fingerprints', () => {
  beforeAll(async () => {
    db = await freshDatabase();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    await client.query("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)");
    await client.query(`CREATE TABLE seed_t (id int, a int, b int, note text, doc json, pos point, tags int[], amount numeric, at timestamptz, raw bytea, uid uuid, j jsonb, d date)`);
    await client.query(`INSERT INTO seed_t SELECT g, g % 7, g % 5, CASE WHEN g % 4 = 0 THEN NULL ELSE 'ünïcødé ' || g END,
      json_build_object('g', g), point(g, -g), ARRAY[g, g + 1], g * 1.5, timestamptz '2025-01-01' + g * interval '1 hour',
      decode(md5(g::text), 'hex'), md5(g::text)::uuid, jsonb_build_object('k', g % 3), date '2024-01-01' + g FROM generate_series(1, 1000) g`);
  });
  afterAll(async () => client?.end());

  it.each([
    ['a value changes', "UPDATE t SET note = 'changed' WHERE id = 10"],
    ['a NULL appears', 'UPDATE t SET a = NULL WHERE id = 11'],
    ['a NULL goes', "UPDATE t SET note = 'was null' WHERE id = 12"],
    ['two values swap columns', 'UPDATE t SET a = b, b = a WHERE id = 13 AND a <> b'],
    ['two rows swap values in one column', 'UPDATE t SET note = CASE id WHEN 14 THEN (SELECT note FROM t WHERE id = 15) ELSE (SELECT note FROM t WHERE id = 14) END WHERE id IN (14, 15)'],
    ['a row is deleted', 'DELETE FROM t WHERE id = 16'],
    ['a row is duplicated', 'INSERT INTO t SELECT * FROM t WHERE id = 17'],
    ['a json value changes', "UPDATE t SET doc = '{\"g\": 0}' WHERE id = 18"],
    ['a point moves', 'UPDATE t SET pos = point(0, 0) WHERE id = 19'],
    ['a duplicated pair is changed together', 'INSERT INTO t SELECT * FROM t WHERE id = 20; UPDATE t SET amount = 0 WHERE id = 20'],
  ])('changes when %s', async (_what, mutation) => {
    expect(await changes(mutation)).toBe(true);
    expect(await changes(mutation, false)).toBe(true);
  });

  it('stays the same when rows are only reordered', async () => {
    expect(await changes('CREATE TEMP TABLE keep AS SELECT * FROM t ORDER BY random(); DELETE FROM t; INSERT INTO t SELECT * FROM keep ORDER BY id DESC')).toBe(false);
  });

  it('compares only the columns that exist before and after in common-columns mode', async () => {
    await resetTable();
    const before = await fingerprint(true);
    await client.query('ALTER TABLE t DROP COLUMN doc');
    expect(compareFingerprints(before, await fingerprint(true), 'common-columns')).toEqual([]);
    expect(compareFingerprints(before, await fingerprint(true), 'same-schema')).not.toEqual([]);
    await client.query("UPDATE t SET note = 'x' WHERE id = 30");
    const differences = compareFingerprints(before, await fingerprint(true), 'common-columns');
    expect(differences.map((d) => d.message)).toEqual(['values in public.t.note changed']);
  });

  it('selects tables by schema.table globs, never belay\'s own', async () => {
    await db.appQuery('CREATE SCHEMA app; CREATE TABLE app.a (id int); CREATE TABLE app.audit (id int); CREATE SCHEMA belay; CREATE TABLE belay.runs (id int)');
    const all = await selectProtectedTables(client, { include: ['*.*'], exclude: ['app.aud*'] });
    expect(all.map((t) => `${t.schema}.${t.table}`)).toEqual(['app.a', 'public.seed_t', 'public.t']);
  });

  it('hashes each column once per row whatever is asked: the row hash is the same with or without per-column sums, which only the tables asked for get', async () => {
    await resetTable();
    await client.query('DROP TABLE IF EXISTS t2; CREATE TABLE t2 AS SELECT * FROM seed_t');
    const tables = await selectProtectedTables(client, { include: ['t', 't2'], exclude: [] });
    const rowOnly = await fingerprintTables(client, tables, { perColumn: false });
    const some = await fingerprintTables(client, tables, { perColumn: new Set(['public.t2']) });
    expect(some.perColumn).toBe(true);
    for (const key of ['public.t', 'public.t2']) {
      expect(some.tables[key]!.rowHash).toBe(rowOnly.tables[key]!.rowHash);
      expect(some.tables[key]!.rowCount).toBe('1000');
    }
    expect(Object.values(some.tables['public.t']!.columns).every((c) => c.hash === undefined)).toBe(true);
    expect(Object.values(some.tables['public.t2']!.columns).every((c) => c.hash !== undefined)).toBe(true);
    await client.query('DROP TABLE t2');
  });

  it('an empty table has one fingerprint, read or not: never written (no pages, not read) and emptied (pages, read) agree, per column too', async () => {
    await client.query('DROP TABLE IF EXISTS never, emptied; CREATE TABLE never (LIKE seed_t); CREATE TABLE emptied AS SELECT * FROM seed_t; DELETE FROM emptied');
    const { rows } = await client.query<{ never: string; emptied: string }>(`SELECT pg_relation_size('never')::text AS never, pg_relation_size('emptied')::text AS emptied`);
    expect(rows[0]).toMatchObject({ never: '0' });
    expect(rows[0]!.emptied).not.toBe('0');
    const tables = await selectProtectedTables(client, { include: ['never', 'emptied'], exclude: [] });
    for (const perColumn of [true, false]) {
      const both = await fingerprintTables(client, tables, { perColumn });
      expect({ ...both.tables['public.never'], oid: '' }).toEqual({ ...both.tables['public.emptied'], oid: '' });
      expect(both.tables['public.never']).toMatchObject({ rowCount: '0', rowHash: '0' });
    }
    // a row the snapshot does not see gives the table a page, and is not counted
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query('SELECT 1');
    await db.appQuery('INSERT INTO never SELECT * FROM seed_t WHERE id = 1');
    const seen = await fingerprintTables(client, tables, { perColumn: true, inTransaction: true });
    await client.query('COMMIT');
    expect({ ...seen.tables['public.never'], oid: '' }).toEqual({ ...seen.tables['public.emptied'], oid: '' });
    expect((await fingerprintTables(client, tables, { perColumn: false })).tables['public.never']!.rowCount).toBe('1');
    await client.query('DROP TABLE never, emptied');
  });

  it('after a down re-adds a column, common-columns compares whole rows over the columns there before, so a swap between rows is seen', async () => {
    await resetTable();
    await client.query('ALTER TABLE t DROP COLUMN raw');
    const before = await fingerprint(false);
    await client.query('ALTER TABLE t ADD COLUMN raw bytea');
    expect((await checkIntegrity(client, STRICT, before, 'common-columns')).differences).toEqual([]);
    // two rows swap their notes: every column's sum stays, only whole rows tell
    await client.query("UPDATE t SET note = CASE id WHEN 14 THEN 'ünïcødé 15' ELSE 'ünïcødé 14' END WHERE id IN (14, 15)");
    const report = await checkIntegrity(client, STRICT, before, 'common-columns');
    expect(report.intact).toBe(false);
    expect(report.differences.map((d) => d.kind)).toEqual(['row-hash']);
  });

  it('after a down drops a column, common-columns compares whole rows over the columns that stay, so a swap between rows is seen (every column\'s sum stays: "verified")', async () => {
    await resetTable();
    const tables = await selectProtectedTables(client, { include: ['t'], exclude: [] });
    const before = await fingerprintTables(client, tables, { perColumn: new Set(['public.t']), rowsWithout: new Map([['public.t', new Set(['raw'])]]) });
    await client.query('ALTER TABLE t DROP COLUMN raw');
    expect((await checkIntegrity(client, STRICT, before, 'common-columns')).differences).toEqual([]);
    await client.query("UPDATE t SET note = CASE id WHEN 14 THEN 'ünïcødé 15' ELSE 'ünïcødé 14' END WHERE id IN (14, 15)");
    expect((await checkIntegrity(client, STRICT, before, 'common-columns')).differences.map((d) => d.message)).toEqual(['the content of public.t changed (1000 rows, same count, different hash over the columns that stay)']);
  });

  it('follows a column a down renames to a name no column has now by its number, and compares a name there before and after by name (drop x, rename y to x: x holds other values)', async () => {
    await resetTable();
    await client.query('ALTER TABLE t RENAME COLUMN a TO a2');
    const before = await fingerprint(new Set(['public.t']));
    await client.query('ALTER TABLE t RENAME COLUMN a2 TO a');
    expect((await checkIntegrity(client, STRICT, before, 'common-columns')).differences).toEqual([]);
    await client.query('ALTER TABLE t DROP COLUMN b; ALTER TABLE t RENAME COLUMN a TO b');
    expect((await checkIntegrity(client, STRICT, before, 'common-columns')).differences.map((d) => d.message)).toEqual(['values in public.t.b changed']);
  });

  it('does not compare, under its name, a table a down dropped with the one renamed back into that name (a copy the up made and its original): the original is compared by its OID', async () => {
    await resetTable();
    await client.query("ALTER TABLE t RENAME TO t_old; CREATE TABLE t AS SELECT id, upper(note) AS note FROM t_old");
    const before = await fingerprintTables(client, await selectProtectedTables(client, { include: ['t', 't_old'], exclude: [] }), { perColumn: false });
    await client.query('DROP TABLE t; ALTER TABLE t_old RENAME TO t');
    expect((await checkIntegrity(client, STRICT, before, 'common-columns')).differences).toEqual([]);
    await client.query("UPDATE t SET note = 'x' WHERE id = 30");
    expect((await checkIntegrity(client, STRICT, before, 'common-columns')).differences.map((d) => d.message)).toEqual(['the content of public.t_old changed (1000 rows, same count, different hash)']);
  });

  it('says so, rather than passing, when a column is gone from a table that has no per-column hashes to compare the rest with', async () => {
    await resetTable();
    const before = await fingerprint(false);
    await client.query('ALTER TABLE t DROP COLUMN doc');
    const report = await checkIntegrity(client, STRICT, before, 'common-columns');
    expect(report.intact).toBe(false);
    expect(report.differences).toEqual([expect.objectContaining({ table: 'public.t', kind: 'unverified-columns' })]);
    expect(report.differences[0]!.message).toContain('lost column(s) doc');
  });

  it('compares per column, in common-columns mode, the tables fingerprinted with per-column sums', async () => {
    await resetTable();
    const before = await fingerprint(new Set(['public.t']));
    await client.query('ALTER TABLE t DROP COLUMN doc');
    expect((await checkIntegrity(client, STRICT, before, 'common-columns')).differences).toEqual([]);
    await client.query("UPDATE t SET note = 'x' WHERE id = 30");
    expect((await checkIntegrity(client, STRICT, before, 'common-columns')).differences.map((d) => d.message)).toEqual(['values in public.t.note changed']);
  });

  it('compares a column whose type a down changed back by value, as its earlier type (a timestamptz in the session\'s TimeZone); a value the down changed is still caught', async () => {
    const cases: Array<[string, string, string, string]> = [
      ['varchar(64)', 'varchar(128)', "'user ' || g", "UPDATE w SET v = v || 'x' WHERE id = 3"],
      ['int', 'bigint', 'g * 1000', 'UPDATE w SET v = v + 1 WHERE id = 3'],
      ['numeric(14,4)', 'numeric(10,2)', 'g * 1.25', 'UPDATE w SET v = v + 0.01 WHERE id = 3'],
      ['jsonb', 'varchar', "jsonb_build_object('k', g, 'list', jsonb_build_array(g, 'a'))", "UPDATE w SET v = '{}' WHERE id = 3"],
      ['timestamptz', 'timestamp', "timestamptz '2025-03-30 00:30:00+00' + g * interval '37 minutes'", "UPDATE w SET v = v + interval '1 second' WHERE id = 3"],
      ['timestamp', 'timestamptz', "timestamp '2025-03-30 00:30:00' + g * interval '37 minutes'", "UPDATE w SET v = v + interval '1 second' WHERE id = 3"],
      ['date', 'timestamptz', "date '2025-03-30' + g", "UPDATE w SET v = v + interval '1 day' WHERE id = 3"],
    ];
    // the casts back, as the revisions', in the session's TimeZone (the fingerprint's own is UTC)
    await client.query("SET TimeZone = 'America/New_York'");
    for (const [then, now, values, change] of cases) {
      for (const perColumn of [false, true]) {
        await client.query(`DROP TABLE IF EXISTS w; CREATE TABLE w (id int, v ${then}, other text); INSERT INTO w SELECT g, ${values}, 'o' || g FROM generate_series(1, 50) g`);
        const tables = await selectProtectedTables(client, { include: ['w'], exclude: [] });
        const before = await fingerprintTables(client, tables, { perColumn });
        await client.query(`ALTER TABLE w ALTER COLUMN v TYPE ${now} USING v::${now}`);
        const report = await checkIntegrity(client, { ...STRICT, tables: { include: ['w'], exclude: [] } }, before, 'common-columns');
        expect(report.differences, `${then} → ${now}`).toEqual([]);
        await client.query(change);
        const changed = await checkIntegrity(client, { ...STRICT, tables: { include: ['w'], exclude: [] } }, before, 'common-columns');
        expect(changed.intact, `${then} → ${now}, changed`).toBe(false);
      }
    }
    await client.query('RESET TimeZone');
    // values the earlier type cannot hold, not even from their text: not compared, named, and the check still answers
    await client.query("DROP TABLE IF EXISTS w; CREATE TABLE w (id int, v int); INSERT INTO w VALUES (1, 1)");
    const tables = await selectProtectedTables(client, { include: ['w'], exclude: [] });
    const before = await fingerprintTables(client, tables, { perColumn: false });
    const beforeByColumn = await fingerprintTables(client, tables, { perColumn: true });
    await client.query("ALTER TABLE w ALTER COLUMN v TYPE text; UPDATE w SET v = 'one'");
    const report = await checkIntegrity(client, { ...STRICT, tables: { include: ['w'], exclude: [] } }, before, 'common-columns');
    expect(report).toMatchObject({
      differences: [],
      columnsNotCompared:
        'public.w, not compared: v, its type changed from integer to text and its values do not cast back, and its fingerprint before holds no per-column hashes to compare the other columns with',
    });
    const byColumn = await checkIntegrity(client, { ...STRICT, tables: { include: ['w'], exclude: [] } }, beforeByColumn, 'common-columns');
    expect(byColumn).toMatchObject({ differences: [], columnsNotCompared: 'public.w.v, not compared: its type changed from integer to text and its values do not cast back' });
    await client.query('UPDATE w SET id = 2');
    expect((await checkIntegrity(client, { ...STRICT, tables: { include: ['w'], exclude: [] } }, beforeByColumn, 'common-columns')).differences.map((d) => d.message)).toEqual(['values in public.w.id changed']);
    await client.query('DROP TABLE w');
  });

  it('finds a table a down renamed back by its OID, and a schema whose name holds a dot', async () => {
    await client.query(`DROP SCHEMA IF EXISTS "acme.eu" CASCADE; CREATE SCHEMA "acme.eu"; CREATE TABLE "acme.eu".orders (id int, total numeric);
      INSERT INTO "acme.eu".orders SELECT g, g * 1.5 FROM generate_series(1, 20) g; CREATE TABLE bills (id int, amount numeric); INSERT INTO bills VALUES (1, 10.49), (2, 99.99)`);
    const config = { ...STRICT, tables: { include: ['acme.eu.*', 'bills'], exclude: [] } };
    const before = await fingerprintTables(client, await selectProtectedTables(client, config.tables), { perColumn: false });
    expect(Object.keys(before.tables).sort()).toEqual(['acme.eu.orders', 'public.bills']);
    await client.query('ALTER TABLE bills RENAME TO invoices');
    expect(await checkIntegrity(client, config, before, 'common-columns')).toMatchObject({ intact: true });
    await client.query('UPDATE invoices SET amount = round(amount); UPDATE "acme.eu".orders SET total = 0 WHERE id = 1');
    const report = await checkIntegrity(client, config, before, 'common-columns');
    expect(report.differences.map((d) => `${d.table}:${d.kind}`).sort()).toEqual(['acme.eu.orders:row-hash', 'public.bills:row-hash']);
    await client.query('DROP SCHEMA "acme.eu" CASCADE; DROP TABLE invoices');
  });

  it('hashes xml as pg_dump writes it (a declaration its output drops does not count), and sees case changes under a nondeterministic collation', async () => {
    await client.query(`DROP TABLE IF EXISTS x; CREATE TABLE x (id int, doc xml, name text COLLATE ci);
      INSERT INTO x VALUES (1, '<?xml version="1.0" encoding="UTF-8"?><Invoice><ID>1</ID></Invoice>', 'Alice@Example.COM'), (2, NULL, NULL)`);
    const tables = await selectProtectedTables(client, { include: ['x'], exclude: [] });
    const before = await fingerprintTables(client, tables, { perColumn: true });
    // what a dump and restore make of it
    await client.query('UPDATE x SET doc = xml_out(doc)::text::xml');
    expect(await client.query<{ doc: string }>('SELECT doc::text AS doc FROM x WHERE id = 1').then((r) => r.rows[0]!.doc)).toBe('<Invoice><ID>1</ID></Invoice>');
    expect(compareFingerprints(before, await fingerprintTables(client, tables, { perColumn: true }), 'same-schema')).toEqual([]);
    await client.query('UPDATE x SET name = lower(name)');
    expect(compareFingerprints(before, await fingerprintTables(client, tables, { perColumn: true }), 'same-schema').map((d) => d.kind)).toEqual(['row-hash']);
    await client.query('DROP TABLE x');
  });

  it('sees a change between values their type calls equal (float -0, interval form, citext case, a number inside jsonb) but not a numeric\'s display scale, whatever the session\'s output settings; compares with a fingerprint taken the old way, the old way', async () => {
    await client.query(`CREATE EXTENSION IF NOT EXISTS citext; DROP TABLE IF EXISTS eq;
      CREATE TABLE eq (id int, amount numeric, ratio float8, span interval, email citext, doc jsonb);
      INSERT INTO eq VALUES (1, 1.5, 0, '1 day', 'Alice@Example.COM', '{"n": 1.0}'), (2, 2, 1, '2 hours', 'bob@example.com', '{"n": 2}')`);
    const tables = await selectProtectedTables(client, { include: ['eq'], exclude: [] });
    const mutations = [
      "UPDATE eq SET ratio = '-0'::float8 WHERE id = 1",
      "UPDATE eq SET span = '24 hours' WHERE id = 1",
      'UPDATE eq SET email = lower(email)',
      `UPDATE eq SET doc = '{"n": 1.00}' WHERE id = 1`,
    ];
    for (const mutation of mutations) {
      await client.query('BEGIN');
      try {
        const before = await fingerprintTables(client, tables, { perColumn: true });
        const oldWay = await fingerprintTables(client, tables, { perColumn: true, hashing: 1 });
        await client.query(mutation);
        expect(compareFingerprints(before, await fingerprintTables(client, tables, { perColumn: true }), 'same-schema').map((d) => d.kind), mutation).toEqual(['row-hash']);
        expect(before.hashing).toBe(2);
        expect(oldWay.hashing).toBeUndefined();
        // a fingerprint from a belay before the hashing version is compared as it was taken: no false alarm after a restore
        const report = await checkIntegrity(client, { ...STRICT, tables: { include: ['eq'], exclude: [] } }, oldWay, 'same-schema');
        expect(report.intact, mutation).toBe(true);
      } finally {
        await client.query('ROLLBACK');
      }
    }
    const before = await fingerprintTables(client, tables, { perColumn: true });
    await client.query("UPDATE eq SET amount = 1.50 WHERE id = 1; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard'; SET TimeZone = 'Asia/Kolkata'; SET extra_float_digits = 3");
    try {
      expect(compareFingerprints(before, await fingerprintTables(client, tables, { perColumn: true }), 'same-schema')).toEqual([]);
    } finally {
      await client.query('RESET DateStyle; RESET IntervalStyle; RESET TimeZone; RESET extra_float_digits');
    }
    await client.query('DROP TABLE eq');
  });

  it('with oneProcess, scans without parallel workers (beside a pg_dump on the same machine) and answers the same', async () => {
    await resetTable();
    const tables = await selectProtectedTables(client, { include: ['t'], exclude: [] });
    const parallel = await fingerprintTables(client, tables, { perColumn: true });
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const alone = await fingerprintTables(client, tables, { perColumn: true, inTransaction: true, oneProcess: true });
      expect((await client.query<{ n: string }>("SELECT current_setting('max_parallel_workers_per_gather') AS n")).rows[0]!.n).toBe('0');
      expect({ ...alone, takenAt: '' }).toEqual({ ...parallel, takenAt: '' });
    } finally {
      await client.query('ROLLBACK');
    }
  });

  it('refuses, rather than counting only the rows a row-level security policy shows, a table whose owner is subject to it', async () => {
    await client.query(`DROP TABLE IF EXISTS secret; CREATE TABLE secret (id int); INSERT INTO secret SELECT generate_series(1, 5);
      ALTER TABLE secret ENABLE ROW LEVEL SECURITY; ALTER TABLE secret FORCE ROW LEVEL SECURITY; CREATE POLICY none ON secret USING (false)`);
    expect(await client.query('SELECT count(*)::int AS n FROM secret').then((r) => r.rows[0])).toEqual({ n: 0 });
    const tables = await selectProtectedTables(client, { include: ['secret'], exclude: [] });
    await expect(fingerprintTables(client, tables, { perColumn: false })).rejects.toThrow(/row-level security/);
    await client.query('DROP TABLE secret');
  });

  it("measures every down's data at risk at once, and names the tables whose columns they may change", async () => {
    await resetTable();
    await client.query('DROP TABLE IF EXISTS u; CREATE TABLE u AS SELECT id, a FROM seed_t WHERE id <= 10');
    const downs = [
      { revision: '0003_c', sql: 'ALTER TABLE t DROP COLUMN note, DROP COLUMN missing; DELETE FROM u;' },
      { revision: '0002_b', sql: 'DROP TABLE u; ALTER TABLE public.t RENAME COLUMN a TO a_old; DROP TABLE nowhere;' },
    ];
    const measured = await measureDownsAtRisk(client, downs);
    expect(measured.items).toEqual([
      { revision: '0003_c', table: 'public.t', column: 'note', rows: 1000, values: 750 },
      { revision: '0003_c', table: 'public.u', rowsDeleted: true, rows: 10, values: 10 },
      { revision: '0002_b', table: 'public.u', rows: 10, values: 10 },
    ]);
    expect(measured.perColumn).toEqual(new Set(['public.t']));
    expect((await measureDownsAtRisk(client, [...downs, { revision: '0001_a', sql: null }])).perColumn).toBe(true);
    expect((await measureDownsAtRisk(client, [{ revision: '0001_a', sql: "DO $$ BEGIN EXECUTE 'ALTER TABLE t DROP COLUMN a'; END $$;" }])).perColumn).toBe(true);
    // a routine the down makes may be called in it (a SELECT of it): what its body runs is dynamic SQL too
    const routine = "CREATE FUNCTION undo_a() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN EXECUTE 'ALTER TABLE t DROP COLUMN a'; END $f$; SELECT undo_a(); DROP FUNCTION undo_a();";
    expect((await measureDownsAtRisk(client, [{ revision: '0001_a', sql: routine }])).perColumn).toBe(true);
    expect((await measureDownsAtRisk(client, [{ revision: '0001_a', sql: "INSERT INTO u SELECT 1 WHERE $$EXECUTE$$ <> '';" }])).perColumn).toEqual(new Set());
    expect((await measureDownsAtRisk(client, [{ revision: '0001_a', sql: 'DROP TYPE mood CASCADE;' }])).perColumn).toBe(true);
    expect((await measureDownsAtRisk(client, [{ revision: '0001_a', sql: 'DROP TABLE u CASCADE;' }])).perColumn).toEqual(new Set());
    // an ALTER TABLE of a partitioned table alters its partitions, which are what the fingerprint reads
    await client.query('CREATE TABLE p (id int, x int) PARTITION BY RANGE (id); CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)');
    expect((await measureDownsAtRisk(client, [{ revision: '0001_a', sql: 'ALTER TABLE p DROP COLUMN x;' }])).perColumn).toEqual(new Set(['public.p', 'public.p1']));
    await client.query('DROP TABLE u, p');
  });

  it("reads a down's names through the search_path it sets (SET, set_config), and the session's again after RESET", async () => {
    await client.query(`CREATE SCHEMA shop; CREATE TABLE shop.users (id int, nick text); INSERT INTO shop.users VALUES (1, 'a'), (2, NULL);
      CREATE TABLE users (id int, nick text)`);
    const read = (sql: string) => measureDownsAtRisk(client, [{ revision: '0002_b', sql }]);
    const setPath = await read('SET search_path = shop, public;\nALTER TABLE Users DROP COLUMN Nick;');
    expect(setPath.items).toEqual([{ revision: '0002_b', table: 'shop.users', column: 'nick', rows: 2, values: 1 }]);
    expect(setPath.perColumn).toEqual(new Set(['shop.users']));
    // a string constant of SET is one name as written; set_config's value is a list
    expect((await read("SET LOCAL search_path TO 'shop'; DROP TABLE users;")).items).toEqual([{ revision: '0002_b', table: 'shop.users', rows: 2, values: 2 }]);
    expect((await read("SELECT pg_catalog.set_config('search_path', 'SHOP', false); DELETE FROM users;")).items).toEqual([
      { revision: '0002_b', table: 'shop.users', rowsDeleted: true, rows: 2, values: 2 },
    ]);
    // a block comment before the SET is not read as part of it; one inside a statement hides what it holds
    expect((await read('/* the app\'s schema */ SET search_path = shop;\nDROP TABLE users /* , other */;')).items).toEqual([{ revision: '0002_b', table: 'shop.users', rows: 2, values: 2 }]);
    // pg_dump's empty path: an unqualified name resolves to nothing
    expect((await read("SELECT pg_catalog.set_config('search_path', '', false); DROP TABLE users;")).items).toEqual([]);
    expect((await read('SET search_path = shop; RESET search_path; ALTER TABLE users DROP COLUMN nick;')).perColumn).toEqual(new Set(['public.users']));
    // the statement that sets it is read with the path before it; a qualified name is itself
    expect((await read('SET search_path = nowhere; ALTER TABLE public.users DROP COLUMN nick; DROP TABLE users;')).items).toEqual([
      { revision: '0002_b', table: 'public.users', column: 'nick', rows: 0, values: 0 },
    ]);
    await client.query('DROP SCHEMA shop CASCADE; DROP TABLE users');
  });

  it('counts what a drop takes whether or not a table has pages of its own: an empty table, a partitioned one, a parent whose rows are its child\'s', async () => {
    await client.query(`CREATE TABLE e (id int, x int); CREATE TABLE f (id int, x int); INSERT INTO f VALUES (1, NULL); DELETE FROM f;
      CREATE TABLE q (id int, x int) PARTITION BY RANGE (id); CREATE TABLE q1 PARTITION OF q FOR VALUES FROM (0) TO (10); INSERT INTO q VALUES (1, 1), (2, NULL);
      CREATE TABLE parent (id int, x int); CREATE TABLE child () INHERITS (parent); INSERT INTO child VALUES (1, 1), (2, 2), (3, NULL)`);
    const drops = 'DROP TABLE e; DROP TABLE f; ALTER TABLE q DROP COLUMN x; DROP TABLE q; ALTER TABLE parent DROP COLUMN x; DROP TABLE parent CASCADE;';
    const { items } = await measureDownsAtRisk(client, [{ revision: '0009_z', sql: drops }]);
    const counted = Object.fromEntries(items.map((i) => [`${i.table}${i.column ? `.${i.column}` : ''}`, [i.rows, i.values]]));
    expect(counted).toEqual({ 'public.e': [0, 0], 'public.f': [0, 0], 'public.q.x': [2, 1], 'public.q': [2, 2], 'public.parent.x': [3, 2], 'public.parent': [3, 3] });
    await client.query('DROP TABLE e, f, q, parent CASCADE');
  });

  it('counts a partition a down drops (detached first or not) once, on its own, not again with the parent a later down drops; a sub-partition\'s rows too', async () => {
    await client.query(`CREATE TABLE ev (id int, at int) PARTITION BY RANGE (at);
      CREATE TABLE ev_old PARTITION OF ev FOR VALUES FROM (0) TO (10) PARTITION BY RANGE (at); CREATE TABLE ev_old_a PARTITION OF ev_old FOR VALUES FROM (0) TO (5);
      CREATE TABLE ev_old_b PARTITION OF ev_old FOR VALUES FROM (5) TO (10); CREATE TABLE ev_new PARTITION OF ev FOR VALUES FROM (10) TO (20);
      CREATE TABLE ev_mid PARTITION OF ev FOR VALUES FROM (20) TO (30);
      INSERT INTO ev SELECT g, g % 30 FROM generate_series(1, 600) g`);
    const { items } = await measureDownsAtRisk(client, [
      { revision: '0027_archive', sql: 'ALTER TABLE ev DETACH PARTITION ev_old; DROP TABLE ev_old;' },
      { revision: '0020_mid', sql: 'DROP TABLE ev_mid;' },
      { revision: '0011_events', sql: 'DROP TABLE ev;' },
    ]);
    expect(Object.fromEntries(items.map((i) => [i.table, i.rows]))).toEqual({ 'public.ev_old': 200, 'public.ev_mid': 200, 'public.ev': 200 });
    await client.query('DROP TABLE ev');
  });

  it('names the tables that stay which a down writes rows to (INSERT, UPDATE, MERGE, COPY FROM), and says what integrity will make of it; not a table it drops later, not a read', async () => {
    await client.query(`CREATE TABLE users (id int, email text); INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 1900) g;
      CREATE TABLE users_purged (id int, email text); INSERT INTO users_purged SELECT g, 'u' || g FROM generate_series(1901, 2000) g;
      CREATE TABLE tags (id int, name text); CREATE TABLE audit (line text)`);
    const { items } = await measureDownsAtRisk(client, [
      {
        revision: '0003_purge',
        sql: `INSERT INTO users SELECT * FROM users_purged; DROP TABLE users_purged;
          UPDATE ONLY tags AS t SET name = lower(name); INSERT INTO audit VALUES ('x') ON CONFLICT DO NOTHING;
          COPY users TO STDOUT; SELECT * FROM users FOR UPDATE;`,
      },
      { revision: '0002_audit', sql: 'DROP TABLE audit;' },
    ]);
    expect(items).toEqual([
      { revision: '0003_purge', table: 'public.users', rowsWritten: true, rows: 1900, values: 1900 },
      { revision: '0003_purge', table: 'public.users_purged', rows: 100, values: 100 },
      { revision: '0003_purge', table: 'public.tags', rowsWritten: true, rows: 0, values: 0 },
      { revision: '0003_purge', table: 'public.audit', rowsWritten: true, rows: 0, values: 0 },
      { revision: '0002_audit', table: 'public.audit', rows: 0, values: 0 },
    ]);
    expect(describeDataAtRisk(items.filter((i) => i.table !== 'public.audit'))).toBe(
      'public.users_purged: 100 row(s), and rows written to tables that stay (public.users: 1900 row(s) now, by 0003_purge; public.tags: 0 row(s) now, by 0003_purge): integrity counts a changed row count, or a changed value in a column there both before and after the downs, as corruption and restores the snapshot, unless those tables are in integrity.tables.exclude',
    );
    await client.query('DROP TABLE users, users_purged, tags, audit');
  });

  it("does not name a table whose columns a down's UPDATE sets are all columns the downs add (a split column merged back), and names it when one was there", async () => {
    await client.query(`CREATE TABLE p (id int, name text); INSERT INTO p SELECT g, 'n' || g FROM generate_series(1, 50) g;
      CREATE TABLE p_detail (id int, d text); INSERT INTO p_detail SELECT g, 'd' || g FROM generate_series(1, 50) g`);
    const read = (sql: string) => measureDownsAtRisk(client, [{ revision: '0002_split', sql }]);
    const merged = await read(`ALTER TABLE p ADD COLUMN d text NOT NULL DEFAULT '';
      UPDATE p SET d = pd.d, "D2" = coalesce(pd.d, (SELECT max(d) FROM p_detail)) FROM p_detail pd WHERE pd.id = p.id; DROP TABLE p_detail;`);
    expect(merged.items).toEqual([{ revision: '0002_split', table: 'public.p_detail', rows: 50, values: 50 }]);
    for (const sql of ['UPDATE p SET (d, name) = (SELECT d, d FROM p_detail WHERE p_detail.id = p.id);', "UPDATE p SET name[1] = 'x';", 'UPDATE p SET d = 1, name = upper(name) WHERE id > 3;']) {
      expect((await read(sql)).items, sql).toEqual([{ revision: '0002_split', table: 'public.p', rowsWritten: true, rows: 50, values: 50 }]);
    }
    await client.query('DROP TABLE p, p_detail');
  });

  it('follows the names the downs give a table or a column before they drop it (RENAME TO, SET SCHEMA, RENAME COLUMN), in the order they run', async () => {
    await client.query(`CREATE SCHEMA archive; CREATE TABLE people (id int, handle text, other int); INSERT INTO people VALUES (1, 'a', 1), (2, NULL, 2), (3, 'c', NULL);
      CREATE TABLE users (id int); CREATE TABLE stays (id int); INSERT INTO stays VALUES (1)`);
    const read = (...sqls: string[]) => measureDownsAtRisk(client, sqls.map((sql, i) => ({ revision: `000${9 - i}_r`, sql })));
    // a down renames people back to users (after dropping the users there now), the next one drops users: that is people
    expect((await read('DROP TABLE users; ALTER TABLE people RENAME TO users;', 'DROP TABLE users;')).items).toEqual([
      { revision: '0009_r', table: 'public.users', rows: 0, values: 0 },
      { revision: '0008_r', table: 'public.people', rows: 3, values: 3 },
    ]);
    // a column renamed back, then dropped under its old name; a table moved to another schema, then dropped there
    const chained = await read('ALTER TABLE people RENAME COLUMN handle TO nick;', 'ALTER TABLE public.people DROP COLUMN nick, DROP COLUMN handle;', 'ALTER TABLE stays SET SCHEMA archive; DROP TABLE archive.stays;');
    expect(chained.items).toEqual([
      { revision: '0008_r', table: 'public.people', column: 'handle', rows: 3, values: 2 },
      { revision: '0007_r', table: 'public.stays', rows: 1, values: 1 },
    ]);
    expect(chained.perColumn).toEqual(new Set(['public.people', 'public.stays']));
    // quoted names keep their case, a quoted part may hold a dot; SET SCHEMA to a quoted schema
    await client.query(`CREATE SCHEMA "Mixed"; CREATE TABLE "Mixed"."Case.T" (id int); INSERT INTO "Mixed"."Case.T" VALUES (1), (2); CREATE TABLE "a,b" (id int)`);
    expect((await read('ALTER TABLE "Mixed"."Case.T" RENAME TO "Other"; ALTER TABLE "Mixed"."Other" SET SCHEMA archive; DROP TABLE IF EXISTS archive."Other", nowhere, "a,b" CASCADE;')).items).toEqual([
      { revision: '0009_r', table: 'Mixed.Case.T', rows: 2, values: 2 },
      { revision: '0009_r', table: 'public.a,b', rows: 0, values: 0 },
    ]);
    await client.query('DROP TABLE "a,b"');
    await client.query('DROP SCHEMA "Mixed" CASCADE');
    // a name that is not ASCII, unquoted, is one word
    await client.query('CREATE TABLE café (id int); INSERT INTO café VALUES (1)');
    expect((await read('ALTER TABLE café RENAME TO bar; DROP TABLE bar;')).items).toEqual([{ revision: '0009_r', table: 'public.café', rows: 1, values: 1 }]);
    await client.query('DROP TABLE café');
    // a name the downs take from a table they drop again hides nothing: the table there now is the one dropped
    expect((await read('ALTER TABLE people RENAME TO gone; DROP TABLE gone; DROP TABLE people;')).items).toEqual([{ revision: '0009_r', table: 'public.people', rows: 3, values: 3 }]);
    await client.query('DROP SCHEMA archive CASCADE; DROP TABLE people, users, stays');
  });

  it('counts the columns and tables a type\'s, a domain\'s, a collation\'s, a function\'s or an extension\'s DROP … CASCADE takes with it (arrays, domains over it, typed tables, generated columns)', async () => {
    await client.query(`CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE DOMAIN feeling AS mood; CREATE TYPE shape AS (w int);
      CREATE TABLE diary (id int, m mood, ms mood[], f feeling, note text); INSERT INTO diary VALUES (1, 'ok', '{sad}', NULL, 'a'), (2, NULL, NULL, 'sad', 'b');
      CREATE TABLE boxes OF shape; INSERT INTO boxes VALUES (1), (2), (3);
      CREATE EXTENSION IF NOT EXISTS citext; CREATE TABLE emails (id int, e citext); INSERT INTO emails VALUES (1, 'A@x')`);
    const read = (sql: string) => measureDownsAtRisk(client, [{ revision: '0009_r', sql }]);
    expect((await read('DROP TYPE IF EXISTS public.mood, shape CASCADE;')).items).toEqual([
      { revision: '0009_r', table: 'public.diary', column: 'f', rows: 2, values: 1 },
      { revision: '0009_r', table: 'public.diary', column: 'm', rows: 2, values: 1 },
      { revision: '0009_r', table: 'public.diary', column: 'ms', rows: 2, values: 1 },
      { revision: '0009_r', table: 'public.boxes', rows: 3, values: 3 },
    ]);
    // a column already dropped by name is not counted again; without CASCADE nothing more is dropped
    expect((await read('ALTER TABLE diary DROP COLUMN m; DROP DOMAIN feeling CASCADE; DROP TYPE mood;')).items).toEqual([
      { revision: '0009_r', table: 'public.diary', column: 'm', rows: 2, values: 1 },
      { revision: '0009_r', table: 'public.diary', column: 'f', rows: 2, values: 1 },
    ]);
    expect((await read('DROP EXTENSION citext CASCADE;')).items).toEqual([{ revision: '0009_r', table: 'public.emails', column: 'e', rows: 1, values: 1 }]);
    // a function's, for a stored generated column that calls it (its default only loses the default), whichever overload
    await client.query(`CREATE FUNCTION dbl(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
      CREATE FUNCTION dbl(numeric) RETURNS numeric IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
      CREATE TABLE calc (id int, g int GENERATED ALWAYS AS (dbl(id)) STORED, d int DEFAULT dbl(3), n numeric GENERATED ALWAYS AS (dbl(id::numeric)) STORED);
      INSERT INTO calc (id) VALUES (1), (NULL)`);
    expect((await read('DROP FUNCTION IF EXISTS public.dbl(numeric(10, 2)), dbl(integer) CASCADE;')).items).toEqual([
      { revision: '0009_r', table: 'public.calc', column: 'g', rows: 2, values: 1 },
      { revision: '0009_r', table: 'public.calc', column: 'n', rows: 2, values: 1 },
    ]);
    await client.query('DROP FUNCTION dbl(int) CASCADE');
    expect(await client.query("SELECT attname FROM pg_attribute WHERE attrelid = 'calc'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum").then((r) => r.rows.map((row) => row.attname))).toEqual(['id', 'd', 'n']);
    await client.query('DROP TABLE calc; DROP FUNCTION dbl(numeric)');
    // a partitioned table's column counted once, on the parent, whose count holds its partitions'
    await client.query(`CREATE TYPE tier AS ENUM ('a', 'b'); CREATE TABLE plans (id int, t tier) PARTITION BY RANGE (id);
      CREATE TABLE plans_1 PARTITION OF plans FOR VALUES FROM (0) TO (10); INSERT INTO plans VALUES (1, 'a'), (2, NULL)`);
    expect((await read('DROP TYPE tier CASCADE;')).items).toEqual([{ revision: '0009_r', table: 'public.plans', column: 't', rows: 2, values: 1 }]);
    await client.query('DROP TABLE plans; DROP TYPE tier');
    // a collation's columns, its name read through the search_path (PostgreSQL drops them: "drop cascades to column n of table names")
    await client.query(`CREATE SCHEMA lang; CREATE COLLATION lang.de (provider = icu, locale = 'de'); CREATE TABLE names (id int, n text COLLATE lang.de, plain text);
      INSERT INTO names VALUES (1, 'Ä', 'a'), (2, NULL, 'b')`);
    expect((await read('SET search_path = lang, public; DROP COLLATION IF EXISTS de CASCADE;')).items).toEqual([{ revision: '0009_r', table: 'public.names', column: 'n', rows: 2, values: 1 }]);
    await client.query('DROP COLLATION lang.de CASCADE');
    expect(await client.query("SELECT attname FROM pg_attribute WHERE attrelid = 'names'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum").then((r) => r.rows.map((row) => row.attname))).toEqual(['id', 'plain']);
    await client.query('DROP TABLE diary, boxes, emails, names; DROP DOMAIN feeling; DROP TYPE mood, shape; DROP SCHEMA lang');
  });

  it('does not count what a routine, a rule or a comment the downs create only names (a DO block runs, and is counted)', async () => {
    await client.query(`CREATE TABLE sessions (id int); INSERT INTO sessions VALUES (1), (2); CREATE TABLE people (id int); INSERT INTO people VALUES (1)`);
    const read = (sql: string) => measureDownsAtRisk(client, [{ revision: '0009_r', sql }]);
    const defining = await read(`CREATE OR REPLACE FUNCTION purge() RETURNS void LANGUAGE sql AS $$ DELETE FROM sessions; $$;
      CREATE FUNCTION purge2() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM sessions; END;
      CREATE OR REPLACE PROCEDURE wipe() LANGUAGE sql AS 'TRUNCATE people';
      CREATE RULE no_delete AS ON DELETE TO people DO INSTEAD DELETE FROM sessions;
      COMMENT ON TABLE people IS 'replaces the table 0003 dropped (DROP TABLE people)';`);
    expect(defining.items).toEqual([]);
    expect((await read('DO $$ BEGIN DROP TABLE people; END $$;')).items).toEqual([{ revision: '0009_r', table: 'public.people', rows: 1, values: 1 }]);
    await client.query('DROP TABLE sessions, people');
  });

  it('reads a down as the server does: a `--` inside a string is no comment, and what a string holds is not what the down does', async () => {
    await client.query(`CREATE TABLE people (id int, email text, note text); INSERT INTO people VALUES (1, 'a@x', '--'); CREATE TABLE audit (line text)`);
    const read = (sql: string) => measureDownsAtRisk(client, [{ revision: '0009_r', sql }]);
    // one statement, one line: the column it drops comes after a string holding `--`
    const dropping = await read(`ALTER TABLE people ADD CONSTRAINT note_set CHECK (note <> '--'), DROP COLUMN email; -- DROP TABLE audit`);
    expect(dropping.items).toEqual([{ revision: '0009_r', table: 'public.people', column: 'email', rows: 1, values: 1 }]);
    expect(dropping.perColumn).toEqual(new Set(['public.people']));
    const storing = await read(`INSERT INTO audit VALUES ('0003 did DROP TABLE people; then DELETE FROM people'), (E'it\\'s -- TRUNCATE people');
      /* a nested /* DROP TABLE people */ comment */ UPDATE audit SET line = 'x' WHERE line = '--DROP TABLE people';`);
    // what it writes to audit is no drop of people
    expect(storing.items.filter((item) => !item.rowsWritten)).toEqual([]);
    expect((await read(`UPDATE audit SET line = 'CALL wipe()';`)).perColumn).toEqual(new Set());
    // a dollar-quoted constant is a string too; a DO block's body is code, whichever way it names its language
    expect((await read(`INSERT INTO audit VALUES ($$0003 did DROP TABLE people; then$$), ($note$ALTER TABLE people DROP COLUMN email, then$note$);`)).items.filter((item) => !item.rowsWritten)).toEqual([]);
    for (const block of [`DO LANGUAGE plpgsql $$ BEGIN DROP TABLE people; END $$;`, `/* undo */ DO $d$ BEGIN EXECUTE 'DROP TABLE people'; END $d$ LANGUAGE plpgsql;`]) {
      expect((await read(block)).items, block).toEqual([{ revision: '0009_r', table: 'public.people', rows: 1, values: 1 }]);
    }
    await client.query('DROP TABLE people, audit');
  });

  it("counts the tables a role's DROP OWNED BY takes with it, and with CASCADE the columns of other tables that use its types", async () => {
    const tenant = `${db.name}_tenant`;
    const me = (await client.query<{ role: string }>('SELECT current_user AS role')).rows[0]!.role;
    // the downs run as a member of the role whose objects they drop, as DROP OWNED requires
    await db.query(`CREATE ROLE ${tenant}; GRANT ${tenant} TO ${me};
      CREATE TABLE tenant_rows (id int); INSERT INTO tenant_rows VALUES (1), (2); ALTER TABLE tenant_rows OWNER TO ${tenant};
      CREATE TABLE parts (id int) PARTITION BY RANGE (id); CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (10);
      CREATE TABLE parts_high PARTITION OF parts FOR VALUES FROM (10) TO (20); INSERT INTO parts VALUES (1), (2), (3), (11);
      ALTER TABLE parts_low OWNER TO ${tenant}`);
    const read = (sql: string) => measureDownsAtRisk(client, [{ revision: '0009_r', sql }]);
    const restrict = await read(`DROP OWNED BY ${tenant};`);
    // a partition the role owns goes with its rows, though the parent it belongs to stays
    expect(restrict.items).toEqual([
      { revision: '0009_r', table: 'public.parts_low', rows: 3, values: 3 },
      { revision: '0009_r', table: 'public.tenant_rows', rows: 2, values: 2 },
    ]);
    expect(restrict.perColumn).toBe(true);
    await db.query(`CREATE TYPE tenant_mood AS ENUM ('a', 'b'); ALTER TYPE tenant_mood OWNER TO ${tenant}`);
    await client.query(`CREATE TABLE shared (id int, m tenant_mood); INSERT INTO shared VALUES (1, 'a'), (2, NULL)`);
    expect((await read(`DROP OWNED BY "${tenant}" CASCADE;`)).items).toEqual([
      { revision: '0009_r', table: 'public.parts_low', rows: 3, values: 3 },
      { revision: '0009_r', table: 'public.shared', column: 'm', rows: 2, values: 1 },
      { revision: '0009_r', table: 'public.tenant_rows', rows: 2, values: 2 },
    ]);
    // what PostgreSQL drops is that
    await db.query(`DROP OWNED BY ${tenant} CASCADE`);
    expect(await db.query("SELECT to_regclass('tenant_rows') AS t, to_regclass('parts_low') AS low")).toEqual([{ t: null, low: null }]);
    expect(await db.query('SELECT count(*)::int AS n FROM parts')).toEqual([{ n: 1 }]);
    expect((await db.query("SELECT attname FROM pg_attribute WHERE attrelid = 'shared'::regclass AND attnum > 0 AND NOT attisdropped")).map((r) => r.attname)).toEqual(['id']);
    // the session's own role, by the word for it; belay's own record is not the down's data (the down fails on it, and nothing is lost)
    const hadBelay = (await client.query<{ had: boolean }>("SELECT to_regnamespace('belay') IS NOT NULL AS had")).rows[0]!.had;
    await client.query('CREATE SCHEMA IF NOT EXISTS belay; CREATE TABLE belay.owned_probe (id int); INSERT INTO belay.owned_probe VALUES (1)');
    await client.query('CREATE TABLE mine (id int); INSERT INTO mine VALUES (1)');
    const own = await read('DROP OWNED BY CURRENT_USER;');
    expect(own.items).toContainEqual({ revision: '0009_r', table: 'public.mine', rows: 1, values: 1 });
    expect(own.items.filter((item) => item.table.startsWith('belay.'))).toEqual([]);
    await client.query(hadBelay ? 'DROP TABLE belay.owned_probe' : 'DROP SCHEMA belay CASCADE');
    await client.query('DROP TABLE mine, shared, parts');
    await db.query(`DROP ROLE ${tenant}`);
  });

  it('counts the tables a DROP SCHEMA … CASCADE takes with it, those the downs moved there before included, a partitioned table once', async () => {
    await client.query(`CREATE SCHEMA doomed; CREATE TABLE doomed.a (id int); INSERT INTO doomed.a VALUES (1), (2); CREATE VIEW doomed.v AS SELECT * FROM doomed.a;
      CREATE TABLE doomed.p (id int) PARTITION BY RANGE (id); CREATE TABLE doomed.p1 PARTITION OF doomed.p FOR VALUES FROM (0) TO (10); INSERT INTO doomed.p VALUES (1), (2), (3);
      CREATE TABLE moved (id int); INSERT INTO moved VALUES (1)`);
    const read = (...sqls: string[]) => measureDownsAtRisk(client, sqls.map((sql, i) => ({ revision: `000${9 - i}_r`, sql })));
    const dropped = await read('ALTER TABLE moved SET SCHEMA doomed;', 'DROP TABLE doomed.a; DROP SCHEMA IF EXISTS doomed CASCADE;');
    expect(dropped.items.map((i) => [i.revision, i.table, i.rows])).toEqual([
      ['0008_r', 'doomed.a', 2],
      ['0008_r', 'doomed.p', 3],
      ['0008_r', 'public.moved', 1],
    ]);
    // without CASCADE a schema that holds tables is not dropped (the down fails): nothing is lost
    expect((await read('DROP SCHEMA doomed;')).items).toEqual([]);
    await client.query('DROP SCHEMA doomed CASCADE; DROP TABLE moved');
  });
});
