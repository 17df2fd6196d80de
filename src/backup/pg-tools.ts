import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { findPgBinaries, findPgBinary, type PgBinary, type PgBinSearch } from '../cluster/pg-bin.js';
import { libpqChildEnv, type ConnectionParams } from '../db/connection.js';
import { preflightError } from '../errors.js';

export interface BackupTools {
  pgDump: PgBinary;
  pgRestore: PgBinary;
}

/** pg_dump and pg_restore at least as new as the server: an older pg_dump cannot dump a newer server. */
export async function resolveBackupTools(options: { search: PgBinSearch; serverMajor: number }): Promise<BackupTools> {
  const { search, serverMajor } = options;
  const [pgDump, pgRestore] = await Promise.all([findPgBinary('pg_dump', search, serverMajor), findPgBinary('pg_restore', search, serverMajor)]);
  if (pgDump && pgRestore) return { pgDump, pgRestore };
  const [dumps, restores] = await Promise.all([findPgBinaries('pg_dump', search), findPgBinaries('pg_restore', search)]);
  const found = [...dumps, ...restores].map((bin) => `${bin.path} (${bin.version})`).join(', ') || 'none';
  throw preflightError(`no pg_dump/pg_restore of version ${serverMajor} or newer for this PostgreSQL ${serverMajor} server (found: ${found})`, {
    hint: `Install the client of that version (Debian/Ubuntu: apt-get install postgresql-client-${serverMajor}) or set PG_BIN to its bin folder.`,
  });
}

export interface LibpqChildOptions {
  params: ConnectionParams;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  onStderrLine?: (line: string) => void;
  /** The child's application_name (default "belay"), to find its session in pg_stat_activity. */
  applicationName?: string;
  /** Settings for the child's session (PGOPTIONS), which override the server's, the database's and the role's. */
  settings?: Readonly<Record<string, string>>;
}

export interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderrTail: string;
  timedOut: boolean;
}

const TAIL_LINES = 20;

/**
 * Why a child failed, in one line: its last error lines; else how it ended
 * (a child killed by a signal says nothing of it) and the last line it wrote
 * (a verbose pg_dump's progress: how far it got); and whether it ran out of
 * time.
 */
export function childFailure(outcome: ChildOutcome): string {
  const lines = outcome.stderrTail.split('\n').map((line) => line.trim()).filter((line) => line !== '');
  const errors = lines.filter((line) => /error|fatal/i.test(line));
  const ended = outcome.signal ? `killed by ${outcome.signal}` : `exit code ${outcome.code}`;
  const how = errors.length > 0 ? errors.slice(-3).join(' | ') : lines.length > 0 ? `${ended}; its last line: ${lines.at(-1)!}` : `${ended}, nothing on stderr`;
  return outcome.timedOut ? `timed out: ${how}` : how;
}

/**
 * Spawn with umask 077, so that whatever the child creates (a dump, the
 * folder of a directory-format dump) is private from its first byte. The
 * child takes the umask when it is forked, inside spawn().
 */
function spawnPrivate(path: string, args: string[], env: NodeJS.ProcessEnv, extraFds: number[]): ChildProcessByStdio<null, Readable, Readable> {
  const start = (): ChildProcessByStdio<null, Readable, Readable> =>
    spawn(path, args, { env, stdio: ['ignore', 'pipe', 'pipe', ...extraFds] }) as ChildProcessByStdio<null, Readable, Readable>;
  let previous: number;
  try {
    previous = process.umask(0o077);
  } catch {
    // a worker thread may not set the umask; the dump's file or folder is created private beforehand anyway
    return start();
  }
  try {
    return start();
  } finally {
    process.umask(previous);
  }
}

/**
 * Run a libpq program with an argv array. The connection goes through PG*
 * variables and the password through a passfile with no name on disk, so no
 * secret is ever on a command line, in the environment or left in a file.
 */
export async function runLibpqChild(bin: PgBinary, args: string[], options: LibpqChildOptions): Promise<ChildOutcome> {
  const { env, extraFds, cleanup } = await libpqChildEnv(options.params, options.env, options.applicationName ?? 'belay');
  if (options.settings) env.PGOPTIONS = Object.entries(options.settings).map(([name, value]) => `-c ${name}=${value.replace(/[\\\s]/g, '\\$&')}`).join(' ');
  try {
    return await new Promise<ChildOutcome>((resolve, reject) => {
      const child = spawnPrivate(bin.path, args, env, extraFds);
      let stdout = '';
      const tail: string[] = [];
      let partial = '';
      let timedOut = false;
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          tail.push(line);
          if (tail.length > TAIL_LINES) tail.shift();
          options.onStderrLine?.(line);
        }
      });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGTERM');
      }, options.timeoutMs);
      const abort = (): void => {
        child.kill('SIGTERM');
      };
      options.signal?.addEventListener('abort', abort, { once: true });
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', abort);
        if (partial) tail.push(partial);
        resolve({ code, signal, stdout, stderrTail: tail.slice(-TAIL_LINES).join('\n'), timedOut });
      });
    });
  } finally {
    await cleanup();
  }
}
