import { access, constants } from 'node:fs/promises';
import { BelayError, preflightError } from '../errors.js';
import { writeFix, writeProblem } from '../unreadable.js';
import type { Manifest } from './manifest.js';
import { manifestFileName } from './manifest.js';
import { removeFromStore, removeLeftovers, type LeftoverSweep } from './leftovers.js';
import type { SnapshotListing } from './snapshot-store.js';
import type { NeededSnapshots } from './needed-snapshots.js';

export interface PrunePlan {
  remove: Manifest[];
  keep: Array<{ id: string; why: string }>;
}

/**
 * Which snapshots go: all but the newest `keep`, except a snapshot a run may
 * still need and the newest snapshot of each database (whatever `keep` says).
 */
export function planPrune(snapshots: readonly Manifest[], keep: number, needed: NeededSnapshots): PrunePlan {
  const newestOf = new Map<string, string>();
  for (const manifest of snapshots) {
    const key = `${manifest.server}/${manifest.database}`;
    if (!manifest.quarantine && !newestOf.has(key)) newestOf.set(key, manifest.id);
  }
  const newest = new Set(newestOf.values());
  const plan: PrunePlan = { remove: [], keep: [] };
  snapshots.forEach((manifest, index) => {
    const why =
      needed.get(manifest.id) ??
      (newest.has(manifest.id) ? `the newest snapshot of ${manifest.database}` : index < keep ? `one of the newest ${keep}` : undefined);
    if (why) plan.keep.push({ id: manifest.id, why });
    else plan.remove.push(manifest);
  });
  return plan;
}

/**
 * Delete what the plan says (the dump, then its manifest) and the leftovers of
 * killed runs of `database`. A folder it may not delete in (read-only, no
 * write permission) refuses before the first deletion (exit 4); a deletion
 * that fails after others were made stops there and names what went (exit 12).
 */
export async function applyPrune(backupsDir: string, listing: SnapshotListing, plan: PrunePlan, database: string): Promise<{ removed: string[]; leftovers: LeftoverSweep }> {
  if (plan.remove.length > 0 || listing.partial.length > 0) {
    try {
      await access(backupsDir, constants.W_OK);
    } catch (error) {
      throw preflightError(`cannot delete in ${backupsDir}: ${writeProblem(error)}; nothing was deleted`, { hint: `${writeFix(backupsDir, error)}, then prune again.`, cause: error });
    }
  }
  const removed: string[] = [];
  try {
    for (const manifest of plan.remove) {
      await removeFromStore(backupsDir, manifest.file);
      await removeFromStore(backupsDir, manifestFileName(manifest.id));
      removed.push(manifest.id);
    }
    return { removed, leftovers: await removeLeftovers(backupsDir, database, listing.partial) };
  } catch (error) {
    if (error instanceof BelayError) throw error;
    const gone = removed.length > 0 ? `snapshot(s) ${removed.join(', ')} were deleted before it` : 'no snapshot was deleted before it';
    throw new BelayError('manual', `a deletion in ${backupsDir} failed (${writeProblem(error)}): ${gone}`, {
      hint: `${writeFix(backupsDir, error)}, then prune again. \`belay backups list\` shows what is left.`,
      details: { removed },
      cause: error,
    });
  }
}

