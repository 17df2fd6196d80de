import type { ClientBase } from 'pg';
import type { IntegrityConfig } from '../config/types.js';
import { columnsNotCompared, compareFingerprints, type IntegrityDifference } from './compare.js';
import { fingerprintTables, hashingOf, type Fingerprint, type FingerprintOptions, type FingerprintTarget, type LargeObjectsFingerprint } from './fingerprint.js';
import { checkInvariants, type InvariantViolation } from './invariants.js';
import { judgeStructure, type StructureBaseline } from './structural.js';
import { selectProtectedTables, tableKey } from './table-selection.js';

export interface IntegrityReport {
  intact: boolean;
  mode: IntegrityConfig['mode'];
  /** What was compared, in words. */
  checked: string;
  differences: IntegrityDifference[];
  violations: InvariantViolation[];
  structural: string[];
  /** Why no table was compared though the database has tables: integrity.tables selects none of them. */
  noTableSelected?: string;
  /** Why the large objects there are were not compared: never called intact then. */
  largeObjectsNotCompared?: string;
  /** The columns whose values do not cast back to the type they had (see columnsNotCompared), in words: never called intact then. */
  columnsNotCompared?: string;
}

/** Why large objects there were before are not compared, if they are not (compareFingerprints compares the rest). */
function largeObjectsNotCompared(then: LargeObjectsFingerprint | undefined, now: LargeObjectsFingerprint | undefined, compare: 'same-schema' | 'common-columns'): string | undefined {
  if (!then || !now || then.count === '0') return undefined;
  if (compare === 'common-columns') return `large objects not compared (${then.count}: the downs may remove those the ups made)`;
  if (then.oids !== now.oids || then.count !== now.count || (then.contents !== null && now.contents !== null)) return undefined;
  const unreadable = then.contents === null ? then.unreadable : now.unreadable;
  return `large objects not compared: the role may not read ${unreadable} of the ${then.count}`;
}

/**
 * A fingerprint of no table compares nothing. Said when integrity.tables
 * selects none of the tables there are (a typo in include): not when the
 * database has none, nor when a touched snapshot's scope holds none of the
 * protected ones (its guard keeps the others as they were).
 */
async function noTableSelected(client: ClientBase, config: IntegrityConfig): Promise<string | undefined> {
  if ((await selectProtectedTables(client, config.tables)).length > 0) return undefined;
  const tables = await selectProtectedTables(client, { include: ['*.*'], exclude: [] });
  if (tables.length === 0) return undefined;
  const shown = tables.slice(0, 10).map(tableKey).join(', ');
  return `integrity.tables (include ${JSON.stringify(config.tables.include)}, exclude ${JSON.stringify(config.tables.exclude)}) selects none of the ${tables.length} table(s) there are: ${shown}${tables.length > 10 ? ', …' : ''}`;
}

/**
 * The tables of `baseline` as they are now, each under its key there. In the
 * same database (`common-columns`, after `rollback --to`) a table is found by
 * its OID, so that one a down renamed back is still compared; otherwise by
 * name. Names are matched whole: a schema or table name may hold a dot.
 */
async function tablesNow(client: ClientBase, baseline: Fingerprint, compare: 'same-schema' | 'common-columns'): Promise<FingerprintTarget[]> {
  const { rows } = await client.query<{ oid: string; schema: string; table: string }>(
    `SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'`,
  );
  const byKey = new Map(rows.map((r) => [tableKey(r), r]));
  const byOid = new Map(rows.map((r) => [r.oid, r]));
  return Object.entries(baseline.tables).flatMap(([key, then]) => {
    const now = (compare === 'common-columns' && then.oid !== undefined ? byOid.get(then.oid) : undefined) ?? byKey.get(key);
    return now ? [{ schema: now.schema, table: now.table, as: key }] : [];
  });
}

/**
 * What the comparison needs now: row hashes over the columns each table had
 * before (a column a down left behind is the schema check's to name, not
 * damage to the data), values of a column whose type changed hashed as its
 * earlier type, and, for common-columns, per-column sums of the tables that
 * had them (those whose columns a down was seen to drop).
 */
function comparisonOptions(baseline: Fingerprint, compare: 'same-schema' | 'common-columns'): FingerprintOptions {
  const entries = Object.entries(baseline.tables);
  return {
    perColumn:
      compare === 'same-schema' ? false : new Set(entries.filter(([, table]) => Object.values(table.columns).some((column) => column.hash !== undefined)).map(([key]) => key)),
    earlier: new Map(entries.map(([key, table]) => [key, table.columns])),
  };
}

/**
 * Is the data as it was? `strict`: fingerprint comparison + invariants +
 * structure; `invariants`: invariants + structure; `off`: nothing (said so).
 * Structure is judged against `structure` when given: an index left invalid,
 * a constraint valid before and not now; without it, invalid indexes only.
 */
export async function checkIntegrity(
  client: ClientBase,
  config: IntegrityConfig,
  baseline: Fingerprint | null,
  compare: 'same-schema' | 'common-columns',
  /** The structure before the change: what it deliberately made (NOT VALID constraints) is not damage. */
  structure?: StructureBaseline,
): Promise<IntegrityReport> {
  if (config.mode === 'off') {
    return { intact: true, mode: 'off', checked: 'nothing (integrity.mode is off)', differences: [], violations: [], structural: [] };
  }
  const structural = (await judgeStructure(client, structure)).problems;
  const violations = await checkInvariants(client, config.invariants);
  let differences: IntegrityDifference[] = [];
  let checked = `${config.invariants.length} invariant(s) and structure`;
  let unreadObjects: string | undefined;
  let uncomparedColumns: string[] = [];
  if (config.mode === 'strict' && baseline) {
    const options = comparisonOptions(baseline, compare);
    const objects = baseline.sequences !== undefined || baseline.largeObjects !== undefined;
    const now = await fingerprintTables(client, await tablesNow(client, baseline, compare), { ...options, hashing: hashingOf(baseline), objects });
    differences = compareFingerprints(baseline, now, compare);
    unreadObjects = largeObjectsNotCompared(baseline.largeObjects, now.largeObjects, compare);
    uncomparedColumns = columnsNotCompared(baseline, now);
    checked = `${Object.keys(baseline.tables).length} table fingerprint(s) (${compare})${objects ? ', sequences and large objects' : ''}, ${checked}`;
  }
  const unselected = config.mode === 'strict' && baseline && Object.keys(baseline.tables).length === 0 ? await noTableSelected(client, config) : undefined;
  return {
    intact: differences.length === 0 && violations.length === 0 && structural.length === 0,
    mode: config.mode,
    checked,
    differences,
    violations,
    structural,
    ...(unselected ? { noTableSelected: unselected } : {}),
    ...(unreadObjects ? { largeObjectsNotCompared: unreadObjects } : {}),
    ...(uncomparedColumns.length > 0 ? { columnsNotCompared: uncomparedColumns.join('; ') } : {}),
  };
}
