import { Option, type Command } from 'commander';
import { runAction } from '../run-action.js';
import { integerFlag } from '../parse.js';
import { formatRunResult } from '../format.js';
import { EXIT, usageError } from '../../errors.js';
import { CONNECTED, FILES_ONLY, teach, teachGroup } from '../help.js';
import type { VerifyReport } from '../../runner/commands/verify-now.js';
import { INSPECT_REFUSED_MANIFEST } from '../../backup/manifest.js';

export function registerBackups(program: Command): void {
  teach(program.command('backup').description('take a verified snapshot now'), CONNECTED, 'belay backup').action(async (_flags: object, command: Command) =>
    runAction(
      command,
      async (ctx) => {
        const { backup } = await import('../../api/commands.js');
        const result = await backup(ctx.options);
        return { result, human: (said) => formatRunResult(result, said) };
      },
      { changing: true, firstSignal: 'stopping the snapshot: a pg_dump still running is stopped and its file not kept (nothing is changed); send it again to abort at once' },
    ),
  );

  const backups = teachGroup(program.command('backups').description('manage snapshots'), 'belay backups list');
  teach(backups.command('list').description('snapshots in the backups folder, newest first'), FILES_ONLY, 'belay backups list').action(
    async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const { listBackups } = await import('../../api/commands.js');
        const listing = await listBackups(ctx.options);
        const { snapshots, refused, partial, withoutManifest } = listing;
        const todo = (r: (typeof refused)[number]): string => r.next ?? INSPECT_REFUSED_MANIFEST;
        return {
          result: listing,
          // a manifest belay will not follow is reported as a refusal; the sound snapshots are listed all the same
          exitCode: refused.length > 0 ? EXIT.preflight : EXIT.ok,
          ...(refused.length > 0 ? { outcome: 'refused', next: `Nothing was touched. ${refused.map((r) => `${r.file}: ${todo(r)}`).join(' ')}` } : {}),
          message: `${snapshots.length} snapshot(s)${partial.length > 0 ? `, ${partial.length} half-written dump(s)` : ''}${withoutManifest.length > 0 ? `, ${withoutManifest.length} dump(s) without a manifest` : ''}${refused.length > 0 ? `, ${refused.length} refused manifest(s)` : ''}`,
          human: () =>
            [
              ...(snapshots.length === 0 ? ['no snapshots'] : []),
              ...snapshots.map(
                (m) =>
                  `${m.id}  ${m.createdAt}  ${m.database}@${m.revision ?? '∅'}  ${m.format}  ${m.scope ? `touched (${m.scope.tables.filter((t) => t.kind === 'table').map((t) => `${t.schema}.${t.name}`).join(', ') || 'no table'})` : 'full'}  ${m.sizeBytes} B  sha256 ${m.sha256.slice(0, 12)}…${m.quarantine ? '  (quarantine: a damaged state kept before an in-place restore)' : ''}`,
              ),
              ...partial.map((p) => `${p.file}  ${p.modifiedAt}  partial: left half written by a run that was killed, or still being written (${p.sizeBytes} B); \`belay backups prune\` or \`belay recover\` removes it`),
              ...withoutManifest.map(
                (d) =>
                  `${d.file}  ${d.modifiedAt}  no manifest: not made by belay or its manifest is missing; not removed (${d.sizeBytes} B); next: put its manifest (${d.id}.manifest.json) beside it to use it, or move it out of the backups folder`,
              ),
              ...refused.map((r) => `refused manifest ${r.file}: ${r.problem}; next: ${todo(r)}`),
            ].join('\n'),
        };
      }, { reads: true }),
  );
  teach(
    backups.command('verify <id>').description('check a snapshot: file present, size and sha256 as in its manifest, readable by pg_restore'),
    FILES_ONLY,
    'belay backups verify 20261124T1337',
  ).action(async (id: string, _flags: object, command: Command) =>
    runAction(command, async (ctx) => {
      const { verifyBackup } = await import('../../api/commands.js');
      const verdict = await verifyBackup(id, ctx.options);
      const message = verdict.ok ? `${verdict.snapshot.id}: ok` : `${verdict.snapshot.id}: FAILED: ${verdict.problems.join('; ')}`;
      return {
        result: verdict,
        exitCode: verdict.ok ? EXIT.ok : EXIT.preflight,
        outcome: verdict.ok ? 'ok' : 'damaged',
        message,
        ...(verdict.ok
          ? {}
          : { next: 'This snapshot cannot be trusted for a restore: take a new one (`belay backup`), or use another (`belay backups list`, then `belay backups verify ID`).' }),
        human: () => (verdict.ok ? message : `${verdict.snapshot.id}: FAILED\n${verdict.problems.map((p) => `  ${p}`).join('\n')}`),
      };
    }, { reads: true }),
  );
  teach(
    backups
      .command('prune')
      .description('delete all but the newest N snapshots, under the lock; never one an unsettled run needs, nor the newest of a database')
      .requiredOption('--keep <n>', 'how many to keep (0 needs --yes)', integerFlag('--keep', 0)),
    // under the target's run lock: it connects
    [...FILES_ONLY, 'database-url', 'embedded', 'yes'],
    'belay backups prune --keep 10',
  ).action(async (flags: { keep: number }, command: Command) =>
    runAction(
      command,
      async (ctx) => {
        if (flags.keep === 0 && ctx.flags.yes !== true) {
          throw usageError('--keep 0 deletes every snapshot belay may delete: say so with --yes', { hint: 'belay backups prune --keep 0 --yes' });
        }
        const { pruneBackups } = await import('../../api/commands.js');
        const { confirm } = ctx;
        const result = await pruneBackups(flags.keep, { ...ctx.options, ...(confirm ? { confirm } : {}) });
        const nothing = result.removed.length === 0 && result.leftoversRemoved.length === 0;
        const message = result.declined ? 'declined: nothing deleted' : nothing ? 'nothing to prune' : `removed ${result.removed.length} snapshot(s), kept ${result.kept.length}`;
        return {
          result,
          message,
          // a question answered no is a refusal, as a declined rollback's: nothing done (exit 4)
          ...(result.declined ? { exitCode: EXIT.preflight, next: ctx.options.signal?.aborted ? 'Run it again when you are ready.' : 'Pass --yes to skip the question.' } : {}),
          human: () =>
            [
              ...(result.declined ? ['declined: nothing deleted'] : []),
              ...result.removed.map((id) => `removed ${id}`),
              ...result.leftoversRemoved.map((file) => `removed ${file} (half written by a killed run)`),
              ...result.kept.map((k) => `kept ${k.id}: ${k.why}`),
              ...result.leftoversKept.map((k) => `kept ${k.file}: ${k.why}`),
              ...(nothing && !result.declined ? ['nothing to prune'] : []),
            ].join('\n'),
        };
      },
      { changing: true, firstSignal: 'pruning is not stopped halfway: its deletions go on to their end; send it again to exit at once' },
    ),
  );

  teach(
    program
      .command('restore <id>')
      .description('restore a snapshot (swap: into a new database, verified, then renamed into place; the old one kept)')
      .addOption(new Option('--strategy <strategy>', 'swap (needs CREATEDB) or in-place (pg_restore --clean)').choices(['swap', 'in-place']).default('swap'))
      .option('--allow-other-database', 'restore a snapshot taken from another database'),
    CONNECTED,
    'belay restore 20261124T1337 --strategy swap',
  ).action(async (id: string, flags: { strategy: 'swap' | 'in-place'; allowOtherDatabase?: boolean }, command: Command) =>
    runAction(
      command,
      async (ctx) => {
        const { restore } = await import('../../api/commands.js');
        const result = await restore(id, { ...ctx.options, strategy: flags.strategy, allowOtherDatabase: flags.allowOtherDatabase === true });
        return { result, human: (said) => formatRunResult(result, said) };
      },
      {
        changing: true,
        firstSignal: 'a pg_dump or pg_restore still running is stopped (the result says where that leaves the database); what comes after them goes on to its end; send it again to abort at once and leave it for `belay recover`',
      },
    ),
  );

  teach(program.command('verify').description('run the health checks and integrity checks now'), CONNECTED, 'belay verify').action(
    async (_flags: object, command: Command) =>
      runAction(command, async (ctx) => {
        const { verify } = await import('../../api/commands.js');
        const report = await verify(ctx.options);
        const integrity = report.integrity.mode === 'off' ? 'not checked (integrity.mode is off)' : report.integrity.intact ? 'ok' : 'FAIL';
        return {
          result: report,
          outcome: report.healthy ? 'ok' : 'unhealthy',
          message: verifyMessage(report, integrity),
          ...(report.healthy ? {} : { next: 'Fix what fails (above), then run `belay verify` again; a run started now is refused while its health checks fail (--allow-unhealthy lets it start).' }),
          human: () =>
            [
              `${report.healthy ? 'healthy' : 'UNHEALTHY'}`,
              ...report.health.results.map((r) => `  ${r.ok ? 'ok  ' : 'FAIL'} ${r.kind} ${r.name}: ${r.evidence}`),
              report.integrity.mode === 'off' ? `  integrity ${integrity}` : `  integrity (${report.integrity.checked}): ${integrity}`,
              ...report.integrity.violations.map((v) => `    invariant ${v.name}: ${v.rows} row(s) ${v.sample}`),
              ...report.integrity.structural.map((s) => `    ${s}`),
            ].join('\n'),
        };
      }, { reads: true }),
  );
}

/** `belay verify`'s one line: what fails, by name. */
function verifyMessage(report: VerifyReport, integrity: string): string {
  const failing = report.health.results.filter((r) => !r.ok).map((r) => r.name);
  const broken = [...report.integrity.violations.map((v) => `invariant ${v.name}`), ...report.integrity.structural];
  if (report.healthy) return `healthy: 0 failing check(s), integrity ${integrity}`;
  const parts = [...(failing.length > 0 ? [`failing check(s): ${failing.join(', ')}`] : []), ...(broken.length > 0 ? [`integrity FAIL: ${broken.join('; ')}`] : [])];
  return `UNHEALTHY: ${parts.join('; ')}`;
}
