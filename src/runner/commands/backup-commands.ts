import type { Manifest } from '../../backup/manifest.js';
import { resolveBackupTools } from '../../backup/pg-tools.js';
import { findSnapshot, listSnapshots, pruneSnapshots, verifySnapshot, type SnapshotVerdict } from '../../backup/snapshot-store.js';
import { discoverRevisions } from '../../migrations/discover.js';
import { readDatabaseState } from '../session/database-state.js';
import { finishRun, withRunSession } from '../session/outcome.js';
import { assertPreflight } from '../steps/preflight.js';
import type { RunResult } from '../result/results.js';
import { findUnsettled } from '../recovery/recovery-plan.js';
import { restoreThenVerify, type Recovery } from '../recovery/safety-net.js';
import { settleRuns, VERIFIED_OUTCOMES } from '../recovery/settle-runs.js';
import type { RestoreStrategy } from '../../events/run-events.js';
import type { RunSetup } from '../session/setup.js';
import { backupPreflight, endAfterDumpFailure, fingerprintAndSnapshot } from '../steps/snapshot-step.js';

/** `belay backup`: a verified snapshot now, journaled like any run. */
export async function runBackup(setup: RunSetup): Promise<RunResult> {
  const revisions = await discoverRevisions(setup.config.migrationsDir).catch(() => []);
  return withRunSession(setup, 'backup', async (session) => {
    await session.lock();
    const state = await readDatabaseState(session.work.client, revisions);
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
      const taken = await fingerprintAndSnapshot(session, state.current, { perColumn: true, dump: true });
      if (!taken.snapshot) throw taken.dumpError;
      manifest = taken.snapshot;
    } catch (error) {
      return await endAfterDumpFailure(session, error);
    }
    if (setup.config.backup.keep !== undefined) await pruneSnapshots(setup.config.backupsDir, setup.config.backup.keep);
    return await finishRun(session, {
      outcome: 'ok',
      message: `snapshot ${manifest.id} taken and verified readable (${manifest.tableCount} tables, at ${state.current ?? 'no revision'})`,
    });
  });
}

export async function runBackupsList(setup: RunSetup): Promise<{ snapshots: Manifest[]; unreadable: string[] }> {
  return listSnapshots(setup.config.backupsDir);
}

export async function runBackupsVerify(setup: RunSetup, id: string): Promise<{ snapshot: Manifest } & SnapshotVerdict> {
  const manifest = await findSnapshot(setup.config.backupsDir, id);
  const serverMajor = Number(/^(\d+)/.exec(manifest.serverVersion)?.[1] ?? 0);
  const tools = await resolveBackupTools({ search: setup.pgSearch, serverMajor });
  return { snapshot: manifest, ...(await verifySnapshot(manifest, tools, setup.env)) };
}

export async function runBackupsPrune(setup: RunSetup, keep: number): Promise<{ removed: string[] }> {
  return { removed: await pruneSnapshots(setup.config.backupsDir, keep) };
}

/** `belay restore ID`: by hand, under the lock, verified against the snapshot's own fingerprint. */
export async function runRestore(setup: RunSetup, id: string, strategy: RestoreStrategy): Promise<RunResult> {
  const manifest = await findSnapshot(setup.config.backupsDir, id);
  const revisions = await discoverRevisions(setup.config.migrationsDir).catch(() => []);
  return withRunSession(setup, 'restore', async (session) => {
    await session.lock();
    const state = await readDatabaseState(session.work.client, revisions);
    const { run, others } = await findUnsettled(session.control.client, session.runId);
    const unsettled = [...(run ? [run] : []), ...others].map((r) => r.runId);
    await session.startJournal(state.current, manifest.revision);
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
    if (VERIFIED_OUTCOMES.has(result.outcome)) await settleRuns(session, unsettled, result.outcome);
    return result;
  });
}
