import { healthChecksFromConfig } from '../../health/build-checks.js';
import { runHealthChecks, type HealthReport } from '../../health/run-health.js';
import type { StructureBaseline } from '../../integrity/structural.js';
import type { RunSession } from '../session/run-session.js';

export type HealthPhase = 'baseline' | 'after-apply' | 'after-rollback' | 'after-restore';

/** Health checks as a journaled step, every attempt noted; answers the report, never throws for unhealthy. */
export async function runHealthStep(
  session: RunSession,
  phase: HealthPhase,
  timeoutSeconds: number,
  tolerate: ReadonlySet<string> = new Set(),
  structure?: StructureBaseline,
): Promise<HealthReport> {
  const { setup } = session;
  // a forward run checks the invariants with its health (the integrity step compares data only after a rollback)
  const { integrity } = setup.config;
  const invariants = (phase === 'baseline' || phase === 'after-apply') && integrity.mode !== 'off' ? integrity.invariants : [];
  const checks = healthChecksFromConfig(setup.config.health, setup.secrets, { structure, invariants });
  return setup.events.judged(
    { step: 'health', subject: phase },
    () =>
      runHealthChecks(
        checks,
        // a signal stops a forward run's checks (it rolls back next); the rollback's run to the end
        { client: session.work.client, env: setup.env, signal: phase === 'after-apply' ? setup.signal : undefined },
        {
          timeoutSeconds,
          intervalSeconds: setup.config.health.intervalSeconds,
          attemptSeconds: setup.config.health.timeoutSeconds,
          tolerate,
          onAttempt: (attempt, results) =>
            setup.events.emit({
              type: 'note',
              step: 'health',
              subject: phase,
              message: `attempt ${attempt}: ${results.filter((r) => !r.ok).length === 0 ? 'healthy' : `failing ${results.filter((r) => !r.ok).map((r) => r.name).join(', ')}`}`,
              detail: { attempt, results },
            }),
        },
      ),
    (report) => ({
      ok: report.healthy,
      detail: {
        attempts: report.attempts,
        failing: report.results.filter((r) => !r.ok),
        ...(tolerate.size > 0 ? { tolerated: [...tolerate] } : {}),
        ...(report.interrupted ? { interrupted: true as const } : {}),
      },
    }),
    { checks: checks.map((c) => `${c.kind}:${c.name}`) },
  );
}
