import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { preflightError } from './errors.js';
import { writeFix, writeProblem } from './unreadable.js';

/** Whether process `pid` exists (another user's answers EPERM). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A new folder in the temp dir named `<prefix><pid>-XXXXXX`, this process's pid: what a killed belay leaves, the next finds (orphanedTempDirs). */
export function ownTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `${prefix}${process.pid}-`));
}

/**
 * The folders ownTempDir(prefix) made in the temp dir whose process is gone:
 * real folders (no link) owned by this user or by `alsoOwner` (the server
 * account a cluster folder is handed to). A pid alive again is taken as live.
 */
export async function orphanedTempDirs(prefix: string, alsoOwner?: number): Promise<string[]> {
  const dir = tmpdir();
  const owners = new Set([process.getuid?.(), alsoOwner]);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const orphans: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = /^(\d+)-[A-Za-z0-9]{6}$/.exec(name.slice(prefix.length))?.[1];
    if (pid === undefined || isAlive(Number(pid))) continue;
    const path = join(dir, name);
    const info = await lstat(path).catch(() => undefined);
    if (info?.isDirectory() && (process.getuid === undefined || owners.has(info.uid))) orphans.push(path);
  }
  return orphans;
}

/** The prefixes of the folders runs work in (a schema dump, a pg_restore list): nothing in them outlives the run. */
export const WORK_DIRS = { scope: 'belay-scope-', touchedRestore: 'belay-touched-restore-', restore: 'belay-restore-' } as const;

/** ownTempDir for a run's work (WORK_DIRS): a temp dir it cannot make (TMPDIR gone, read-only or full) is told with what to do. */
export async function ownWorkDir(prefix: string): Promise<string> {
  try {
    return await ownTempDir(prefix);
  } catch (error) {
    throw preflightError(`cannot make a work folder in the temp dir ${tmpdir()}: ${writeProblem(error)}`, {
      hint: `${writeFix(tmpdir(), error)}, or point TMPDIR at a folder it can write, then run again.`,
      cause: error,
    });
  }
}

/** Delete the work folders (WORK_DIRS) killed runs left; answers those deleted. */
export async function removeOrphanedWorkDirs(): Promise<string[]> {
  const removed: string[] = [];
  for (const prefix of Object.values(WORK_DIRS)) {
    for (const path of await orphanedTempDirs(prefix)) {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}
