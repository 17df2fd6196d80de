import type { HealthConfig } from '../config/types.js';
import type { HealthCheck } from './check.js';
import { commandCheck } from './command-check.js';
import { httpCheck } from './http-check.js';
import { sqlCheck } from './sql-check.js';
import { structuralCheck } from './structural-check.js';

/** The built-in structural check first, then the configured SQL, HTTP and command checks. */
export function healthChecksFromConfig(health: HealthConfig, secrets: readonly string[]): HealthCheck[] {
  return [structuralCheck(), ...health.sql.map(sqlCheck), ...health.http.map(httpCheck), ...health.command.map((spec) => commandCheck(spec, secrets))];
}
