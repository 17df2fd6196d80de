import { spawn, spawnSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { belay, cleanEnv, ROOT, startBelay } from './support/cli.js';
import { cluster, freshDatabase, type TestDatabase } from './support/pg.js';
import { TEST_APP_PASSWORD, TEST_APP_ROLE } from './support/constants.js';
import { baseArgs, makeProject, type TestProject } from './support/project.js';

// A network path that stops passing bytes both ways while keeping its sockets open (a stalled NAT, a hung proxy):
// nothing fails, every wait on it waits until TCP gives up, minutes later. A signal must still end the run in bounded time.

const REVISIONS: Record<string, string> = {
  '0001_accounts.up.sql': 'CREATE TABLE accounts (id int PRIMARY KEY);\nINSERT INTO accounts SELECT g FROM generate_series(1, 10) g;',
  '0001_accounts.down.sql': 'DROP TABLE accounts;',
  '0002_slow.up.sql': 'ALTER TABLE accounts ADD COLUMN note text;\nSELECT pg_sleep(600);',
  '0002_slow.down.sql': 'ALTER TABLE accounts DROP COLUMN note;',
};

type Line = Record<string, unknown>;

/** A TCP proxy to the test cluster that can be frozen: from then on it reads and writes nothing, on old and new connections, and closes nothing. */
interface FreezableProxy {
  port: number;
  freeze(): void;
  close(): Promise<void>;
}

async function freezableProxy(): Promise<FreezableProxy> {
  let frozen = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((downstream) => {
    sockets.add(downstream);
    if (frozen) return void downstream.pause();
    const upstream = createConnection({ host: '127.0.0.1', port: cluster().port });
    sockets.add(upstream);
    const relay = (from: Socket, to: Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (!frozen) to.write(chunk);
      });
      from.on('error', () => {});
      from.on('close', () => {
        if (!frozen) to.destroy();
      });
    };
    relay(downstream, upstream);
    relay(upstream, downstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP port');
  return {
    port: address.port,
    freeze() {
      frozen = true;
      for (const socket of sockets) socket.pause();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const journalFiles = async (project: TestProject): Promise<string[]> => (await readdir(join(project.backups, 'journal')).catch(() => [] as string[])).filter((f) => f.endsWith('.jsonl'));

/** The lines of a journal file; its last line may be caught half written. */
async function journalLines(project: TestProject, file: string): Promise<Line[]> {
  const text = await readFile(join(project.backups, 'journal', file), 'utf8');
  return text.split('\n').filter(Boolean).flatMap((l) => {
    try {
      return [JSON.parse(l) as Line];
    } catch {
      return [];
    }
  });
}

/** Wait until a journal not in `earlier` says the apply of `revision` started; that journal's file name. */
async function applyStarted(project: TestProject, earlier: ReadonlySet<string>, revision: string): Promise<string> {
  for (let i = 0; i < 6000; i++) {
    for (const file of (await journalFiles(project)).filter((f) => !earlier.has(f))) {
      if ((await journalLines(project, file)).some((l) => l.step === 'apply' && l.event === 'start' && l.revision === revision)) return file;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never saw the apply of ${revision} start`);
}

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

const terminateSessions = (db: TestDatabase) => () => db.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');

describe('a network path that freezes during `migrate up`', () => {
  it('SIGTERM while a revision runs: belay gives up its waits on the frozen path and ends 12, leaving the run to `belay recover`', async () => {
    const db = await freshDatabase();
    const project = await makeProject(REVISIONS, { database: { connectTimeoutSeconds: 2 } });
    expect((await belay([...baseArgs(project, db.url), 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const proxy = await freezableProxy();
    cleanup.push(terminateSessions(db), () => proxy.close());
    const viaProxy = `postgresql://${TEST_APP_ROLE}:${encodeURIComponent(TEST_APP_PASSWORD)}@127.0.0.1:${proxy.port}/${db.name}`;
    const args = baseArgs(project, viaProxy);

    const earlier = new Set(await journalFiles(project));
    const run = startBelay([...args, '--json', 'migrate', 'up'], { cwd: project.dir, timeoutMs: 300_000 });
    cleanup.push(async () => run.child.kill('SIGKILL'));
    const file = await applyStarted(project, earlier, '0002_slow');
    await new Promise((r) => setTimeout(r, 500));
    proxy.freeze();
    const signalled = performance.now();
    run.child.kill('SIGTERM');
    // a belay still waiting on the frozen path (minutes, until TCP gives up) fails the test by its timeout
    const result = await run.done;
    console.log(`exited ${Math.round(performance.now() - signalled)} ms after SIGTERM`);

    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(12);
    const envelope = JSON.parse(result.stdout) as { outcome: string; message: string; next: string };
    expect(envelope.outcome).toBe('manual-action-needed');
    expect(envelope.next).toMatch(/When the server answers again, run `belay recover`/);
    expect(result.stderr).toContain('SIGTERM: stopping at the next safe point');
    const givenUp = "the server did not answer belay's cancel request within 2 s (database.connectTimeoutSeconds): the connection was given up";
    expect(result.stderr).toContain(givenUp);

    // the journal file (the database's copy was out of reach) says why the revision stopped and how the run ended
    const lines = await journalLines(project, file);
    expect(lines.some((l) => l.step === 'apply' && l.event === 'end' && l.outcome === 'failed' && JSON.stringify(l.detail).includes(givenUp))).toBe(true);
    expect(lines.find((l) => l.type === 'outcome')).toMatchObject({ status: 'manual-action-needed', exitCode: 12 });

    // once the path is back, recover settles the run
    await proxy.close();
    await terminateSessions(db)();
    const recover = await belay([...baseArgs(project, db.url), '--json', 'recover'], { cwd: project.dir });
    expect([0, 10], `${recover.stdout}\n${recover.stderr}`).toContain(recover.code);
    expect((await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => r.name)).toEqual(['0001_accounts']);
  }, 120_000);
});

describe('a network path that freezes while a revision waits for its answer', () => {
  it('with no signal: TCP keepalive finds the path dead, belay ends 12 and leaves the run to `belay recover`', async (context) => {
    if (spawnSync('unshare', ['-n', 'ip', 'link', 'set', 'lo', 'up']).status !== 0) context.skip('unshare -n with `ip` is not at hand here (it needs root, and iproute2): no private network namespace to freeze');
    const project = await makeProject({ '0001_slow.up.sql': 'SELECT pg_sleep(120);', '0001_slow.down.sql': 'SELECT 1;' });
    // the server and belay in a network namespace of their own, whose loopback goes down once the statement has run 12 s
    const fixture = spawn('unshare', ['-n', process.execPath, '--import', 'tsx', join(ROOT, 'test/support/frozen-namespace.ts'), project.dir, project.migrations, project.backups, '12000', '50000'], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanup.push(async () => fixture.kill('SIGKILL'));
    let said = '';
    fixture.stdout!.on('data', (chunk: Buffer) => (said += chunk.toString()));
    const code = await new Promise((resolve) => fixture.on('close', resolve));
    expect(code, said).toBe(0);
    const result = JSON.parse(said) as { stillRunning: boolean; seconds: number; hung?: true; code: number; stdout: string; stderr: string };
    console.log(`ended ${result.seconds.toFixed(1)} s after the path froze`);
    // the control: keepalive probes the server's kernel answers do not end a statement that runs long
    expect(result.stillRunning).toBe(true);
    // keepalive gives up in about 20 s, a new connection in the connect timeout: a belay still waiting when the
    // fixture gives up on it (a kill, so that nothing outlives the test) has no exit code
    expect(result.code, `${result.hung ? 'still waiting on the frozen path when the fixture killed it\n' : ''}${result.stdout}\n${result.stderr}`).toBe(12);
    const envelope = JSON.parse(result.stdout) as { outcome: string; message: string; next: string };
    expect(envelope.outcome).toBe('manual-action-needed');
    // the session holding the run's lock is gone for belay, and for the server once it notices: nothing more is committed
    expect(envelope.message).toMatch(
      /^the session holding the run's lock ended \(connection lost: read ETIMEDOUT\): stopped before committing 0001_slow; this run had committed nothing; the server does not answer a new connection either$/,
    );
    expect(envelope.next).toMatch(/^When the server answers again: `belay status` shows who holds the lock; once it is free, `belay recover` settles this run/);

    const [file] = await journalFiles(project);
    const lines = await journalLines(project, file!);
    expect(lines.some((l) => l.step === 'apply' && l.event === 'end' && l.outcome === 'failed' && l.revision === '0001_slow')).toBe(true);
    expect(lines.find((l) => l.type === 'outcome')).toMatchObject({ status: 'manual-action-needed', exitCode: 12 });
  }, 90_000);
});

