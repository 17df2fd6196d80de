import type { Command } from 'commander';
import { runAction } from '../run-action.js';

export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('manage the embedded project-local PostgreSQL cluster under .belay/');
  cluster
    .command('start')
    .description('initialise (first time) and start it')
    .action(async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const { clusterStart } = await import('../../api/cluster.js');
        const result = await clusterStart(ctx.options);
        ctx.print(result, () => `running: ${result.url}`);
      }),
    );
  cluster
    .command('stop')
    .description('stop it (fast shutdown)')
    .action(async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const { clusterStop } = await import('../../api/cluster.js');
        const result = await clusterStop(ctx.options);
        ctx.print(result, () => (result.stopped ? 'stopped' : 'was not running'));
      }),
    );
  cluster
    .command('status')
    .description('whether it exists and runs, and where')
    .action(async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const { clusterStatus } = await import('../../api/cluster.js');
        const info = await clusterStatus(ctx.options);
        ctx.print(info, () =>
          [
            `cluster   ${info.initialised ? (info.running ? 'running' : 'stopped') : 'not created yet (`belay cluster start`)'}`,
            `data      ${info.dataDir}`,
            `socket    ${info.socketDir}`,
            `log       ${info.logFile}`,
            `url       ${info.url}`,
          ].join('\n'),
        );
        return 0;
      }),
    );
  cluster
    .command('url')
    .description('print its connection URL (starts it if needed)')
    .action(async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const { clusterUrl } = await import('../../api/cluster.js');
        const result = await clusterUrl(ctx.options);
        ctx.print(result, () => result.url);
      }),
    );
}
