import { judgeStructure, type StructureBaseline } from '../integrity/structural.js';
import type { CheckContext, CheckOutcome, HealthCheck } from './check.js';

/**
 * Built in, always run: what the change broke in the structure, judged
 * against the baseline taken before it (`captureStructure`): an index left
 * invalid, a constraint that was valid and is not now. A constraint the
 * change adds NOT VALID on purpose is not held against it. An index that was
 * already invalid at the baseline still fails the check (`belay verify` says
 * so too), marked as failing before the change: reported among the failing
 * checks, not held against the change. Structure does not
 * change by waiting, so a failure is final: never retried.
 */
export function structuralCheck(baseline?: StructureBaseline): HealthCheck {
  return {
    kind: 'structural',
    name: 'structure',
    changesByWaiting: false,
    async run(ctx: CheckContext): Promise<CheckOutcome> {
      const { problems, notes, brokenBefore } = await judgeStructure(ctx.client, baseline);
      if (problems.length > 0) return { ok: false, evidence: [...problems, ...brokenBefore].join('; ') };
      // still broken, only not by this change (--allow-unhealthy let the run start over it): failing, and said so
      if (brokenBefore.length > 0) return { ok: false, alreadyFailing: true, evidence: [...brokenBefore, ...notes].join('; ') };
      return { ok: true, evidence: ['nothing broken', ...notes].join('; ') };
    },
  };
}
