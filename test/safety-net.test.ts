import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startDemoApp } from './support/app.js';
import { belay, jsonResult } from './support/cli.js';
import { adminQuery, freshDatabase } from './support/pg.js';
import { dataDigest, DEMO_DIR, sampleAt0022 } from './support/sample.js';
import { schemaDump } from './support/schema.js';
import { baseArgs, makeProject } from './support/project.js';

const applied = async (db: { query: (sql: string) => Promise<Record<string, unknown>[]> }): Promise<string> => {
  const rows = await db.query('SELECT max(name) AS current FROM belay.migrations');
  return String(rows[0]?.current);
};

function healthConfig(registerUrl: string, extra: object = {}): object {
  return {
    health: {
      http: [{ name: 'registration', url: registerUrl, method: 'POST', body: { email: 'probe@example.com' }, expectStatus: 201, timeoutSeconds: 2 }],
      timeoutSeconds: 1,
      intervalSeconds: 0.3,
    },
    ...extra,
  };
}

async function journalOf(backups: string, runId: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(join(backups, 'journal', `${runId}.jsonl`), 'utf8');
  return text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

const stepNames = (lines: Array<Record<string, unknown>>, event = 'end'): string[] =>
  lines.filter((l) => l.type === 'step' && l.event === event).map((l) => [l.step, l.revision ?? l.subject].filter(Boolean).join(' '));

describe('the safety net, on the seed story', () => {
  it('refuses to deploy while registration already answers 500 (exit 4), and proceeds with --allow-unhealthy', async () => {
    const db = await freshDatabase();
    const project = await sampleAt0022(db);
    const app = await startDemoApp(db.url, { DEMO_BROKEN_BEFORE: '1' });
    try {
      await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(healthConfig(app.registerUrl)));
      const before = await dataDigest(db);
      const run = await belay([...project.args, 'migrate', 'up', '--with-backup'], { cwd: project.dir });
      expect(run.code, run.stderr).toBe(4);
      expect(run.stderr).toMatch(/unhealthy before any change: registration: POST .* → 500/);
      expect(await applied(db)).toBe('0022_active_users_view');
      expect(await dataDigest(db)).toEqual(before);
      const dumps = (await readdir(project.backups)).filter((f) => f.endsWith('.dump'));
      expect(dumps).toEqual([]);
      const forced = await belay([...project.args, '--json', 'migrate', 'up', '--with-backup', '--allow-unhealthy'], { cwd: project.dir });
      // it proceeds; what failed before the change is not held against it
      expect(forced.code, forced.stderr).toBe(0);
      expect(await applied(db)).toBe('0023_v2_mobile_schema_updates');
      expect((await readdir(project.backups)).filter((f) => f.endsWith('.dump'))).toHaveLength(1);
    } finally {
      await app.stop();
    }
  });

  it('0023 breaks registration: rolled back to 0022 with data identical (exit 10); hooks ran in order', async () => {
    const db = await freshDatabase();
    const project = await sampleAt0022(db);
    const app = await startDemoApp(db.url);
    const hookLog = join(project.dir, 'hooks.log');
    try {
      await writeFile(
        join(project.dir, 'belay.config.json'),
        JSON.stringify(
          healthConfig(app.registerUrl, {
            hooks: {
              afterApply: { run: `curl -s -X POST http://127.0.0.1:${app.port}/admin/restart >/dev/null; echo "afterApply $BELAY_STEP" >> ${hookLog}` },
              onRollback: { run: `echo "onRollback from=$BELAY_FROM to=$BELAY_TO outcome=$BELAY_OUTCOME pw=\${PGPASSWORD:-none}" >> ${hookLog}` },
            },
          }),
        ),
      );
      const before = await dataDigest(db);
      const schemaBefore = schemaDump(db.name);
      const run = await belay([...project.args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
      expect(run.code, run.stderr).toBe(10);
      const result = jsonResult(run) as { runId: string; message: string; toRevision: string };
      expect(result.message).toMatch(/registration: POST .* → 500/);
      expect(result.toRevision).toBe('0022_active_users_view');
      expect(await applied(db)).toBe('0022_active_users_view');
      expect(await dataDigest(db)).toEqual(before);
      expect(schemaDump(db.name)).toBe(schemaBefore);
      expect(await readFile(hookLog, 'utf8')).toBe(
        'afterApply afterApply\nonRollback from=0023_v2_mobile_schema_updates to=0022_active_users_view outcome=rolling-back pw=none\n',
      );
      const steps = stepNames(await journalOf(project.backups, result.runId));
      expect(steps.indexOf('hook afterApply')).toBeLessThan(steps.indexOf('health after-apply'));
      expect(steps.slice(steps.indexOf('health after-apply'))).toEqual([
        'health after-apply',
        'hook onRollback',
        'down 0023_v2_mobile_schema_updates',
        'health after-rollback',
        'integrity',
        'schema 0022_active_users_view',
      ]);
    } finally {
      await app.stop();
    }
  });

  it('a lossy 0023: its down cannot restore the data, so the snapshot is (exit 11) and the damaged copy is kept', async () => {
    const db = await freshDatabase();
    const project = await sampleAt0022(db, join(DEMO_DIR, 'lossy'));
    const app = await startDemoApp(db.url);
    try {
      await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(healthConfig(app.registerUrl)));
      const before = await dataDigest(db);
      const run = await belay([...project.args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
      expect(run.code, run.stderr).toBe(11);
      const result = jsonResult(run) as { runId: string; restore: { quarantine: string }; unhealthy: string[] };
      expect(await applied(db)).toBe('0022_active_users_view');
      expect(await dataDigest(db)).toEqual(before);
      // the quarantine holds the damaged rows: upper-cased emails
      const quarantined = await adminQuery(result.restore.quarantine, "SELECT count(*)::int AS n FROM account.users WHERE email <> lower(email)");
      expect(quarantined[0]?.n).toBe(1000);
      // the journal file holds every step, and history shows them from the restored database too
      const steps = stepNames(await journalOf(project.backups, result.runId));
      expect(steps).toContain('integrity');
      // the checks run again on the database the snapshot put back: registration works there, nothing unhealthy
      expect(steps.slice(-2)).toEqual([expect.stringMatching(/^restore /), 'health after-restore']);
      expect(result.unhealthy).toEqual([]);
      const history = await belay([...project.args, 'history', result.runId], { cwd: project.dir });
      expect(history.stdout).toContain('steps from the database');
      expect(history.stdout).toMatch(/end\s+restore \S+ ok/);
      const rows = await db.query('SELECT status, exit_code FROM belay.runs WHERE id = $1', [result.runId]);
      expect(rows).toEqual([{ status: 'restored', exit_code: 11 }]);
    } finally {
      await app.stop();
    }
  });

  it('with the fixed application, 0023 deploys and stays (exit 0)', async () => {
    const db = await freshDatabase();
    const project = await sampleAt0022(db);
    const app = await startDemoApp(db.url, { DEMO_FIXED: '1' });
    try {
      await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(healthConfig(app.registerUrl)));
      const run = await belay([...project.args, 'migrate', 'up', '--with-backup'], { cwd: project.dir });
      expect(run.code, run.stderr).toBe(0);
      expect(await applied(db)).toBe('0023_v2_mobile_schema_updates');
    } finally {
      await app.stop();
    }
  });
});

/** 0003 fails; rolling back, the down of 0002 fails too. */
const DOWN_FAILS = {
      '0001_base.up.sql': 'CREATE TABLE base (id int PRIMARY KEY);\nINSERT INTO base SELECT generate_series(1, 50);',
      '0001_base.down.sql': 'DROP TABLE base;',
      '0002_a.up.sql': 'CREATE TABLE a (id int);',
      '0002_a.down.sql': 'DROP TABLE no_such_table;',
      '0003_bad.up.sql': 'SELECT 1 / 0;',
      '0003_bad.down.sql': 'SELECT 1;',
};

describe('the safety net, on failing revisions', () => {
  it('a revision failing after two earlier ones of the same run: both are downed (exit 10), schema as before', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_base.up.sql': 'CREATE TABLE base (id int PRIMARY KEY, v text);\nINSERT INTO base SELECT g, md5(g::text) FROM generate_series(1, 100) g;',
      '0001_base.down.sql': 'DROP TABLE base;',
      '0002_a.up.sql': 'CREATE TABLE a (id int);\nCREATE INDEX a_id ON a (id);',
      '0002_a.down.sql': 'DROP TABLE a;',
      '0003_b.up.sql': 'ALTER TABLE base ADD COLUMN b int;',
      '0003_b.down.sql': 'ALTER TABLE base DROP COLUMN b;',
      '0004_bad.up.sql': 'CREATE TABLE c (id int);\nINSERT INTO c VALUES (1 / 0);',
      '0004_bad.down.sql': 'DROP TABLE c;',
    });
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const schemaBefore = schemaDump(db.name);
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(10);
    expect(jsonResult(run).revisions.map((r: { name: string; status: string }) => `${r.name}:${r.status}`)).toEqual([
      '0002_a:reverted',
      '0003_b:reverted',
      '0004_bad:failed',
    ]);
    expect(schemaDump(db.name)).toBe(schemaBefore);
    expect(await applied(db)).toBe('0001_base');
  });

  it('a down that fails sends the run to its snapshot (exit 11)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(DOWN_FAILS);
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(11);
    expect(await applied(db)).toBe('0001_base');
    expect(await db.query("SELECT to_regclass('public.a') AS a")).toEqual([{ a: null }]);
    expect((await db.query('SELECT count(*)::int AS n FROM base'))[0]?.n).toBe(50);
  });

  it('a tampered snapshot cannot be restored: exit 12, the database left as it is, the journal says what to do', async () => {
    const db = await freshDatabase();
    const project = await makeProject(DOWN_FAILS);
    // the beforeApply hook damages the snapshot the run has just taken
    await writeFile(
      join(project.dir, 'belay.config.json'),
      JSON.stringify({ hooks: { beforeApply: { run: `for f in ${project.backups}/*.dump; do printf 'XXXX' | dd of="$f" bs=1 seek=200 conv=notrunc 2>/dev/null; done` } } }),
    );
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    expect(run.code, run.stderr).toBe(12);
    const result = jsonResult(run) as { runId: string; message: string; hint: string; snapshot: { id: string } };
    expect(result.message).toMatch(/does not match its manifest/);
    // its two steps, one after the other in the one line (docs/json.md), never run together
    const next = `belay backups verify ${result.snapshot.id}; if it is sound, fix what the message says and restore it again: belay restore ${result.snapshot.id}; if not, restore another: belay restore <another snapshot id> (list them: belay backups list)`;
    expect((JSON.parse(run.stdout) as { next: string }).next).toBe(next);
    expect(result.hint).toBe(next);
    // the copy the swap restore made beside it is gone
    expect(await db.query("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", [`${db.name}_belay_restore_`])).toEqual([]);
    // untouched: still at 0002 (its down failed), data there
    expect(await applied(db)).toBe('0002_a');
    expect((await db.query('SELECT count(*)::int AS n FROM base'))[0]?.n).toBe(50);
    const lines = await journalOf(project.backups, result.runId);
    const outcome = lines[lines.length - 1] as { status: string; exitCode: number; summary: { next: string } };
    expect(outcome).toMatchObject({ status: 'manual-action-needed', exitCode: 12 });
    expect(outcome.summary.next).toBe(`belay backups verify ${result.snapshot.id}\nif it is sound, fix what the message says and restore it again: belay restore ${result.snapshot.id}\nif not, restore another: belay restore <another snapshot id> (list them: belay backups list)`);
    // the text output's next: line is the same line
    const textDb = await freshDatabase();
    expect((await belay([...baseArgs(project, textDb.url), 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const text = await belay([...baseArgs(project, textDb.url), 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    expect(text.code, text.stderr).toBe(12);
    expect(text.stdout).toMatch(/\n {2}next: belay backups verify (\S+); if it is sound, fix what the message says and restore it again: belay restore \1; if not, restore another: belay restore <another snapshot id> \(list them: belay backups list\)\n/);
  });
});
