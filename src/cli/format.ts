import type { Said } from './envelope.js';
import { describeDataAtRisk } from '../integrity/data-at-risk.js';
import type { Plan } from '../runner/commands/plan.js';
import type { RunResult } from '../runner/result/results.js';
import type { RunHistory } from '../runner/commands/history.js';
import type { RunSummary } from '../journal/run-store.js';
import type { StatusReport } from '../runner/commands/status.js';
import { formatHolder } from '../runner/session/run-lock.js';

/** A run's text: its one-line message and the lines beyond it (the envelope's), each revision, the snapshot, the journal. */
export function formatRunResult(result: RunResult, said: Said): string {
  const lines = [`${result.command}: ${said.message}`, ...said.details.map((line) => `    ${line}`)];
  for (const revision of result.revisions) {
    lines.push(`  ${revision.status.padEnd(8)} ${revision.name}${revision.durationMs === undefined ? '' : ` (${revision.durationMs} ms)`}`);
  }
  if (result.snapshot) lines.push(`  snapshot ${result.snapshot.id}  ${result.snapshot.path}  sha256 ${result.snapshot.sha256.slice(0, 16)}…`);
  if (result.journalFile) lines.push(`  journal  ${result.journalFile}`);
  return lines.join('\n');
}

/** The database's revision, and the newest applied one on disk when its files are missing. */
function revisionLine({ current, currentOnDisk }: StatusReport): string {
  if (current === null) return '(none applied)';
  if (current === currentOnDisk) return current;
  return currentOnDisk === null ? `${current} (missing from disk, as every applied revision is)` : `${current} (missing from disk; the newest applied one on disk is ${currentOnDisk})`;
}

export function formatStatus(report: StatusReport): string {
  const lines = [
    `database  ${report.target} (${report.source}, PostgreSQL ${report.serverVersion})`,
    `revision  ${revisionLine(report)}`,
    `applied   ${report.applied.length}`,
    `pending   ${report.pending.length === 0 ? 'none' : report.pending.join(', ')}`,
  ];
  if (report.drift.length > 0) lines.push(`DRIFT     ${report.drift.map((d) => `${d.name} (${d.files.join(', ')})`).join('; ')}`);
  if (report.missing.length > 0) lines.push(`MISSING   ${report.missing.join(', ')} (applied, not on disk)`);
  if (report.outOfOrder.length > 0) lines.push(`ORDER     ${report.outOfOrder.join(', ')} pending below the current revision`);
  lines.push(`lock      ${report.lock ? `held by ${formatHolder(report.lock)}` : 'free'}`);
  const run = report.lastRun;
  lines.push(
    `last run  ${run ? `${run.runId} ${run.command} → ${run.status}${run.exitCode === null ? '' : ` (exit ${run.exitCode})`} at ${run.finishedAt ?? run.startedAt}` : 'none'}`,
  );
  for (const left of report.leftovers) {
    if (left.kind === 'scope-copy') {
      lines.push(`LEFT      ${left.name}: the schema-only copy (no rows) a run killed while learning the backup scope left; \`belay recover\` drops it`);
      continue;
    }
    if (left.kind === 'rehearsal') {
      lines.push(`LEFT      ${left.name}: a throwaway database a killed rehearse left (with the snapshot's rows when it rehearsed --from-backup); \`belay recover\` drops it`);
      continue;
    }
    const what =
      left.kind === 'quarantine'
        ? 'the damaged database a restore set aside'
        : left.kind === 'quarantine-schema'
          ? 'the schema a targeted restore kept the damaged tables in'
          : 'a copy a stopped restore left (complete or not)';
    lines.push(`LEFT      ${left.name}: ${what}; once you have checked it: ${left.drop}`);
  }
  const stuck = report.interrupted;
  if (stuck) {
    lines.push(
      `INTERRUPTED run ${stuck.run.runId} (${stuck.run.command} by ${stuck.run.runBy}, started ${stuck.run.startedAt}), stopped at "${stuck.interruptedAt ?? 'start'}"`,
      `          belay recover will ${stuck.action === 'restore' ? `restore snapshot ${stuck.snapshotId ?? '(none: manual action needed)'}` : stuck.action === 'verify-restore' ? `verify snapshot ${stuck.snapshotId ?? '(unknown)'} as restored` : stuck.action === 'nothing' ? 'settle its record' : `revert ${stuck.revert.join(', ') || 'nothing'} to ${stuck.target ?? 'the start'} and verify`}: ${stuck.why}`,
    );
  }
  return lines.join('\n');
}

export function formatPlan(plan: Plan): string {
  const lines: string[] = [];
  if (plan.direction === 'none') lines.push(`nothing to do: at ${plan.from ?? '(none applied)'}`);
  else lines.push(`${plan.direction === 'up' ? 'migrate up' : 'rollback'} from ${plan.from ?? '(none applied)'} to ${plan.to ?? '(none)'}:`);
  for (const r of plan.revisions) {
    const notes = [!r.reversible ? 'NO DOWN' : '', !r.transactional ? 'no transaction' : ''].filter(Boolean).join(', ');
    lines.push(`  ${r.direction === 'up' ? 'apply ' : 'revert'} ${r.name}${notes ? `  [${notes}]` : ''}`);
  }
  if (plan.direction === 'down') lines.push(`  data the downs drop (kept in the snapshot): ${describeDataAtRisk(plan.dataAtRisk)}`);
  for (const line of plan.scope ?? []) lines.push(`  ${line}`);
  for (const problem of plan.problems) lines.push(`  problem: ${problem.message}`);
  return lines.join('\n');
}

export function formatRuns(runs: RunSummary[]): string {
  if (runs.length === 0) return 'no runs yet';
  return runs
    .map((run) => {
      const range = `${run.fromRevision ?? '∅'} → ${run.toRevision ?? '∅'}`;
      const database = run.database ?? '(database unknown)';
      const took = run.finishedAt ? `${((Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000).toFixed(1)} s` : 'unfinished';
      const snapshot = run.snapshotId ? `  snapshot ${run.snapshotId}` : '';
      return `${run.runId}  ${run.startedAt}  ${took.padStart(10)}  ${run.command.padEnd(12)} ${run.status.padEnd(11)} exit ${run.exitCode ?? '-'}  ${range}  db ${database}  ${run.runBy}${snapshot}`;
    })
    .join('\n');
}

/** An interrupted run did not finish: the time history keeps for it is its last journaled step's (src/journal/run-store.ts, markRunSettled). */
function finished(run: RunSummary): string {
  if (!run.finishedAt) return 'not finished';
  return run.status === 'interrupted' ? `last journaled ${run.finishedAt}` : `finished ${run.finishedAt}`;
}

export function formatRunHistory(history: RunHistory): string {
  const run = history.run;
  const lines = [
    `run ${run.runId}: ${run.command} of ${run.database ?? '(database unknown)'} by ${run.runBy}`,
    `  started ${run.startedAt}, ${finished(run)}; ${run.status}${run.exitCode === null ? '' : ` (exit ${run.exitCode})`}`,
    `  ${run.fromRevision ?? '∅'} → ${run.toRevision ?? '∅'}${run.snapshotId ? `; snapshot ${run.snapshotId}` : ''}`,
    `  steps from the ${history.source}; journal file ${history.journalFile}`,
  ];
  for (const step of history.steps) {
    const name = [step.step, step.revision ?? step.subject].filter(Boolean).join(' ');
    const tail = step.event === 'end' ? ` ${step.outcome}${step.durationMs === undefined ? '' : ` ${step.durationMs} ms`}` : '';
    const message = step.detail && typeof step.detail.error === 'string' ? ` — ${step.detail.error}` : step.detail && typeof step.detail.message === 'string' ? ` — ${step.detail.message}` : '';
    lines.push(`  ${step.at}  ${step.event.padEnd(5)} ${name}${tail}${message}`);
  }
  return lines.join('\n');
}
