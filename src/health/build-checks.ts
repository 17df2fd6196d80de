import type { HealthConfig, Invariant } from '../config/types.js';
import type { StructureBaseline } from '../integrity/structural.js';
import type { HealthCheck } from './check.js';
import { commandCheck } from './command-check.js';
import { httpCheck } from './http-check.js';
import { invariantCheck } from './invariant-check.js';
import { sqlCheck } from './sql-check.js';
import { structuralCheck } from './structural-check.js';

export interface CheckSelection {
  /** The structure before the change (captureStructure); without it the structural check counts invalid indexes only. */
  structure?: StructureBaseline;
  /**
   * `database`: the structural and SQL checks only, for a database no
   * application runs against (a rehearsal's throwaway): HTTP and command
   * checks probe the application, which would answer for another database.
   */
  scope?: 'all' | 'database';
  /** Integrity invariants to check with them (a forward run's baseline and after-apply checks). */
  invariants?: readonly Invariant[];
}

/** The built-in structural check first, then the configured SQL checks and invariants, HTTP and command checks. */
export function healthChecksFromConfig(health: HealthConfig, secrets: readonly string[], selection: CheckSelection = {}): HealthCheck[] {
  const database = [structuralCheck(selection.structure), ...health.sql.map(sqlCheck), ...(selection.invariants ?? []).map(invariantCheck)];
  if (selection.scope === 'database') return database;
  return [...database, ...health.http.map(httpCheck), ...health.command.map((spec) => commandCheck(spec, secrets))];
}

/** The configured checks a `database` selection leaves out, by kind and name. */
export function applicationChecks(health: HealthConfig): string[] {
  return [...health.http.map((c) => `http:${c.name}`), ...health.command.map((c) => `command:${c.name}`)];
}
