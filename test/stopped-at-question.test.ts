import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI, belay, cleanEnv, jsonResult } from './support/cli.js';
import { childrenOf, pollUntil, processGone } from './support/kill.js';
import { freshDatabase } from './support/pg.js';
import { GOOD_REVISIONS, baseArgs, makeProject, type TestProject } from './support/project.js';

// python3's pty runs belay on a pseudo-terminal (so it asks) and copies what it writes there to its own stdout
const PTY = 'import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))';

/** `belay rollback --to 0001` on a terminal, once it asks "Proceed?": its node process, and how it ends. */
async function atTheQuestion(project: TestProject, url: string): Promise<{ pid: number; done: Promise<{ code: number | null; out: string }> }> {
  const python = spawn('python3', ['-c', PTY, process.execPath, CLI, ...baseArgs(project, url), 'rollback', '--to', '0001'], { cwd: project.dir, env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  python.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  // never answered: a stuck question is ended by the test's own kill, and fails it
  const timer = setTimeout(() => python.kill('SIGKILL'), 30_000);
  const done = new Promise<{ code: number | null; out: string }>((resolve) => python.on('close', (code) => (clearTimeout(timer), resolve({ code, out }))));
  await pollUntil(async () => out.includes('Proceed? [y/N]'), 'the question');
  const [pid] = await childrenOf(python.pid!);
  return { pid: pid!, done };
}

async function statusOf(project: TestProject, url: string): Promise<{ lock: { run: { runId: string } | null } | null; lastRun: { runId: string; status: string; exitCode: number | null }; interrupted: { run: { runId: string }; action: string; why: string } | null }> {
  return jsonResult(await belay([...baseArgs(project, url), '--json', 'status'], { cwd: project.dir }));
}

async function prepared(): Promise<{ project: TestProject; url: string; applied: () => Promise<string[]> }> {
  const db = await freshDatabase();
  const project = await makeProject(GOOD_REVISIONS);
  expect((await belay([...baseArgs(project, db.url), 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
  const applied = async (): Promise<string[]> => (await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((r) => String(r.name));
  return { project, url: db.url, applied };
}

describe('a run stopped at its question, before it changed anything', () => {
  it('one SIGTERM at the rollback question answers it no at once: exit 2 as declined, lock free, the run journaled as refused (belay went on waiting, holding the lock)', async () => {
    const { project, url, applied } = await prepared();
    const { pid, done } = await atTheQuestion(project, url);
    process.kill(pid, 'SIGTERM');
    const run = await done;
    expect(run.code, run.out).toBe(2);
    expect(run.out).toContain('SIGTERM at the question: taken as no; nothing was changed');
    expect(run.out).toContain('belay: rollback not confirmed; nothing was changed');
    const status = await statusOf(project, url);
    expect(status.lock).toBeNull();
    expect(status.interrupted).toBeNull();
    expect(status.lastRun).toMatchObject({ status: 'refused', exitCode: 2 });
    const history = jsonResult(await belay([...baseArgs(project, url), '--json', 'history', status.lastRun.runId], { cwd: project.dir })) as { run: { status: string; exitCode: number } };
    expect(history.run).toMatchObject({ status: 'refused', exitCode: 2 });
    expect(await applied()).toEqual(['0001_accounts', '0002_profiles', '0003_accounts_name']);
  });

  it('killed (kill -9) at the question: shown running while it holds the lock, then settled by recover as one that changed nothing (it stayed "unfinished", and recover said "nothing to recover")', async () => {
    const { project, url, applied } = await prepared();
    const { pid, done } = await atTheQuestion(project, url);
    const asking = await statusOf(project, url);
    const runId = asking.lock!.run!.runId;
    expect(runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(asking.lastRun).toMatchObject({ runId, status: 'running' });
    expect(asking.interrupted).toBeNull();

    process.kill(pid, 'SIGKILL');
    await done;
    await pollUntil(() => processGone(pid), 'the killed run gone');
    const left = await statusOf(project, url);
    expect(left.lock).toBeNull();
    expect(left.interrupted).toMatchObject({ run: { runId }, action: 'nothing' });
    expect(left.interrupted!.why).toMatch(/^it ended before it changed anything/);
    const text = await belay([...baseArgs(project, url), 'status'], { cwd: project.dir });
    expect(text.stdout).toContain(`INTERRUPTED run ${runId} (rollback`);
    expect(text.stdout).toContain('belay recover will settle its record: it ended before it changed anything');

    const recover = await belay([...baseArgs(project, url), '--json', 'recover'], { cwd: project.dir });
    expect(recover.code, recover.stderr).toBe(0);
    expect(JSON.parse(recover.stdout).message).toBe(`run ${runId} ended before it changed anything: recorded as interrupted`);
    const settled = await statusOf(project, url);
    expect(settled.interrupted).toBeNull();
    const history = jsonResult(await belay([...baseArgs(project, url), '--json', 'history', runId], { cwd: project.dir })) as { run: { status: string } };
    expect(history.run.status).toBe('interrupted');
    expect(await applied()).toEqual(['0001_accounts', '0002_profiles', '0003_accounts_name']);
  });
});
