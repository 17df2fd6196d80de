import type { Invariant } from '../config/types.js';
import { errorMessage } from '../errors.js';
import { invariantQuery, violationOf } from '../integrity/invariants.js';
import type { CheckContext, CheckOutcome, HealthCheck } from './check.js';
import { readOnlyQuery } from './sql-check.js';

/**
 * An integrity invariant (its rows are violations) as a check of the forward
 * run, read-only and within the health timeout as an SQL check: violated
 * before the change, the baseline is unhealthy; violated after it, the change
 * is not verified. Data does not mend by waiting: a violation is final.
 */
export function invariantCheck(invariant: Invariant): HealthCheck {
  return {
    kind: 'invariant',
    name: `invariant ${invariant.name}`,
    changesByWaiting: false,
    async run(ctx: CheckContext): Promise<CheckOutcome> {
      let rows: unknown[];
      try {
        rows = (await readOnlyQuery(ctx, invariantQuery(invariant))).rows;
      } catch (error) {
        return { ok: false, evidence: `query failed: ${errorMessage(error)}` };
      }
      const violation = violationOf(invariant, rows);
      return violation ? { ok: false, evidence: `${violation.rows} row(s): ${violation.sample}` } : { ok: true, evidence: 'no row' };
    },
  };
}
