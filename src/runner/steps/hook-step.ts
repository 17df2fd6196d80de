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
  const { events } = session.setup;
  const started = performance.now();
  await events.emit({ type: 'step-start', step: 'hook', subject: name, detail: { run: hook.run } });
  const result = await runHook(name, hook, {
    env: session.setup.env,
    vars: {
      BELAY_RUN_ID: session.runId,
      BELAY_DATABASE: session.setup.target.database,
      BELAY_FROM: vars.from ?? '',
      BELAY_TO: vars.to ?? '',
      BELAY_STEP: name,
      BELAY_OUTCOME: vars.outcome,
    },
    secrets: session.setup.secrets,
    signal: undefined,
  });
  await events.emit({
    type: 'step-end',
    step: 'hook',
    subject: name,
    outcome: result.ok ? 'ok' : 'failed',
    durationMs: Math.round(performance.now() - started),
    detail: { exitCode: result.exitCode, timedOut: result.timedOut, outputTail: result.outputTail },
  });
  return result.ok;
}
