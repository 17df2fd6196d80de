import type { Hook, HookName } from '../config/types.js';
import { commandEnv, runShellCommand } from './shell-command.js';

export interface HookResult {
  name: HookName;
  ok: boolean;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  durationMs: number;
  outputTail: string;
}

export interface HookRunOptions {
  env: NodeJS.ProcessEnv;
  /** BELAY_RUN_ID, BELAY_DATABASE, BELAY_FROM, BELAY_TO, BELAY_STEP, BELAY_OUTCOME. */
  vars: Record<string, string>;
  secrets: readonly string[];
  signal: AbortSignal | undefined;
}

/** A lifecycle hook: the user's command with a timeout and the BELAY_* variables, and no secret. */
export async function runHook(name: HookName, hook: Hook, options: HookRunOptions): Promise<HookResult> {
  const outcome = await runShellCommand(hook.run, commandEnv(options.env, options.vars, options.secrets), options.secrets, hook.timeoutSeconds, options.signal);
  return { name, ok: outcome.exitCode === 0 && !outcome.timedOut, ...outcome };
}
