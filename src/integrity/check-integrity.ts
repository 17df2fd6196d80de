import type { ClientBase } from 'pg';
import type { IntegrityConfig } from '../config/types.js';
import { columnsNotCompared, compareFingerprints, type IntegrityDifference } from './compare.js';
import { fingerprintTables, hashingOf, sumFingerprints, type Fingerprint, type FingerprintOptions, type FingerprintTarget, type LargeObjectsFingerprint, type TableFingerprint } from './fingerprint.js';
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

/** A table read now, under `as`, to be compared with the baseline's `of` (a part of it, when that is a partitioned table compared whole); `same` when it is the very table `of` was (its OID). */
type Target = FingerprintTarget & { as: string; of: string; same?: boolean };

interface Comparison {
  /** The baseline as compared: a partitioned table compared whole in place of its leaves. */
  baseline: Fingerprint;
  targets: Target[];
  /** The partitioned tables compared whole. */
  wholes: string[];
}

interface RelationNow {
  oid: string;
  schema: string;
  table: string;
  kind: string;
  /** The root of its partition tree, for a partition. */
  root: string | null;
}

/**
 * The tables of `baseline` as they are now, each under its key there. In the
 * same database (`common-columns`, after `rollback --to`) a table is found by
 * its OID, so that one a down renamed back is still compared; otherwise by
 * name. Names are matched whole: a schema or table name may hold a dot.
 *
 * After `rollback --to`, a partitioned table whose leaves are no longer the
 * ones fingerprinted before (a down made it a plain table again, or moved
 * rows between partitions it made and dropped) is compared whole: the sum of
 * its leaves then with that of its leaves now and of those it had, wherever
 * they are now. Each alone may rightly have gained or lost rows.
 */
async function tablesNow(client: ClientBase, baseline: Fingerprint, compare: 'same-schema' | 'common-columns'): Promise<Comparison> {
  const { rows } = await client.query<{ oid: string; schema: string; table: string; kind: string; root_schema: string | null; root_table: string | null }>(
    `SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS table, c.relkind::text AS kind, rn.nspname AS root_schema, r.relname AS root_table
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_class r ON c.relispartition AND r.oid = pg_partition_root(c.oid)
       LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
      WHERE c.relkind IN ('r', 'p')`,
  );
  const relations: RelationNow[] = rows.map((r) => ({ oid: r.oid, schema: r.schema, table: r.table, kind: r.kind, root: r.root_schema === null || r.root_table === null ? null : tableKey({ schema: r.root_schema, table: r.root_table }) }));
  const tables = relations.filter((r) => r.kind === 'r');
  const byKey = new Map(tables.map((r) => [tableKey(r), r]));
  const byOid = new Map(tables.map((r) => [r.oid, r]));
  // a table found by its OID is no other's under its name: a down that drops the copy its up made and renames the original back
  const claimed = new Set(compare === 'common-columns' ? Object.values(baseline.tables).flatMap((then) => (then.oid !== undefined && byOid.has(then.oid) ? [then.oid] : [])) : []);
  const find = (key: string, then: TableFingerprint): RelationNow | undefined => {
    const same = compare === 'common-columns' && then.oid !== undefined ? byOid.get(then.oid) : undefined;
    if (same) return same;
    const named = byKey.get(key);
    return named && (named.oid === then.oid || !claimed.has(named.oid)) ? named : undefined;
  };
  const compared: Fingerprint = { ...baseline, tables: { ...baseline.tables } };
  const targets: Target[] = [];
  const wholes: string[] = [];
  if (compare === 'common-columns') {
    const trees = new Map<string, string[]>();
    for (const [key, then] of Object.entries(baseline.tables)) if (then.partitionOf !== undefined) trees.set(then.partitionOf, [...(trees.get(then.partitionOf) ?? []), key]);
    const relationByKey = new Map(relations.map((r) => [tableKey(r), r]));
    for (const [root, leavesThen] of trees) {
      const now = relationByKey.get(root);
      if (!now) continue;
      const leavesNow = now.kind === 'r' ? [now] : tables.filter((r) => r.root === root);
      const oidsThen = new Set(leavesThen.map((key) => baseline.tables[key]!.oid));
      if (now.kind === 'p' && leavesNow.length === oidsThen.size && leavesNow.every((r) => oidsThen.has(r.oid))) continue;
      const parts = new Map(leavesNow.map((r) => [r.oid, r]));
      for (const key of leavesThen) {
        const part = find(key, baseline.tables[key]!);
        if (part) parts.set(part.oid, part);
        delete compared.tables[key];
      }
      compared.tables[root] = sumFingerprints(leavesThen.map((key) => baseline.tables[key]!));
      wholes.push(root);
      // a name holds no NUL: no table's key is a part's
      targets.push(...[...parts.values()].map((part) => ({ schema: part.schema, table: part.table, as: `${root}\0${part.oid}`, of: root })));
    }
  }
  for (const [key, then] of Object.entries(compared.tables)) {
    const now = wholes.includes(key) ? undefined : find(key, then);
    if (now) targets.push({ schema: now.schema, table: now.table, as: key, of: key, ...(compare === 'common-columns' && now.oid === then.oid ? { same: true } : {}) });
  }
  return { baseline: compared, targets, wholes };
}

/**
 * What the comparison needs now: row hashes over the columns each table had
 * before (a column a down left behind is the schema check's to name, not
 * damage to the data), values of a column whose type changed hashed as its
 * earlier type, and, for common-columns, per-column sums of the tables that
 * had them (those whose columns a down was seen to drop).
 */
function comparisonOptions({ baseline, targets }: Comparison, compare: 'same-schema' | 'common-columns'): FingerprintOptions {
  const hashed = (target: Target): boolean => Object.values(baseline.tables[target.of]!.columns).some((column) => column.hash !== undefined);
  return {
    perColumn: compare === 'same-schema' ? false : new Set(targets.filter(hashed).map((target) => target.as)),
    earlier: new Map(targets.map((target) => [target.as, baseline.tables[target.of]!.columns])),
    sameTables: new Set(targets.filter((target) => target.same === true).map((target) => target.as)),
  };
}

/** The fingerprint of each table compared, a partitioned table compared whole summed from its parts. */
function asCompared(now: Fingerprint, { targets, wholes }: Comparison): Fingerprint {
  const tables = { ...now.tables };
  for (const whole of wholes) {
    const parts = targets.filter((target) => target.of === whole);
    tables[whole] = sumFingerprints(parts.map((part) => now.tables[part.as]!));
    for (const part of parts) delete tables[part.as];
  }
  return { ...now, tables };
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
    const comparison = await tablesNow(client, baseline, compare);
    const objects = baseline.sequences !== undefined || baseline.largeObjects !== undefined;
    const now = await fingerprintTables(client, comparison.targets, { ...comparisonOptions(comparison, compare), hashing: hashingOf(baseline), objects });
    differences = compareFingerprints(comparison.baseline, asCompared(now, comparison), compare);
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
