import type { RunListener } from '../events/run-events.js';
import type { BelayError } from '../errors.js';
import type { RunResult } from '../runner/result/results.js';

/** Which database a command works on, and where that choice came from. */
export interface TargetInfo {
  /** user@host:port/database, never with a password. */
  database: string;
  /** --database-url, DATABASE_URL, databaseUrl in the config, libpq environment, embedded cluster, --embedded */
  source: string;
  /** The project-local cluster under .belay/ (started by belay). */
  embedded: boolean;
}

/** Options every library call takes; the CLI fills them from its global flags. */
export interface BelayOptions {
  /** Project directory: where belay.config.* and .belay/ are looked for. Default: process.cwd(). */
  cwd?: string;
  /** A config file; default belay.config.{ts,js,mjs,json} in cwd when present. */
  config?: string;
  databaseUrl?: string;
  /** Use the project-local embedded cluster, explicitly (also under CI=true, where a changing command otherwise refuses it). */
  embedded?: boolean;
  migrations?: string;
  backups?: string;
  /** Environment for DATABASE_URL, PG* variables, PG_BIN, CI and child processes. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Every step event, for progress output. */
  onEvent?: RunListener;
  /** Called once the target database is resolved, before anything is done on it. */
  onTarget?: (target: TargetInfo) => void;
  /** Called with the password the connection resolved to (from a URL, PGPASSWORD or a passfile), for a caller that scrubs its own output. */
  onSecrets?: (secrets: readonly string[]) => void;
  signal?: AbortSignal;
  /**
   * Called when a changing run (migrate up, rollback, backup, restore,
   * recover) opens its connections, or a rehearsal or a prune starts, with a way to
   * abandon it at once (the CLI's second signal, before it exits without
   * waiting for the run).
   */
  onRun?: (run: RunHandle) => void;
}

/** What happened to a run abandoned at once: see RunHandle.abandon. */
export type Abandoned =
  /** The run had not begun its journal: it changed nothing. */
  | { state: 'not-begun' }
  /** The run has already recorded how it ended: its result is on its way. */
  | { state: 'ended' }
  /** The journal now says that the run was abandoned; `result` is what is known of it (exit 12: for `belay recover`). */
  | { state: 'abandoned'; result: RunResult }
  /**
   * A rehearsal: the throwaway it made is being removed at once; `outcome` is what to report (exit 4 once it is gone,
   * 12 naming what is left); `leftAsIs`, what to report on exiting without waiting for it (12 naming what may be left).
   */
  | { state: 'removing'; outcome: Promise<BelayError>; leftAsIs: (by: string) => BelayError }
  /** Work with no journal (a prune): it is left where it stands; `error` says how far it got (12 once it deleted anything, else 4). */
  | { state: 'cut'; error: BelayError };

export interface RunHandle {
  /**
   * Leave the run where it stands, for `belay recover`: synchronously, a
   * durable line in its journal file says so (its row in the database stays
   * "running", as for a killed run), and its result as far as known comes back.
   * The caller is expected to exit at once (a rehearsal's once `outcome`
   * settles): the run itself is not stopped.
   */
  abandon(reason: string): Abandoned;
  /** Once the run has thrown a bug after it changed the database (its end unrecorded): the run `belay recover` settles. */
  unsettled?(): { runId: string; journalFile: string } | undefined;
}
