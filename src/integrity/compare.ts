import type { Fingerprint, TableFingerprint } from './fingerprint.js';

export interface IntegrityDifference {
  table: string;
  column?: string;
  kind: 'missing-table' | 'row-count' | 'row-hash' | 'column-hash' | 'column-type' | 'unverified-columns';
  message: string;
}

/** The row hash of `now` covers exactly the columns `then` had, with the same types: the two row hashes are comparable. */
function sameRowColumns(then: TableFingerprint, now: TableFingerprint): boolean {
  const names = Object.keys(then.columns);
  const covered = new Set(now.rowHashColumns ?? Object.keys(now.columns));
  return names.length === covered.size && names.every((name) => covered.has(name) && now.columns[name]?.type === then.columns[name]?.type);
}

/**
 * What changed between two fingerprints. `same-schema` (after a forward run
 * was undone) compares whole rows; `common-columns` (after `rollback --to`)
 * compares row counts and the columns present before and after, since data in
 * columns and tables the downs drop is expected to go: whole rows over the
 * earlier columns while all of them are still there (the caller computes the
 * later row hash over those columns alone, see `rowColumns`), per-column sums
 * when some are gone.
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
    if (mode === 'same-schema' || sameRowColumns(then, now)) {
      if (then.rowHash !== now.rowHash) differences.push({ table, kind: 'row-hash', message: `the content of ${table} changed (${then.rowCount} rows, same count, different hash)` });
      continue;
    }
    const unhashed: string[] = [];
    let typeChanged = false;
    for (const [column, was] of Object.entries(then.columns)) {
      const is = now.columns[column];
      if (!is) continue;
      if (is.type !== was.type) {
        typeChanged = true;
        differences.push({ table, column, kind: 'column-type', message: `${table}.${column} changed type from ${was.type} to ${is.type}` });
      } else if (was.hash === undefined || is.hash === undefined) {
        unhashed.push(column);
      } else if (was.hash !== is.hash) {
        differences.push({ table, column, kind: 'column-hash', message: `values in ${table}.${column} changed` });
      }
    }
    if (unhashed.length > 0 && !typeChanged) {
      const gone = Object.keys(then.columns).filter((column) => !now.columns[column]);
      differences.push({
        table,
        kind: 'unverified-columns',
        message: `${table} lost column(s) ${gone.join(', ')} that no down was seen to drop, and its fingerprint before holds no per-column hashes to compare the remaining ones (${unhashed.join(', ')}) with`,
      });
    }
  }
  return differences;
}
