import { access, chmod, lstat, readdir, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { BelayError, errorMessage, preflightError, usageError } from '../errors.js';
import { errnoCode, readProblem, writeFix, writeProblem } from '../unreadable.js';
import { digestSnapshot } from './digest.js';
import { listArchive } from './list-archive.js';
import { MANIFEST_SUFFIX, readManifest, refusedManifest, type Manifest } from './manifest.js';
import { findLeftovers, type StrayFile } from './leftovers.js';
import type { BackupTools } from './pg-tools.js';
import { makeDir } from '../make-dir.js';

/**
 * Create the backups folder private, or make an existing one private: it
 * holds whole copies of the database. A folder this user may not write is
 * refused before anything is changed. Tightening only takes the group's and
 * others' bits away (0755 becomes 0700, 0555 0500): it never gives a
 * permission the operator did not. Says what it found and did; `changed`
 * when it tightened the folder (worth telling the operator).
 */
export async function ensureBackupsDir(dir: string): Promise<{ note: string; changed: boolean }> {
  await makeDir(dir, 0o700);
  try {
    await access(dir, constants.W_OK);
  } catch (error) {
    throw preflightError(`the backups folder ${dir} is not writable (${writeProblem(error)})`, { hint: `${writeFix(dir, error)}, or choose another folder with --backups DIR.`, cause: error });
  }
  const info = await stat(dir);
  if ((info.mode & 0o077) === 0) return { note: `${dir} is writable`, changed: false };
  const modeOf = (mode: number): string => (mode & 0o777).toString(8).padStart(4, '0');
  const was = modeOf(info.mode);
  const tightened = info.mode & ~0o077 & 0o7777;
  try {
    await chmod(dir, tightened);
    return { note: `${dir} is writable; it was open to other users (mode ${was}): tightened to ${modeOf(tightened)}`, changed: true };
  } catch {
    return { note: `${dir} is writable, but open to other users (mode ${was}) and this user cannot tighten it (each snapshot file is 0600)`, changed: false };
  }
}

export interface RefusedManifest {
  file: string;
  problem: string;
  /** What to do, when it differs from the usual "inspect it": a manifest belay may not read is made readable. */
  next?: string;
}

export interface SnapshotListing {
  /** Every snapshot whose manifest belay accepts, newest first. */
  snapshots: Manifest[];
  /** Names of the manifests that were refused (see `refused` for why). */
  unreadable: string[];
  refused: RefusedManifest[];
  /** Dumps and manifests a killed run left half written. */
  partial: StrayFile[];
  /** Dumps with no manifest that belay cannot tell for its own: listed, never removed. */
  withoutManifest: StrayFile[];
}

/** Every snapshot with an acceptable manifest, newest first; refused manifests and partial dumps are named, not fatal. */
/** Whether nothing is at `path` (a dump file or folder); one there that cannot be looked at is not called missing. */
async function isMissing(path: string): Promise<boolean> {
  return stat(path).then(
    () => false,
    (error: unknown) => errnoCode(error) === 'ENOENT',
  );
}

export async function listSnapshots(backupsDir: string): Promise<SnapshotListing> {
  let names: string[];
  try {
    names = await readdir(backupsDir);
  } catch (error) {
    // no folder yet: no snapshot; any other failure would list none where there may be many
    if (errnoCode(error) === 'ENOENT') return { snapshots: [], unreadable: [], refused: [], partial: [], withoutManifest: [] };
    const problem = readProblem(error, `the backups folder ${backupsDir}`, { folder: true });
    const said = `the backups folder ${backupsDir} cannot be listed (${problem?.reason ?? errorMessage(error)})`;
    const hint = problem?.hint ?? 'Give belay a folder it may read with --backups DIR (or backupsDir in the config).';
    throw errnoCode(error) === 'ENOTDIR' ? usageError(said, { hint, cause: error }) : preflightError(said, { hint: `Nothing was touched. ${hint}`, cause: error });
  }
  const snapshots: Manifest[] = [];
  const refused: RefusedManifest[] = [];
  for (const name of names.filter((n) => n.endsWith(MANIFEST_SUFFIX)).sort()) {
    const file = resolve(backupsDir, name);
    try {
      if (!(await lstat(file)).isFile()) throw refusedManifest(file, 'not a regular file');
      const manifest = await readManifest(file, resolve(backupsDir));
      // its manifest is written last: a dump gone since was moved or deleted by hand, and nothing can be restored from it
      if (await isMissing(manifest.path)) throw refusedManifest(file, `its dump ${manifest.file} is missing`, `Put ${manifest.file} back beside its manifest, or move ${name} out of the backups folder.`);
      snapshots.push(manifest);
    } catch (error) {
      const problem = error instanceof BelayError ? String(error.details.problem ?? error.message) : 'cannot be read';
      const next = error instanceof BelayError && typeof error.details.next === 'string' ? error.details.next : undefined;
      refused.push({ file: name, problem, ...(next === undefined ? {} : { next }) });
    }
  }
  snapshots.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1));
  return { snapshots, unreadable: refused.map((r) => r.file), refused, ...(await findLeftovers(backupsDir, names)) };
}

/** A snapshot by id, unique id prefix, or the path of its manifest or dump. A refused manifest it names is exit 4. */
export async function findSnapshot(backupsDir: string, query: string): Promise<Manifest> {
  if (query.trim() === '') throw usageError('no snapshot was named: the argument is empty', { hint: 'Name a snapshot by its id or a unique prefix of it (`belay backups list` lists them).' });
  if (query.endsWith(MANIFEST_SUFFIX)) {
    const file = resolve(query);
    return readManifest(file, dirname(file));
  }
  const { snapshots, refused } = await listSnapshots(backupsDir);
  const exact = snapshots.find((m) => m.id === query || m.path === resolve(query) || m.file === basename(query));
  if (exact) return exact;
  const refusedHere = (r: RefusedManifest): BelayError => refusedManifest(resolve(backupsDir, r.file), r.problem, r.next);
  const refusedExact = refused.find((r) => r.file === `${basename(query)}${MANIFEST_SUFFIX}`);
  if (refusedExact) throw refusedHere(refusedExact);
  const matches = snapshots.filter((m) => m.id.startsWith(query));
  const refusedPrefix = refused.filter((r) => r.file.startsWith(query));
  if (matches.length === 1 && refusedPrefix.length === 0) return matches[0]!;
  if (matches.length === 0 && refusedPrefix.length === 1) throw refusedHere(refusedPrefix[0]!);
  if (matches.length === 0 && refusedPrefix.length === 0) {
    throw usageError(`no snapshot ${query} in ${backupsDir}`, { hint: 'List them with `belay backups list` (or pass --backups DIR).' });
  }
  throw usageError(`snapshot ${query} is ambiguous: ${[...matches.map((m) => m.id), ...refusedPrefix.map((r) => r.file)].join(', ')}`, { hint: 'Give more of the id.' });
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
