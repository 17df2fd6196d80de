import type { HookName } from '../../config/types.js';
import { runHook } from '../../health/run-hook.js';
import type { RunSession } from '../session/run-session.js';

export interface HookVars {
  from: string | null;
  to: string | null;
  outcome: string;
}

/**
 * Run a configured lifecycle hook as a journaled step. Answers whether it
 * succeeded (true when none is configured); it never throws for a failing hook.
 */
export async function runHookStep(session: RunSession, name: HookName, vars: HookVars): Promise<boolean> {
  const hook = session.setup.config.hooks[name];
  if (!hook) return true;
  const { setup } = session;
  const result = await setup.events.judged(
    { step: 'hook', subject: name },
    () =>
      runHook(name, hook, {
        env: setup.env,
        vars: {
          BELAY_RUN_ID: session.runId,
          BELAY_DATABASE: setup.target.database,
          BELAY_FROM: vars.from ?? '',
          BELAY_TO: vars.to ?? '',
          BELAY_STEP: name,
          BELAY_OUTCOME: vars.outcome,
        },
        secrets: setup.secrets,
        // a signal stops a forward run at its next safe point, not after its hook; the rollback's hooks run to the end
        signal: name === 'beforeApply' || name === 'afterApply' ? setup.signal : undefined,
      }),
    (r) => ({ ok: r.ok, detail: { exitCode: r.exitCode, timedOut: r.timedOut, outputTail: r.outputTail } }),
    { run: hook.run },
  );
  return result.ok;
}
