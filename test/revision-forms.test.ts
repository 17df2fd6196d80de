import { fileURLToPath } from 'node:url';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay } from './support/cli.js';
import { freshDatabase } from './support/pg.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

async function argsFor(set: string, url: string): Promise<string[]> {
  return ['--database-url', url, '--migrations', fixture(set), '--backups', await mkdtemp(join(tmpdir(), 'belay-backups-'))];
}

describe('revision forms and their failure paths', () => {
  it('TypeScript and .mjs modules apply, verify and revert', async () => {
    const db = await freshDatabase();
    const args = await argsFor('ts-module', db.url);
    const up = await belay([...args, '--json', 'migrate', 'up']);
    expect(up.code, up.stderr).toBe(0);
    expect((await db.query('SELECT body FROM fx_notes'))).toEqual([{ body: 'hello' }]);
    const down = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(down.code, down.stderr).toBe(0);
    expect((await db.query('SELECT name FROM belay.migrations')).map((r) => r.name)).toEqual(['0001_notes']);
  });

  it('-- belay:no-transaction runs CREATE INDEX CONCURRENTLY outside a transaction, and plan says so', async () => {
    const db = await freshDatabase();
    const args = await argsFor('no-transaction', db.url);
    const plan = await belay([...args, 'plan']);
    expect(plan.stdout).toMatch(/apply  0002_events_kind_index {2}\[no transaction\]/);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    expect(await db.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'fx_events_kind_idx'::regclass")).toEqual([{ indisvalid: true }]);
  });

  it('a revision without a down needs --allow-irreversible, and blocks rollback past it', async () => {
    const db = await freshDatabase();
    const args = await argsFor('no-down', db.url);
    const refused = await belay([...args, 'migrate', 'up']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('revisions without a down: 0002_irreversible');
    expect(await db.query("SELECT to_regclass('fx_first') AS t")).toEqual([{ t: null }]);
    expect((await belay([...args, 'migrate', 'up', '--allow-irreversible', '--with-backup'])).code).toBe(0);
    const rollback = await belay([...args, '--yes', 'rollback', '--to', '0001']);
    expect(rollback.code).toBe(4);
    expect(rollback.stderr).toContain('0002_irreversible');
    expect(await db.query("SELECT to_regclass('fx_second') IS NOT NULL AS t")).toEqual([{ t: true }]);
  });

  it('rollback whose down deletes rows it must keep: the snapshot is restored (exit 11)', async () => {
    const db = await freshDatabase();
    const args = await argsFor('lossy', db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(11);
    expect(JSON.parse(run.stdout).message).toMatch(/fx_people had 10 rows, now 5/);
    expect(await db.query('SELECT count(*)::int AS n FROM fx_people')).toEqual([{ n: 10 }]);
    expect((await db.query('SELECT max(name) AS m FROM belay.migrations'))[0]?.m).toBe('0003_archive_flag');
  });

  it('rollback to a revision that is not applied, or is the current one, exits 2', async () => {
    const db = await freshDatabase();
    const args = await argsFor('good', db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    const above = await belay([...args, '--yes', 'rollback', '--to', '0003']);
    expect(above.code).toBe(2);
    expect(above.stderr).toContain('is not applied');
    const current = await belay([...args, '--yes', 'rollback', '--to', '0002']);
    expect(current.code).toBe(2);
  });

  it('fails midway: the statement and line are named, the run is rolled back (exit 10)', async () => {
    const db = await freshDatabase();
    const args = await argsFor('fails-midway', db.url);
    const run = await belay([...args, '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(10);
    const result = JSON.parse(run.stdout) as { failure: { file: string; line: number; statement: string } };
    expect(result.failure.file).toBe('0003_broken.up.sql');
    expect(result.failure.statement).toContain('weight');
    expect(await db.query("SELECT count(*)::int AS n FROM belay.migrations")).toEqual([{ n: 0 }]);
  });
});
