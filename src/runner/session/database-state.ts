import type { ClientBase } from 'pg';
import { belaySchemaExists } from '../../db/belay-schema.js';
import type { Revision } from '../../migrations/revision.js';
import { readApplied, type AppliedRevision } from '../../migrations/storage.js';

export interface DriftedRevision {
  name: string;
  /** Files whose sha256 differs from the applied one, or that appeared / disappeared. */
  files: string[];
}

/** Where the database stands relative to the revisions on disk. */
export interface DatabaseState {
  initialised: boolean;
  applied: AppliedRevision[];
  /** The database's revision: its newest applied one, its files on disk or not; null at the start. */
  current: string | null;
  /** The newest applied revision whose files are on disk: `current` unless those are missing; null when none is. */
  currentOnDisk: string | null;
  pending: Revision[];
  drift: DriftedRevision[];
  /** Applied in the database, but no longer on disk. */
  missing: string[];
  /** Pending revisions numbered below the newest applied one. */
  outOfOrder: string[];
}

/** The database's revision as its own record says (belay.migrations), for what a snapshot of it records. */
export async function readDatabaseRevision(client: ClientBase): Promise<string | null> {
  return (await readDatabaseState(client, [])).current;
}

export async function readDatabaseState(client: ClientBase, revisions: readonly Revision[]): Promise<DatabaseState> {
  const initialised = await belaySchemaExists(client);
  const applied = initialised ? await readApplied(client) : [];
  return compareWithDisk(initialised, applied, revisions);
}

export function compareWithDisk(initialised: boolean, applied: AppliedRevision[], revisions: readonly Revision[]): DatabaseState {
  const onDisk = new Map(revisions.map((revision) => [revision.name, revision]));
  const appliedNames = new Set(applied.map((row) => row.name));
  const drift: DriftedRevision[] = [];
  const missing: string[] = [];
  for (const row of applied) {
    const revision = onDisk.get(row.name);
    if (!revision) {
      missing.push(row.name);
      continue;
    }
    if (revision.checksum === row.checksum) continue;
    const names = new Set([...Object.keys(row.files), ...Object.keys(revision.fileChecksums)]);
    const files = [...names].filter((name) => row.files[name] !== revision.fileChecksums[name]).sort();
    drift.push({ name: row.name, files });
  }
  const appliedInOrder = revisions.filter((revision) => appliedNames.has(revision.name));
  const newest = appliedInOrder[appliedInOrder.length - 1];
  const pending = revisions.filter((revision) => !appliedNames.has(revision.name));
  const newestNumber = newest ? Number(newest.number) : -1;
  const outOfOrder = pending.filter((revision) => Number(revision.number) < newestNumber).map((revision) => revision.name);
  return { initialised, applied, current: applied.at(-1)?.name ?? null, currentOnDisk: newest?.name ?? null, pending, drift, missing, outOfOrder };
}

/** The revisions `migrate up` would apply, in order, given the database state. */
export function revisionsToApply(revisions: readonly Revision[], state: DatabaseState, to: string | undefined): Revision[] {
  if (!to) return state.pending;
  const limit = revisions.findIndex((revision) => revision.name === to);
  const allowed = new Set(revisions.slice(0, limit + 1).map((revision) => revision.name));
  return state.pending.filter((revision) => allowed.has(revision.name));
}
