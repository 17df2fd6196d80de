import { judgeStructure, type StructureBaseline } from '../integrity/structural.js';
import type { CheckContext, CheckOutcome, HealthCheck } from './check.js';

/**
 * Built in, always run: what the change broke in the structure, judged
 * against the baseline taken before it (`captureStructure`): an index left
 * invalid, a constraint that was valid and is not now. A constraint the
 * change adds NOT VALID on purpose is not held against it. Structure does not
 * change by waiting, so a failure is final: never retried.
 */
export function structuralCheck(baseline?: StructureBaseline): HealthCheck {
  return {
    kind: 'structural',
    name: 'structure',
    changesByWaiting: false,
    async run(ctx: CheckContext): Promise<CheckOutcome> {
      const { problems, notes } = await judgeStructure(ctx.client, baseline);
      if (problems.length > 0) return { ok: false, evidence: problems.join('; ') };
      return { ok: true, evidence: ['nothing broken', ...notes].join('; ') };
    },
  };
}
