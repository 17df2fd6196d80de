import type { HookName } from '../../config/types.js';
import { runHook } from '../../health/run-hook.js';
import type { RunSession } from '../session/run-session.js';

export interface HookVars {
  from: string | null;
  to: string | null;
  outcome: string;
}

/** A hook that failed: which, and how it ended (exit 3, killed by SIGTERM, timed out after 5s). */
export interface FailedHook {
  name: HookName;
  ended: string;
}

export const hookFailed = (hook: FailedHook): string => `the ${hook.name} hook failed (${hook.ended})`;

/**
 * Run a configured lifecycle hook as a journaled step. Answers how it failed,
 * or undefined when it succeeded (or none is configured); it never throws for
 * a failing hook.
 */
export async function runHookStep(session: RunSession, name: HookName, vars: HookVars): Promise<FailedHook | undefined> {
  const hook = session.setup.config.hooks[name];
  if (!hook) return undefined;
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
    (r) => ({ ok: r.ok, detail: { exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, outputTail: r.outputTail } }),
    { run: hook.run },
  );
  if (result.ok) return undefined;
  const ended = result.timedOut ? `timed out after ${hook.timeoutSeconds}s` : result.signal ? `killed by ${result.signal}` : `exit ${result.exitCode}`;
  return { name, ended };
}
