import { Option, type Command } from 'commander';
import { runAction } from '../run-action.js';
import { secondsFlag } from '../parse.js';
import { formatRunResult } from '../format.js';
import { CONNECTED, teach } from '../help.js';
import { usageError } from '../../errors.js';
import { backupScopeOption } from './migrate.js';

interface RollbackFlags {
  to: string;
  backup: boolean;
  restoreFrom?: string;
  strategy?: 'swap' | 'in-place';
  healthTimeout?: number;
  backupScope?: 'full' | 'touched' | 'auto';
}

export function registerRollback(program: Command): void {
  teach(
    program
      .command('rollback')
      .description('down-migrate to REV, orchestrated: snapshot, downs, health, integrity, restore on corruption')
      .requiredOption('--to <rev>', 'the revision to return to (number, name or unique prefix; 0 reverts every revision)')
      .option('--no-backup', 'skip the snapshot before the downs')
      .addOption(backupScopeOption())
      .option('--restore-from <backup>', 'skip the downs and restore this snapshot (id or manifest path)')
      .addOption(new Option('--strategy <strategy>', 'how a restore replaces the database').choices(['swap', 'in-place']))
      .option('--health-timeout <seconds>', 'how long health checks may retry after the downs', secondsFlag('--health-timeout', 0, 86_400)),
    [...CONNECTED, 'yes'],
    'belay rollback --to 0022',
  ).action(async (flags: RollbackFlags, command: Command) =>
    runAction(
      command,
      async (ctx) => {
        if (flags.backupScope !== undefined && (flags.restoreFrom !== undefined || !flags.backup)) {
          const why = flags.restoreFrom === undefined ? '--no-backup takes none' : '--restore-from runs no downs and takes none';
          throw usageError(`--backup-scope chooses the snapshot taken before the downs: ${why}`, {
            hint: flags.restoreFrom === undefined ? 'Leave out --no-backup to take that snapshot, or leave out --backup-scope.' : 'Leave out --backup-scope: --restore-from restores the snapshot it names.',
          });
        }
        const { rollback } = await import('../../api/commands.js');
        // without a question (--yes, or no terminal) the operator still reads what the downs drop
        const confirm = ctx.confirm ?? (async (summary: string) => (process.stderr.write(`belay will ${summary}.\n`), true));
        const result = await rollback({
          ...ctx.options,
          to: flags.to,
          noBackup: !flags.backup,
          ...(flags.restoreFrom === undefined ? {} : { restoreFrom: flags.restoreFrom }),
          ...(flags.strategy === undefined ? {} : { strategy: flags.strategy }),
          ...(flags.healthTimeout === undefined ? {} : { healthTimeout: flags.healthTimeout }),
          ...(flags.backupScope === undefined ? {} : { backupScope: flags.backupScope }),
          confirm,
        });
        return { result, human: (said) => formatRunResult(result, said) };
      },
      {
        changing: true,
        firstSignal:
          'a rollback stops here if its downs have not begun (nothing changed: exit 4); once they have, it is not stopped halfway: its downs, hooks and checks go on to their end (a snapshot or a restore still running is stopped, and the result says where that leaves the database); send it again to abort at once and leave it for `belay recover`',
      },
    ),
  );
}

export function registerRecover(program: Command): void {
  teach(
    program
      .command('recover')
      .description('settle a run that was interrupted (crash, kill, lost connection): down to its prior revision or restore its snapshot, then verify'),
    CONNECTED,
    'belay recover',
  ).action(async (_flags: object, command: Command) =>
    runAction(
      command,
      async (ctx) => {
        const { recover } = await import('../../api/commands.js');
        const result = await recover(ctx.options);
        return { result, human: (said) => formatRunResult(result, said) };
      },
      {
        changing: true,
        firstSignal:
          'a recovery is not stopped halfway: its downs, hooks and checks go on to their end (a restore still running is stopped, and the result says where that leaves the database); send it again to abort at once and leave it for `belay recover`',
      },
    ),
  );
}
