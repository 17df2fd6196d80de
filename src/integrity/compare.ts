import type { Fingerprint } from './fingerprint.js';

export interface IntegrityDifference {
  table: string;
  column?: string;
  kind: 'missing-table' | 'row-count' | 'row-hash' | 'column-hash' | 'column-type';
  message: string;
}

/**
 * What changed between two fingerprints. `same-schema` (after a forward run
 * was undone) compares whole rows; `common-columns` (after `rollback --to`)
 * compares row counts and the columns present before and after, since data in
 * columns and tables the downs drop is expected to go.
 */
export function compareFingerprints(before: Fingerprint, after: Fingerprint, mode: 'same-schema' | 'common-columns'): IntegrityDifference[] {
  const differences: IntegrityDifference[] = [];
  for (const [table, then] of Object.entries(before.tables)) {
    const now = after.tables[table];
    if (!now) {
      if (mode === 'same-schema') differences.push({ table, kind: 'missing-table', message: `table ${table} is missing` });
      continue;
    }
    if (then.rowCount !== now.rowCount) {
      differences.push({ table, kind: 'row-count', message: `${table} had ${then.rowCount} rows, now ${now.rowCount}` });
      continue;
    }
    const sameColumns = JSON.stringify(then.columns) === JSON.stringify(now.columns) || sameColumnShape(then.columns, now.columns);
    if (mode === 'same-schema' || (sameColumns && !before.perColumn)) {
      if (then.rowHash !== now.rowHash) differences.push({ table, kind: 'row-hash', message: `the content of ${table} changed (${then.rowCount} rows, same count, different hash)` });
      continue;
    }
    for (const [column, was] of Object.entries(then.columns)) {
      const is = now.columns[column];
      if (!is) continue;
      if (is.type !== was.type) {
        differences.push({ table, column, kind: 'column-type', message: `${table}.${column} changed type from ${was.type} to ${is.type}` });
      } else if (was.hash !== undefined && is.hash !== undefined && was.hash !== is.hash) {
        differences.push({ table, column, kind: 'column-hash', message: `values in ${table}.${column} changed` });
      }
    }
  }
  return differences;
}

function sameColumnShape(a: Fingerprint['tables'][string]['columns'], b: Fingerprint['tables'][string]['columns']): boolean {
  const names = Object.keys(a);
  return names.length === Object.keys(b).length && names.every((name) => b[name]?.type === a[name]?.type);
}
