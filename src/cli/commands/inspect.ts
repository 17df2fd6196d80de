import type { Command } from 'commander';
import { runAction } from '../run-action.js';
import { integerFlag } from '../parse.js';
import { formatRunHistory, formatRuns, formatStatus } from '../format.js';
import { CONNECTED, teach } from '../help.js';
import { BelayError } from '../../errors.js';
import type { RunSummary } from '../../journal/run-store.js';
import type { RunHistory } from '../../runner/commands/history.js';

/** How many runs `belay history` lists unless told. */
const HISTORY_LIMIT = 50;

export function registerInspect(program: Command): void {
  teach(
    program.command('status').description('current revision, applied and pending, drift, lock holder, last run'),
    CONNECTED,
    'belay status',
  ).action(async (_flags: object, command: Command) =>
    runAction(command, async (ctx) => {
      const { status } = await import('../../api/commands.js');
      const report = await status(ctx.options);
      const problems = report.drift.length + report.missing.length + report.outOfOrder.length;
      return {
        result: report,
        message: `at ${report.current ?? '(none applied)'}, ${report.pending.length} pending${problems > 0 ? `, ${problems} problem(s): see result` : ''}${report.interrupted ? ', an interrupted run to recover' : ''}${report.leftovers.length > 0 ? `, ${report.leftovers.length} database(s) left by restores or killed runs` : ''}`,
        human: () => formatStatus(report),
      };
    }, { reads: true }),
  );

  teach(
    program
      .command('history [run]')
      .description("past runs of this database, or every step of one run (id, or a unique prefix or suffix of it)")
      .option('--all', 'every run in the backups folder, whatever database it changed')
      .option('--limit <n>', 'the newest N runs (0: every run)', integerFlag('--limit', 0), HISTORY_LIMIT),
    CONNECTED,
    'belay history 01a20dc6',
  ).action(async (run: string | undefined, flags: { all?: boolean; limit: number }, command: Command) =>
    runAction(command, async (ctx) => {
      const api = await import('../../api/commands.js');
      try {
        if (run === undefined) {
          const { runs, total } = await api.history({ ...ctx.options, all: flags.all === true, ...(flags.limit === 0 ? {} : { limit: flags.limit }) });
          if (runs.length === total) return { result: runs, message: `${runs.length} run(s)`, human: () => formatRuns(runs) };
          const cut = `the newest ${runs.length} of ${total} runs`;
          return { result: runs, message: cut, next: `\`belay history --limit 0\` lists every run, \`--limit N\` the newest N.`, human: () => `${formatRuns(runs)}\n(${cut})` };
        }
        const one = await api.runHistory(run, ctx.options);
        return {
          result: one,
          message: `run ${one.run.runId}: ${one.run.command} ${one.run.status}${one.run.exitCode === null ? '' : ` (exit ${one.run.exitCode})`}`,
          ...(one.next ? { next: one.next } : {}),
          human: () => formatRunHistory(one),
        };
      } catch (error) {
        // the database out of reach: what the journal files hold, then the connection error and its exit code
        const local = error instanceof BelayError ? error.details.fromJournalFiles : undefined;
        if (local === undefined || !(error instanceof BelayError)) throw error;
        const human = (): string => (Array.isArray(local) ? formatRuns(local as RunSummary[]) : formatRunHistory(local as RunHistory));
        return { result: local, exitCode: error.exitCode, message: error.message, ...(error.hint ? { next: error.hint } : {}), failed: true, human };
      }
    }, { reads: true }),
  );

  teach(
    program
      .command('new <name>')
      .description('scaffold the next numbered revision')
      .option('--ts', 'a TypeScript module instead of .up.sql/.down.sql files'),
    ['migrations', 'config', 'json'],
    'belay new add_user_email',
  ).action(async (name: string, flags: { ts?: boolean }, command: Command) =>
    runAction(command, async (ctx) => {
      const { newRevision } = await import('../../api/commands.js');
      const created = await newRevision(name, { ...ctx.options, kind: flags.ts ? 'ts' : 'sql' });
      return { result: created, message: `created ${created.name}`, human: () => [`created ${created.name}`, ...created.files.map((file) => `  ${file}`)].join('\n') };
    }),
  );
}
