import type { Command } from 'commander';
import { runAction } from '../run-action.js';
import { formatRunHistory, formatRuns, formatStatus } from '../format.js';

export function registerInspect(program: Command): void {
  program
    .command('status')
    .description('current revision, applied and pending, drift, lock holder, last run')
    .action(async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const { status } = await import('../../api/commands.js');
        const report = await status(ctx.options);
        ctx.print(report, () => formatStatus(report));
      }),
    );

  program
    .command('history [run]')
    .description('past runs, or every step of one run (id or unique prefix)')
    .action(async (run: string | undefined, _flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const api = await import('../../api/commands.js');
        if (run === undefined) {
          const runs = await api.history(ctx.options);
          ctx.print(runs, () => formatRuns(runs));
        } else {
          const one = await api.runHistory(run, ctx.options);
          ctx.print(one, () => formatRunHistory(one));
        }
      }),
    );

  program
    .command('new <name>')
    .description('scaffold the next numbered revision')
    .option('--ts', 'a TypeScript module instead of .up.sql/.down.sql files')
    .action(async (name: string, flags: { ts?: boolean }, command: Command) =>
      runAction(command, async (ctx) => {
        const { newRevision } = await import('../../api/commands.js');
        const created = await newRevision(name, { ...ctx.options, kind: flags.ts ? 'ts' : 'sql' });
        ctx.print(created, () => [`created ${created.name}`, ...created.files.map((file) => `  ${file}`)].join('\n'));
      }),
    );
}
