import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  timeoutMs?: number;
}

/**
 * A clean environment: no PG* or DATABASE_URL from the machine running the
 * tests, and no CI (which changes what belay does with no connection settings;
 * the tests of that set it themselves).
 */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG') && key !== 'DATABASE_URL' && key !== 'CI' && !key.startsWith('VITEST') && key !== 'NODE_OPTIONS') env[key] = value;
  }
  return { ...env, ...extra };
}

export function startBelay(args: string[], options: CliOptions = {}): { child: ChildProcess; done: Promise<CliRun> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? cleanEnv(),
    uid: options.uid,
    gid: options.gid,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

/** Run the built CLI to completion. */
export function belay(args: string[], options: CliOptions = {}): Promise<CliRun> {
  return startBelay(args, options).done;
}

/** The `result` of a --json run's envelope (docs/json.md); untyped like JSON.parse unless T is given. */
export function jsonResult<T = ReturnType<typeof JSON.parse>>(run: { stdout: string }): T {
  return (JSON.parse(run.stdout) as { result: T }).result;
}

/** Whether another account can run the built CLI where this checkout lies (not from a clone inside a 0700 folder). */
export function cliRunnableBy(user: { uid: number; gid: number }): boolean {
  const probe = spawnSync(process.execPath, ['-e', `require('node:fs').accessSync(${JSON.stringify(CLI)})`], { uid: user.uid, gid: user.gid, timeout: 10_000 });
  return probe.status === 0;
}
