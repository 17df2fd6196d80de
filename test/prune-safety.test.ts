import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, cleanEnv, CLI, startBelay } from './support/cli.js';
import { canMakeImmutable, immutable } from './support/immutable.js';
import { freshJournal, pollUntil } from './support/kill.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

const dumps = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((f) => f.endsWith('.dump')).sort();
const idOf = (stdout: string): string => (JSON.parse(stdout).result as { snapshot: { id: string } }).snapshot.id;

interface PruneJson {
  removed: string[];
  kept: Array<{ id: string; why: string }>;
}

describe('a snapshot a run may still need is never pruned', () => {
  it('after a kill inside a no-transaction revision, prune --keep 0 keeps the snapshot recover restores, and recover brings every row back', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_t.up.sql': "CREATE TABLE t (id int PRIMARY KEY, v text);\nINSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g;",
      '0001_t.down.sql': 'DROP TABLE t;',
      '0002_wipe.up.sql': "-- belay:no-transaction\nUPDATE t SET v = 'wiped';\nSELECT pg_sleep(30);",
      '0002_wipe.down.sql': 'SELECT 1;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    // an older snapshot too: prune has something it may delete
    const older = idOf((await belay([...args, '--json', 'backup'], { cwd: project.dir })).stdout);
    const before = new Set(await readdir(`${project.backups}/journal`));
    const run = startBelay([...args, 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    // killed once the revision's UPDATE has committed, outside any transaction
    await pollUntil(async () => (await db.query("SELECT count(*)::int AS n FROM t WHERE v = 'wiped'"))[0]?.n === 1000, 'the no-transaction UPDATE committed');
    run.child.kill('SIGKILL');
    await run.done;
    const journal = await freshJournal(project.backups, before);
    const runSnapshot = journal.find((l) => l.step === 'backup' && l.event === 'end')?.detail as { id: string };
    expect(runSnapshot.id).toBeTruthy();

    const status = JSON.parse((await belay([...args, '--json', 'status'], { cwd: project.dir })).stdout).result as { interrupted: { action: string; snapshotId: string } };
    expect(status.interrupted).toMatchObject({ action: 'restore', snapshotId: runSnapshot.id });

    const prune = await belay([...args, '--json', '--yes', 'backups', 'prune', '--keep', '0'], { cwd: project.dir });
    expect(prune.code, prune.stdout + prune.stderr).toBe(0);
    const pruned = JSON.parse(prune.stdout).result as PruneJson;
    expect(pruned.removed).toEqual([older]);
    expect(pruned.kept.find((k) => k.id === runSnapshot.id)?.why).toMatch(/unsettled.*recover/);
    expect(await dumps(project.backups)).toEqual([`${runSnapshot.id}.dump`]);

    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stdout + recover.stderr).toBe(11);
    expect(await db.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE v = 'wiped')::int AS wiped FROM t")).toEqual([{ n: 1000, wiped: 0 }]);

    // settled now: the newest snapshot of the database is still kept, and says why
    const after = JSON.parse((await belay([...args, '--json', '--yes', 'backups', 'prune', '--keep', '0'], { cwd: project.dir })).stdout).result as PruneJson;
    expect(after.kept.map((k) => k.why).join('\n')).toMatch(/the newest snapshot of/);
  });

  it('prune during a live `migrate up --with-backup` exits 3 and deletes nothing; from another database sharing the folder it keeps that run\'s snapshot', async () => {
    const db = await freshDatabase();
    const other = await freshDatabase();
    const project = await makeProject({
      '0001_slow.up.sql': 'CREATE TABLE t (id int);\nSELECT pg_sleep(30);',
      '0001_slow.down.sql': 'DROP TABLE t;',
    });
    const args = baseArgs(project, db.url);
    const otherArgs = baseArgs(project, other.url);
    const older = idOf((await belay([...args, '--json', 'backup'], { cwd: project.dir })).stdout);
    const before = new Set(await readdir(`${project.backups}/journal`));
    // full: under auto the revision (and its pg_sleep) would first run on a schema-only copy to learn its scope
    const run = startBelay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'full'], { cwd: project.dir });
    try {
      await pollUntil(async () => (await freshJournal(project.backups, before)).some((l) => l.step === 'apply' && l.event === 'start'), 'the run applying 0001');
      const runSnapshot = ((await freshJournal(project.backups, before)).find((l) => l.step === 'backup' && l.event === 'end')?.detail as { id: string }).id;
      const locked = await belay([...args, '--yes', 'backups', 'prune', '--keep', '0'], { cwd: project.dir });
      expect(locked.code, locked.stdout + locked.stderr).toBe(3);
      expect(locked.stderr).toMatch(/another belay run holds the lock/);
      expect(await dumps(project.backups)).toEqual([`${older}.dump`, `${runSnapshot}.dump`].sort());

      // the other database's lock is free: its prune goes on, and keeps what the live run needs
      const fromOther = await belay([...otherArgs, '--json', '--yes', 'backups', 'prune', '--keep', '0'], { cwd: project.dir });
      expect(fromOther.code, fromOther.stdout + fromOther.stderr).toBe(0);
      const result = JSON.parse(fromOther.stdout).result as PruneJson;
      expect(result.kept.find((k) => k.id === runSnapshot)?.why).toMatch(/no outcome in its journal/);
      expect(result.removed).toEqual([older]);
      expect(await dumps(project.backups)).toEqual([`${runSnapshot}.dump`]);
    } finally {
      run.child.kill('SIGKILL');
      await run.done;
    }
  });

  it('keeps the newest snapshot of each database; --keep 0 needs --yes; backup.keep prunes under the same rules', async () => {
    const a = await freshDatabase();
    const b = await freshDatabase();
    const project = await makeProject({});
    const ids: Record<string, string[]> = { a: [], b: [] };
    for (let i = 0; i < 2; i++) {
      ids.a!.push(idOf((await belay([...baseArgs(project, a.url), '--json', 'backup'])).stdout));
      ids.b!.push(idOf((await belay([...baseArgs(project, b.url), '--json', 'backup'])).stdout));
    }
    const refused = await belay([...baseArgs(project, a.url), 'backups', 'prune', '--keep', '0']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--keep 0 .*--yes/);
    expect(await dumps(project.backups)).toHaveLength(4);

    const prune = await belay([...baseArgs(project, a.url), '--yes', 'backups', 'prune', '--keep', '0']);
    expect(prune.code, prune.stderr).toBe(0);
    expect(prune.stdout).toContain(`kept ${ids.a![1]}: the newest snapshot of ${a.name}`);
    expect(prune.stdout).toContain(`kept ${ids.b![1]}: the newest snapshot of ${b.name}`);
    expect(await dumps(project.backups)).toEqual([`${ids.a![1]}.dump`, `${ids.b![1]}.dump`].sort());

    // backup.keep 1 in the config: the run's own snapshot and the other database's newest stay
    const keepZero = await makeProject({}, { backup: { keep: 1 } });
    const first = await belay([...baseArgs({ ...keepZero, backups: project.backups }, b.url), '--json', 'backup'], { cwd: keepZero.dir });
    expect(first.code, first.stderr).toBe(0);
    const newest = idOf(first.stdout);
    expect((JSON.parse(first.stdout).result as { message: string }).message).toMatch(/backup.keep 1: removed 1, kept 2/);
    expect(await dumps(project.backups)).toEqual([`${ids.a![1]}.dump`, `${newest}.dump`].sort());
  });
});


/** Start belay and SIGKILL it once its journal says the restore step started: the run is left unsettled, restoring. */
async function killAtRestoreStart(db: TestDatabase, args: string[], cwd: string, backups: string): Promise<Array<Record<string, unknown>>> {
  const before = new Set(await readdir(`${backups}/journal`));
  const run = startBelay(args, { cwd });
  // once the database's copy of the journal has the restore's start, as the restore waits for before it replaces anything
  // (killed between the file's line and that row, recover would first compare the data with the snapshot's fingerprint)
  const started = "SELECT 1 FROM belay.steps WHERE step = 'restore' AND event = 'start'";
  await pollUntil(async () => (await freshJournal(backups, before)).some((l) => l.step === 'restore' && l.event === 'start') && (await db.query(started)).length > 0, 'the restore step starting');
  run.child.kill('SIGKILL');
  await run.done;
  return freshJournal(backups, before);
}

describe('the snapshot an unsettled restore is putting back is never pruned', () => {
  const REVISIONS = {
    // enough rows that the restore is still going when it is killed
    '0001_t.up.sql': "CREATE TABLE t (id int PRIMARY KEY, v text);\nINSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 200000) g;",
    '0001_t.down.sql': 'DROP TABLE t;',
    '0002_u.up.sql': 'CREATE TABLE u (id int);',
    '0002_u.down.sql': 'DROP TABLE u;',
  };

  async function pruneKeepsThenRecoverRestores(project: Awaited<ReturnType<typeof makeProject>>, args: string[], runId: unknown, restoring: string, newest: string): Promise<void> {
    const status = JSON.parse((await belay([...args, '--json', 'status'], { cwd: project.dir })).stdout).result as { interrupted: { action: string; snapshotId: string } };
    expect(status.interrupted).toMatchObject({ action: 'restore', snapshotId: restoring, run: { runId } });

    const prune = await belay([...args, '--json', '--yes', 'backups', 'prune', '--keep', '0'], { cwd: project.dir });
    expect(prune.code, prune.stdout + prune.stderr).toBe(0);
    const pruned = JSON.parse(prune.stdout).result as PruneJson;
    expect(pruned.removed).toEqual([]);
    expect(pruned.kept.find((k) => k.id === restoring)?.why).toMatch(new RegExp(`run ${String(runId)} .*unsettled.*recover`));
    expect(pruned.kept.find((k) => k.id === newest)?.why).toBeTruthy();

    const recover = await belay([...args, '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stdout + recover.stderr).toBe(11);
    expect(JSON.parse(recover.stdout).result).toMatchObject({ snapshot: { id: restoring } });
    expect(await dumps(project.backups)).toEqual([`${restoring}.dump`, `${newest}.dump`].sort());
    const settled = JSON.parse((await belay([...args, '--json', 'status'], { cwd: project.dir })).stdout).result as { current: string; interrupted: unknown };
    expect(settled).toMatchObject({ current: '0001_t', interrupted: null });
  }

  it('`belay restore S1` killed at its restore start: prune --keep 0 keeps S1, and recover restores it', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const s1 = idOf((await belay([...args, '--json', 'backup'], { cwd: project.dir })).stdout);
    const s2 = idOf((await belay([...args, '--json', 'backup'], { cwd: project.dir })).stdout);
    const journal = await killAtRestoreStart(db, [...args, 'restore', s1, '--yes'], project.dir, project.backups);
    const runId = journal.find((l) => l.type === 'run')?.runId;
    expect(journal.some((l) => l.type === 'outcome')).toBe(false);
    await pruneKeepsThenRecoverRestores(project, args, runId, s1, s2);
    expect(await db.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 200000 }]);
  });

  it('`belay rollback --to 0001 --restore-from S1` killed at its restore start: prune --keep 0 keeps S1, and recover restores it', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const s1 = idOf((await belay([...args, '--json', 'backup'], { cwd: project.dir })).stdout);
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    const s2 = idOf((await belay([...args, '--json', 'backup'], { cwd: project.dir })).stdout);
    const journal = await killAtRestoreStart(db, [...args, 'rollback', '--to', '0001', '--restore-from', s1, '--yes'], project.dir, project.backups);
    const runId = journal.find((l) => l.type === 'run')?.runId;
    expect(journal.some((l) => l.type === 'outcome')).toBe(false);
    await pruneKeepsThenRecoverRestores(project, args, runId, s1, s2);
    expect(await db.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'u'")).toEqual([{ n: 0 }]);
  });
});


describe('a prune that cannot delete a snapshot', () => {
  it('stops there with exit 12, names what it deleted before, leaves that snapshot whole, and a second prune finishes the job', async (context) => {
    const db = await freshDatabase();
    const project = await makeProject({});
    if (!(await canMakeImmutable(project.dir))) context.skip('chattr +i is not available here (needs root and a file system with the immutable flag)');
    const args = baseArgs(project, db.url);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(idOf((await belay([...args, '--json', 'backup'])).stdout));
    // ids[0] oldest; deleting ids[0..2] stops at ids[1]
    const stuck = path.join(project.backups, `${ids[1]}.dump`);
    expect(immutable(stuck, true)).toBe(true);
    try {
      const prune = await belay([...args, '--yes', 'backups', 'prune', '--keep', '1']);
      expect(prune.code, prune.stderr).toBe(12);
      expect(prune.stderr).toMatch(/a deletion in .* failed \(EPERM/);
      expect(prune.stderr).toContain(`${ids[2]}`);
      expect(prune.stderr).toMatch(/next: /);
      const left = await readdir(project.backups);
      // the snapshot it could not delete is whole: its dump and its manifest
      expect(left).toEqual(expect.arrayContaining([`${ids[1]}.dump`, `${ids[1]}.manifest.json`, `${ids[3]}.dump`, `${ids[3]}.manifest.json`]));
      expect(left.filter((f) => f.startsWith(ids[2]!))).toEqual([]);
    } finally {
      immutable(stuck, false);
    }
    const again = await belay([...args, '--yes', 'backups', 'prune', '--keep', '1']);
    expect(again.code, again.stderr).toBe(0);
    expect(await dumps(project.backups)).toEqual([`${ids[3]}.dump`]);
  });
});

describe('a prune killed with -9', () => {
  it('`belay backup` with backup.keep killed while deleting an old snapshot: never listed as a snapshot again; recover settles the run and removes what is left', async () => {
    const db = await freshDatabase();
    // a directory snapshot of many tables: a file each, so that deleting it takes long enough for the kill to land inside it
    const project = await makeProject(
      {
        '0001_many.up.sql': "DO $$ BEGIN FOR i IN 1..300 LOOP EXECUTE format('CREATE TABLE t%s (id int)', i); END LOOP; END $$;",
        '0001_many.down.sql': "DO $$ BEGIN FOR i IN 1..300 LOOP EXECUTE format('DROP TABLE t%s', i); END LOOP; END $$;",
      },
      { backup: { format: 'directory', keep: 1 } },
    );
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    const first = await belay([...args, '--json', 'backup'], { cwd: project.dir });
    expect(first.code, first.stdout).toBe(0);
    const old = idOf(first.stdout);
    const dir = path.join(project.backups, `${old}.dir`);
    const whole = (await readdir(dir)).length;
    const backup = startBelay([...args, 'backup'], { cwd: project.dir });
    await pollUntil(async () => (await readdir(dir).catch(() => [])).length < whole, `${old} being deleted`, 100_000);
    backup.child.kill('SIGKILL');
    await backup.done;
    const list = await belay([...args, '--json', 'backups', 'list'], { cwd: project.dir });
    expect(list.code, list.stdout).toBe(0);
    expect((JSON.parse(list.stdout).result as { snapshots: Array<{ id: string }> }).snapshots.map((m) => m.id)).not.toContain(old);
    expect((await belay([...args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(4);
    const recover = await belay([...args, 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stderr).toBe(0);
    expect((await readdir(project.backups)).filter((f) => f.startsWith(old))).toEqual([]);
  });
});

describe('a prune stopped at once by a second signal', () => {
  it('names the snapshots it deleted, the one it was cut off in, and those it did not reach (exit 12), as the folder shows them; a second prune finishes', async () => {
    const db = await freshDatabase();
    // directory snapshots of many tables: a file each, so that deleting one takes long enough for the signals to land inside the prune
    const project = await makeProject(
      {
        '0001_many.up.sql': "DO $$ BEGIN FOR i IN 1..600 LOOP EXECUTE format('CREATE TABLE t%s (id int)', i); END LOOP; END $$;",
        '0001_many.down.sql': "DO $$ BEGIN FOR i IN 1..600 LOOP EXECUTE format('DROP TABLE t%s', i); END LOOP; END $$;",
      },
      { backup: { format: 'directory' } },
    );
    const args = baseArgs(project, db.url);
    const up = await belay([...args, 'migrate', 'up'], { cwd: project.dir });
    expect(up.code, up.stderr).toBe(0);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const backup = await belay([...args, '--json', 'backup'], { cwd: project.dir });
      expect(backup.code, backup.stdout).toBe(0);
      ids.push(idOf(backup.stdout));
    }
    const whole = (await readdir(path.join(project.backups, `${ids[0]}.dir`))).length;
    // --keep 1 deletes ids[3] to ids[0], newest first; the signals come once the first of ids[3]'s files is gone
    const prune = startBelay([...args, '--json', '--yes', 'backups', 'prune', '--keep', '1'], { cwd: project.dir });
    const first = path.join(project.backups, `${ids[3]}.dir`);
    await pollUntil(async () => (await readdir(first).catch(() => [])).length < whole, `${ids[3]} being deleted`, 100_000);
    // two signals sent at once would reach it as one: the second once the first is taken
    const firstTaken = new Promise<void>((resolve) => prune.child.stderr!.on('data', (chunk: Buffer) => chunk.toString().includes('pruning is not stopped halfway') && resolve()));
    prune.child.kill('SIGINT');
    await firstTaken;
    prune.child.kill('SIGINT');
    const done = await prune.done;
    expect(done.code, done.stdout + done.stderr).toBe(12);
    const doc = JSON.parse(done.stdout) as { message: string; next: string; result: { details: { removed: string[]; removing: string | null; notRemoved: string[] } } };
    const { removed, removing, notRemoved } = doc.result.details;
    expect([...removed, ...(removing ? [removing] : []), ...notRemoved]).toEqual([ids[3], ids[2], ids[1], ids[0]]);
    // cut off inside the prune: something deleted, not everything
    expect(removed.length + (removing ? 1 : 0)).toBeGreaterThan(0);
    expect(notRemoved.length + (removing ? 1 : 0)).toBeGreaterThan(0);
    const left = await readdir(project.backups);
    const onDisk = async (id: string): Promise<'gone' | 'whole' | 'partial'> => {
      const files = left.includes(`${id}.dir`) ? (await readdir(path.join(project.backups, `${id}.dir`))).length : 0;
      const manifest = left.includes(`${id}.manifest.json`);
      return !manifest && files === 0 ? 'gone' : manifest && files === whole ? 'whole' : 'partial';
    };
    for (const id of removed) expect(await onDisk(id), id).toBe('gone');
    for (const id of notRemoved) expect(await onDisk(id), id).toBe('whole');
    for (const id of ids.slice(0, 4)) if ((await onDisk(id)) === 'partial') expect(removing).toBe(id);
    expect(doc.message).toMatch(/^stopped at once by a second SIGINT while pruning /);
    if (removed.length > 0) expect(doc.message).toContain(`deleted: ${removed.join(', ')}`);
    if (removing) expect(doc.message).toContain(`cut off while deleting ${removing}`);
    if (notRemoved.length > 0) expect(doc.message).toContain(`not deleted: ${notRemoved.join(', ')}`);
    expect(doc.next).toMatch(/belay backups list/);
    // a second prune finishes the job
    const again = await belay([...args, '--yes', 'backups', 'prune', '--keep', '1'], { cwd: project.dir });
    expect(again.code, again.stderr).toBe(0);
    expect((await readdir(project.backups)).filter((f) => !f.startsWith(ids[4]!) && f !== 'journal')).toEqual([]);
  }, 300_000);
});

/** Run the CLI on a pseudo-terminal (util-linux `script`), typing `answer`. */
function onTerminal(args: string[], answer: string): Promise<{ code: number | null; output: string }> {
  const quote = (arg: string): string => `'${arg.replaceAll("'", "'\\''")}'`;
  const child = spawn('script', ['-qec', [process.execPath, CLI, ...args].map(quote).join(' '), '/dev/null'], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stdin.end(answer);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => child.on('close', (code) => (clearTimeout(timer), resolve({ code, output }))));
}

describe('prune on a terminal', () => {
  it('asks before deleting, and deletes nothing when told no', async () => {
    const db = await freshDatabase();
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const ids = [idOf((await belay([...args, '--json', 'backup'])).stdout), idOf((await belay([...args, '--json', 'backup'])).stdout)];
    const no = await onTerminal([...args, 'backups', 'prune', '--keep', '1'], 'n\n');
    expect(no.output).toMatch(new RegExp(`belay will delete snapshot ${ids[0]} from [^\\n]*\\n.*Proceed\\? \\[y/N\\]`));
    expect(no.output).toMatch(/declined: nothing deleted/);
    expect(no.code).toBe(4);
    expect(await dumps(project.backups)).toEqual(ids.map((id) => `${id}.dump`).sort());
    const yes = await onTerminal([...args, 'backups', 'prune', '--keep', '1'], 'y\n');
    expect(yes.output).toMatch(new RegExp(`removed ${ids[0]}`));
    expect(await dumps(project.backups)).toEqual([`${ids[1]}.dump`]);
  });
});
