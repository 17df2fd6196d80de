import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

interface Result {
  outcome: string;
  exitCode: number;
  message: string;
  hint?: string;
}

const BASE = {
  '0001_orders.up.sql': 'CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL);\nINSERT INTO orders SELECT g, g FROM generate_series(1, 100) g;',
  '0001_orders.down.sql': 'DROP TABLE orders;',
};

/** An up that adds an extension, two functions and a trigger; its down forgets all but one function. */
const LEAKY = {
  ...BASE,
  '0002_audit.up.sql': `CREATE EXTENSION citext;
CREATE FUNCTION audit_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.total := NEW.total; RETURN NEW; END $$;
CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM orders';
CREATE TRIGGER orders_audit BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION audit_stamp();
CREATE TABLE audit_log (id int);`,
  '0002_audit.down.sql': 'DROP TABLE audit_log;\nDROP FUNCTION order_count();',
  '0003_notes.up.sql': 'CREATE TABLE notes (id int);',
  '0003_notes.down.sql': 'DROP TABLE notes;',
};

const CLEAN = {
  ...LEAKY,
  '0002_audit.down.sql': 'DROP TABLE audit_log;\nDROP TRIGGER orders_audit ON orders;\nDROP FUNCTION audit_stamp();\nDROP FUNCTION order_count();\nDROP EXTENSION citext;',
};

describe('rollback --to lands on the schema its target left', () => {
  it('downs that leave an extension, a function and a trigger behind: exit 12, each object named, data verified, nothing restored', async () => {
    const db = await freshDatabase();
    const project = await makeProject(LEAKY);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    // made by hand between the revisions: not a down's residue, never counted
    await db.appQuery('CREATE TABLE hand_made (id int)');
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(12);
    const result = jsonResult<Result>(run);
    expect(result.outcome).toBe('manual-action-needed');
    expect(result.message).toContain('the schema is not the one 0001_orders left: 3 object(s) differ');
    expect(result.message).not.toContain('\n');
    expect(result.message).toContain('differ (+ left behind, - missing, ~ changed): + extension citext; + function public.audit_stamp(); + trigger public.orders.orders_audit');
    expect(result.message).not.toContain('order_count');
    expect(result.message).not.toContain('hand_made');
    expect(result.hint).toMatch(/DROP what is left/);
    expect(result.hint).toMatch(/belay restore \S+/);
    // the downs ran and nothing was restored: the leftovers are there, the revisions are reverted
    expect(await db.query("SELECT name FROM belay.migrations ORDER BY name")).toEqual([{ name: '0001_orders' }]);
    expect(await db.query("SELECT to_regprocedure('public.audit_stamp()') IS NOT NULL AS left")).toEqual([{ left: true }]);
    const step = await db.query<{ outcome: string; detail: { added: string[] } }>("SELECT outcome, detail FROM belay.steps WHERE step = 'schema' AND event = 'end'");
    expect(step).toHaveLength(1);
    expect(step[0]!.outcome).toBe('failed');
    expect(step[0]!.detail.added).toEqual(['extension citext', 'function public.audit_stamp()', 'trigger public.orders.orders_audit']);
    const human = await belay([...args, 'history']);
    expect(human.stdout).toMatch(/rollback.*12/);
  });

  it('rollback --to 0 compares with an empty schema', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...LEAKY, '0001_orders.down.sql': 'DROP TABLE orders CASCADE;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0']);
    expect(run.code, run.stderr).toBe(12);
    const { message } = jsonResult<Result>(run);
    expect(message).toContain('the schema is not the one the start left: 2 object(s) differ');
    expect(message).toContain(': + extension citext; + function public.audit_stamp()');
  });

  it('a clean rollback exits 0 and says the schema is the one recorded at its target', async () => {
    const db = await freshDatabase();
    const project = await makeProject(CLEAN);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(0);
    expect(jsonResult<Result>(run).message).toBe('rolled back to 0001_orders; healthy, data verified; schema as recorded at 0001_orders');
  });

  it('a column put back in another order is a warning, not a difference', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_orders.up.sql': 'CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL, placed_at date);\nINSERT INTO orders SELECT g, g FROM generate_series(1, 100) g;',
      '0001_orders.down.sql': 'DROP TABLE orders;',
      '0002_narrow.up.sql': 'ALTER TABLE orders DROP COLUMN total;',
      '0002_narrow.down.sql': 'ALTER TABLE orders ADD COLUMN total numeric NOT NULL DEFAULT 0;\nALTER TABLE orders ALTER COLUMN total DROP DEFAULT;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(0);
    expect(jsonResult<Result>(run).message).toContain('warning: the columns of public.orders stand in another order');
  });

  it('a reverted revision applied before belay recorded what each changes is reported as not compared', async () => {
    const db = await freshDatabase();
    const project = await makeProject(LEAKY);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    // no record, and the whole-schema record an earlier belay kept: neither says what was there before
    await db.query("UPDATE belay.migrations SET schema = NULL WHERE name = '0002_audit'");
    await db.query(`UPDATE belay.migrations SET schema = '{"digest": "x", "objects": {}, "columnOrder": {}, "changed": []}' WHERE name = '0003_notes'`);
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(0);
    expect(jsonResult<Result>(run).message).toContain('schema not compared (0002_audit was applied before belay recorded what each revision changes)');
  });

  it('a target applied before belay recorded anything is compared through what the reverted revisions recorded', async () => {
    const db = await freshDatabase();
    const project = await makeProject(LEAKY);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    await db.query("UPDATE belay.migrations SET schema = NULL WHERE name = '0001_orders'");
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(run.code, run.stderr).toBe(12);
    expect(jsonResult<Result>(run).message).toContain(': + extension citext; + function public.audit_stamp(); + trigger public.orders.orders_audit');
  });

  it('an install from before the schema column gets it on its next changing command', async () => {
    const db = await freshDatabase();
    const project = await makeProject(BASE);
    const args = baseArgs(project, db.url);
    await db.appQuery(`CREATE SCHEMA belay;
      CREATE TABLE belay.migrations (name text PRIMARY KEY, checksum text NOT NULL, files jsonb NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms integer NOT NULL, run_id uuid);
      CREATE TABLE belay.runs (id uuid PRIMARY KEY, command text NOT NULL, status text NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz, from_revision text, to_revision text, exit_code integer, snapshot_id text, last_step text, run_by text NOT NULL, summary jsonb);
      CREATE TABLE belay.steps (run_id uuid NOT NULL, seq integer NOT NULL, at timestamptz NOT NULL, step text NOT NULL, event text NOT NULL, revision text, subject text, outcome text, duration_ms integer, detail jsonb, PRIMARY KEY (run_id, seq));`);
    const run = await belay([...args, 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(0);
    const rows = await db.query<{ changes: string[] }>("SELECT ARRAY(SELECT jsonb_object_keys(schema->'changes') ORDER BY 1) AS changes FROM belay.migrations");
    expect(rows).toEqual([{ changes: ['constraint public.orders.orders_pkey', 'index public.orders_pkey', 'table public.orders'] }]);
  });
});
