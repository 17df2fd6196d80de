import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareFingerprints } from '../src/integrity/compare.js';
import { fingerprintTables, type Fingerprint } from '../src/integrity/fingerprint.js';
import { selectProtectedTables } from '../src/integrity/table-selection.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';

let db: TestDatabase;
let client: pg.Client;

async function fingerprint(perColumn = true): Promise<Fingerprint> {
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
});
