import type { Command } from 'commander';
import { runAction } from '../run-action.js';
import { teach, teachGroup } from '../help.js';
import { preflightError, usageError } from '../../errors.js';

export function registerCluster(program: Command): void {
  const cluster = teachGroup(program.command('cluster').description('manage the embedded project-local PostgreSQL cluster under .belay/'), 'belay cluster start');
  teach(cluster.command('start').description('initialise (first time) and start it'), ['json', 'log-level'], 'belay cluster start').action(
    async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const { clusterStart } = await import('../../api/cluster.js');
        const result = await clusterStart(ctx.options);
        return { result, message: `running: ${result.url}`, human: () => `running: ${result.url}` };
      }),
  );
  teach(cluster.command('stop').description('stop it (fast shutdown)'), ['json', 'log-level'], 'belay cluster stop').action(async (_flags: object, command: Command) =>
    runAction(command, async (ctx) => {
      const { clusterStop } = await import('../../api/cluster.js');
      const result = await clusterStop(ctx.options);
      const text = result.stopped ? 'stopped' : 'was not running';
      return { result, message: text, human: () => text };
    }),
  );
  teach(cluster.command('remove').description('stop it and delete its data, log and socket folder (every database in it)'), ['json', 'log-level', 'yes'], 'belay cluster remove --yes').action(
    async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const yes = ctx.flags.yes === true;
        const { confirm } = ctx;
        // deleting every database in it is never done unasked: off a terminal, --yes is the answer
        if (!yes && !confirm) throw usageError('cluster remove deletes every database in the embedded cluster: pass --yes to say so', { hint: 'Run `belay cluster remove --yes`.' });
        if (confirm && !(await confirm('stop the embedded cluster and delete its data (every database in it)'))) {
          throw preflightError('cluster remove not confirmed; nothing was removed', { hint: ctx.options.signal?.aborted ? 'Run it again when you are ready.' : 'Pass --yes to skip the question.' });
        }
        const { clusterRemove } = await import('../../api/cluster.js');
        const result = await clusterRemove(ctx.options);
        const text = result.removed.length > 0 ? `removed ${result.removed.join(', ')}` : 'there was no embedded cluster to remove';
        return { result, message: text, human: () => text };
      }),
  );
  teach(cluster.command('status').description('whether it exists and runs, and where'), ['json', 'log-level'], 'belay cluster status').action(
    async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const { clusterStatus } = await import('../../api/cluster.js');
        const info = await clusterStatus(ctx.options);
        const state = info.initialised ? (info.running ? 'running' : 'stopped') : 'not created yet (`belay cluster start`)';
        return {
          result: info,
          message: `cluster ${state}`,
          human: () => [`cluster   ${state}`, `data      ${info.dataDir}`, `socket    ${info.socketDir}`, `log       ${info.logFile}`, `url       ${info.url}`].join('\n'),
        };
      }, { reads: true }),
  );
  teach(cluster.command('url').description('print its connection URL (starts it if needed)'), ['json', 'log-level'], 'psql "$(belay cluster url)"').action(
    async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const { clusterUrl } = await import('../../api/cluster.js');
        const result = await clusterUrl(ctx.options);
        return { result, message: result.url, human: () => result.url };
      }),
  );
}
