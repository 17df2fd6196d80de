import type { ClientBase } from 'pg';
import { BELAY_SCHEMA } from '../db/belay-schema.js';

const USER_SCHEMAS = `n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ('information_schema', '${BELAY_SCHEMA}')`;

/**
 * The structure a change is judged against: which indexes were already
 * invalid and which constraints were already validated, taken before the
 * change (with the health baseline).
 */
export interface StructureBaseline {
  takenAt: string;
  /** `schema.index` of every index invalid at the baseline. */
  invalidIndexes: string[];
  /** `schema.table.constraint` of every validated constraint at the baseline. */
  validatedConstraints: string[];
}

interface IndexRow {
  name: string;
  partitioned: boolean;
}

interface ConstraintRow {
  name: string;
  tbl: string;
  validated: boolean;
}

/**
 * Invalid indexes: a failed CREATE INDEX CONCURRENTLY (or REINDEX
 * CONCURRENTLY) leaves one. An index on a partitioned table made with
 * `ON ONLY` is invalid on purpose until every partition's index is attached:
 * that one is not damage.
 */
async function invalidIndexes(client: ClientBase): Promise<IndexRow[]> {
  const { rows } = await client.query<IndexRow>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind = 'I' AS partitioned
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT i.indisvalid AND ${USER_SCHEMAS} ORDER BY 1`,
  );
  return rows;
}

async function tableConstraints(client: ClientBase, onlyUnvalidated: boolean): Promise<ConstraintRow[]> {
  const { rows } = await client.query<ConstraintRow>(
    `SELECT co.conname AS name, format('%I.%I', n.nspname, c.relname) AS tbl, co.convalidated AS validated
       FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${USER_SCHEMAS}${onlyUnvalidated ? ' AND NOT co.convalidated' : ''} ORDER BY 2, 1`,
  );
  return rows;
}

const constraintKey = (row: ConstraintRow): string => `${row.tbl}.${row.name}`;

/** Take the structure baseline (before a change). */
export async function captureStructure(client: ClientBase): Promise<StructureBaseline> {
  const indexes = await invalidIndexes(client);
  const constraints = await tableConstraints(client, false);
  return {
    takenAt: new Date().toISOString(),
    invalidIndexes: indexes.map((row) => row.name),
    validatedConstraints: constraints.filter((row) => row.validated).map(constraintKey),
  };
}

export interface StructureVerdict {
  /** What the change broke: an index left invalid, a constraint that was valid and is not now. */
  problems: string[];
  /** What is there and is not held against the change (deliberate NOT VALID, a partitioned index waiting for its partitions). */
  notes: string[];
  /** Damage in itself that was already there at the baseline (an index already invalid): not the change's doing, but still broken. */
  brokenBefore: string[];
}

/**
 * Judge the structure now against the baseline. Without a baseline (belay
 * verify, a restored copy, the preflight baseline itself) only what is damage
 * in itself counts: an invalid index. A constraint added NOT VALID is the
 * standard zero-downtime pattern (add now, validate later), never damage in
 * itself; it is a problem only when it was validated at the baseline.
 */
export async function judgeStructure(client: ClientBase, baseline: StructureBaseline | undefined): Promise<StructureVerdict> {
  const problems: string[] = [];
  const notes: string[] = [];
  const brokenBefore: string[] = [];
  const wasInvalid = new Set(baseline?.invalidIndexes ?? []);
  for (const index of await invalidIndexes(client)) {
    if (index.partitioned) notes.push(`partitioned index ${index.name} is not valid until every partition's index is attached`);
    else if (wasInvalid.has(index.name)) brokenBefore.push(`index ${index.name} was already invalid before the change (drop it and build it again)`);
    else problems.push(`invalid index ${index.name} (a failed CREATE INDEX CONCURRENTLY leaves one: drop it and build it again)`);
  }
  const wasValidated = new Set(baseline?.validatedConstraints ?? []);
  for (const row of await tableConstraints(client, true)) {
    if (wasValidated.has(constraintKey(row))) problems.push(`constraint ${row.name} on ${row.tbl} was valid before the change and is NOT VALID now`);
    else notes.push(`constraint ${row.name} on ${row.tbl} is NOT VALID (not yet validated; not damage)`);
  }
  return { problems, notes, brokenBefore };
}
