import { statfs } from 'node:fs/promises';
import { resolveBackupTools, type BackupTools } from '../../backup/pg-tools.js';
import { ensureBackupsDir } from '../../backup/snapshot-store.js';
import { takeSnapshot } from '../../backup/take-snapshot.js';
import type { Session } from '../../db/session.js';
import { BelayError, errorMessage, preflightError } from '../../errors.js';
import type { RunResult } from '../result/results.js';
import { finishRun } from '../session/outcome.js';
import type { PreflightCheck } from './preflight.js';
import type { Manifest } from '../../backup/manifest.js';
import type { RunSession } from '../session/run-session.js';
import type { RunSetup } from '../session/setup.js';
import type { Fingerprint } from '../../integrity/fingerprint.js';
import { takeFingerprint } from './integrity-step.js';

const toolsBySetup = new WeakMap<RunSetup, BackupTools>();

function serverMajor(session: Session): number {
  return Math.floor(session.serverVersionNum / 10000);
}

/** pg_dump new enough for the server, a writable backups folder, and room for the dump. */
export async function backupPreflight(setup: RunSetup, control: Session): Promise<PreflightCheck[]> {
  const checks: PreflightCheck[] = [];
  try {
    const tools = await resolveBackupTools({ search: setup.pgSearch, serverMajor: serverMajor(control) });
    toolsBySetup.set(setup, tools);
    checks.push({ name: 'pg_dump', ok: true, message: `pg_dump ${tools.pgDump.version} can dump server ${serverMajor(control)}` });
  } catch (error) {
    checks.push({ name: 'pg_dump', ok: false, message: errorMessage(error), ...(error instanceof BelayError && error.hint ? { hint: error.hint } : {}) });
  }
  const dir = setup.config.backupsDir;
  try {
    const { note, changed } = await ensureBackupsDir(dir);
    if (changed) await setup.events.emit({ type: 'note', step: 'preflight', message: note });
    checks.push({ name: 'backups-dir', ok: true, message: note });
  } catch (error) {
    checks.push({ name: 'backups-dir', ok: false, message: errorMessage(error), hint: `Make ${dir} writable, or choose another folder with --backups DIR.` });
    return checks;
  }
  const { rows } = await control.client.query<{ size: string }>('SELECT pg_database_size(current_database())::text AS size');
  const needed = Number(rows[0]?.size ?? 0);
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  // A dump is rarely larger than the database it comes from (indexes are not dumped).
  checks.push(
    free >= needed
      ? { name: 'disk', ok: true, message: `${formatBytes(free)} free in ${dir}, database is ${formatBytes(needed)}` }
      : {
          name: 'disk',
          ok: false,
          message: `only ${formatBytes(free)} free in ${dir}, the database is ${formatBytes(needed)}`,
          hint: 'Free space, or put snapshots on a larger disk with --backups DIR.',
        },
  );
  return checks;
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

/** The run's snapshot, verified readable before the run goes on. */
async function takeRunSnapshot(session: RunSession, revision: string | null, fingerprint: Promise<unknown>, snapshotId: string, signal: AbortSignal): Promise<Manifest> {
  const { setup } = session;
  const tools = toolsBySetup.get(setup) ?? (await resolveBackupTools({ search: setup.pgSearch, serverMajor: serverMajor(session.control) }));
  const manifest = await takeSnapshot({
    params: setup.target,
    backupsDir: setup.config.backupsDir,
    format: setup.config.backup.format,
    jobs: setup.config.backup.jobs,
    compress: setup.config.backup.compress,
    revision,
    runId: session.runId,
    fingerprint,
    tools,
    env: setup.env,
    signal,
    lockTimeoutMs: setup.config.database.lockTimeoutSeconds * 1000,
    snapshotId,
    onProgress: (progress) =>
      void setup.events.emit({
        type: 'progress',
        step: 'backup',
        message: `${progress.tablesDone}/${progress.tablesTotal} tables, ${formatBytes(progress.bytesWritten)}${progress.table ? ` (${progress.table})` : ''}`,
        detail: { ...progress },
      }),
  });
  return manifest;
}

export interface FingerprintAndSnapshot {
  fingerprint: Fingerprint | null;
  snapshot: Manifest | null;
  /** The dump failed (or was interrupted) after the fingerprint was taken. */
  dumpError?: unknown;
}

/**
 * The fingerprint step and (when asked) the backup step, of one and the same
 * moment: the fingerprint's REPEATABLE READ transaction exports its snapshot
 * and pg_dump dumps that one (--snapshot), while the fingerprint is computed.
 * So a restore verifies against the fingerprint even when the application
 * wrote in between, and the two overlap where there are cores to spare.
 */
export async function fingerprintAndSnapshot(session: RunSession, revision: string | null, options: { perColumn: boolean; dump: boolean }): Promise<FingerprintAndSnapshot> {
  if (!options.dump) return { fingerprint: await takeFingerprint(session, options.perColumn), snapshot: null };
  const client = session.work.client;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const { rows } = await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
    const fingerprinting = takeFingerprint(session, options.perColumn, client, true);
    // a failed fingerprint stops the dump it would have gone into
    const stopDump = new AbortController();
    fingerprinting.catch(() => stopDump.abort());
    const signal = session.setup.signal ? AbortSignal.any([session.setup.signal, stopDump.signal]) : stopDump.signal;
    const dumping = session.setup.events.step(
      { step: 'backup' },
      () => takeRunSnapshot(session, revision, fingerprinting, rows[0]!.id, signal),
      (m) => ({ id: m.id, file: m.file, path: m.path, sha256: m.sha256, sizeBytes: m.sizeBytes, revision: m.revision }),
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
  throw error instanceof BelayError ? error : preflightError(`the backup failed: ${errorMessage(error)}`, { hint: 'Nothing was changed. Fix what the message says (space, permissions, pg_dump) and run again.' });
}
