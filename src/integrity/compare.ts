import type { Fingerprint, LargeObjectsFingerprint, SequenceState, TableFingerprint } from './fingerprint.js';

export interface IntegrityDifference {
  /** The table, the sequence, or "large objects". */
  table: string;
  column?: string;
  kind: 'missing-table' | 'row-count' | 'row-hash' | 'column-hash' | 'unverified-columns' | 'sequence' | 'large-objects';
  message: string;
}

/** The row hash of `now` covers exactly the columns `then` had, with the same types: the two row hashes are comparable. */
function sameRowColumns(then: TableFingerprint, now: TableFingerprint): boolean {
  const names = Object.keys(then.columns);
  const covered = new Set(now.rowHashColumns ?? Object.keys(now.columns));
  return names.length === covered.size && names.every((name) => covered.has(name) && now.columns[name]?.type === then.columns[name]?.type);
}

/**
 * The row hash `then` had over the columns `now` has, when a single one is
 * gone and its rowHashWithout was taken: the rows that stay compare whole
 * (a swap between rows keeps every column's sum).
 */
function rowHashWithoutGone(then: TableFingerprint, now: TableFingerprint): string | undefined {
  const gone = Object.keys(then.columns).filter((column) => !now.columns[column]);
  if (gone.length !== 1) return undefined;
  const { [gone[0]!]: dropped, ...staying } = then.columns;
  return dropped?.rowHashWithout !== undefined && sameRowColumns({ ...then, columns: staying }, now) ? dropped.rowHashWithout : undefined;
}

/**
 * What changed between two fingerprints. The caller computes the later row
 * hash over the earlier columns alone (see `rowColumns`): a column left
 * behind is no change to the data. `same-schema` (after a forward run was
 * undone) compares whole rows; `common-columns` (after `rollback --to`)
 * compares row counts and the columns present before and after, since data in
 * columns and tables the downs drop is expected to go: whole rows while all
 * the earlier columns are still there, per-column sums when some are gone
 * (and whole rows over the others when one is gone whose rowHashWithout was taken).
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
      if (then.rowHash !== now.rowHash && then.rowHash !== now.rowHashInUtc) differences.push({ table, kind: 'row-hash', message: `the content of ${table} changed (${then.rowCount} rows, same count, different hash)` });
      continue;
    }
    const before = differences.length;
    const unhashed: string[] = [];
    let typeChanged = false;
    for (const [column, was] of Object.entries(then.columns)) {
      const is = now.columns[column];
      if (!is) continue;
      if (is.type !== was.type) {
        // its values do not read as its earlier type: not compared (columnsNotCompared)
        typeChanged = true;
      } else if (was.hash === undefined || is.hash === undefined) {
        unhashed.push(column);
      } else if (was.hash !== is.hash && was.hash !== is.hashInUtc) {
        differences.push({ table, column, kind: 'column-hash', message: `values in ${table}.${column}${is.renamed === undefined ? '' : ` (${is.renamed} now)`} changed` });
      }
    }
    const without = rowHashWithoutGone(then, now);
    if (differences.length === before && without !== undefined && without !== now.rowHash && without !== now.rowHashInUtc) {
      differences.push({ table, kind: 'row-hash', message: `the content of ${table} changed (${then.rowCount} rows, same count, different hash over the columns that stay)` });
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
  differences.push(...compareSequences(before.sequences, after.sequences, mode), ...compareLargeObjects(before.largeObjects, after.largeObjects, mode));
  return differences;
}

/**
 * The columns whose values a comparison could not read as the type they had
 * before (no cast, not even from their text, or values it cannot hold: epoch
 * seconds a down turned back from a timestamptz), in words. Not damage, nor
 * verified: the outcome names them. Where the earlier fingerprint holds no
 * per-column hashes, the table's other columns were not compared either.
 */
export function columnsNotCompared(before: Fingerprint, after: Fingerprint): string[] {
  return Object.entries(before.tables).flatMap(([table, then]) => {
    const now = after.tables[table];
    return Object.entries(then.columns).flatMap(([column, was]) => {
      const is = now?.columns[column];
      if (!is || is.type === was.type) return [];
      const change = `its type changed from ${was.type} to ${is.type} and its values do not cast back`;
      return [was.hash === undefined ? `${table}, not compared: ${column}, ${change}, and its fingerprint before holds no per-column hashes to compare the other columns with` : `${table}.${column}, not compared: ${change}`];
    });
  });
}

/**
 * A sequence moved otherwise than nextval moves it: set back (setval), or
 * gone. nextval is not undone by a rollback, so an advance is no damage, nor
 * is a CYCLE sequence found lower (nextval wraps it round: a setval back is
 * not told from that); under `common-columns` a down may drop the sequence its up made.
 */
function compareSequences(before: Record<string, SequenceState> | undefined, after: Record<string, SequenceState> | undefined, mode: 'same-schema' | 'common-columns'): IntegrityDifference[] {
  if (!before || !after) return [];
  return Object.entries(before).flatMap(([sequence, then]): IntegrityDifference[] => {
    const now = after[sequence];
    if (!now) return mode === 'same-schema' ? [{ table: sequence, kind: 'sequence', message: `sequence ${sequence} is missing` }] : [];
    const advanced = then.lastValue === null || (now.lastValue !== null && BigInt(now.increment) * (BigInt(now.lastValue) - BigInt(then.lastValue)) >= 0n);
    if (advanced || now.cycle === true) return [];
    return [{ table: sequence, kind: 'sequence', message: `sequence ${sequence} was set back: its last value was ${then.lastValue}, now ${now.lastValue ?? 'none (not yet read)'}` }];
  });
}

/** Large objects gone, added or rewritten; contents the role may not read are not compared (checkIntegrity says so). */
function compareLargeObjects(then: LargeObjectsFingerprint | undefined, now: LargeObjectsFingerprint | undefined, mode: 'same-schema' | 'common-columns'): IntegrityDifference[] {
  if (!then || !now || mode === 'common-columns') return [];
  if (then.count !== now.count || then.oids !== now.oids) return [{ table: 'large objects', kind: 'large-objects', message: `the large objects changed: ${then.count} before, ${now.count} now${then.count === now.count ? ', not the same ones' : ''}` }];
  if (then.contents !== null && now.contents !== null && then.contents !== now.contents) return [{ table: 'large objects', kind: 'large-objects', message: `the content of large objects changed (${then.count}, the same ones)` }];
  return [];
}
