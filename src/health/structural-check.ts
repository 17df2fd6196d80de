import { findInvalidIndexes, findUnvalidatedConstraints } from '../integrity/structural.js';
import type { CheckContext, CheckOutcome, HealthCheck } from './check.js';

/** Built in, always run: no invalid index and no constraint left NOT VALID. */
export function structuralCheck(): HealthCheck {
  return {
    kind: 'structural',
    name: 'structure',
    async run(ctx: CheckContext): Promise<CheckOutcome> {
      const problems = [...(await findInvalidIndexes(ctx.client)), ...(await findUnvalidatedConstraints(ctx.client))];
      return { ok: problems.length === 0, evidence: problems.length === 0 ? 'no invalid index or unvalidated constraint' : problems.join('; ') };
    },
  };
}
