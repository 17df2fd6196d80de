import type { PgBinSearch } from '../../cluster/pg-bin.js';
import type { BelayConfig } from '../../config/types.js';
import type { ConnectionParams, SessionOptions } from '../../db/connection.js';
import { openSession, type Session } from '../../db/session.js';
import type { RunEvents } from '../../events/run-events.js';
import type { RunHandle } from '../../api/options.js';

/** Everything a runner needs, resolved by the API layer: no environment reads below this point. */
export interface RunSetup {
  config: BelayConfig;
  target: ConnectionParams;
  /** The base environment for child processes (pg_dump, hooks, command checks). */
  env: NodeJS.ProcessEnv;
  pgSearch: PgBinSearch;
  events: RunEvents;
  signal: AbortSignal | undefined;
  /** Who runs this, for the journal: "user@host pid N". */
  runBy: string;
  /** Values that must never be printed or recorded (the password). */
  secrets: string[];
  /** Told of each changing run as it opens (BelayOptions.onRun). */
  onRun?: ((run: RunHandle) => void) | undefined;
}

export function sessionOptions(setup: RunSetup, applicationName: string): SessionOptions {
  const { database } = setup.config;
  return {
    applicationName,
    connectTimeoutMs: database.connectTimeoutSeconds * 1000,
    statementTimeoutMs: database.statementTimeoutSeconds * 1000,
    lockTimeoutMs: database.lockTimeoutSeconds * 1000,
  };
}

export function openTargetSession(setup: RunSetup, applicationName: string): Promise<Session> {
  return openSession(setup.target, sessionOptions(setup, applicationName));
}
