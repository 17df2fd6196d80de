import type { CommandHealthCheck } from '../config/types.js';
import type { CheckContext, CheckOutcome, HealthCheck } from './check.js';
import { commandEnv, runShellCommand } from './shell-command.js';

export function commandCheck(spec: CommandHealthCheck, secrets: readonly string[]): HealthCheck {
  return {
    kind: 'command',
    name: spec.name,
    async run(ctx: CheckContext): Promise<CheckOutcome> {
      const outcome = await runShellCommand(spec.run, commandEnv(ctx.env, {}, secrets), secrets, spec.timeoutSeconds, ctx.signal);
      const status = outcome.timedOut ? `timed out after ${spec.timeoutSeconds}s` : outcome.signal ? `killed by ${outcome.signal}` : `exit ${outcome.exitCode}`;
      return { ok: outcome.exitCode === 0 && !outcome.timedOut, evidence: `${status}${outcome.outputTail ? `: ${outcome.outputTail}` : ''}` };
    },
  };
}
