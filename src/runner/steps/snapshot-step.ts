import { statfs } from 'node:fs/promises';
import { sweepStalePassfiles } from '../../db/pgpass.js';
import { resolveBackupTools, type BackupTools } from '../../backup/pg-tools.js';
import { passedOverInPgBin } from '../../cluster/pg-bin.js';
import { ensureBackupsDir } from '../../backup/snapshot-store.js';
import { takeSnapshot, type DumpProgress } from '../../backup/take-snapshot.js';
import type { Session } from '../../db/session.js';
import { BelayError, errorMessage, preflightError } from '../../errors.js';
import type { RunResult } from '../result/results.js';
import { finishRun } from '../session/outcome.js';
import type { PreflightCheck } from './preflight.js';
import type { Manifest } from '../../backup/manifest.js';
import type { RestoreStrategy } from '../../events/run-events.js';
import type { RunSession } from '../session/run-session.js';
import type { ColumnSums, Fingerprint } from '../../integrity/fingerprint.js';
import { takeFingerprint } from './integrity-step.js';
import { takeTouchedSnapshot } from '../../scope/touched-snapshot.js';
import type { ScopeGuard } from '../../scope/lock-scope.js';
import { decideScope, type BackupScopeMode, type ScopeDecision } from '../../scope/choose-scope.js';
import { largeObjectsReason, learnScope } from '../../scope/learn-scope.js';
import { SCOPE_COPY_NOTE } from '../../scope/scope-copies.js';
import { objectLabel, type LearnedScope } from '../../scope/scope.js';
import { selectProtectedTables, tableKey } from '../../integrity/table-selection.js';
import type { Revision } from '../../migrations/revision.js';
import type { ScopeChoice } from '../../events/run-events.js';
import { sessionOptions, type RunSetup } from '../session/setup.js';
import { contentsOf, swapExtensionObstacle, swapSettingsObstacle } from './restore-step.js';
import { swapObstacles } from '../../db/databases.js';

const toolsBySetup = new WeakMap<RunSetup, Promise<BackupTools>>();

function serverMajor(session: Session): number {
  return Math.floor(session.serverVersionNum / 10000);
}

/**
 * The run's pg_dump and pg_restore, found once: started as soon as the
 * server's version is known, so that the search runs beside the lock and the
 * journal instead of in the preflight's path. A failure is answered by the
 * preflight (exit 4 with its hint).
 */
export function runBackupTools(setup: RunSetup, control: Session): Promise<BackupTools> {
  let resolving = toolsBySetup.get(setup);
  if (!resolving) {
    // pg_dump's passfile waits for this sweep of the temp folder: done now, not then
    sweepStalePassfiles().catch(() => {});
    resolving = resolveBackupTools({ search: setup.pgSearch, serverMajor: serverMajor(control) });
    resolving.catch(() => {});
    toolsBySetup.set(setup, resolving);
  }
  return resolving;
}

async function toolsCheck(setup: RunSetup, control: Session, tool: 'pg_dump' | 'pg_restore'): Promise<PreflightCheck> {
  try {
    const tools = await runBackupTools(setup, control);
    const used = tool === 'pg_dump' ? tools.pgDump : tools.pgRestore;
    const server = serverMajor(control);
    const can = `${tool} ${used.version} (${used.path}) can ${tool === 'pg_dump' ? 'dump' : 'restore into'} server ${server}`;
    // the operator named PG_BIN: a copy of theirs too old for this server is not passed over in silence
    const older = await passedOverInPgBin(tool, setup.pgSearch, used);
    if (older) await setup.events.emit({ type: 'note', step: 'preflight', message: `PG_BIN's ${tool} ${older.version} (${older.path}) is older than server ${server}: ${tool} ${used.version} (${used.path}) is used instead` });
    return { name: tool, ok: true, message: older ? `${can}; PG_BIN's ${older.version} is older: passed over` : can };
  } catch (error) {
    return { name: tool, ok: false, message: errorMessage(error), ...(error instanceof BelayError && error.hint ? { hint: error.hint } : {}) };
  }
}

/** pg_dump new enough for the server, a writable backups folder, and room for the dump. */
export async function backupPreflight(setup: RunSetup, control: Session): Promise<PreflightCheck[]> {
  // the tools are looked for beside the folder and disk checks
  const tools = toolsCheck(setup, control, 'pg_dump');
  const disk = await diskChecks(setup, control);
  return [await tools, ...disk];
}

/**
 * A restore's tools (pg_dump too, which keeps the damaged state of an in-place
 * restore) new enough for the server and, when it keeps that copy (an in-place
 * restore of a full snapshot), a writable backups folder with room for it:
 * found wanting before anything is touched.
 */
export async function restorePreflight(setup: RunSetup, control: Session, manifest: Manifest, strategy: RestoreStrategy): Promise<PreflightCheck[]> {
  const tools = toolsCheck(setup, control, 'pg_restore');
  const disk = strategy === 'in-place' && !manifest.scope ? await diskChecks(setup, control) : [];
  return [await tools, ...disk];
}

/** The extensions of the snapshot a swap would have to create as this role (see swapExtensionObstacle). */
export async function swapExtensionsCheck(setup: RunSetup, control: Session, manifest: Manifest): Promise<PreflightCheck[]> {
  const tools = await runBackupTools(setup, control).catch(() => undefined);
  // without the tools the pg_restore check has failed already
  if (!tools) return [];
  const found = await swapExtensionObstacle(control.client, manifest, contentsOf(manifest, tools, setup.env));
  if (!found) return [];
  return [
    {
      name: 'extensions',
      ok: false,
      message: found.obstacle,
      hint: found.inPlace
        ? `Restore in place, which keeps the extensions ${setup.target.database} has: belay restore ${manifest.id} --strategy in-place; or restore as a superuser.`
        : `Restore as a superuser, or have one create them in ${setup.target.database} first and restore with --strategy in-place.`,
    },
  ];
}

/**
 * The settings of the database a swap could not carry over to its copy as
 * this role (see swapSettingsObstacle); none to check when it cannot swap at
 * all, as the restore is then made in place, which keeps them.
 */
export async function swapSettingsCheck(setup: RunSetup, control: Session, manifest: Manifest): Promise<PreflightCheck[]> {
  const database = setup.target.database;
  if ((await swapObstacles(control.client, database)).length > 0) return [];
  const obstacle = await swapSettingsObstacle(control.client, database);
  if (!obstacle) return [];
  return [
    {
      name: 'settings',
      ok: false,
      message: obstacle,
      hint: `Restore in place, which keeps the settings ${database} has: belay restore ${manifest.id} --strategy in-place; or restore as a superuser.`,
    },
  ];
}

async function diskChecks(setup: RunSetup, control: Session): Promise<PreflightCheck[]> {
  const dir = setup.config.backupsDir;
  let folder: PreflightCheck;
  try {
    const { note, changed } = await ensureBackupsDir(dir);
    if (changed) await setup.events.emit({ type: 'note', step: 'preflight', message: note });
    folder = { name: 'backups-dir', ok: true, message: note };
  } catch (error) {
    const hint = error instanceof BelayError && error.hint ? error.hint : `Make ${dir} writable, or choose another folder with --backups DIR.`;
    return [{ name: 'backups-dir', ok: false, message: errorMessage(error), hint }];
  }
  const { rows } = await control.client.query<{ size: string }>('SELECT pg_database_size(current_database())::text AS size');
  const needed = Number(rows[0]?.size ?? 0);
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  // A dump is rarely larger than the database it comes from (indexes are not dumped).
  return [
    folder,
    free >= needed
      ? { name: 'disk', ok: true, message: `${formatBytes(free)} free in ${dir}, database is ${formatBytes(needed)}` }
      : {
          name: 'disk',
          ok: false,
          message: `only ${formatBytes(free)} free in ${dir}, the database is ${formatBytes(needed)}`,
          hint: 'Free space, or put snapshots on a larger disk with --backups DIR.',
        },
  ];
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** What every run snapshot, full or touched, is taken with. */
function runSnapshotOptions(session: RunSession, revision: string | null, tools: BackupTools, signal: AbortSignal | undefined) {
  const { setup } = session;
  return {
    params: setup.target,
    backupsDir: setup.config.backupsDir,
    format: setup.config.backup.format,
    jobs: setup.config.backup.jobs,
    compress: setup.config.backup.compress,
    revision,
    runId: session.runId,
    tools,
    env: setup.env,
    signal,
    lockTimeoutMs: setup.config.database.lockTimeoutSeconds * 1000,
    onProgress: (progress: DumpProgress) =>
      void setup.events.emit({
        type: 'progress',
        step: 'backup',
        message: `${progress.tablesDone}/${progress.tablesTotal} tables, ${formatBytes(progress.bytesWritten)}${progress.table ? ` (${progress.table})` : ''}`,
        detail: { ...progress },
      }),
  };
}

/** The run's snapshot, verified readable before the run goes on. */
async function takeRunSnapshot(session: RunSession, revision: string | null, fingerprint: Promise<unknown>, snapshotId: string, signal: AbortSignal): Promise<Manifest> {
  // the control connection is idle during the dump but for journal rows: no connection of its own beside pg_dump
  return takeSnapshot({ ...runSnapshotOptions(session, revision, await runBackupTools(session.setup, session.control), signal), fingerprint, snapshotId, source: session.control.client });
}

const backupPayload = (m: Manifest) => ({ id: m.id, file: m.file, path: m.path, sha256: m.sha256, sizeBytes: m.sizeBytes, revision: m.revision, scope: m.scope ? 'touched' as const : 'full' as const });

export interface FingerprintAndSnapshot {
  fingerprint: Fingerprint | null;
  snapshot: Manifest | null;
  /** The dump failed (or was interrupted) after the fingerprint was taken. */
  dumpError?: unknown;
  /** A touched snapshot's scope, enforced before each revision commits (the engine's beforeCommit). */
  guard?: ScopeGuard;
}

/**
 * A touched snapshot (src/scope): the schema, the rows of the learned scope's
 * tables and their fingerprint, of one moment. Its fingerprint is the run's
 * integrity baseline (only those tables can change under its guard), journaled
 * as the fingerprint step so that `belay recover` judges by it.
 */
async function touchedSnapshot(session: RunSession, revision: string | null, learned: LearnedScope, sums: ColumnSums): Promise<FingerprintAndSnapshot> {
  const { events, config, signal } = session.setup;
  const client = session.work.client;
  const taking = runBackupTools(session.setup, session.control).then((tools) => takeTouchedSnapshot({ ...runSnapshotOptions(session, revision, tools, signal), client, scope: learned, sums }));
  // the manifest keeps the fingerprint of every snapshot table (a restore is verified by it); integrity compares the protected ones
  const baseline = async (): Promise<Fingerprint> => {
    const { fingerprint } = await taking;
    const protectedTables = new Set((await selectProtectedTables(client, config.integrity.tables)).map(tableKey));
    return { ...fingerprint, tables: Object.fromEntries(Object.entries(fingerprint.tables).filter(([key]) => protectedTables.has(key))) };
  };
  const fingerprinting =
    config.integrity.mode === 'strict'
      ? events.step({ step: 'fingerprint' }, baseline, (fingerprint) => ({ tables: Object.keys(fingerprint.tables).length, fingerprint }))
      : Promise.resolve(null);
  // the manifest holds the fingerprint: the backup step ends after the fingerprint step, as for a full snapshot
  const dumping = events.step(
    { step: 'backup' },
    async () => {
      const { manifest } = await taking;
      await fingerprinting.catch(() => {});
      return manifest;
    },
    backupPayload,
  );
  const [fingerprint, snapshot] = await Promise.allSettled([fingerprinting, dumping]);
  if (snapshot.status === 'rejected') return { fingerprint: fingerprint.status === 'fulfilled' ? fingerprint.value : null, snapshot: null, dumpError: snapshot.reason };
  if (fingerprint.status === 'rejected') throw fingerprint.reason;
  return { fingerprint: fingerprint.value, snapshot: snapshot.value, guard: (await taking).guard };
}

/**
 * The fingerprint step and (when asked) the backup step, of one and the same
 * moment: the fingerprint's REPEATABLE READ transaction exports its snapshot
 * and pg_dump dumps that one (--snapshot), while the fingerprint is computed.
 * So a restore verifies against the fingerprint even when the application
 * wrote in between, and the two overlap where there are cores to spare.
 */
export async function fingerprintAndSnapshot(
  session: RunSession,
  revision: string | null,
  options: { sums: ColumnSums; dump: boolean; scope?: ScopeDecision | undefined },
): Promise<FingerprintAndSnapshot> {
  if (!options.dump) return { fingerprint: await takeFingerprint(session, options.sums), snapshot: null };
  const decision = options.scope;
  if (decision?.kind === 'touched' && decision.learned) return touchedSnapshot(session, revision, decision.learned, options.sums);
  const client = session.work.client;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    // a server on this machine (a socket, a loopback address) shares its cores with pg_dump's compression
    const { rows } = await client.query<{ id: string; local: boolean }>(
      "SELECT pg_export_snapshot() AS id, coalesce(inet_server_addr() <<= '127.0.0.0/8' OR inet_server_addr() = '::1', true) AS local",
    );
    // one process scans rows about twice as fast as one pg_dump process compresses them: it stays the shorter of
    // the two beside a dump of one or two processes (custom format, or directory with up to two jobs)
    const { format, jobs } = session.setup.config.backup;
    const oneProcess = rows[0]!.local && (format === 'custom' || jobs <= 2);
    const fingerprinting = takeFingerprint(session, options.sums, { client, inTransaction: true, oneProcess });
    // a failed fingerprint stops the dump it would have gone into
    const stopDump = new AbortController();
    fingerprinting.catch(() => stopDump.abort());
    const signal = session.setup.signal ? AbortSignal.any([session.setup.signal, stopDump.signal]) : stopDump.signal;
    // pg_dump starts at once, while the steps' starts are journaled (two fsyncs): the dump changes
    // nothing in the database, and a killed run's half-written file is found by its name (leftovers.ts)
    const taking = takeRunSnapshot(session, revision, fingerprinting, rows[0]!.id, signal);
    taking.catch(() => {});
    const dumping = session.setup.events.step(
      { step: 'backup' },
      () =>
        taking.catch(async (error: unknown) => {
          // the fingerprint's error is the run's, not pg_dump's: belay stops pg_dump when it sees the fingerprint
          // fail, and a pg_dump quicker than that finds the snapshot gone with the fingerprint's transaction
          const fingerprintFailed = await fingerprinting.then(() => false, () => true);
          if (fingerprintFailed && !session.setup.signal?.aborted) throw preflightError("not taken: the fingerprint failed, and the dump is of the fingerprint's snapshot");
          throw error;
        }),
      backupPayload,
    );
    const [fingerprint, snapshot] = await Promise.allSettled([fingerprinting, dumping]);
    if (fingerprint.status === 'rejected') throw fingerprint.reason;
    if (snapshot.status === 'rejected') return { fingerprint: fingerprint.value, snapshot: null, dumpError: snapshot.reason };
    return { fingerprint: fingerprint.value, snapshot: snapshot.value };
  } finally {
    // read only: nothing to commit; ending it releases the exported snapshot
    await client.query('ROLLBACK').catch(() => {});
  }
}

/**
 * The dump failed before anything changed. When the database still answers,
 * the run is refused (exit 4) and recorded so. When it does not (the server
 * stopped), its record there says "running" and only `belay recover` can
 * settle it: finishRun makes that exit 12 and says so.
 */
export async function endAfterDumpFailure(session: RunSession, error: unknown): Promise<RunResult> {
  if (session.journal && !(await session.journal.databaseUpToDate())) {
    return finishRun(session, { outcome: 'manual-action-needed', message: `the backup failed before anything was changed: ${errorMessage(error)}` });
  }
  stopIfSignalled(session.setup);
  throw error instanceof BelayError ? error : preflightError(`the backup failed: ${errorMessage(error)}`, { hint: 'Nothing was changed. Fix what the message says (space, permissions, pg_dump) and run again.' });
}

/** SIGINT/SIGTERM before the run changed anything: it stops there (exit 4), as `belay backup` does; nothing to roll back. */
export function stopIfSignalled(setup: RunSetup): void {
  if (setup.signal?.aborted) throw preflightError('interrupted by a signal before it changed anything; nothing was changed', { hint: 'Nothing was changed. Run it again when you are ready.' });
}

/** What the revisions touch, learned on a throwaway schema-only copy of the target (created and dropped on its server). */
export function learnScopeOf(
  setup: RunSetup,
  tools: BackupTools,
  revisions: Revision[],
  direction: 'up' | 'down',
  beforeCopy?: (copy: string) => Promise<void>,
): Promise<LearnedScope> {
  return learnScope({
    ...(beforeCopy ? { beforeCopy } : {}),
    params: setup.target,
    session: sessionOptions(setup, 'belay learn scope'),
    tools,
    env: setup.env,
    signal: setup.signal,
    revisions,
    direction,
    lockTimeoutMs: setup.config.database.lockTimeoutSeconds * 1000,
  });
}

/** The copy's name in the run's journal before the copy is made (SCOPE_COPY_NOTE): what `recover` drops if the run is killed with it. */
const journalScopeCopy =
  (setup: RunSetup) =>
  (copy: string): Promise<void> =>
    setup.events.emit({ type: 'note', step: 'scope', message: `creating the throwaway schema-only copy ${copy}`, detail: { [SCOPE_COPY_NOTE]: copy } });

/**
 * Which snapshot the run takes (--backup-scope, else backup.scope, else auto):
 * learned on a throwaway schema-only copy when it may be touched. Said as a
 * note and journaled with the preflight step; `touched` that cannot be honoured
 * throws (exit 4, nothing changed).
 */
export async function chooseBackupScope(
  session: RunSession,
  flag: BackupScopeMode | undefined,
  revisions: Revision[],
  direction: 'up' | 'down',
): Promise<{ decision: ScopeDecision; choice: ScopeChoice }> {
  const { setup } = session;
  const mode = flag ?? setup.config.backup.scope;
  const tools = await runBackupTools(session.setup, session.control);
  // read before learning: a database with large objects needs a full snapshot whatever the revisions touch, and no copy is made
  const outside = mode === 'auto' && direction === 'up' ? await largeObjectsReason(session.work.client) : null;
  // a learning the signal stopped (failed, or fell back to a full snapshot) is not what the run goes on with
  const decision: ScopeDecision = outside
    ? { kind: 'full', why: `full snapshot: ${outside}`, learned: null }
    : await decideScope(mode, revisions, direction, () =>
        setup.events.step({ step: 'scope' }, () => learnScopeOf(setup, tools, revisions, direction, journalScopeCopy(setup)), (learned) => ({
          learnedFrom: learned.learnedFrom,
          tables: learned.dataTables.map(objectLabel),
          unknown: learned.unknown,
        })),
      ).catch((error: unknown) => {
        stopIfSignalled(setup);
        throw error;
      });
  stopIfSignalled(setup);
  const choice: ScopeChoice = {
    mode,
    kind: decision.kind,
    why: decision.why,
    ...(decision.kind === 'touched' && decision.learned ? { tables: decision.learned.dataTables.map(objectLabel), learnedFrom: decision.learned.learnedFrom } : {}),
  };
  await setup.events.emit({ type: 'note', step: 'preflight', message: decision.why, detail: { scope: choice } });
  return { decision, choice };
}
