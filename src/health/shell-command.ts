import { spawn } from 'node:child_process';
import { carriesSecret } from '../db/secret-forms.js';

export interface CommandOutcome {
  exitCode: number | null;
  timedOut: boolean;
  outputTail: string;
  durationMs: number;
}

const TAIL_LINES = 20;

/**
 * Run the user's own shell command (a hook or a command check) as
 * `/bin/sh -c RUN`, in its own process group so a timeout ends all of it.
 */
export function runShellCommand(run: string, env: NodeJS.ProcessEnv, timeoutSeconds: number, signal?: AbortSignal, extraFds: readonly number[] = []): Promise<CommandOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', run], { env, stdio: ['ignore', 'pipe', 'pipe', ...extraFds], detached: true });
    let output = '';
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString()).split('\n').slice(-TAIL_LINES - 1).join('\n');
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let timedOut = false;
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutSeconds * 1000);
    signal?.addEventListener('abort', killGroup, { once: true });
    // aborted between the caller's last look and the spawn: the listener would never fire
    if (signal?.aborted) killGroup();
    const finish = (exitCode: number | null): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', killGroup);
      resolve({ exitCode, timedOut, outputTail: output.trim(), durationMs: Math.round(performance.now() - started) });
    };
    child.on('error', () => finish(null));
    child.on('close', (code) => finish(code));
  });
}

/** Variables that name or carry the database's credentials: a user's command never sees them. */
const CREDENTIAL_VARS = new Set(['DATABASE_URL', 'PGPASSWORD']);

/**
 * The environment a user's command sees: ours (its application may need it),
 * without DATABASE_URL, PGPASSWORD, and any variable that carries the
 * password in any spelling (plain, percent-encoded, inside another URL).
 */
export function commandEnv(base: NodeJS.ProcessEnv, vars: Record<string, string>, secrets: readonly string[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) {
    if (CREDENTIAL_VARS.has(key) || value === undefined || carriesSecret(value, secrets)) continue;
    env[key] = value;
  }
  return { ...env, ...vars };
}
