import type { Command } from 'commander';
import { runAction } from '../run-action.js';
import { integerFlag } from '../parse.js';
import { formatPlan, formatRunResult } from '../format.js';
import { CONNECTED, teach } from '../help.js';

interface MigrateFlags {
  to?: string;
  withBackup?: boolean;
  dryRun?: boolean;
  allowUnhealthy?: boolean;
  allowIrreversible?: boolean;
  healthTimeout?: number;
}

export function registerMigrate(program: Command): void {
  const migrate = program.command('migrate').description('apply revisions');
  teach(
    migrate
      .command('up')
      .description('the orchestrated forward run: lock, preflight, snapshot, apply, verify')
      .option('--to <rev>', 'stop at this revision (number, name or unique prefix)')
      .option('--with-backup', 'take a verified pg_dump snapshot before changing anything')
      .option('--dry-run', 'plan and run the preflight checks; change nothing')
      .option('--allow-unhealthy', 'proceed even when the health baseline fails before the change')
      .option('--allow-irreversible', 'accept revisions that have no down')
      .option('--health-timeout <seconds>', 'how long health checks may retry after the change', integerFlag('--health-timeout', 0, 86_400)),
    CONNECTED,
    'belay migrate up --with-backup',
  ).action(async (flags: MigrateFlags, command: Command) =>
    runAction(
      command,
      async (ctx) => {
        const { migrateUp } = await import('../../api/commands.js');
        const result = await migrateUp({ ...ctx.options, ...flags });
        return { result, human: () => formatRunResult(result) };
      },
      { changing: true },
    ),
  );

  teach(
    program
      .command('plan')
      .description('print exactly what `migrate up` (or `rollback --to`) would do; changes nothing')
      .option('--to <rev>', 'target revision'),
    CONNECTED,
    'belay plan --to 0022',
  ).action(async (flags: { to?: string }, command: Command) =>
    runAction(command, async (ctx) => {
      const { plan } = await import('../../api/commands.js');
      const result = await plan({ ...ctx.options, ...flags });
      const text = formatPlan(result);
      return { result, message: text.split('\n')[0]!.replace(/:$/, ''), human: () => text };
    }),
  );
}
