import type { IntegrityReport } from '../../integrity/check-integrity.js';
import { checkIntegrity } from '../../integrity/check-integrity.js';
import { healthChecksFromConfig } from '../../health/build-checks.js';
import { runHealthChecks, type HealthReport } from '../../health/run-health.js';
import { EXIT } from '../../errors.js';
import { openTargetSession, type RunSetup } from '../session/setup.js';

export interface VerifyReport {
  healthy: boolean;
  health: HealthReport;
  integrity: IntegrityReport;
  exitCode: number;
}

/**
 * `belay verify`: the health checks (one attempt) and the integrity checks
 * that need no baseline (invariants, structure), now. Changes nothing.
 */
export async function runVerify(setup: RunSetup): Promise<VerifyReport> {
  const session = await openTargetSession(setup, 'belay verify');
  try {
    const health = await runHealthChecks(healthChecksFromConfig(setup.config.health, setup.secrets), { client: session.client, env: setup.env, signal: setup.signal }, {
      timeoutSeconds: 0,
      intervalSeconds: setup.config.health.intervalSeconds,
      attemptSeconds: setup.config.health.timeoutSeconds,
    });
    const integrity = await checkIntegrity(session.client, setup.config.integrity, null, 'same-schema');
    const healthy = health.healthy && integrity.intact;
    // unhealthy now is what a preflight would refuse: the same family, exit 4
    return { healthy, health, integrity, exitCode: healthy ? EXIT.ok : EXIT.preflight };
  } finally {
    await session.close();
  }
}
