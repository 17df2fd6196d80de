import type { Command } from 'commander';
import { runAction } from '../run-action.js';
import { toText } from '../../rehearse/report.js';
import { CONNECTED, teach } from '../help.js';
import { nonEmptyFlag } from '../parse.js';

interface RehearseFlags {
  from?: string;
  seed?: string;
  fromBackup?: string;
  template?: string;
  junit?: string;
  markdown?: string;
}

export function registerRehearse(program: Command): void {
  teach(
    program
      .command('rehearse')
      .description('for CI: on a throwaway database, build to --from, load data, then up / down / up every later revision, checking schema, data and locks')
      .option('--from <rev>', "start here (number, name or unique prefix; 0: from scratch; default: the connected database's revision, none: from scratch)")
      .option('--seed <file>', 'data to load at the start: an .sql file, or a script (it gets PG* variables)', nonEmptyFlag('--seed'))
      .option('--from-backup <id>', 'start from a snapshot (id or manifest path); its revision is the start')
      .option('--template <name>', 'on a connected server, create the throwaway database from this template', nonEmptyFlag('--template'))
      .option('--junit <file>', 'write a JUnit XML report (one test case per revision per direction)', nonEmptyFlag('--junit'))
      .option('--markdown <file>', 'write a Markdown summary (for a CI job page)', nonEmptyFlag('--markdown')),
    CONNECTED,
    'belay rehearse --seed ci/seed.sql --junit rehearsal.xml',
  ).action(async (flags: RehearseFlags, command: Command) =>
    runAction(
      command,
      async (ctx) => {
        const { rehearse } = await import('../../api/commands.js');
        const report = await rehearse({ ...ctx.options, ...flags });
        const failed = report.cases.filter((c) => !c.ok).length;
        return {
          result: report,
          outcome: report.ok ? 'ok' : 'rejected',
          message: `rehearsal on ${report.where}: ${report.ok ? 'passed' : 'FAILED'}, ${report.cases.length - failed} of ${report.cases.length} checks ok`,
          ...(report.ok
            ? {}
            : {
                next: `Fix ${[...new Set(report.cases.filter((c) => !c.ok).map((c) => c.revision))].join(', ')} (each failing case above says what went wrong), then run \`belay rehearse\` again; nothing real was touched.`,
              }),
          human: () => toText(report),
        };
      },
      // it creates and drops its throwaway database on a connected server: named like a change
      {
        changing: true,
        firstSignal: 'stopping the rehearsal: the statements running on its throwaway are cancelled, and the throwaway is removed once they end (nothing real was touched); send it again to remove it at once',
      },
    ),
  );
}
