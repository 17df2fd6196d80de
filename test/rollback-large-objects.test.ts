import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

interface Envelope {
  exitCode: number;
  outcome: string;
  message: string;
  next: string | null;
  result: { runId: string };
}

// 0002's up makes a large object of its own, which its down may unlink: only those 0001 made are to be kept
const OBJECTS: Record<string, string> = {
  '0001_objects.up.sql': "CREATE TABLE lobs (id int PRIMARY KEY, lo oid);\nINSERT INTO lobs VALUES (1, lo_from_bytea(0, 'first')), (2, lo_from_bytea(0, 'second'));\nSELECT lo_from_bytea(424242, 'explicit oid lo');",
  '0001_objects.down.sql': 'SELECT lo_unlink(lo) FROM lobs;\nSELECT lo_unlink(424242);\nDROP TABLE lobs;',
  '0002_more.up.sql': "CREATE TABLE more_lobs (lo oid);\nINSERT INTO more_lobs VALUES (lo_from_bytea(0, 'made by 0002'));",
};

async function prepared(down: string) {
  const db = await freshDatabase();
  const project = await makeProject({ ...OBJECTS, '0002_more.down.sql': down });
  const args = baseArgs(project, db.url);
  expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
  const objects = async () => ({
    oids: (await db.query<{ oid: string }>('SELECT oid::text FROM pg_largeobject_metadata ORDER BY oid')).map((r) => r.oid),
    explicit: (await db.query<{ v: string }>("SELECT convert_from(lo_get(424242), 'UTF8') AS v"))[0]!.v,
    ledger: (await db.query<{ name: string }>('SELECT name FROM belay.migrations ORDER BY name')).map((r) => r.name),
  });
  const before = await objects();
  expect(before.oids).toHaveLength(4);
  const rollback = async (...extra: string[]) => {
    const run = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001', ...extra], { cwd: project.dir });
    const envelope = JSON.parse(run.stdout) as Envelope;
    const history = jsonResult<{ run: { status: string; exitCode: number }; steps: Array<{ step: string; outcome: string; detail: { differences?: Array<{ message: string }> } }> }>(
      await belay([...args, '--json', 'history', envelope.result.runId], { cwd: project.dir }),
    );
    return { run, envelope, history, integrity: history.steps.filter((s) => s.step === 'integrity').at(-1) };
  };
  return { db, objects, before, rollback };
}

const UNLINKS = "SELECT lo_unlink(lo) FROM more_lobs;\nDROP TABLE more_lobs;\nSELECT lo_unlink(lo) FROM lobs WHERE id = 1;";
const GONE = 'the large objects the reverted ups did not make changed: 3 before, 2 now';

describe('rollback --to compares the large objects there were before it', () => {
  it('a down that unlinks a large object 0001 made: its snapshot is restored (exit 11), the object back; it ended 0, "large objects not compared"', async () => {
    const { objects, before, rollback } = await prepared(UNLINKS);
    const { run, envelope, history, integrity } = await rollback();
    expect(run.code, run.stdout + run.stderr).toBe(11);
    expect(envelope.outcome).toBe('restored');
    expect(envelope.message).toContain(`data changed after the rollback: ${GONE}`);
    expect(envelope.message).not.toContain('verified intact,');
    expect(await objects()).toEqual(before);
    expect(history.run).toMatchObject({ status: 'restored', exitCode: 11 });
    expect(integrity?.outcome).toBe('failed');
    expect(integrity?.detail.differences?.map((d) => d.message)).toEqual([GONE]);
  }, 120_000);

  it('the same down under --no-backup ends 12 naming the large objects, with a next:', async () => {
    const { objects, before, rollback } = await prepared(UNLINKS);
    const { run, envelope, history, integrity } = await rollback('--no-backup');
    expect(run.code, run.stdout + run.stderr).toBe(12);
    expect(envelope.message).toBe(`rollback to 0001_objects; data changed after the rollback: ${GONE}; but no snapshot was taken to restore (the run had no --with-backup, or rollback --no-backup)`);
    expect(envelope.next).toMatch(/Restore an earlier belay snapshot .* Next time leave out --no-backup\.$/);
    const after = await objects();
    expect(after.oids).toEqual(before.oids.filter((oid) => after.oids.includes(oid)));
    expect(after.oids).toHaveLength(2);
    expect(after.ledger).toEqual(['0001_objects']);
    expect(history.run).toMatchObject({ status: 'manual-action-needed', exitCode: 12 });
    expect(integrity?.detail.differences?.map((d) => d.message)).toEqual([GONE]);
  }, 120_000);

  it('a down that rewrites one (lo_put) is found too: --no-backup ends 12', async () => {
    const { objects, rollback } = await prepared("SELECT lo_unlink(lo) FROM more_lobs;\nDROP TABLE more_lobs;\nSELECT lo_put(424242, 0, 'XXXXXXXX');");
    const { run, envelope } = await rollback('--no-backup');
    expect(run.code, run.stdout + run.stderr).toBe(12);
    expect(envelope.message).toContain('data changed after the rollback: the content of large objects the reverted ups did not make changed (3, the same ones)');
    expect(envelope.next).toMatch(/Restore an earlier belay snapshot/);
    expect((await objects()).explicit).toBe('XXXXXXXX oid lo');
  }, 120_000);

  it('a down that unlinks only what its up made and makes a new large object is no damage: exit 0, data verified', async () => {
    const { objects, before, rollback } = await prepared("SELECT lo_unlink(lo) FROM more_lobs;\nDROP TABLE more_lobs;\nSELECT lo_from_bytea(0, 'made by the down');");
    const { run, envelope, integrity } = await rollback('--no-backup');
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(envelope.message).toBe('rolled back to 0001_objects; healthy, data verified; schema as recorded at 0001_objects');
    expect(integrity?.outcome).toBe('ok');
    const after = await objects();
    expect(after.oids).toHaveLength(4);
    expect(after.oids.filter((oid) => before.oids.includes(oid))).toHaveLength(3);
  }, 120_000);
});
