import { open, readFile, rename } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

export type SnapshotFormat = 'custom' | 'directory';

/** What belay knows about a snapshot; written beside it as <id>.manifest.json. */
export interface Manifest {
  id: string;
  format: SnapshotFormat;
  /** File (custom) or folder (directory) name, relative to the backups folder. */
  file: string;
  /** Absolute path of the dump; not stored, filled when read. */
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

export const manifestPath = (backupsDir: string, id: string): string => join(backupsDir, `${id}.manifest.json`);

export function newSnapshotId(database: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const safe = database.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40);
  return `${stamp}-${safe}-${randomBytes(3).toString('hex')}`;
}

/** Write a file durably: temp name, fsync, rename, fsync the folder. Mode 0600. */
export async function writeFileDurably(file: string, text: string): Promise<void> {
  const temp = `${file}.tmp-${process.pid}`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
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

export async function writeManifest(backupsDir: string, manifest: Manifest): Promise<void> {
  const { path: _path, ...stored } = manifest;
  await writeFileDurably(manifestPath(backupsDir, manifest.id), `${JSON.stringify(stored, null, 2)}\n`);
}

export async function readManifest(file: string, backupsDir: string): Promise<Manifest> {
  const stored = JSON.parse(await readFile(file, 'utf8')) as Omit<Manifest, 'path'>;
  return { ...stored, path: join(backupsDir, stored.file) };
}
