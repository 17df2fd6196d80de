import type { RunListener } from '../events/run-events.js';

/** Options every library call takes; the CLI fills them from its global flags. */
export interface BelayOptions {
  /** Project directory: where belay.config.* and .belay/ are looked for. Default: process.cwd(). */
  cwd?: string;
  /** A config file; default belay.config.{ts,js,mjs,json} in cwd when present. */
  config?: string;
  databaseUrl?: string;
  migrations?: string;
  backups?: string;
  /** Environment for DATABASE_URL, PG* variables, PG_BIN and child processes. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Every step event, for progress output. */
  onEvent?: RunListener;
  signal?: AbortSignal;
}
