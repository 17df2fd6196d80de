import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareLogFile, startCluster, stopCluster } from '../src/cluster/local-cluster.js';
import type { TempCluster } from '../src/cluster/temp-cluster.js';
import { quoteIdent } from '../src/db/ident.js';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { freshJournal, pollUntil } from './support/kill.js';
import { makeProject } from './support/project.js';
import { startStoppableCluster } from './support/stoppable-cluster.js';

/** Its own server, to crash it under a restore. */
describe('the server crashes under a restore that ends "not touched"', () => {
  let server: TempCluster;
  let n = 0;
  const url = (db: string): string => `postgresql://postgres@/${db}?host=${encodeURIComponent(server.spec.socketDir)}&port=${server.spec.port}`;
  const query = async <T extends pg.QueryResultRow>(db: string, sql: string, values: unknown[] = []): Promise<T[]> => {
    const client = new pg.Client({ connectionString: url(db) });
    await client.connect();
    try {
      return (await client.query<T>(sql, values)).rows;
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    server = await startStoppableCluster('belay-restore-crash-');
  }, 120_000);
  afterAll(() => server?.remove());

  it.each([
    ['swap', []],
    ['in place', ['--strategy', 'in-place']],
  ])('%s: its journal file says exit 4, the runs row still running: settled, status, a changing command and recover agree; recover restores nothing', async (_how, strategy) => {
    const db = `crash_${++n}`;
    await query('postgres', `CREATE DATABASE ${quoteIdent(db)}`);
    await query(db, "CREATE TABLE big (id int PRIMARY KEY, pad text NOT NULL); INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 300000) g");
    const project = await makeProject({});
    const args = ['--database-url', url(db), '--migrations', project.migrations, '--backups', project.backups];
    const taken = await belay([...args, '--json', 'backup'], { cwd: project.dir });
    expect(taken.code, taken.stderr).toBe(0);
    const id = (jsonResult(taken) as { snapshot: { id: string } }).snapshot.id;
    await query(db, 'DELETE FROM big WHERE id <= 1000');

    const before = new Set(await readdir(join(project.backups, 'journal')));
    const running = startBelay([...args, 'restore', id, '--yes', ...strategy], { cwd: project.dir });
    let exited = false;
    void running.done.then(() => (exited = true));
    await pollUntil(async () => {
      if (exited) throw new Error(`belay ended before pg_restore loaded the table: ${(await running.done).stderr}`);
      return (await query('postgres', "SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, $1) AND query ~ '^COPY public\\.big '", [db])).length > 0;
    }, 'pg_restore loading big');
    await stopCluster(server.spec, 'immediate');
    const restore = await running.done;
    const log = join(server.root, 'server.log');
    await prepareLogFile(log);
    await startCluster(server.spec, log);
    expect(restore.code, restore.stderr).toBe(4);
    const journal = await freshJournal(project.backups, before);
    const runId = String(journal.find((l) => l.type === 'run')?.runId);
    expect(journal.find((l) => l.type === 'outcome')).toMatchObject({ status: 'refused', exitCode: 4 });
    // the outcome could not reach the database while it was down
    expect(await query(db, 'SELECT status FROM belay.runs WHERE id = $1', [runId])).toEqual([{ status: 'running' }]);
    await query(db, 'INSERT INTO big VALUES (1, $1)', ['written after the server came back']);

    const status = await belay([...args, 'status'], { cwd: project.dir });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('refused (exit 4)');
    expect(status.stdout).not.toContain('INTERRUPTED');
    const statusJson = await belay([...args, '--json', 'status'], { cwd: project.dir });
    expect(jsonResult(statusJson)).toMatchObject({ interrupted: null, lastRun: { runId, status: 'refused', exitCode: 4 } });
    const up = await belay([...args, 'migrate', 'up'], { cwd: project.dir });
    expect(up.code, up.stderr).toBe(0);

    const recover = await belay([...args, 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stderr).toBe(0);
    expect(recover.stdout).toContain(`run ${runId} had ended refused (exit 4), as its journal file says; its record in ${db} said running, and now says so too`);
    expect(recover.stdout).not.toMatch(/restored|restoring/);
    // what the swap created before the crash (the restore could not drop it then): recover drops it
    expect(await query('postgres', 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [`${db}_belay_restore_`])).toEqual([]);
    expect(await query(db, 'SELECT pad FROM big WHERE id = 1')).toEqual([{ pad: 'written after the server came back' }]);
    expect(await query(db, 'SELECT count(*)::int AS n FROM big')).toEqual([{ n: 299001 }]);
    expect(await query(db, 'SELECT status, exit_code FROM belay.runs WHERE id = $1', [runId])).toEqual([{ status: 'refused', exit_code: 4 }]);
    const history = await belay([...args, 'history', runId], { cwd: project.dir });
    expect(history.code, history.stderr).toBe(0);
    expect(history.stdout).toContain('refused');
  }, 180_000);
});
