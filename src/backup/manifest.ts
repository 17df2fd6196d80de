import { open, readFile, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { BelayError, errorMessage } from '../errors.js';
import { readProblem } from '../unreadable.js';

export type SnapshotFormat = 'custom' | 'directory';

/** What belay knows about a snapshot; written beside it as <id>.manifest.json. */
export interface Manifest {
  /** major.minor; a reader refuses a newer major. Manifests written before versioning have none. */
  formatVersion?: string;
  id: string;
  format: SnapshotFormat;
  /** File (custom) or folder (directory) name: always `snapshotFileName(id, format)`, checked when read, never followed. */
  file: string;
  /** Absolute path of the dump, derived from the id; not stored, filled when read. */
  path: string;
  sha256: string;
  sizeBytes: number;
  database: string;
  /** user@host:port, never a password. */
  server: string;
  serverVersion: string;
  pgDumpVersion: string;
  revision: string | null;
  runId: string | null;
  createdAt: string;
  tableCount: number;
  /** The integrity fingerprint taken before the run, when there is one. */
  fingerprint: unknown;
  /** A damaged database's state, kept before an in-place restore overwrote it: never offered as a rollback target. */
  quarantine?: true;
  /** Present on a touched snapshot: the whole schema, but rows of these relations only (src/scope, docs/snapshots.md). */
  scope?: SnapshotScope;
}

/** What a touched snapshot holds, and what a targeted restore needs to put it back. */
export interface SnapshotScope {
  kind: 'touched';
  /** The relations whose rows it holds: the tables the revisions may write, and their sequences. */
  tables: Array<{ schema: string; name: string; kind: 'table' | 'sequence' }>;
  /** How the scope was learned (which revisions, on which throwaway copy). */
  learnedFrom: string;
  /** Objects the revisions create: a targeted restore moves those still there into its quarantine schema. */
  created: Array<{ kind: string; schema: string; name: string; args?: string }>;
  /** Catalog ids [classid, objid] at snapshot time of the archive entries a targeted restore replays (the tables, their indexes, constraints, triggers, defaults, sequences, and the foreign keys that reference them). */
  objects: Array<[number, number]>;
}

/** A touched snapshot's rows, for a message: none when its revisions write no table that was there before them (they only create new ones). */
export const rowsOf = (relations: ReadonlyArray<{ schema: string; name: string }>): string =>
  relations.length > 0 ? `the rows of ${relations.map((r) => `${r.schema}.${r.name}`).join(', ')}` : "no table's rows";

export const MANIFEST_FORMAT_VERSION = '1.0';
const READABLE_MAJOR = 1;

/** `20261201T223344Z-<database, made safe>-<6 hex>`: the only names belay gives snapshots. */
const SNAPSHOT_ID = /^\d{8}T\d{6}Z-([A-Za-z0-9_-]{1,40})-[0-9a-f]{6}$/;
export const MANIFEST_SUFFIX = '.manifest.json';

export const isSnapshotId = (id: unknown): id is string => typeof id === 'string' && SNAPSHOT_ID.test(id);

/** The database part of a snapshot id (the name made safe, as `safeDatabaseName` does). */
export const idDatabase = (id: string): string | undefined => SNAPSHOT_ID.exec(id)?.[1];

export const safeDatabaseName = (database: string): string => database.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40);

/** The dump's name inside the backups folder: belay's own naming, derived from the id alone. */
export const snapshotFileName = (id: string, format: SnapshotFormat): string => (format === 'custom' ? `${id}.dump` : `${id}.dir`);

export const manifestFileName = (id: string): string => `${id}${MANIFEST_SUFFIX}`;

export const manifestPath = (backupsDir: string, id: string): string => join(backupsDir, manifestFileName(id));

export function newSnapshotId(database: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${safeDatabaseName(database)}-${randomBytes(3).toString('hex')}`;
}

/** The name a file is written under before it is put in place (findLeftovers knows a manifest's). */
export const tempNameOf = (file: string): string => `${file}.tmp-${process.pid}`;

/** Write a file durably: temp name, fsync, then `beforePlacing`, rename, fsync the folder. Mode 0600. */
async function writeFileDurably(file: string, text: string, beforePlacing: () => Promise<void>): Promise<void> {
  const temp = tempNameOf(file);
  try {
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await beforePlacing();
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(dirname(file));
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Write the manifest under its temp name (`<id>.manifest.json.tmp-<pid>`),
 * then put the dump in place (`placeDump`), then the manifest: a run killed
 * between the two leaves its dump beside that temp name, which is how
 * `findLeftovers` knows the dump for belay's own. A dump without either is
 * never taken for a leftover.
 */
export async function writeManifest(backupsDir: string, manifest: Manifest, placeDump: () => Promise<void>): Promise<void> {
  const { path: _path, ...rest } = manifest;
  const stored = { ...rest, formatVersion: MANIFEST_FORMAT_VERSION, file: snapshotFileName(manifest.id, manifest.format) };
  await writeFileDurably(manifestPath(backupsDir, manifest.id), `${JSON.stringify(stored, null, 2)}\n`, placeDump);
}

/** What to do about a refused manifest, unless its refusal says otherwise. */
export const INSPECT_REFUSED_MANIFEST = 'Inspect the file; move it out of the backups folder once you know where it came from.';

/** A manifest belay will not follow: named in `backups list`, exit 4 wherever it is asked for. */
export function refusedManifest(file: string, problem: string, hint?: string): BelayError {
  return new BelayError('preflight', `manifest ${file} is refused: ${problem}`, {
    hint: `Nothing was touched. ${hint ?? INSPECT_REFUSED_MANIFEST}`,
    details: { manifest: file, problem, ...(hint === undefined ? {} : { next: hint }) },
  });
}

function checkFormatVersion(version: unknown): string | undefined {
  // manifests written before the format was versioned: the same fields as 1.0
  if (version === undefined) return undefined;
  const match = typeof version === 'string' ? /^(\d+)\.(\d+)$/.exec(version) : null;
  if (!match) return `unknown manifest format ${JSON.stringify(version)} (this belay reads format ${READABLE_MAJOR}.x)`;
  if (Number(match[1]) > READABLE_MAJOR) return `written by a newer belay (manifest format ${version}; this belay reads format ${READABLE_MAJOR}.x): upgrade belay to use this snapshot`;
  return undefined;
}

/**
 * Read a manifest and hold it to its own name: the id must be one belay
 * makes, the file must be named after it, and the dump's path is derived
 * from the id, never taken from the manifest.
 */
export async function readManifest(file: string, backupsDir: string): Promise<Manifest> {
  let stored: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw refusedManifest(file, 'not a JSON object');
    stored = parsed as Record<string, unknown>;
  } catch (error) {
    if (error instanceof BelayError) throw error;
    if (error instanceof SyntaxError) throw refusedManifest(file, 'not valid JSON');
    const unreadable = readProblem(error, `the manifest ${file}`);
    throw unreadable ? refusedManifest(file, `cannot be read: ${unreadable.code}: ${unreadable.reason}`, unreadable.hint) : refusedManifest(file, `cannot be read: ${errorMessage(error)}`);
  }
  const versionProblem = checkFormatVersion(stored.formatVersion);
  if (versionProblem) throw refusedManifest(file, versionProblem);
  const { id, format } = stored;
  if (!isSnapshotId(id)) throw refusedManifest(file, `its id ${JSON.stringify(id)} is not a snapshot id belay makes`);
  if (basename(file) !== manifestFileName(id)) throw refusedManifest(file, `it disagrees with its own name: it says it is snapshot ${id}`);
  if (format !== 'custom' && format !== 'directory') throw refusedManifest(file, `unknown snapshot format ${JSON.stringify(format)}`);
  const expected = snapshotFileName(id, format);
  if (stored.file !== undefined && stored.file !== expected) throw refusedManifest(file, `it names the dump ${JSON.stringify(stored.file)}, not ${expected}: never followed`);
  if (typeof stored.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(stored.sha256)) throw refusedManifest(file, 'its sha256 is missing or malformed');
  if (typeof stored.sizeBytes !== 'number' || typeof stored.database !== 'string' || typeof stored.createdAt !== 'string') {
    throw refusedManifest(file, 'sizeBytes, database or createdAt is missing');
  }
  return { ...(stored as unknown as Omit<Manifest, 'path'>), id, format, file: expected, path: join(backupsDir, expected) };
}
