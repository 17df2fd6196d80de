import { createHash } from 'node:crypto';
import { readFile, readdir, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { cluster, freshDatabase, TEST_APP_PASSWORD } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';
import { execFileSync } from 'node:child_process';

async function appliedNames(db: { query: (sql: string) => Promise<Record<string, unknown>[]> }): Promise<string[]> {
  const rows = await db.query('SELECT name FROM belay.migrations ORDER BY name');
  return rows.map((row) => String(row.name));
}

async function journalLines(backups: string): Promise<Array<Record<string, unknown>>> {
  const dir = join(backups, 'journal');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.jsonl')).sort();
  const text = await readFile(join(dir, files[files.length - 1]!), 'utf8');
  return text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('migrate up, the forward path', () => {
  it('applies every revision with a verified snapshot that restores to the same rows', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--with-backup']);
    expect(run.stderr).not.toContain(TEST_APP_PASSWORD);
    expect(run.code, run.stderr).toBe(0);
    const result = jsonResult(run) as { exitCode: number; snapshot: { id: string; path: string; sha256: string }; toRevision: string };
    expect(result.toRevision).toBe('0003_accounts_name');
    expect(await appliedNames(db)).toEqual(['0001_accounts', '0002_profiles', '0003_accounts_name']);

    // the manifest's sha256 is the file's
    const manifestFile = join(project.backups, `${result.snapshot.id}.manifest.json`);
    const manifestText = await readFile(manifestFile, 'utf8');
    const manifest = JSON.parse(manifestText) as { sha256: string; file: string };
    const dumpPath = join(project.backups, manifest.file);
    const digest = createHash('sha256').update(await readFile(dumpPath)).digest('hex');
    expect(manifest.sha256).toBe(digest);
    expect(manifestText).not.toContain(TEST_APP_PASSWORD);
    expect((await stat(dumpPath)).mode & 0o777).toBe(0o600);
    expect((await stat(manifestFile)).mode & 0o777).toBe(0o600);

    // the snapshot (taken before the run, so at the start: no tables) restores with pg_restore itself
    const restored = await freshDatabase('restored');
    const c = cluster();
    execFileSync(join(c.binDir, 'pg_restore'), ['-h', c.socketDir, '-p', String(c.port), '-U', c.superuser, '-d', restored.name, '--no-owner', dumpPath]);
    const tables = await restored.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
    expect(tables[0]?.n).toBe(0);

    // the journal file holds every step, and no password
    const lines = await journalLines(project.backups);
    expect(JSON.stringify(lines)).not.toContain(TEST_APP_PASSWORD);
    const ended = lines.filter((l) => l.type === 'step' && l.event === 'end').map((l) => [l.step, l.revision ?? l.subject].filter(Boolean).join(' '));
    expect(ended).toEqual([
      'lock',
      'plan',
      'health baseline',
      // the default scope, auto, learns what the revisions touch on a copy: a step of its own
      'scope',
      'preflight',
      'fingerprint',
      'backup',
      'apply 0001_accounts',
      'apply 0002_profiles',
      'apply 0003_accounts_name',
      'health after-apply',
    ]);
    expect(lines[lines.length - 1]).toMatchObject({ type: 'outcome', status: 'ok', exitCode: 0 });
    // … and so does the database
    const steps = await db.query("SELECT step, event FROM belay.steps ORDER BY seq");
    expect(steps.filter((s) => s.event === 'end')).toHaveLength(ended.length);
    const runs = await db.query('SELECT status, exit_code FROM belay.runs');
    expect(runs).toEqual([{ status: 'ok', exit_code: 0 }]);
  });

  it('snapshots the data that is there: a second run restores to the same rows', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    await db.query("INSERT INTO profiles SELECT id, 'bio ' || id FROM accounts WHERE id % 3 = 0");
    // a full snapshot (auto would take a touched one: these revisions write no table that existed before)
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full']);
    expect(run.code, run.stderr).toBe(0);
    const { snapshot } = jsonResult(run) as { snapshot: { path: string } };
    const restored = await freshDatabase('restored');
    const c = cluster();
    execFileSync(join(c.binDir, 'pg_restore'), ['-h', c.socketDir, '-p', String(c.port), '-U', c.superuser, '-d', restored.name, '--no-owner', snapshot.path]);
    const digest = "SELECT count(*)::int AS n, md5(string_agg(t::text, ',' ORDER BY t::text)) AS h FROM %s t";
    for (const table of ['accounts', 'profiles']) {
      const [before] = await restored.query(digest.replace('%s', table));
      const [after] = await db.query(digest.replace('%s', table));
      // accounts gained a column after the snapshot; compare the columns it had
      if (table === 'accounts') {
        const [now] = await db.query("SELECT count(*)::int AS n, md5(string_agg((id, email)::text, ',' ORDER BY (id, email)::text)) AS h FROM accounts");
        const [then] = await restored.query("SELECT count(*)::int AS n, md5(string_agg((id, email)::text, ',' ORDER BY (id, email)::text)) AS h FROM accounts");
        expect(then).toEqual(now);
      } else {
        expect(before).toEqual(after);
      }
    }
  });

  it('refuses drift: an edited applied revision exits 4 and changes nothing', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    await appendFile(join(project.migrations, '0001_accounts.up.sql'), '\n-- edited after it was applied\n');
    const run = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/0001_accounts \(0001_accounts\.up\.sql\)/);
    expect(run.stderr).toMatch(/next: .*new revision/);
    expect(await appliedNames(db)).toEqual(['0001_accounts', '0002_profiles']);
    const columns = await db.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'display_name'");
    expect(columns).toHaveLength(0);
  });

  it('exits 2 for an unknown --to, a bad flag value, a misnamed revision file and a bad config, touching nothing', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const unknown = await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0099']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--to 0099 names no revision/);
    const badFlag = await belay([...baseArgs(project, db.url), 'migrate', 'up', '--health-timeout', 'soon']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('--health-timeout takes a number of seconds (2, 0.5), got "soon"');
    // seconds as the config takes them (health.timeoutSeconds: 0.5)
    const decimal = await belay([...baseArgs(project, db.url), 'migrate', 'up', '--dry-run', '--health-timeout', '0.5']);
    expect(decimal.code, decimal.stderr).toBe(0);
    const unknownFlag = await belay([...baseArgs(project, db.url), 'migrate', 'up', '--with-bakup']);
    expect(unknownFlag.code).toBe(2);
    await writeFile(join(project.migrations, '0004_add_column.sql'), 'ALTER TABLE accounts ADD COLUMN age int;');
    const misnamed = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
    expect(misnamed.code).toBe(2);
    expect(misnamed.stderr).toMatch(/look like revisions but are not named like one: 0004_add_column\.sql/);
    await rm(join(project.migrations, '0004_add_column.sql'));
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ integrity: { mode: 'paranoid' } }));
    const badConfig = await belay([...baseArgs(project, db.url), 'migrate', 'up'], { cwd: project.dir });
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr).toContain('integrity.mode');
    const schemas = await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'");
    expect(schemas).toHaveLength(0);
  });

  it('a revision that fails midway is rolled back whole, and the journal says where', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...GOOD_REVISIONS,
      '0004_broken.up.sql': [
        'CREATE TABLE audit (id bigint);',
        '-- the next statement names a column that does not exist',
        'INSERT INTO accounts (id, email, nickname)',
        "  VALUES (9999, 'x@example.com', 'x');",
        'CREATE TABLE never (id int);',
      ].join('\n'),
      '0004_broken.down.sql': 'DROP TABLE audit;',
    });
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0003'])).code).toBe(0);
    const run = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
    expect(run.code).not.toBe(0);
    expect(run.code).not.toBe(1);
    expect(await appliedNames(db)).toEqual(['0001_accounts', '0002_profiles', '0003_accounts_name']);
    const leftovers = await db.query("SELECT tablename FROM pg_tables WHERE tablename IN ('audit', 'never')");
    expect(leftovers).toEqual([]);
    const lines = await journalLines(project.backups);
    const failed = lines.find((l) => l.type === 'step' && l.outcome === 'failed' && l.step === 'apply') as { revision: string; detail: { failure: Record<string, unknown> } };
    expect(failed.revision).toBe('0004_broken');
    expect(failed.detail.failure).toMatchObject({ file: '0004_broken.up.sql', line: 3, sqlstate: '42703' });
    expect(String(failed.detail.failure.statement)).toContain('nickname');
  });

  it('lets exactly one of two concurrent runs apply; the other exits 3 naming the holder', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_slow.up.sql': 'CREATE TABLE slow (id int);\nSELECT pg_sleep(3);',
      '0001_slow.down.sql': 'DROP TABLE slow;',
      '0002_after.up.sql': 'CREATE TABLE after_slow (id int);',
      '0002_after.down.sql': 'DROP TABLE after_slow;',
    });
    const first = startBelay([...baseArgs(project, db.url), 'migrate', 'up']);
    // wait until the first one holds the lock, then start the second
    for (let i = 0; i < 200; i++) {
      const holders = await db.query(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
      );
      if (holders.length > 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const second = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
    const firstRun = await first.done;
    expect(firstRun.code, firstRun.stderr).toBe(0);
    expect(second.code).toBe(3);
    expect(second.stderr).toMatch(/another belay run holds the lock on this database: pid \d+ "belay migrate-up [0-9a-f]{12}"/);
    expect(second.stderr).toContain('Nothing was changed');
    expect(await appliedNames(db)).toEqual(['0001_slow', '0002_after']);
    const runs = await db.query('SELECT count(*)::int AS n FROM belay.runs');
    expect(runs[0]?.n).toBe(1);
  });

  it('status, plan and history describe the database without changing it', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const plan = await belay([...baseArgs(project, db.url), '--json', 'plan']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(jsonResult(plan)).toMatchObject({ direction: 'up', from: null, to: '0003_accounts_name' });
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0001_acc'])).code).toBe(0);
    const status = await belay([...baseArgs(project, db.url), '--json', 'status']);
    const report = jsonResult(status) as { current: string; pending: string[]; lastRun: { status: string } };
    expect(report.current).toBe('0001_accounts');
    expect(report.pending).toEqual(['0002_profiles', '0003_accounts_name']);
    expect(report.lastRun.status).toBe('ok');
    const history = await belay([...baseArgs(project, db.url), 'history']);
    expect(history.stdout).toMatch(/\d+\.\d s  migrate-up\s+ok\s+exit 0  ∅ → 0001_accounts/);
    const runId = /^([0-9a-f-]{36})/m.exec(history.stdout)![1]!;
    const one = await belay([...baseArgs(project, db.url), 'history', runId.slice(0, 13)]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain('apply 0001_accounts ok');
  });

  it('dry run changes nothing', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const run = await belay([...baseArgs(project, db.url), 'migrate', 'up', '--dry-run', '--with-backup']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/would apply 3 revision/);
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
  });

  it("refuses (exit 4) a search_path that would put the revisions' tables in belay's own schema", async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    await db.query(`ALTER DATABASE "${db.name}" SET search_path = "$user", belay, public`);
    const refused = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/would put the revisions' unqualified objects in belay's own schema/);
    expect(refused.stderr).toMatch(/next: Give the role another search_path first, e\.g\. ALTER ROLE "belay_app" SET search_path = public/);
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
    await db.query(`ALTER DATABASE "${db.name}" RESET search_path`);
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up'])).code).toBe(0);
    expect(await db.query("SELECT table_schema FROM information_schema.tables WHERE table_name = 'accounts'")).toEqual([{ table_schema: 'public' }]);
  });
});
