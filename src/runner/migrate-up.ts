import { discoverRevisions } from '../migrations/discover.js';
import { MigrationEngine } from '../migrations/engine.js';
import type { Revision } from '../migrations/revision.js';
import { resolveRevisionName } from '../migrations/resolve-name.js';
import { EXIT } from '../errors.js';
import { captureStructure, type StructureBaseline } from '../integrity/structural.js';
import { readDatabaseState, revisionsToApply, type DatabaseState } from './database-state.js';
import { runHealthStep } from './health-step.js';
import { runHookStep } from './hook-step.js';
import { baseResult, finishRun, withRunSession } from './outcome.js';
import { assertPreflight, checkDowns, checkDrift, checkMissing, checkOrder, checkScripts, checkSearchPath, type PreflightCheck } from './preflight.js';
import type { RunResult } from './results.js';
import type { RunSession } from './run-session.js';
import { reasonFrom, rollBackRun, type RunProgress } from './safety-net.js';
import type { RunSetup } from './setup.js';
import { backupPreflight, fingerprintAndSnapshot } from './snapshot-step.js';

export interface MigrateUpOptions {
  to?: string;
  withBackup?: boolean;
  dryRun?: boolean;
  allowIrreversible?: boolean;
  allowUnhealthy?: boolean;
  /** Seconds health checks may retry after the change; default from the config. */
  healthTimeout?: number;
}


async function preflightChecks(session: RunSession, state: DatabaseState, toApply: Revision[], options: MigrateUpOptions): Promise<PreflightCheck[]> {
  const checks = [
    checkDrift(state),
    checkMissing(state),
    checkOrder(state),
    await checkDowns(toApply, options.allowIrreversible === true),
    await checkScripts(toApply, 'up'),
    await checkScripts(toApply, 'down'),
    await checkSearchPath(session.work.client),
  ];
  if (options.withBackup && toApply.length > 0) checks.push(...(await backupPreflight(session.setup, session.control)));
  return checks;
}

/**
 * The seed's "fix the 500 first": the checks must pass before anything
 * changes. With --allow-unhealthy the run goes on, and the checks failing
 * now are the ones not held against the change.
 */
async function healthBaseline(session: RunSession, options: MigrateUpOptions, tolerated: Set<string>): Promise<PreflightCheck> {
  const report = await runHealthStep(session, 'baseline', 0);
  if (report.healthy) return { name: 'health-baseline', ok: true, message: 'health checks pass before the change' };
  const failing = report.results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.evidence}`).join('; ');
  if (options.allowUnhealthy) {
    // structure is judged against the baseline itself: what was already broken is not held against the change, what breaks is
    for (const result of report.results) if (!result.ok && result.kind !== 'structural') tolerated.add(result.name);
    return { name: 'health-baseline', ok: true, message: `unhealthy before the change, allowed by --allow-unhealthy (${failing})` };
  }
  return {
    name: 'health-baseline',
    ok: false,
    message: `unhealthy before any change: ${failing}`,
    hint: 'Fix what fails first, so that a failure after the change can be blamed on the change; or pass --allow-unhealthy.',
  };
}

/**
 * The orchestrated forward run: lock → plan → preflight (with the health
 * baseline) → fingerprint → backup → beforeApply → apply → afterApply →
 * health; on any failure the safety net rolls back or restores. Usage, lock
 * and preflight problems throw BelayError before anything changes.
 */
export async function runMigrateUp(setup: RunSetup, options: MigrateUpOptions): Promise<RunResult> {
  const revisions = await discoverRevisions(setup.config.migrationsDir);
  const target = options.to === undefined ? undefined : resolveRevisionName(options.to, revisions.map((r) => r.name));
  return withRunSession(setup, options.dryRun ? 'migrate-up-dry-run' : 'migrate-up', async (session) => {
    if (options.dryRun) return await dryRun(session, revisions, target, options);
    await session.lock();
    const state = await readDatabaseState(session.work.client, revisions);
    const toApply = revisionsToApply(revisions, state, target);
    await session.startJournal(state.current, toApply[toApply.length - 1]?.name ?? state.current);
    const { events } = setup;
    await events.step({ step: 'plan' }, async () => toApply, (list) => ({ from: state.current, apply: list.map((r) => r.name) }));
    const tolerated = new Set<string>();
    let structure: StructureBaseline | undefined;
    const checks = await events.step(
      { step: 'preflight' },
      async () => {
        const found = await preflightChecks(session, state, toApply, options);
        assertPreflight(found);
        if (toApply.length > 0) {
          structure = await captureStructure(session.work.client);
          found.push(await healthBaseline(session, options, tolerated));
        }
        assertPreflight(found);
        return found;
      },
      (found) => ({ checks: found }),
    );
    const result = baseResult(session, state.current, checks);
    if (toApply.length === 0) {
      return await finishRun(session, { ...result, outcome: 'up-to-date', message: `already at ${state.current ?? 'the start'}; nothing to apply` });
    }
    await session.attachDatabaseJournal();
    const { fingerprint, snapshot, dumpError } = await fingerprintAndSnapshot(session, state.current, { perColumn: false, dump: options.withBackup === true });
    const progress: RunProgress = {
      session,
      priorRevision: state.current,
      fingerprint,
      snapshot,
      applied: [],
      result,
      healthTimeoutSeconds: options.healthTimeout ?? setup.config.health.timeoutSeconds,
      tolerated,
      structure,
      restoreStrategy: 'swap',
    };
    if (dumpError !== undefined) {
      if (interrupted(session)) return await rollBackRun(progress, INTERRUPTED);
      throw dumpError;
    }
    if (snapshot) result.snapshot = { id: snapshot.id, path: snapshot.path, sha256: snapshot.sha256, sizeBytes: snapshot.sizeBytes };
    return await applyAndVerify(progress, toApply);
  });
}

/** SIGINT/SIGTERM: the CLI aborts the signal; the run stops at its next safe point and rolls back. */
const interrupted = (session: RunSession): boolean => session.setup.signal?.aborted === true;
const INTERRUPTED = { message: 'interrupted by a signal', untrustworthy: false };

async function applyAndVerify(progress: RunProgress, toApply: Revision[]): Promise<RunResult> {
  const { session, result } = progress;
  const { events } = session.setup;
  const hookVars = (outcome: string) => ({ from: progress.priorRevision, to: toApply[toApply.length - 1]!.name, outcome });
  result.revisions = toApply.map((revision) => ({ name: revision.name, status: 'pending' }));
  if (!(await runHookStep(session, 'beforeApply', hookVars('applying')))) {
    return rollBackRun(progress, { message: 'the beforeApply hook failed', untrustworthy: false });
  }
  const engine = new MigrationEngine(toApply, session.work.client, session.runId, {
    log: (revision, message) => void events.emit({ type: 'note', step: 'apply', revision: revision.name, message }),
  });
  for (const [index, revision] of toApply.entries()) {
    if (interrupted(session)) return rollBackRun(progress, INTERRUPTED);
    const entry = result.revisions[index]!;
    const started = performance.now();
    try {
      await events.step({ step: 'apply', revision: revision.name }, () => engine.up(revision.name));
    } catch (error) {
      entry.status = interrupted(session) ? 'not-run' : 'failed';
      return rollBackRun(progress, interrupted(session) ? INTERRUPTED : reasonFrom(error));
    }
    entry.status = 'applied';
    entry.durationMs = Math.round(performance.now() - started);
    progress.applied.push(revision);
    result.toRevision = revision.name;
  }
  if (interrupted(session)) return rollBackRun(progress, INTERRUPTED);
  if (!(await runHookStep(session, 'afterApply', hookVars('applied')))) {
    return rollBackRun(progress, { message: 'the afterApply hook failed', untrustworthy: false });
  }
  const health = await runHealthStep(session, 'after-apply', progress.healthTimeoutSeconds, progress.tolerated, progress.structure);
  if (!health.healthy) {
    const failing = health.results.filter((r) => !r.ok && !progress.tolerated.has(r.name));
    return rollBackRun(progress, {
      message: `health failed after the change: ${failing.map((r) => `${r.name}: ${r.evidence}`).join('; ')}`,
      failure: { health: failing },
      untrustworthy: false,
    });
  }
  return finishRun(session, { ...result, outcome: 'ok', message: `applied ${toApply.length} revision(s); now at ${result.toRevision}; healthy` });
}

async function dryRun(session: RunSession, revisions: Revision[], target: string | undefined, options: MigrateUpOptions): Promise<RunResult> {
  const state = await readDatabaseState(session.work.client, revisions);
  const toApply = revisionsToApply(revisions, state, target);
  const checks = await preflightChecks(session, state, toApply, options);
  const failed = checks.filter((check) => !check.ok);
  return {
    ...baseResult(session, state.current, checks),
    outcome: 'dry-run',
    exitCode: failed.length > 0 ? EXIT.preflight : EXIT.ok,
    message:
      failed.length > 0
        ? `dry run: preflight would refuse: ${failed.map((c) => c.message).join('; ')}`
        : `dry run: would apply ${toApply.length} revision(s)${options.withBackup && toApply.length > 0 ? ' after a snapshot' : ''}; nothing was changed`,
    toRevision: toApply[toApply.length - 1]?.name ?? state.current,
    revisions: toApply.map((revision) => ({ name: revision.name, status: 'pending' })),
  };
}
