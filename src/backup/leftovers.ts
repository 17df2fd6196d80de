import { lstat, readdir, readlink, rm, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { removeStalePassfiles } from '../db/pgpass.js';
import { BelayError } from '../errors.js';
import { idDatabase, isSnapshotId, MANIFEST_SUFFIX, manifestFileName, safeDatabaseName } from './manifest.js';

/** A file named after a snapshot that has no manifest. */
export interface StrayFile {
  file: string;
  id: string;
  /** The database part of the id (the name made safe). */
  database: string;
  sizeBytes: number;
  modifiedAt: string;
}

const PARTIAL_DUMP = /^\.(.+)\.(dump|dir)\.partial$/;
const MANIFEST_TEMP = new RegExp(`^(.+)${MANIFEST_SUFFIX.replaceAll('.', '\\.')}\\.tmp-\\d+$`);

function leftoverId(name: string): string | undefined {
  const id = PARTIAL_DUMP.exec(name)?.[1] ?? MANIFEST_TEMP.exec(name)?.[1];
  return isSnapshotId(id) ? id : undefined;
}

async function sizeOf(path: string): Promise<number> {
  const info = await lstat(path);
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const name of await readdir(path)) total += (await lstat(join(path, name)).catch(() => ({ size: 0 }))).size;
  return total;
}

const FINISHED_DUMP = /^(.+)\.(dump|dir)$/;

export interface StrayFiles {
  /** Dumps and manifests a killed run left half written: belay's own, removed by prune and recover. */
  partial: StrayFile[];
  /** Finished dumps with no manifest that belay cannot tell for its own (copied in, or their manifest lost): never removed. */
  withoutManifest: StrayFile[];
}

/**
 * The files among a folder's names that are named after a snapshot with no
 * manifest. Only what belay can tell it wrote is a leftover: the names it
 * gives half-written files, and a finished dump beside its manifest's temp
 * name (its run was killed between renaming the one and the other into
 * place, see writeManifest). Any other dump without a manifest is not.
 */
export async function findLeftovers(backupsDir: string, names: readonly string[]): Promise<StrayFiles> {
  const found: StrayFiles = { partial: [], withoutManifest: [] };
  const present = new Set(names);
  const manifestInTemp = new Set(names.map((name) => MANIFEST_TEMP.exec(name)?.[1]));
  for (const name of names) {
    const finished = FINISHED_DUMP.exec(name)?.[1];
    const unclaimed = isSnapshotId(finished) && !present.has(manifestFileName(finished)) ? finished : undefined;
    const leftover = leftoverId(name) ?? (unclaimed !== undefined && manifestInTemp.has(unclaimed) ? unclaimed : undefined);
    const id = leftover ?? unclaimed;
    if (!id) continue;
    try {
      const path = join(backupsDir, name);
      const info = await lstat(path);
      (leftover ? found.partial : found.withoutManifest).push({ file: name, id, database: idDatabase(id)!, sizeBytes: await sizeOf(path), modifiedAt: info.mtime.toISOString() });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Pids of the processes this user can see that hold `path` (or a file under it) open; empty where /proc is not there. */
export async function holdersOf(path: string): Promise<number[]> {
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  const holders: number[] = [];
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (target === path || target.startsWith(`${path}/`)) {
        holders.push(Number(pid));
        break;
      }
    }
  }
  return holders;
}

/**
 * Remove one of belay's own entries from the backups folder, and nothing
 * else: a plain name directly inside the folder; a folder (a directory-format
 * dump) only when its name says it is one; a symbolic link is removed, never
 * followed.
 */
export async function removeFromStore(backupsDir: string, name: string): Promise<void> {
  const dir = resolve(backupsDir);
  const path = resolve(dir, name);
  if (name.includes('/') || name === '.' || name === '..' || dirname(path) !== dir) {
    throw new BelayError('preflight', `refusing to remove ${JSON.stringify(name)}: not a name inside ${dir}`);
  }
  let info;
  try {
    info = await lstat(path);
  } catch {
    return;
  }
  if (info.isDirectory()) {
    if (!/\.dir(\.partial)?$/.test(name)) throw new BelayError('preflight', `refusing to remove the folder ${path}: not a snapshot folder`);
    await rm(path, { recursive: true, force: true });
  } else {
    await unlink(path);
  }
}

export interface LeftoverSweep {
  removed: string[];
  kept: Array<{ file: string; why: string }>;
}

/**
 * Remove what killed runs of `database` left half written in the backups
 * folder. The caller holds the run lock of that database, so no run of it is
 * writing; a file some process still holds open is kept all the same.
 */
export async function removeLeftovers(backupsDir: string, database: string, leftovers: readonly StrayFile[]): Promise<LeftoverSweep> {
  const sweep: LeftoverSweep = { removed: [], kept: [] };
  const ours = safeDatabaseName(database);
  for (const leftover of leftovers) {
    if (leftover.database !== ours) {
      sweep.kept.push({ file: leftover.file, why: `left by a run on database ${leftover.database}, whose lock this run does not hold` });
      continue;
    }
    const holders = await holdersOf(resolve(backupsDir, leftover.file));
    if (holders.length > 0) {
      sweep.kept.push({ file: leftover.file, why: `still open in process ${holders.join(', ')}` });
      continue;
    }
    await removeFromStore(backupsDir, leftover.file);
    sweep.removed.push(leftover.file);
  }
  return sweep;
}

/**
 * For `belay recover` (under the run lock of `database`): remove the
 * half-written dumps its killed runs left, and any passfile a killed belay
 * left behind.
 */
export async function sweepAfterKilledRuns(backupsDir: string, database: string): Promise<LeftoverSweep> {
  await removeStalePassfiles();
  let names: string[];
  try {
    names = await readdir(backupsDir);
  } catch {
    return { removed: [], kept: [] };
  }
  return removeLeftovers(backupsDir, database, (await findLeftovers(backupsDir, names)).partial);
}
