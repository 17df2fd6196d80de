// Child processes for the benchmark: argv arrays, no shell (a shell would add
// its own start-up to every timed command), a timeout on every one.
import { spawn } from 'node:child_process';

const running = new Set();

/** SIGTERM every running child: a belay child removes what it made (a rehearsal's ephemeral cluster). */
export function stopChildren() {
  for (const child of running) child.kill('SIGTERM');
}

// a benchmark stopped early (a signal, an error) leaves no child running
process.on('exit', stopChildren);

/**
 * Run `file` with `args` to completion and time it from spawn to exit, in
 * `env` (default: cleanEnv()). Rejects on an exit code other than `expect`
 * (null: any code).
 */
export function execTimed(file, args, { env = cleanEnv(), cwd, timeoutMs = 600_000, expect = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      running.delete(child);
      reject(error);
    });
    child.once('close', (code, signal) => {
      const ms = performance.now() - started;
      clearTimeout(timer);
      running.delete(child);
      if (timedOut) return reject(new Error(`${file} ${args.join(' ')} timed out after ${timeoutMs} ms`));
      if (expect !== null && code !== expect) {
        const tail = `${stderr}\n${stdout}`.trim().split('\n').slice(-8).join('\n');
        return reject(new Error(`${file} ${args.join(' ')} exited ${code ?? signal}, expected ${expect}:\n${tail}`));
      }
      resolve({ ms, code, stdout, stderr });
    });
  });
}

/** What a sample keeps of a timed command: its time (its output is not part of the report). */
export const onlyMs = ({ ms }) => ({ ms });

/**
 * Settings of the machine running the benchmark that would change what is
 * measured: its connection settings, node options, and extra CA certificates
 * (node reads and parses NODE_EXTRA_CA_CERTS at every start, before any code
 * runs: a system bundle added about 70 ms to each node process here, where
 * no measured tool makes a TLS connection).
 */
const MACHINE_SETTINGS = new Set(['DATABASE_URL', 'NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS']);

/** The environment without the machine's settings above. */
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG') && !MACHINE_SETTINGS.has(key)) env[key] = value;
  }
  return { ...env, ...extra };
}
