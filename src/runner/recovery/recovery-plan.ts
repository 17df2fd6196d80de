import type { ClientBase } from 'pg';
import { stepLabel } from '../../events/run-events.js';
import type { Fingerprint } from '../../integrity/fingerprint.js';
import { journalFile, readJournalFile, settledOutcome, type JournalLine } from '../../journal/file-journal.js';
import type { JournalRecord } from '../../journal/record.js';
import { appliedRevisionNames, findUnfinishedRuns, readRunSteps, revisionsAppliedBy, type RunSummary } from '../../journal/run-store.js';
import type { Revision } from '../../migrations/revision.js';
import { prepareStep } from '../../migrations/run-revision.js';
import type { RecordedLanding } from './landing-check.js';
import { keptByRun, lastStarted, openRestore, restoreDone, runSteps, snapshotsOfRun } from '../result/run-record.js';

export type RecoveryAction = 'down' | 'finish-rollback' | 'restore' | 'verify-restore' | 'nothing';

/** What `belay recover` will do about an interrupted run, and why. */
export interface RecoveryPlan {
  run: RunSummary;
  action: RecoveryAction;
  why: string;
  /** Revisions to revert, newest first. */
  revert: string[];
  /** Where the downs lead: the run's prior revision, or a rollback's target. */
  target: string | null;
  snapshotId: string | null;
  fingerprint: Fingerprint | null;
  /** The step the run (or the recover that was settling it) was in when it stopped. */
  interruptedAt: string | null;
  /** Interrupted `recover` runs that were settling it: settled with it. */
  recoveries: string[];
  /** When `run` is a recover stopped after its restore replaced the database: the run it was settling, settled with it. */
  settling?: string;
  /** Databases a stopped restore created and left behind (`<db>_belay_restore_*`): dropped by recover. */
  leftovers: string[];
  /** A rollback's (rollback --to, or a rejected migrate up's) schema baseline, journaled before its first down. */
  landing: RecordedLanding | null;
}

/** The last step that started and never ended. */
function openStep(steps: JournalRecord[]): JournalRecord | undefined {
  const open: JournalRecord[] = [];
  for (const step of steps) {
    if (step.event === 'start') open.push(step);
    else if (step.event === 'end') {
      const index = open.findLastIndex((s) => s.step === step.step && s.revision === step.revision && s.subject === step.subject);
      if (index !== -1) open.splice(index, 1);
    }
  }
  return open[open.length - 1];
}

/**
 * The runs marked running that did not end: one whose journal file holds an
 * outcome that leaves nothing to do (`settledOutcome`) ended, whatever its
 * row says. Every reader of an interrupted run reads it so: status, recover,
 * the refusal of new work.
 */
export async function withoutEnded(runs: RunSummary[], backupsDir: string): Promise<RunSummary[]> {
  const ended = await Promise.all(runs.map(async (run) => settledOutcome(await readJournalFile(journalFile(backupsDir, run.runId)).catch((): JournalLine[] => [])) !== undefined));
  return runs.filter((_run, index) => !ended[index]);
}

/**
 * The runs left "running" that did not end (`withoutEnded`): the newest one
 * that is not a `recover` is the one to settle. A `recover` that was itself
 * stopped settles nothing: the run it was settling stays unsettled until a
 * later recover verifies its database.
 */
export async function findUnsettled(client: ClientBase, backupsDir: string, except?: string): Promise<{ run: RunSummary | undefined; others: RunSummary[] }> {
  return pickUnsettled(await withoutEnded(await findUnfinishedRuns(client, except), backupsDir));
}

/** The same from rows already read: `runs` marked running, newest first. */
export function pickUnsettled(runs: RunSummary[]): { run: RunSummary | undefined; others: RunSummary[] } {
  const run = runs.find((r) => r.command !== 'recover') ?? runs[0];
  return { run, others: runs.filter((r) => r !== run) };
}

/** Where the newest interrupted recover of `run` stopped, else where the run itself stopped: what status, recover and a refused run name. */
function interruptedStep(steps: JournalRecord[], recoverySteps: JournalRecord[][], run: RunSummary): string | null {
  const interrupted = recoverySteps.map(openStep).find((step) => step !== undefined) ?? openStep(steps);
  return interrupted ? stepLabel(interrupted) : (lastStarted(steps) ?? run.lastStep);
}

/** The step an interrupted run (`pickUnsettled`'s) stopped at, read as `planRecovery` reads it. */
export async function interruptedAt(client: ClientBase, backupsDir: string, run: RunSummary, others: RunSummary[]): Promise<string | null> {
  const recoveries = others.filter((r) => r.command === 'recover');
  const recoverySteps = await Promise.all(recoveries.map((r) => runSteps(client, backupsDir, r.runId)));
  return interruptedStep(await runSteps(client, backupsDir, run.runId), recoverySteps, run);
}

/** Dead runs the database has no record of (the newest first): they stopped before they changed anything, and only their record needs settling. */
export function planUnrecorded([run, ...others]: [RunSummary, ...RunSummary[]]): RecoveryPlan {
  const more = others.length > 0 ? ` (and ${others.length} more such run(s))` : '';
  return {
    run,
    action: 'nothing',
    why: `it ended before it changed anything (the database has no record of it)${more}: only its record needs settling, as interrupted`,
    revert: [],
    target: run.fromRevision,
    snapshotId: null,
    fingerprint: null,
    interruptedAt: run.lastStep,
    recoveries: [],
    leftovers: [],
    landing: null,
  };
}

/** The run a recover's plan step named: the restore that recover put in place marked it in-snapshot, no longer running. */
function settlingOf(steps: JournalRecord[]): { settling?: string } {
  const planned = steps.find((s) => s.step === 'plan' && s.event === 'end')?.detail?.run as { runId?: unknown } | undefined;
  return typeof planned?.runId === 'string' ? { settling: planned.runId } : {};
}

export async function planRecovery(client: ClientBase, backupsDir: string, run: RunSummary, others: RunSummary[], revisions: readonly Revision[]): Promise<RecoveryPlan> {
  const steps = await runSteps(client, backupsDir, run.runId);
  const recoveries = others.filter((r) => r.command === 'recover');
  const recoverySteps = await Promise.all(recoveries.map((r) => runSteps(client, backupsDir, r.runId)));
  const ended = (name: string): JournalRecord | undefined => steps.find((s) => s.step === name && s.event === 'end' && s.outcome === 'ok');
  const fingerprint = (ended('fingerprint')?.detail?.fingerprint as Fingerprint | undefined) ?? null;
  const { taken, restoring } = snapshotsOfRun(steps);
  const snapshotId = taken ?? restoring;
  // where the newest interrupted recover of this run stopped, else where the run itself stopped
  const interrupted = recoverySteps.map(openStep).find((step) => step !== undefined) ?? openStep(steps);
  const leftovers = [...steps, ...recoverySteps.flat()].flatMap((s) => (s.event === 'note' && typeof s.detail?.restoreCopy === 'string' ? [s.detail.restoreCopy] : []));
  const base = {
    // its row's last step is the database copy's, which a stopped server can leave behind the journal file
    run: { ...run, lastStep: lastStarted(steps) ?? run.lastStep },
    snapshotId,
    fingerprint,
    interruptedAt: interruptedStep(steps, recoverySteps, run),
    recoveries: recoveries.map((r) => r.runId),
    leftovers: [...new Set(leftovers)],
    // the run's own, else the one the oldest recover stopped while settling it journaled before its downs
    landing: ([...steps, ...recoverySteps.toReversed().flat()].find((s) => s.step === 'schema' && s.event === 'note' && s.detail?.landing)?.detail?.landing as RecordedLanding | undefined) ?? null,
  };
  const inRecovery = recoveries.length > 0 ? ` (and ${recoveries.length} recover run(s) stopped while settling it)` : '';

  const restore = openRestore(steps, await readRunSteps(client, run.runId));
  // a restore the run began that had replaced the database, else the newest one done (by the run, or by a recover stopped while settling it)
  const done = [...recoverySteps, steps].flatMap((s) => {
    const restored = restoreDone(s);
    return restored ? [{ ...restored, steps: s }] : [];
  })[0];
  const replacing = restore?.replaced
    ? {
        snapshot: restore.snapshot,
        steps,
        when: `while restoring snapshot ${restore.snapshot}, after the snapshot had replaced the database`,
        // the run's own snapshot leads to where it started; one asked for (restore, --restore-from, a recover's) to where the run was headed
        target: restore.snapshot === taken ? run.fromRevision : run.toRevision,
      }
    : done && { snapshot: done.snapshot, steps: done.steps, when: `at "${base.interruptedAt}", after restoring snapshot ${done.snapshot} and verifying it`, target: done.revision };
  if (replacing) {
    const kept = keptByRun(replacing.steps);
    const aside = [...kept.databases.map((name) => `the damaged database is kept as ${name}`), ...kept.snapshots.map((id) => `its state before the restore is kept as snapshot ${id}`)];
    return {
      ...base,
      snapshotId: replacing.snapshot,
      action: 'verify-restore',
      why: `it stopped ${replacing.when}${aside.length > 0 ? ` (${aside.join('; ')})` : ''}${inRecovery}: verify the restored data against the snapshot's fingerprint (a difference is named, not restored over: it was written since)`,
      revert: [],
      target: replacing.target,
      ...(run.command === 'recover' ? settlingOf(steps) : {}),
    };
  }
  if (run.command === 'recover') {
    return { ...base, action: 'nothing', why: `a recover run was stopped with no other run left to settle${inRecovery}`, revert: [], target: run.fromRevision };
  }
  if (run.command === 'rollback' && !restoring) {
    const appliedNames = await appliedRevisionNames(client);
    const targetIndex = revisions.findIndex((r) => r.name === run.toRevision);
    const revert = revisions.slice(targetIndex + 1).filter((r) => appliedNames.has(r.name)).map((r) => r.name).reverse();
    return {
      ...base,
      action: revert.length > 0 ? 'finish-rollback' : 'down',
      why: `the rollback to ${run.toRevision ?? 'the start'} stopped at "${base.interruptedAt}"${inRecovery}: ${revert.length > 0 ? 'finish its downs' : 'its downs are done: verify the data'}`,
      revert,
      target: run.toRevision,
    };
  }
  if (run.command === 'restore' || run.command === 'rollback' || interrupted?.step === 'restore') {
    return { ...base, action: 'restore', why: `it stopped while restoring snapshot ${snapshotId ?? '(unknown)'}${inRecovery}: restore it again`, revert: [], target: run.fromRevision };
  }
  if (run.command !== 'migrate-up') {
    return { ...base, action: 'nothing', why: `a ${run.command} run changes no revision; only its record needs settling`, revert: [], target: run.fromRevision };
  }
  const byRun = await revisionsAppliedBy(client, run.runId);
  const inFlight = interrupted && (interrupted.step === 'apply' || interrupted.step === 'down') && interrupted.revision ? revisions.find((r) => r.name === interrupted.revision) : undefined;
  if (inFlight && !byRun.has(inFlight.name) && interrupted?.step === 'apply' && !(await prepareStep(inFlight, 'up')).transactional) {
    return {
      ...base,
      action: 'restore',
      why: `it stopped inside ${inFlight.name}, which runs outside a transaction: its partial effects cannot be trusted to a down`,
      revert: [],
      target: run.fromRevision,
    };
  }
  if (inFlight && interrupted?.step === 'down' && !(await prepareStep(inFlight, 'down')).transactional) {
    return { ...base, action: 'restore', why: `it stopped inside the down of ${inFlight.name}, which runs outside a transaction${inRecovery}`, revert: [], target: run.fromRevision };
  }
  const revert = revisions.filter((r) => byRun.has(r.name)).map((r) => r.name).reverse();
  return {
    ...base,
    action: 'down',
    why:
      revert.length > 0
        ? `it stopped at "${base.interruptedAt}" with ${revert.length} revision(s) of its own applied${inRecovery}: revert them to ${run.fromRevision ?? 'the start'} and verify`
        : `it stopped at "${base.interruptedAt}" with no revision of its own left applied${inRecovery}: ${fingerprint ? 'verify the data against its fingerprint' : 'check the data (it took no fingerprint to compare it with)'}`,
    revert,
    target: run.fromRevision,
  };
}
