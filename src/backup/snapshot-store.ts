import { access, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BelayError, usageError } from '../errors.js';
import { digestSnapshot } from './digest.js';
import { listArchive } from './list-archive.js';
import { manifestPath, readManifest, type Manifest } from './manifest.js';
import type { BackupTools } from './pg-tools.js';

const MANIFEST_SUFFIX = '.manifest.json';

export async function ensureBackupsDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    await access(dir, constants.W_OK);
  } catch {
    throw new BelayError('preflight', `the backups folder ${dir} is not writable`);
  }
}

/** Every snapshot with a readable manifest, newest first; unreadable manifests are named, not fatal. */
export async function listSnapshots(backupsDir: string): Promise<{ snapshots: Manifest[]; unreadable: string[] }> {
  let names: string[];
  try {
    names = await readdir(backupsDir);
  } catch {
    return { snapshots: [], unreadable: [] };
  }
  const snapshots: Manifest[] = [];
  const unreadable: string[] = [];
  for (const name of names.filter((n) => n.endsWith(MANIFEST_SUFFIX))) {
    try {
      snapshots.push(await readManifest(join(backupsDir, name), backupsDir));
    } catch {
      unreadable.push(name);
    }
  }
  snapshots.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1));
  return { snapshots, unreadable };
}

/** A snapshot by id, unique id prefix, or the path of its manifest or dump. */
export async function findSnapshot(backupsDir: string, query: string): Promise<Manifest> {
  if (query.endsWith(MANIFEST_SUFFIX)) {
    const file = resolve(query);
    return readManifest(file, dirname(file));
  }
  const { snapshots } = await listSnapshots(backupsDir);
  const byPath = snapshots.find((m) => m.path === resolve(query));
  if (byPath) return byPath;
  const matches = snapshots.filter((m) => m.id === query || m.id.startsWith(query) || m.file === basename(query));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) {
    throw usageError(`no snapshot ${query} in ${backupsDir}`, { hint: 'List them with `belay backups list` (or pass --backups DIR).' });
  }
  throw usageError(`snapshot ${query} is ambiguous: ${matches.map((m) => m.id).join(', ')}`, { hint: 'Give more of the id.' });
}

export interface SnapshotVerdict {
  ok: boolean;
  problems: string[];
}

/** The file is there, its size and sha256 match the manifest, and pg_restore can read it. */
export async function verifySnapshot(manifest: Manifest, tools: BackupTools, env: NodeJS.ProcessEnv): Promise<SnapshotVerdict> {
  const problems: string[] = [];
  try {
    await stat(manifest.path);
  } catch {
    return { ok: false, problems: [`${manifest.path} is missing`] };
  }
  const digest = await digestSnapshot(manifest.path);
  if (digest.sizeBytes !== manifest.sizeBytes) problems.push(`size is ${digest.sizeBytes} bytes, the manifest says ${manifest.sizeBytes}`);
  if (digest.sha256 !== manifest.sha256) problems.push(`sha256 is ${digest.sha256}, the manifest says ${manifest.sha256}: the file was changed or damaged`);
  const listing = await listArchive(tools, manifest.path, env);
  if (!listing.ok) problems.push(`pg_restore cannot read it: ${listing.error}`);
  return { ok: problems.length === 0, problems };
}

/** Delete all but the newest `keep` snapshots (dump and manifest). Returns the ids removed. */
export async function pruneSnapshots(backupsDir: string, keep: number): Promise<string[]> {
  const { snapshots } = await listSnapshots(backupsDir);
  const removed: string[] = [];
  for (const manifest of snapshots.slice(keep)) {
    await rm(manifest.path, { recursive: true, force: true });
    await rm(manifestPath(backupsDir, manifest.id), { force: true });
    removed.push(manifest.id);
  }
  return removed;
}
