import type { ClientBase } from 'pg';
import type { IntegrityConfig } from '../config/types.js';
import { compareFingerprints, type IntegrityDifference } from './compare.js';
import { fingerprintTables, type Fingerprint, type FingerprintOptions } from './fingerprint.js';
import { checkInvariants, type InvariantViolation } from './invariants.js';
import { judgeStructure, type StructureBaseline } from './structural.js';
import type { TableRef } from './table-selection.js';

export interface IntegrityReport {
  intact: boolean;
  mode: IntegrityConfig['mode'];
  /** What was compared, in words. */
  checked: string;
  differences: IntegrityDifference[];
  violations: InvariantViolation[];
  structural: string[];
}

const tablesOf = (fingerprint: Fingerprint): TableRef[] =>
  Object.keys(fingerprint.tables).map((key) => {
    const dot = key.indexOf('.');
    return { schema: key.slice(0, dot), table: key.slice(dot + 1) };
  });

async function existingTables(client: ClientBase, wanted: TableRef[]): Promise<TableRef[]> {
  const { rows } = await client.query<{ schema: string; table: string }>(
    `SELECT n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'`,
  );
  const present = new Set(rows.map((r) => `${r.schema}.${r.table}`));
  return wanted.filter((t) => present.has(`${t.schema}.${t.table}`));
}

/**
 * What a common-columns comparison needs now: row hashes over the columns
 * each table had before (whole rows, while they are all still there), and
 * per-column sums of the tables that had them (those whose columns a down
 * was seen to drop).
 */
function commonColumnsOptions(baseline: Fingerprint): FingerprintOptions {
  const entries = Object.entries(baseline.tables);
  return {
    perColumn: new Set(entries.filter(([, table]) => Object.values(table.columns).some((column) => column.hash !== undefined)).map(([key]) => key)),
    rowColumns: new Map(entries.map(([key, table]) => [key, new Set(Object.keys(table.columns))])),
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
  if (config.mode === 'strict' && baseline) {
    const now = await fingerprintTables(client, await existingTables(client, tablesOf(baseline)), compare === 'same-schema' ? { perColumn: false } : commonColumnsOptions(baseline));
    differences = compareFingerprints(baseline, now, compare);
    checked = `${Object.keys(baseline.tables).length} table fingerprint(s) (${compare}), ${checked}`;
  }
  return { intact: differences.length === 0 && violations.length === 0 && structural.length === 0, mode: config.mode, checked, differences, violations, structural };
}
