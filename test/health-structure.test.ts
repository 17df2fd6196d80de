import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHealthChecks } from '../src/health/run-health.js';
import { structuralCheck } from '../src/health/structural-check.js';
import { captureStructure } from '../src/integrity/structural.js';
import { belay } from './support/cli.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

let db: TestDatabase;
let client: pg.Client;
const ctx = () => ({ client, env: {}, signal: undefined });

async function journalLines(backups: string): Promise<Array<Record<string, unknown>>> {
  const dir = join(backups, 'journal');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.jsonl')).sort();
  const text = await readFile(join(dir, files[files.length - 1]!), 'utf8');
  return text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

const healthEnds = (lines: Array<Record<string, unknown>>, subject: string) =>
  lines.filter((l) => l.type === 'step' && l.event === 'end' && l.step === 'health' && l.subject === subject) as Array<{ outcome: string; detail: { attempts: number; failing: Array<{ name: string; evidence: string }> } }>;

/** parent/child with rows; every child points at a parent. */
const PARENT_CHILD = {
  '0001_parent_child.up.sql': `CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL);
INSERT INTO parent SELECT g FROM generate_series(1, 50) g;
INSERT INTO child SELECT g, 1 + g % 50 FROM generate_series(1, 200) g;`,
  '0001_parent_child.down.sql': 'DROP TABLE child; DROP TABLE parent;',
};

describe('the structural check judges what a change broke, against the baseline', () => {
  beforeAll(async () => {
    db = await freshDatabase();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
  });
  afterAll(async () => client?.end());

  it('a constraint added NOT VALID on purpose is not damage; one valid before and NOT VALID now is', async () => {
    await client.query('CREATE TABLE s (id int PRIMARY KEY, v int); INSERT INTO s VALUES (1, 1), (2, -1)');
    await client.query('ALTER TABLE s ADD CONSTRAINT s_v_checked CHECK (v > -5)');
    const baseline = await captureStructure(client);
    await client.query('ALTER TABLE s ADD CONSTRAINT s_v_positive CHECK (v > 0) NOT VALID');
    const deliberate = await structuralCheck(baseline).run(ctx());
    expect(deliberate.ok).toBe(true);
    expect(deliberate.evidence).toContain('constraint s_v_positive on public.s is NOT VALID (not yet validated; not damage)');
    // without a baseline (belay verify, a restored copy) a NOT VALID constraint is not damage either
    expect((await structuralCheck().run(ctx())).ok).toBe(true);
    // the valid one dropped and re-added NOT VALID: broken
    await client.query('ALTER TABLE s DROP CONSTRAINT s_v_checked; ALTER TABLE s ADD CONSTRAINT s_v_checked CHECK (v > -5) NOT VALID');
    const broken = await structuralCheck(baseline).run(ctx());
    expect(broken).toEqual({ ok: false, evidence: 'constraint s_v_checked on public.s was valid before the change and is NOT VALID now' });
    await client.query('DROP TABLE s');
  });

  it('an index left invalid by a failed CREATE INDEX CONCURRENTLY is damage, and the check is not retried for the whole timeout', async () => {
    await client.query("CREATE TABLE u (id int, v text); INSERT INTO u VALUES (1, 'a'), (1, 'dup')");
    const baseline = await captureStructure(client);
    await expect(client.query('CREATE UNIQUE INDEX CONCURRENTLY u_id_key ON u (id)')).rejects.toThrow(/could not create unique index/);
    const attempts: number[] = [];
    // a 10-minute timeout: a retried check would keep this test waiting; a settled one answers after one attempt
    const report = await runHealthChecks([structuralCheck(baseline)], ctx(), { timeoutSeconds: 600, intervalSeconds: 0.05, onAttempt: (n) => void attempts.push(n) });
    expect(report.healthy).toBe(false);
    expect(attempts).toEqual([1]);
    expect(report.results[0]!.evidence).toContain('invalid index public.u_id_key');
    // an index that was already invalid at the baseline is not held against a later change, but still reported as failing
    const later = await structuralCheck(await captureStructure(client)).run(ctx());
    expect(later).toMatchObject({ ok: false, alreadyFailing: true });
    expect(later.evidence).toContain('index public.u_id_key was already invalid before the change');
    const held = await runHealthChecks([structuralCheck(await captureStructure(client))], ctx(), { timeoutSeconds: 0, intervalSeconds: 0.05 });
    expect(held.healthy).toBe(true);
    expect(held.results[0]).toMatchObject({ ok: false, alreadyFailing: true });
    await client.query('DROP TABLE u');
  });

  it('an index on a partitioned table made ON ONLY (valid once every partition is attached) is not damage', async () => {
    await client.query('CREATE TABLE m (at date NOT NULL, n int) PARTITION BY RANGE (at); CREATE TABLE m_2025 PARTITION OF m FOR VALUES FROM (\'2025-01-01\') TO (\'2026-01-01\')');
    const baseline = await captureStructure(client);
    await client.query('CREATE INDEX m_n ON ONLY m (n)');
    const outcome = await structuralCheck(baseline).run(ctx());
    expect(outcome.ok).toBe(true);
    expect(outcome.evidence).toContain('partitioned index public.m_n is not valid until every partition');
    await client.query('DROP TABLE m');
  });
});

describe('migrate up with the structural baseline', () => {
  it('deploys past a deliberate FOREIGN KEY … NOT VALID, deploys again on top of it, then validates it', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...PARENT_CHILD,
      '0002_child_fk.up.sql': 'ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;',
      '0002_child_fk.down.sql': 'ALTER TABLE child DROP CONSTRAINT child_parent_fk;',
    });
    const first = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--health-timeout', '600']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const [fk] = await db.query<{ convalidated: boolean }>("SELECT convalidated FROM pg_constraint WHERE conname = 'child_parent_fk'");
    expect(fk).toEqual({ convalidated: false });
    // the next deploy starts with the NOT VALID constraint in place: not refused, and a failed change still rolls back to it intact
    await import('node:fs/promises').then(async (fs) => {
      await fs.writeFile(join(project.migrations, '0003_note.up.sql'), 'ALTER TABLE child ADD COLUMN note text;');
      await fs.writeFile(join(project.migrations, '0003_note.down.sql'), 'ALTER TABLE child DROP COLUMN note;');
      await fs.writeFile(join(project.migrations, '0003_note.verify.sql'), 'SELECT false;');
    });
    const rejected = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--with-backup']);
    // 10, not 4 (an unhealthy baseline) and not 11 (integrity calling the deliberate constraint corruption)
    expect(rejected.code, rejected.stdout + rejected.stderr).toBe(10);
    await import('node:fs/promises').then(async (fs) => {
      await fs.writeFile(join(project.migrations, '0003_note.verify.sql'), 'SELECT true;');
      await fs.writeFile(join(project.migrations, '0004_validate_fk.up.sql'), 'ALTER TABLE child VALIDATE CONSTRAINT child_parent_fk;');
      await fs.writeFile(join(project.migrations, '0004_validate_fk.down.sql'), 'SELECT 1;');
    });
    const next = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
    expect(next.code, next.stdout + next.stderr).toBe(0);
    const [validated] = await db.query<{ convalidated: boolean }>("SELECT convalidated FROM pg_constraint WHERE conname = 'child_parent_fk'");
    expect(validated).toEqual({ convalidated: true });
    expect((await belay([...baseArgs(project, db.url), 'verify'])).code).toBe(0);
  });

  it('a revision that turns a valid constraint NOT VALID is rejected at once, not after the whole health timeout', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...PARENT_CHILD,
      '0002_fk.up.sql': 'ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);',
      '0002_fk.down.sql': 'ALTER TABLE child DROP CONSTRAINT child_parent_fk;',
      '0003_weaken.up.sql': 'ALTER TABLE child DROP CONSTRAINT child_parent_fk;\nALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;',
      '0003_weaken.down.sql': 'ALTER TABLE child DROP CONSTRAINT child_parent_fk;\nALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);',
    });
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--health-timeout', '600']);
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect(run.stdout).toContain('constraint child_parent_fk on public.child was valid before the change and is NOT VALID now');
    const [afterApply] = healthEnds(await journalLines(project.backups), 'after-apply');
    expect(afterApply).toMatchObject({ outcome: 'failed', detail: { attempts: 1 } });
    const [fk] = await db.query<{ convalidated: boolean }>("SELECT convalidated FROM pg_constraint WHERE conname = 'child_parent_fk'");
    expect(fk).toEqual({ convalidated: true });
  });

  it('with --allow-unhealthy over an index already invalid, what the change breaks in the structure is still held against it', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...PARENT_CHILD,
      '0002_fk.up.sql': 'ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);',
      '0002_fk.down.sql': 'ALTER TABLE child DROP CONSTRAINT child_parent_fk;',
      '0003_weaken.up.sql': 'ALTER TABLE child DROP CONSTRAINT child_parent_fk;\nALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;',
      '0003_weaken.down.sql': 'ALTER TABLE child DROP CONSTRAINT child_parent_fk;\nALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id);',
    });
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    await db.appQuery('INSERT INTO parent VALUES (1000); CREATE TABLE dup (id int); INSERT INTO dup VALUES (1), (1)');
    await expect(db.appQuery('CREATE UNIQUE INDEX CONCURRENTLY dup_id ON dup (id)')).rejects.toThrow();
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up'])).code).toBe(4);
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--allow-unhealthy']);
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect(run.stdout).toContain('constraint child_parent_fk on public.child was valid before the change and is NOT VALID now');
  });

  it('--allow-unhealthy over an index already invalid: the run names the structure as still failing, never "healthy", as verify does', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_reg.up.sql': "CREATE TABLE reg (id int, email text);\nINSERT INTO reg VALUES (1, 'a'), (1, 'b');",
      '0001_reg.down.sql': 'DROP TABLE reg;',
      '0002_note.up.sql': 'ALTER TABLE reg ADD COLUMN note text;',
      '0002_note.down.sql': 'ALTER TABLE reg DROP COLUMN note;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    await expect(db.appQuery('CREATE UNIQUE INDEX CONCURRENTLY reg_id_key ON reg (id)')).rejects.toThrow(/could not create unique index/);
    const refused = await belay([...args, 'migrate', 'up']);
    expect(refused.code, refused.stdout + refused.stderr).toBe(4);
    const run = await belay([...args, '--json', 'migrate', 'up', '--allow-unhealthy']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { outcome: string; message: string; result: { unhealthy: string[] } };
    expect(result.outcome).toBe('ok');
    expect(result.message).toMatch(/now at 0002_note; not healthy: structure still fails/);
    expect(result.message).not.toMatch(/; healthy/);
    expect(result.result.unhealthy).toEqual(['structure']);
    const afterApply = healthEnds(await journalLines(project.backups), 'after-apply')[0]!;
    expect(afterApply.outcome).toBe('ok');
    expect(afterApply.detail.failing).toEqual([expect.objectContaining({ name: 'structure', evidence: expect.stringContaining('index public.reg_id_key was already invalid before the change') as unknown })]);
    // the change went in, the index is still invalid, and verify says so as the run did
    expect(await db.query("SELECT name FROM belay.migrations ORDER BY name")).toEqual([{ name: '0001_reg' }, { name: '0002_note' }]);
    expect(await db.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'reg_id_key'::regclass")).toEqual([{ indisvalid: false }]);
    const verify = await belay([...args, 'verify']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(4);
    const status = JSON.parse((await belay([...args, '--json', 'status'])).stdout) as { result: { current: string; lastRun: { status: string; exitCode: number } } };
    expect(status.result).toMatchObject({ current: '0002_note', lastRun: { status: 'ok', exitCode: 0 } });
  });

  it('an index left invalid by a failed CREATE INDEX CONCURRENTLY is detected after the change, not retried, and rolled back', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_events.up.sql': "CREATE TABLE events (id int, kind text);\nINSERT INTO events VALUES (1, 'a'), (1, 'b');",
      '0001_events.down.sql': 'DROP TABLE events;',
      // tries a unique index and carries on when the build fails, leaving it invalid
      '0002_events_unique.mjs': `// belay:no-transaction
export async function up(ctx) {
  try {
    await ctx.sql('CREATE UNIQUE INDEX CONCURRENTLY events_id_key ON events (id)');
  } catch (error) {
    ctx.log('unique index failed: ' + error.message);
  }
}
export async function down(ctx) {
  await ctx.sql('DROP INDEX CONCURRENTLY IF EXISTS events_id_key');
}
`,
    });
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--health-timeout', '600']);
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect(run.stdout).toContain('invalid index public.events_id_key');
    const lines = await journalLines(project.backups);
    expect(healthEnds(lines, 'after-apply')[0]).toMatchObject({ outcome: 'failed', detail: { attempts: 1 } });
    expect(healthEnds(lines, 'after-rollback')[0]).toMatchObject({ outcome: 'ok' });
    expect(await db.query("SELECT 1 FROM pg_class WHERE relname = 'events_id_key'")).toEqual([]);
  });
});
