import { access, constants, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { BelayError, preflightError } from '../errors.js';
import { writeFix, writeProblem } from '../unreadable.js';
import { manifestFileName, tempNameOf, type Manifest } from './manifest.js';
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

/** How far a prune has got: what a second signal, exiting before it ends, reports. */
export interface PruneProgress {
  planned: string[];
  removed: string[];
  /** The snapshot whose files are being deleted right now. */
  removing: string | undefined;
}

export const pruneNotBegun = (): PruneProgress => ({ planned: [], removed: [], removing: undefined });

/**
 * Delete what the plan says (the dump, then its manifest) and the leftovers of
 * killed runs of `database`. A folder it may not delete in (read-only, no
 * write permission) refuses before the first deletion (exit 4); a deletion
 * that fails after others were made stops there and names what went (exit 12).
 */
export async function applyPrune(
  backupsDir: string,
  listing: SnapshotListing,
  plan: PrunePlan,
  database: string,
  progress: PruneProgress = pruneNotBegun(),
): Promise<{ removed: string[]; leftovers: LeftoverSweep }> {
  if (plan.remove.length > 0 || listing.partial.length > 0) {
    try {
      await access(backupsDir, constants.W_OK);
    } catch (error) {
      throw preflightError(`cannot delete in ${backupsDir}: ${writeProblem(error)}; nothing was deleted`, { hint: `${writeFix(backupsDir, error)}, then prune again.`, cause: error });
    }
  }
  progress.planned = plan.remove.map((manifest) => manifest.id);
  const { removed } = progress;
  try {
    for (const manifest of plan.remove) {
      progress.removing = manifest.id;
      // the manifest goes aside first, to the temp name a backup writes it under: a prune killed from here on leaves
      // a leftover that the next prune or recover removes, never a manifest whose dump is gone (refused, which stops every prune)
      const aside = tempNameOf(manifestFileName(manifest.id));
      await rename(join(backupsDir, manifestFileName(manifest.id)), join(backupsDir, aside));
      await removeFromStore(backupsDir, manifest.file).catch(async (error: unknown) => {
        // not deleted: the snapshot stays as it was, its manifest in place
        await rename(join(backupsDir, aside), join(backupsDir, manifestFileName(manifest.id)));
        throw error;
      });
      await removeFromStore(backupsDir, aside);
      removed.push(manifest.id);
      progress.removing = undefined;
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

/** A prune left at once (a second signal): what it deleted, what it was deleting, and what it did not reach. */
export function prunedSoFar(backupsDir: string, progress: PruneProgress, by: string): BelayError {
  const { planned, removed, removing } = progress;
  const notRemoved = planned.filter((id) => !removed.includes(id) && id !== removing);
  const kept = notRemoved.length > 0 ? `; not deleted: ${notRemoved.join(', ')}` : '';
  if (removed.length === 0 && removing === undefined) {
    return preflightError(`stopped at once by ${by}: no snapshot was deleted${kept}`, {
      hint: 'Nothing was changed; prune again when you are ready.',
      details: { removed, removing: null, notRemoved },
    });
  }
  const gone = removed.length > 0 ? `deleted: ${removed.join(', ')}` : 'no snapshot was deleted whole';
  const cut = removing === undefined ? '' : `; cut off while deleting ${removing} (its manifest set aside, its dump may be partly gone: a leftover the next prune or belay recover removes)`;
  return new BelayError('manual', `stopped at once by ${by} while pruning ${backupsDir}: ${gone}${cut}${kept}`, {
    hint: `\`belay backups list\` shows what is left; prune again to finish${removing === undefined ? '' : `, which deletes what is left of ${removing}`}.`,
    details: { removed, removing: removing ?? null, notRemoved },
  });
}
