import type { ClientBase } from 'pg';
import { rowsOf, safeDatabaseName, type Manifest } from '../../backup/manifest.js';
import { snapshotsRunsNeed } from '../../backup/needed-snapshots.js';
import { resolveBackupTools } from '../../backup/pg-tools.js';
import { applyPrune, planPrune, pruneNotBegun, prunedSoFar, type PruneProgress } from '../../backup/prune.js';
import { findSnapshot, listSnapshots, verifySnapshot, type RefusedManifest, type SnapshotListing, type SnapshotVerdict } from '../../backup/snapshot-store.js';
import { snapshotProblem } from '../../backup/digest.js';
import { BelayError } from '../../errors.js';
import { discoverRevisions } from '../../migrations/discover.js';
import { tiedRefusal } from '../../scope/restore-ties.js';
import { readDatabaseState } from '../session/database-state.js';
import { finishRun, withRunSession } from '../session/outcome.js';
import { assertPreflight } from '../steps/preflight.js';
import type { RunResult } from '../result/results.js';
import { acquireRunLock } from '../session/run-lock.js';
import { findUnsettled } from '../recovery/recovery-plan.js';
import { restoreThenVerify, type Recovery } from '../recovery/safety-net.js';
import { settleRuns, VERIFIED_OUTCOMES } from '../recovery/settle-runs.js';
import type { RestoreStrategy } from '../../events/run-events.js';
import { openTargetSession, type RunSetup } from '../session/setup.js';
import { backupPreflight, endAfterDumpFailure, fingerprintAndSnapshot, restorePreflight, runBackupTools, swapExtensionsCheck, swapSettingsCheck } from '../steps/snapshot-step.js';

/** `belay backup`: a verified snapshot now, journaled like any run. */
export async function runBackup(setup: RunSetup): Promise<RunResult> {
  // read beside connecting, not before it
  const discovering = discoverRevisions(setup.config.migrationsDir).catch(() => []);
  return withRunSession(setup, 'backup', async (session) => {
    void runBackupTools(setup, session.control);
    await session.lock();
    const state = await readDatabaseState(session.work.client, await discovering);
    await session.startJournal(state.current, state.current);
    await setup.events.step(
      { step: 'preflight' },
      async () => {
        const found = await backupPreflight(setup, session.control);
        assertPreflight(found);
        return found;
      },
      (found) => ({ checks: found }),
    );
    await session.attachDatabaseJournal();
    let manifest;
    try {
      const taken = await fingerprintAndSnapshot(session, state.current, { sums: { perColumn: false }, dump: true });
      if (!taken.snapshot) throw taken.dumpError;
      manifest = taken.snapshot;
    } catch (error) {
      return await endAfterDumpFailure(session, error);
    }
    const keep = setup.config.backup.keep;
    let pruneNote = '';
    if (keep !== undefined) {
      try {
        pruneNote = `; backup.keep ${keep}: ${describePrune(await pruneUnderLock(session.control.client, setup, keep))}`;
      } catch (error) {
        if (!(error instanceof BelayError)) throw error;
        pruneNote = `; backup.keep: nothing pruned (${error.message})`;
      }
    }
    return await finishRun(session, {
      outcome: 'ok',
      message: `snapshot ${manifest.id} taken and verified readable (${manifest.tableCount} tables, at ${state.current ?? 'no revision'}${state.current !== null && state.current !== state.currentOnDisk ? ', missing from disk' : ''})${pruneNote}`,
    });
  });
}

export async function runBackupsList(setup: RunSetup): Promise<SnapshotListing> {
  return listSnapshots(setup.config.backupsDir);
}

export async function runBackupsVerify(setup: RunSetup, id: string): Promise<{ snapshot: Manifest } & SnapshotVerdict> {
  const manifest = await findSnapshot(setup.config.backupsDir, id);
  const serverMajor = Number(/^(\d+)/.exec(manifest.serverVersion)?.[1] ?? 0);
  const tools = await resolveBackupTools({ search: setup.pgSearch, serverMajor });
  return { snapshot: manifest, ...(await verifySnapshot(manifest, tools, setup.env)) };
}

export interface PruneResult {
  removed: string[];
  kept: Array<{ id: string; why: string }>;
  /** Half-written dumps of killed runs, removed or kept. */
  leftoversRemoved: string[];
  leftoversKept: Array<{ file: string; why: string }>;
  /** The operator answered no: nothing was deleted. */
  declined: boolean;
}

export function describePrune(result: PruneResult): string {
  const kept = result.kept.length > 0 ? `kept ${result.kept.length}` : 'kept none';
  return `${result.declined ? 'declined, nothing deleted' : `removed ${result.removed.length}`}, ${kept}${result.leftoversRemoved.length > 0 ? `, removed ${result.leftoversRemoved.length} half-written dump(s)` : ''}`;
}

function refusePruneOver(refused: readonly RefusedManifest[], backupsDir: string): void {
  if (refused.length === 0) return;
  throw new BelayError('preflight', `${backupsDir} holds manifests belay refuses, so it prunes nothing: ${refused.map((r) => `${r.file} (${r.problem})`).join('; ')}`, {
    hint: 'Nothing was deleted. Inspect those files and move them out of the backups folder, then prune again.',
    details: { refused },
  });
}

/**
 * Prune while holding the run lock of the target database: no run of it can
 * start a dump or need a snapshot meanwhile. Never a snapshot an unsettled or
 * running run may need, nor the newest of each database.
 */
async function pruneUnderLock(
  client: ClientBase,
  setup: RunSetup,
  keep: number,
  confirm?: (summary: string) => Promise<boolean>,
  progress: PruneProgress = pruneNotBegun(),
): Promise<PruneResult> {
  const { backupsDir } = setup.config;
  const listing = await listSnapshots(backupsDir);
  refusePruneOver(listing.refused, backupsDir);
  const needed = await snapshotsRunsNeed(client, backupsDir, setup.target.database);
  const plan = planPrune(listing.snapshots, keep, needed);
  const ours = listing.partial.filter((p) => p.database === safeDatabaseName(setup.target.database));
  const result: PruneResult = { removed: [], kept: plan.keep, leftoversRemoved: [], leftoversKept: [], declined: false };
  if (confirm && (plan.remove.length > 0 || ours.length > 0)) {
    const what = [...plan.remove.map((m) => `snapshot ${m.id}`), ...ours.map((p) => `half-written ${p.file}`)];
    if (!(await confirm(`delete ${what.join(', ')} from ${backupsDir}`))) return { ...result, declined: true };
  }
  const applied = await applyPrune(backupsDir, listing, plan, setup.target.database, progress);
  return { ...result, removed: applied.removed, leftoversRemoved: applied.leftovers.removed, leftoversKept: applied.leftovers.kept };
}

/** `belay backups prune --keep N`, under the run lock (exit 3 when a run holds it). */
export async function runBackupsPrune(setup: RunSetup, keep: number, confirm?: (summary: string) => Promise<boolean>): Promise<PruneResult> {
  const session = await openTargetSession(setup, 'belay backups prune');
  const progress = pruneNotBegun();
  // its deletions go on after a first signal; a second exits at once, naming how far they got
  setup.onRun?.({ abandon: (reason) => ({ state: 'cut', error: prunedSoFar(setup.config.backupsDir, progress, reason) }) });
  try {
    await acquireRunLock(session.client, setup.config.backupsDir);
    return await pruneUnderLock(session.client, setup, keep, confirm, progress);
  } finally {
    await session.close();
  }
}

/** `belay restore ID`: by hand, under the lock, verified against the snapshot's own fingerprint. */
/** A snapshot missing or not as its manifest says is refused before anything is touched (exit 4), not found out halfway through a restore. */
async function assertSnapshotSound(manifest: Manifest): Promise<void> {
  const problem = await snapshotProblem(manifest);
  if (problem) {
    throw new BelayError('preflight', `snapshot ${manifest.id} ${problem}`, {
      hint: 'Nothing was touched. Pick another snapshot (`belay backups list`; `belay backups verify ID` checks one).',
      details: { snapshot: manifest.id, path: manifest.path },
    });
  }
}

export async function runRestore(setup: RunSetup, id: string, strategy: RestoreStrategy, allowOtherDatabase = false): Promise<RunResult> {
  const manifest = await findSnapshot(setup.config.backupsDir, id);
  if (manifest.database !== setup.target.database && !allowOtherDatabase) {
    throw new BelayError('preflight', `snapshot ${manifest.id} was taken from database ${manifest.database}, not ${setup.target.database}: restoring it would replace ${setup.target.database} with another database's contents`, {
      hint: 'Nothing was touched. Pick a snapshot of this database (`belay backups list`), or, if that is what you mean, run again with --allow-other-database.',
      details: { snapshot: manifest.id, snapshotDatabase: manifest.database, target: setup.target.database },
    });
  }
  await assertSnapshotSound(manifest);
  const revisions = await discoverRevisions(setup.config.migrationsDir).catch(() => []);
  return withRunSession(setup, 'restore', async (session) => {
    void runBackupTools(setup, session.control);
    await session.lock();
    const state = await readDatabaseState(session.work.client, revisions);
    if (manifest.scope && state.current !== manifest.revision) {
      // a touched snapshot puts back its tables in place (src/scope/touched-restore.ts), never the revision nor the other tables
      throw new BelayError('preflight', `snapshot ${manifest.id} is a touched snapshot (the schema, and ${rowsOf(manifest.scope.tables)}) taken at ${manifest.revision ?? 'the start'}, but ${setup.target.database} is at ${state.current ?? 'the start'}`, {
        hint: `Nothing was changed. Bring the database to ${manifest.revision ?? 'the start'} first (\`belay rollback --to\`), or restore a full snapshot (\`belay backups list\`).`,
      });
    }
    const tied = await tiedRefusal(session.work.client, manifest, setup.config.backupsDir);
    if (tied) throw new BelayError('preflight', tied.message, { hint: tied.next.join('\n') });
    const { run, others } = await findUnsettled(session.control.client, setup.config.backupsDir, session.runId);
    const unsettled = [...(run ? [run] : []), ...others].map((r) => r.runId);
    await session.startJournal(state.current, manifest.revision);
    await setup.events.step(
      { step: 'preflight' },
      async () => {
        const swap = strategy === 'swap' && !manifest.scope;
        const found = [
          ...(await restorePreflight(setup, session.control, manifest, strategy)),
          ...(swap ? await swapExtensionsCheck(setup, session.control, manifest) : []),
          ...(swap ? await swapSettingsCheck(setup, session.control, manifest) : []),
        ];
        assertPreflight(found);
        return found;
      },
      (found) => ({ checks: found }),
    );
    await session.attachDatabaseJournal();
    if (unsettled.length > 0) await setup.events.emit({ type: 'note', step: 'restore', message: `settles interrupted run(s) ${unsettled.join(', ')} once the snapshot is back and verified` });
    const recovery: Recovery = {
      session,
      goal: 'restore',
      toRevert: [],
      target: manifest.revision,
      fingerprint: (manifest.fingerprint as Recovery['fingerprint']) ?? null,
      snapshot: manifest,
      compare: 'same-schema',
      healthTimeoutSeconds: setup.config.health.timeoutSeconds,
      tolerated: new Set(),
      restoreStrategy: strategy,
    };
    const result = await restoreThenVerify(recovery, `restore of ${manifest.id} asked for`);
    // the snapshot back and verified settles them, even when a hook after it failed (the run ends 12 for the hook)
    if (VERIFIED_OUTCOMES.has(result.outcome)) await settleRuns(session, unsettled, result.outcome);
    else if (session.ledger.facts.restore?.ok) await settleRuns(session, unsettled, 'restored');
    return result;
  });
}
