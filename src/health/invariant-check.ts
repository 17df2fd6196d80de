import type { Invariant } from '../config/types.js';
import { checkInvariants } from '../integrity/invariants.js';
import type { CheckContext, CheckOutcome, HealthCheck } from './check.js';

/**
 * An integrity invariant (its rows are violations) as a check of the forward
 * run: violated before the change, the baseline is unhealthy; violated after
 * it, the change is not verified. Data does not mend by waiting: a violation
 * is final, never retried.
 */
export function invariantCheck(invariant: Invariant): HealthCheck {
  return {
    kind: 'invariant',
    name: `invariant ${invariant.name}`,
    changesByWaiting: false,
    async run(ctx: CheckContext): Promise<CheckOutcome> {
      const [violation] = await checkInvariants(ctx.client, [invariant]);
      if (!violation) return { ok: true, evidence: 'no row' };
      return { ok: false, evidence: violation.rows < 0 ? violation.sample : `${violation.rows} row(s): ${violation.sample}` };
    },
  };
}
