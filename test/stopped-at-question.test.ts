import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { CLI, belay, cleanEnv, jsonResult } from './support/cli.js';
import { childrenOf, pollUntil, processGone } from './support/kill.js';
import { freshDatabase } from './support/pg.js';
import { GOOD_REVISIONS, baseArgs, makeProject, type TestProject } from './support/project.js';

// python3's pty runs belay on a pseudo-terminal (so it asks) and copies what it writes there to its own stdout
const PTY = 'import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))';

/** `belay rollback --to 0001` (or `command`) on a terminal, once it asks "Proceed?": its node process, what types an answer, and how it ends. */
async function atTheQuestion(
  project: TestProject,
  url: string,
  command = ['rollback', '--to', '0001'],
): Promise<{ pid: number; answer: (text: string) => void; done: Promise<{ code: number | null; out: string }> }> {
  const python = spawn('python3', ['-c', PTY, process.execPath, CLI, ...baseArgs(project, url), ...command], { cwd: project.dir, env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  python.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  // never answered: a stuck question is ended by the test's own kill, and fails it
  const timer = setTimeout(() => python.kill('SIGKILL'), 30_000);
  const done = new Promise<{ code: number | null; out: string }>((resolve) => python.on('close', (code) => (clearTimeout(timer), resolve({ code, out }))));
  await pollUntil(async () => out.includes('Proceed? [y/N]'), 'the question');
  const [pid] = await childrenOf(python.pid!);
  return { pid: pid!, answer: (text) => python.stdin.write(text), done };
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
  it('one SIGTERM at the rollback question answers it no at once: exit 4 (refused, as any declined question), next: run it again, lock free, the run journaled as refused (exit 2, and next: told to pass --yes)', async () => {
    const { project, url, applied } = await prepared();
    const { pid, done } = await atTheQuestion(project, url);
    process.kill(pid, 'SIGTERM');
    const run = await done;
    expect(run.code, run.out).toBe(4);
    expect(run.out).toContain('SIGTERM at the question: taken as no; nothing was changed');
    expect(run.out).toMatch(/belay: rollback not confirmed; nothing was changed\r\n {2}journal {2}\S+\r\n {2}next: Run it again when you are ready\.\r\n/);
    expect(run.out).not.toContain('Pass --yes');
    const status = await statusOf(project, url);
    expect(status.lock).toBeNull();
    expect(status.interrupted).toBeNull();
    expect(status.lastRun).toMatchObject({ status: 'refused', exitCode: 4 });
    const history = jsonResult(await belay([...baseArgs(project, url), '--json', 'history', status.lastRun.runId], { cwd: project.dir })) as { run: { status: string; exitCode: number } };
    expect(history.run).toMatchObject({ status: 'refused', exitCode: 4 });
    expect(await applied()).toEqual(['0001_accounts', '0002_profiles', '0003_accounts_name']);
  });

  it('the rollback question answered n: exit 4, next: --yes skips the question, nothing reverted (exit 2, a usage error)', async () => {
    const { project, url, applied } = await prepared();
    const { answer, done } = await atTheQuestion(project, url);
    answer('n\r');
    const run = await done;
    expect(run.code, run.out).toBe(4);
    expect(run.out).toMatch(/belay: rollback not confirmed; nothing was changed\r\n {2}journal {2}\S+\r\n {2}next: Pass --yes to skip the question\.\r\n/);
    expect((await statusOf(project, url)).lastRun).toMatchObject({ status: 'refused', exitCode: 4 });
    expect(await applied()).toEqual(['0001_accounts', '0002_profiles', '0003_accounts_name']);
  });

  for (const how of ['n', 'SIGTERM'] as const) {
    it(`the backups prune question answered ${how === 'n' ? 'n' : 'by a SIGTERM'}: exit 4 as a declined rollback, nothing deleted${how === 'n' ? '' : ', next: run it again'} (exit 0)`, async () => {
      const { project, url } = await prepared();
      for (let i = 0; i < 2; i++) expect((await belay([...baseArgs(project, url), 'backup'], { cwd: project.dir })).code).toBe(0);
      const before = (await readdir(project.backups)).sort();
      const { pid, answer, done } = await atTheQuestion(project, url, ['backups', 'prune', '--keep', '1']);
      if (how === 'n') answer('n\r');
      else process.kill(pid, 'SIGTERM');
      const run = await done;
      expect(run.code, run.out).toBe(4);
      expect(run.out).toContain('declined: nothing deleted\r\n');
      expect(run.out).toContain(`\r\n  next: ${how === 'n' ? 'Pass --yes to skip the question.' : 'Run it again when you are ready.'}\r\n`);
      if (how === 'SIGTERM') expect(run.out).not.toContain('Pass --yes');
      expect((await readdir(project.backups)).sort()).toEqual(before);
    });
  }

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
