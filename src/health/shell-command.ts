import { spawn } from 'node:child_process';
import { carriesSecret, scrub } from '../db/secret-forms.js';

export interface CommandOutcome {
  exitCode: number | null;
  /** The signal that ended the shell (SIGKILL when the timeout did). */
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  outputTail: string;
  durationMs: number;
}

const TAIL_LINES = 20;
const LINE_CHARS = 500;
/** The bytes kept of the output's end, enough for TAIL_LINES of LINE_CHARS in any UTF-8. */
const TAIL_BYTES = TAIL_LINES * LINE_CHARS * 4;
/** After the shell exits, how long what it wrote last may take to be read. */
const DRAIN_MS = 200;

/**
 * The last TAIL_LINES lines of the output's last bytes, scrubbed of secrets,
 * then each cut to its last LINE_CHARS characters: a secret cut first would
 * no longer be recognised, and its end would be kept.
 */
function tailOf(chunks: readonly Buffer[], secrets: readonly string[]): string {
  const bytes = Buffer.concat(chunks);
  const lines = scrub(bytes.subarray(Math.max(0, bytes.length - TAIL_BYTES)).toString(), secrets).trim().split('\n').slice(-TAIL_LINES);
  return lines.map((line) => (line.length > LINE_CHARS ? `[…cut] ${line.slice(-LINE_CHARS)}` : line)).join('\n');
}

/**
 * Run the user's own shell command (a hook or a command check) as
 * `/bin/sh -c RUN`, in its own process group so a timeout ends all of it.
 * Its outcome is the shell's exit: what it left running in the background
 * (an application it started) is neither waited for nor killed, even while it
 * holds the output pipes; past the timeout the group is killed and the
 * outcome decided, whatever still holds them.
 */
export function runShellCommand(
  run: string,
  env: NodeJS.ProcessEnv,
  secrets: readonly string[],
  timeoutSeconds: number,
  signal?: AbortSignal,
  extraFds: readonly number[] = [],
  /** The shell's `$0`, `$1`…: a path given to it as a word, never parsed as shell text. */
  args: readonly string[] = [],
): Promise<CommandOutcome> {
  const started = performance.now();
  const deadline = started + timeoutSeconds * 1000;
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', run, ...args], { env, stdio: ['ignore', 'pipe', 'pipe', ...extraFds], detached: true });
    let chunks: Buffer[] = [];
    let kept = 0;
    const collect = (chunk: Buffer): void => {
      chunks.push(chunk);
      kept += chunk.length;
      if (kept > 2 * TAIL_BYTES) {
        const last = Buffer.concat(chunks).subarray(-TAIL_BYTES);
        chunks = [last];
        kept = last.length;
      }
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
    let drain: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (exitCode: number | null, ended: NodeJS.Signals | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(drain);
      signal?.removeEventListener('abort', killGroup);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({ exitCode, signal: ended, timedOut, outputTail: tailOf(chunks, secrets), durationMs: Math.round(performance.now() - started) });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
      finish(null, 'SIGKILL');
    }, timeoutSeconds * 1000);
    signal?.addEventListener('abort', killGroup, { once: true });
    // aborted between the caller's last look and the spawn: the listener would never fire
    if (signal?.aborted) killGroup();
    child.on('error', () => finish(null, null));
    child.on('exit', (code, ended) => {
      clearTimeout(timer);
      // what it wrote before exiting is read; what a descendant holding the pipes writes after is not waited for
      drain = setTimeout(() => finish(code, ended), Math.max(0, Math.min(DRAIN_MS, deadline - performance.now())));
    });
    child.on('close', (code, ended) => finish(code, ended));
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
