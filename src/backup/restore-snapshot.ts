import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConnectionParams } from '../db/connection.js';
import { dbnameArgument, describeTarget } from '../db/connection.js';
import { BelayError } from '../errors.js';
import { snapshotProblem } from './digest.js';
import type { Manifest } from './manifest.js';
import { childFailure, runLibpqChild, type BackupTools } from './pg-tools.js';
import { ownWorkDir, WORK_DIRS } from '../temp-dirs.js';

export interface RestoreOptions {
  tools: BackupTools;
  env: NodeJS.ProcessEnv;
  jobs: number;
  /** Drop objects first, in one transaction (in-place restore). */
  clean: boolean;
  /**
   * Restore GRANTs. Right for the server the snapshot came from (the roles
   * exist there); wrong for another cluster (a rehearsal), where they may not.
   */
  privileges: boolean;
  /**
   * Give each object its snapshot owner. Only a superuser can: another role
   * may give an object away only to a role that can create in its schema,
   * which the grants, restored last, may be what allows.
   */
  owners?: boolean;
  signal: AbortSignal | undefined;
  onProgress?: (line: string) => void;
  timeoutMs?: number;
  /** pg_restore's application_name, for a watchdog to find its session. */
  applicationName?: string;
  /**
   * Runs once the snapshot is known sound, right before pg_restore (an
   * in-place restore clears what the snapshot lacks); may answer the table
   * of contents pg_restore is to follow (`--use-list`) instead of the whole.
   */
  beforeRestore?: () => Promise<string | undefined>;
  /** The sha256 check (`checkSnapshotDigest`), when the caller started it beside other work; started here otherwise. */
  checking?: Promise<void>;
}

/** The snapshot is there and its sha256 is its manifest's, else a BelayError (exit 4) saying which. */
export async function checkSnapshotDigest(manifest: Manifest): Promise<void> {
  const problem = await snapshotProblem(manifest);
  if (problem) throw new BelayError('preflight', `snapshot ${manifest.id} ${problem}`, { hint: 'Nothing was restored. Pick another snapshot: `belay backups list`.' });
}

/**
 * pg_restore a snapshot into an existing database, after checking its sha256:
 * a tampered or damaged snapshot is refused before anything is touched.
 */
export async function restoreSnapshotInto(manifest: Manifest, target: ConnectionParams, options: RestoreOptions): Promise<void> {
  if (manifest.scope) {
    // its archive has every table's definition but only some tables' rows: restored whole, the others would come back empty
    throw new BelayError('preflight', `snapshot ${manifest.id} is a touched snapshot (the rows of ${manifest.scope.tables.length} relation(s) only): it cannot be restored as a whole database`, {
      hint: `Nothing was restored. \`belay restore ${manifest.id}\` puts a touched snapshot's tables back in place; for a whole database pick a full snapshot: \`belay backups list\` says which are full.`,
    });
  }
  await (options.checking ?? checkSnapshotDigest(manifest));
  const listing = await options.beforeRestore?.();
  const args = ['--exit-on-error', '--verbose', dbnameArgument(target.database)];
  // objects belong to the restoring role; GRANTs made by the owners are then re-made by it
  if (!options.owners) args.push('--no-owner');
  if (!options.privileges) args.push('--no-privileges');
  if (options.clean) args.push('--clean', '--if-exists', '--single-transaction');
  else if (options.jobs > 1) args.push(`--jobs=${options.jobs}`);
  const outcome = await withListFile(listing, (listFile) =>
    runLibpqChild(options.tools.pgRestore, [...args, ...(listFile === undefined ? [] : [`--use-list=${listFile}`]), manifest.path], {
      params: target,
      env: options.env,
      timeoutMs: options.timeoutMs ?? 6 * 3600_000,
      signal: options.signal,
      ...(options.onProgress ? { onStderrLine: options.onProgress } : {}),
      ...(options.applicationName ? { applicationName: options.applicationName } : {}),
      // in place, the restore is one transaction: its commit waits for the WAL to be flushed even on a server whose
      // commits do not (synchronous_commit = off), or a crash after belay journaled the restore could undo it
      ...(options.clean ? { settings: { synchronous_commit: 'on' } } : {}),
    }),
  );
  if (outcome.code !== 0) {
    throw new BelayError('manual', `pg_restore of ${manifest.id} into ${describeTarget(target)} failed: ${childFailure(outcome)}`);
  }
}

/** `work` given a file (0600, removed after it) holding `listing` for pg_restore --use-list; given nothing without a listing. */
async function withListFile<T>(listing: string | undefined, work: (file: string | undefined) => Promise<T>): Promise<T> {
  if (listing === undefined) return work(undefined);
  const dir = await ownWorkDir(WORK_DIRS.restore);
  try {
    const file = join(dir, 'entries.list');
    await writeFile(file, listing, { mode: 0o600 });
    return await work(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
