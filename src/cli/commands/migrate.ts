import { Option, type Command } from 'commander';
import { runAction } from '../run-action.js';
import { secondsFlag } from '../parse.js';
import { formatPlan, formatRunResult } from '../format.js';
import { CONNECTED, teach, teachGroup } from '../help.js';
import { usageError } from '../../errors.js';

interface MigrateFlags {
  to?: string;
  withBackup?: boolean;
  dryRun?: boolean;
  allowUnhealthy?: boolean;
  allowIrreversible?: boolean;
  healthTimeout?: number;
  backupScope?: 'full' | 'touched' | 'auto';
}

/** Shared by `migrate up` and `rollback` (docs/snapshots.md). */
export const backupScopeOption = (): Option => new Option(
  '--backup-scope <scope>',
  'which snapshot: full (every table), touched (the schema plus the rows of the tables the revisions may change, learned on a schema-only copy and enforced), auto (touched when it can be, else full; default: backup.scope, else auto)',
).choices(['full', 'touched', 'auto']);

export function registerMigrate(program: Command): void {
  const migrate = teachGroup(program.command('migrate').description('apply revisions'), 'belay migrate up --with-backup');
  teach(
    migrate
      .command('up')
      .description('the orchestrated forward run: lock, preflight, snapshot, apply, verify')
      .option('--to <rev>', 'stop at this revision (number, name or unique prefix)')
      .option('--with-backup', 'take a verified pg_dump snapshot before changing anything')
      .addOption(backupScopeOption())
      .option('--dry-run', 'plan and run the preflight checks; change nothing')
      .option('--allow-unhealthy', 'proceed even when the health baseline fails before the change')
      .option('--allow-irreversible', 'accept revisions that have no down')
      .option('--health-timeout <seconds>', 'how long health checks may retry after the change', secondsFlag('--health-timeout', 0, 86_400)),
    CONNECTED,
    'belay migrate up --with-backup',
  ).action(async (flags: MigrateFlags, command: Command) =>
    runAction(
      command,
      async (ctx) => {
        if (flags.backupScope !== undefined && flags.withBackup !== true) {
          throw usageError('--backup-scope chooses the snapshot --with-backup takes: without --with-backup no snapshot is taken', {
            hint: `Add --with-backup to take that snapshot (\`belay migrate up --with-backup --backup-scope ${flags.backupScope}\`), or leave --backup-scope out.`,
          });
        }
        const { migrateUp } = await import('../../api/commands.js');
        const result = await migrateUp({ ...ctx.options, ...flags });
        return { result, human: (said) => formatRunResult(result, said) };
      },
      { changing: true },
    ),
  );

  teach(
    program
      .command('plan')
      .description('print exactly what `migrate up` (or `rollback --to`) would do; changes nothing')
      .option('--to <rev>', 'target revision')
      .option('--scope', 'learn what each revision touches, with sizes (creates and drops a schema-only copy of the database on the server)'),
    CONNECTED,
    'belay plan --to 0022',
  ).action(async (flags: { to?: string; scope?: boolean }, command: Command) =>
    runAction(command, async (ctx) => {
      const { plan } = await import('../../api/commands.js');
      const result = await plan({ ...ctx.options, ...flags });
      const text = formatPlan(result);
      return { result, message: text.split('\n')[0]!.replace(/:$/, ''), human: () => text };
    }, { reads: true }),
  );
}
