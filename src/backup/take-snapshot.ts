import { chmod, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg, { type ClientBase } from 'pg';
import type { ConnectionParams } from '../db/connection.js';
import { describeTarget, toPgConfig } from '../db/connection.js';
import { endClient } from '../db/session.js';
import { BelayError } from '../errors.js';
import { digestSnapshot } from './digest.js';
import { MANIFEST_FORMAT_VERSION, manifestPath, newSnapshotId, snapshotFileName, syncDir, writeManifest, type Manifest, type SnapshotFormat, type SnapshotScope } from './manifest.js';
import { childFailure, runLibpqChild, type BackupTools } from './pg-tools.js';
import { listArchive } from './list-archive.js';

export interface DumpProgress {
  tablesDone: number;
  tablesTotal: number;
  bytesWritten: number;
  table: string | undefined;
}

export interface SnapshotOptions {
  params: ConnectionParams;
  backupsDir: string;
  format: SnapshotFormat;
  jobs: number;
  compress: number | undefined;
  revision: string | null;
  runId: string | null;
  /** Written into the manifest; may still be computing while pg_dump runs (it is awaited before the manifest). */
  fingerprint: unknown;
  tools: BackupTools;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal | undefined;
  onProgress?: (progress: DumpProgress) => void;
  /** pg_dump may take this long; default 6 hours. */
  timeoutMs?: number;
  /** The damaged state kept before an in-place restore. */
  quarantine?: boolean;
  /** How long pg_dump may wait for its table locks (a pending ALTER TABLE would otherwise hold it up forever). */
  lockTimeoutMs: number;
  /** An open connection to the same database to ask what the dump will hold on, instead of opening one beside pg_dump. */
  source?: ClientBase;
  /** What the dump will hold, when the caller already read it (nothing is asked then). */
  described?: SourceFacts;
  /** An exported snapshot (pg_export_snapshot) to dump instead of a fresh one. */
  snapshotId?: string;
  /** A touched snapshot: recorded in the manifest, with the data of every other table left out (--exclude-table-data). */
  scope?: { manifest: SnapshotScope | Promise<SnapshotScope>; excludeTableData: string[] };
}

/** How long its own connection may take to open and to close. */
const CONNECT_TIMEOUT_MS = 10_000;

const TABLE_LINE = /dumping contents of table "([^"]+)"/;

async function sizeOf(path: string): Promise<number> {
  try {
    const info = await stat(path);
    if (!info.isDirectory()) return info.size;
    let total = 0;
    for (const name of await readdir(path)) total += (await stat(join(path, name))).size;
    return total;
  } catch {
    return 0;
  }
}

/** Tables pg_dump will dump the contents of, and the server's version. */
export interface SourceFacts {
  tables: number;
  serverVersion: string;
}

/** SourceFacts, asked on `source` when given, else on a connection of its own. */
async function describeSource(params: ConnectionParams, source: ClientBase | undefined): Promise<SourceFacts> {
  const client = source ?? new pg.Client(toPgConfig(params, { applicationName: 'belay backup', connectTimeoutMs: CONNECT_TIMEOUT_MS, statementTimeoutMs: 60_000, lockTimeoutMs: 10_000 }));
  if (!source) await client.connect();
  try {
    const { rows } = await client.query<{ tables: number; version: string }>(
      `SELECT count(*)::int AS tables, current_setting('server_version') AS version
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`,
    );
    return { tables: rows[0]?.tables ?? 0, serverVersion: rows[0]?.version ?? 'unknown' };
  } finally {
    if (!source) await endClient(client as pg.Client, CONNECT_TIMEOUT_MS);
  }
}

/**
 * pg_dump to a temp name, sha256, readability check with `pg_restore --list`,
 * then the manifest under its temp name, the dump renamed into place, the
 * manifest renamed into place (writeManifest). Files are 0600. A failure
 * removes what was written and says why.
 */
export async function takeSnapshot(options: SnapshotOptions): Promise<Manifest> {
  const { params, backupsDir, format, tools } = options;
  const id = newSnapshotId(params.database);
  const file = snapshotFileName(id, format);
  const finalPath = join(backupsDir, file);
  const tempPath = join(backupsDir, `.${file}.partial`);
  // asked beside pg_dump, not before it: only the progress lines and the manifest need the answer
  const describing = options.described ? Promise.resolve(options.described) : describeSource(params, options.source);
  describing.catch(() => {});
  let tablesTotal = 0;
  void describing.then((source) => (tablesTotal = source.tables), () => {});
  // private before pg_dump writes a byte, whatever the umask: it writes into what is already there
  if (format === 'custom') await writeFile(tempPath, '', { mode: 0o600, flag: 'wx' });
  else await mkdir(tempPath, { mode: 0o700 });
  const args = [`--format=${format}`, `--file=${tempPath}`, '--verbose', '--no-password', `--lock-wait-timeout=${options.lockTimeoutMs}ms`];
  if (format === 'directory' && options.jobs > 1) args.push(`--jobs=${options.jobs}`);
  if (options.compress !== undefined) args.push(`--compress=${options.compress}`);
  if (options.snapshotId !== undefined) args.push(`--snapshot=${options.snapshotId}`);
  for (const pattern of options.scope?.excludeTableData ?? []) args.push(`--exclude-table-data=${pattern}`);
  let tablesDone = 0;
  let table: string | undefined;
  const report = async (): Promise<void> => {
    options.onProgress?.({ tablesDone, tablesTotal: Math.max(tablesTotal, tablesDone), bytesWritten: await sizeOf(tempPath), table });
  };
  const ticker = setInterval(() => void report(), 500);
  ticker.unref();
  let placed = false;
  try {
    const outcome = await runLibpqChild(tools.pgDump, args, {
      params,
      env: options.env,
      timeoutMs: options.timeoutMs ?? 6 * 3600_000,
      signal: options.signal,
      onStderrLine: (line) => {
        const match = TABLE_LINE.exec(line);
        if (!match) return;
        tablesDone++;
        table = match[1];
        void report();
      },
    });
    if (outcome.code !== 0) {
      // pg_dump bounds its lock waits with statement_timeout while it takes its table locks
      // a child's error has no SQLSTATE: its stderr is all there is (pg_dump's own words are English; the server's are lc_messages')
      const lockWait = /statement timeout/.test(outcome.stderrTail);
      const denied = /permission denied/.test(outcome.stderrTail);
      const largeObject = /large object (\d+)/.exec(outcome.stderrTail)?.[1];
      throw new BelayError('preflight', `pg_dump of ${describeTarget(params)} failed: ${childFailure(outcome)}`, {
        hint: options.signal?.aborted
          ? 'Nothing was changed: it was interrupted (a signal) while the snapshot was taken. Run it again when you are ready.'
          : lockWait
            ? `Nothing was changed. A table lock was held longer than database.lockTimeoutSeconds (${options.lockTimeoutMs / 1000} s): find its holder in pg_locks and pg_stat_activity, then run again (or raise database.lockTimeoutSeconds).`
            : denied && largeObject
              ? `Nothing was changed. pg_dump reads every large object: grant the role SELECT on large object ${largeObject} (GRANT SELECT ON LARGE OBJECT ${largeObject} TO …), then run again.`
              : denied
              ? 'Nothing was changed. Grant the role SELECT on what the message names (pg_dump reads every table, sequence and large object), then run again.'
              : 'Nothing was changed. Fix what the message says (the disk has room, pg_dump can reach the server), then run again.',
      });
    }
    if (format === 'directory') {
      await chmod(tempPath, 0o700);
      for (const name of await readdir(tempPath)) await chmod(join(tempPath, name), 0o600);
    } else {
      await chmod(tempPath, 0o600);
    }
    const [digest, listing] = await Promise.all([digestSnapshot(tempPath), listArchive(tools, tempPath, options.env)]);
    if (!listing.ok) {
      throw new BelayError('preflight', `the new snapshot is not readable by pg_restore: ${listing.error}`, { hint: 'Nothing was changed. Check the disk and the pg_restore version.' });
    }
    const source = await describing;
    const manifest: Manifest = {
      formatVersion: MANIFEST_FORMAT_VERSION,
      id,
      format,
      file,
      path: finalPath,
      sha256: digest.sha256,
      sizeBytes: digest.sizeBytes,
      database: params.database,
      server: describeTarget({ ...params, database: '' }).replace(/\/$/, ''),
      serverVersion: source.serverVersion,
      pgDumpVersion: tools.pgDump.version,
      revision: options.revision,
      runId: options.runId,
      createdAt: new Date().toISOString(),
      tableCount: listing.tableData,
      fingerprint: (await options.fingerprint) ?? null,
      ...(options.quarantine ? { quarantine: true as const } : {}),
      ...(options.scope ? { scope: await options.scope.manifest } : {}),
    };
    await writeManifest(backupsDir, manifest, async () => {
      await rename(tempPath, finalPath);
      placed = true;
      await syncDir(backupsDir);
    });
    options.onProgress?.({ tablesDone, tablesTotal, bytesWritten: manifest.sizeBytes, table: undefined });
    return manifest;
  } catch (error) {
    // a failure once the dump is in place (its folder's fsync): the manifest first, never left naming a dump that is gone
    if (placed) await rm(manifestPath(backupsDir, id), { force: true });
    await rm(placed ? finalPath : tempPath, { recursive: true, force: true });
    throw error;
  } finally {
    clearInterval(ticker);
  }
}

