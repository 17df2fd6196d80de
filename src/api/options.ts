import type { RunListener } from '../events/run-events.js';

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
  signal?: AbortSignal;
}
