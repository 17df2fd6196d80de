import { createHash } from 'node:crypto';
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../db/ident.js';
import { simpleQueryResults } from '../db/simple-query.js';
import { holdsNoRow, tableKey, type TableRef } from './table-selection.js';

export interface ColumnFingerprint {
  type: string;
  /** Sum of the column's salted value hashes; present when per-column hashes were asked for this table. */
  hash?: string;
}

export interface TableFingerprint {
  rowCount: string;
  /** Order-independent: the sum over rows of a hash of all the row's column hashes. */
  rowHash: string;
  columns: Record<string, ColumnFingerprint>;
  /** Set when the row hash covers only these columns (a comparison with an earlier fingerprint asked for them); otherwise it covers every column. */
  rowHashColumns?: string[];
}

export interface Fingerprint {
  takenAt: string;
  /** Per-column hashes were asked for: of every table (written before they were chosen per table), or of the tables whose columns then hold a `hash`. */
  perColumn: boolean;
  tables: Record<string, TableFingerprint>;
}

interface ColumnInfo {
  name: string;
  type: string;
  /** The type's own extended hash function (schema, name), when its default hash opclass has one. */
  hashSchema: string | null;
  hashName: string | null;
}

interface TableColumns {
  columns: ColumnInfo[];
  /** The table has no pages: no row in any snapshot, its fingerprint is known without reading it. */
  empty: boolean;
}

/**
 * The columns of every table in one catalog query, each with the extended
 * hash function (amprocnum 2) of its type's default hash operator class, and
 * whether the table is empty for sure (holdsNoRow).
 */
async function columnsOf(client: ClientBase, tables: TableRef[]): Promise<TableColumns[]> {
  const { rows } = await client.query<{ i: number; empty: boolean; name: string; type: string; hash_schema: string | null; hash_name: string | null }>(
    `WITH t AS MATERIALIZED (
       SELECT t.i, c.oid, ${holdsNoRow('c')} AS empty
         FROM unnest($1::text[]) WITH ORDINALITY AS t(rel, i) JOIN pg_class c ON c.oid = t.rel::regclass
     )
     SELECT t.i::int AS i, t.empty, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            pn.nspname AS hash_schema, p.proname AS hash_name
       FROM t
       JOIN pg_attribute a ON a.attrelid = t.oid
       LEFT JOIN pg_opclass oc ON oc.opcintype = a.atttypid AND oc.opcdefault
             AND oc.opcmethod = (SELECT oid FROM pg_am WHERE amname = 'hash')
       LEFT JOIN pg_amproc ap ON ap.amprocfamily = oc.opcfamily AND ap.amprocnum = 2
             AND ap.amproclefttype = a.atttypid AND ap.amprocrighttype = a.atttypid
       LEFT JOIN pg_proc p ON p.oid = ap.amproc AND p.proargtypes[0] = a.atttypid
       LEFT JOIN pg_namespace pn ON pn.oid = p.pronamespace
      WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      ORDER BY t.i, a.attnum`,
    [tables.map((table) => quoteQualified(table.schema, table.table))],
  );
  // a table without columns has no row here: it is read
  const byTable: TableColumns[] = tables.map(() => ({ columns: [], empty: false }));
  for (const r of rows) {
    const table = byTable[r.i - 1]!;
    table.empty = r.empty;
    table.columns.push({ name: r.name, type: r.type, hashSchema: r.hash_schema, hashName: r.hash_name });
  }
  return byTable;
}

/** A seed per column name: stable when other columns come and go, different per column. */
function seedOf(name: string): number {
  return createHash('sha256').update(name).digest().readUIntBE(0, 6);
}

/**
 * One column's hash, salted by its name so that values swapping columns
 * change the fingerprint. Types with a hash opclass use their own typed hash
 * (much cheaper than text); the rest (json, point, …) hash their text form.
 * A NULL gets a per-column constant no hash is likely to equal.
 */
function columnHashExpr(column: ColumnInfo): string {
  const seed = seedOf(column.name);
  const value = quoteIdent(column.name);
  const hashed =
    column.hashSchema && column.hashName
      ? `${quoteQualified(column.hashSchema, column.hashName)}(${value}, ${seed})`
      : `hashtextextended(${value}::text, ${seed})`;
  return `coalesce(${hashed}, ${-seed - 1})`;
}

const rowHashOf = (hashes: string[]): string => (hashes.length === 0 ? '0' : `hashint8extended(${hashes.join(' # ')}, 0)`);

interface TablePlan {
  key: string;
  columns: ColumnInfo[];
  perColumn: boolean;
  /** Names of the columns the row hash covers, when not all of them. */
  rowColumns?: string[];
  sql: string;
}

/**
 * The fingerprint of one table in a single scan, computed by PostgreSQL: row
 * count, the sum (mod nothing: sum(bigint) accumulates in 128 bits) of a
 * hash of each row's column hashes, and optionally per-column sums. Sums
 * rather than XOR, because XOR lets a duplicated pair cancel out.
 */
function planTable(table: TableRef, columns: ColumnInfo[], perColumn: boolean, rowColumns: ReadonlySet<string> | undefined): TablePlan {
  const from = `FROM ONLY ${quoteQualified(table.schema, table.table)}`;
  const inRow = rowColumns ? columns.filter((column) => rowColumns.has(column.name)) : columns;
  const restricted = rowColumns ? { rowColumns: inRow.map((column) => column.name) } : {};
  const key = tableKey(table);
  if (!perColumn) {
    return { key, columns, perColumn, ...restricted, sql: `SELECT count(*)::text AS n, coalesce(sum(${rowHashOf(inRow.map(columnHashExpr))}), 0)::text AS h ${from}` };
  }
  // Each column's hash feeds both the row hash and its column's sum: computed once per row in a subquery.
  // A volatile, parallel-safe and cheap call in its select list (pg_is_in_recovery(), a flag in shared
  // memory) keeps the planner from flattening it into the aggregate, which would evaluate every column
  // hash twice; OFFSET 0 would too, but rules out a parallel scan. (pg_jit_available() would load the
  // JIT library into every backend and worker.)
  const hashed = columns.map((column, i) => `${columnHashExpr(column)} AS c${i}`);
  const inRowRefs = columns.flatMap((column, i) => (inRow.includes(column) ? [`c${i}`] : []));
  const sums = columns.map((_column, i) => `, sum(c${i})::text AS c${i}`).join('');
  return {
    key,
    columns,
    perColumn,
    ...restricted,
    sql: `SELECT count(*)::text AS n, coalesce(sum(${rowHashOf(inRowRefs)}), 0)::text AS h${sums} FROM (SELECT ${[...hashed, 'pg_catalog.pg_is_in_recovery() AS keep'].join(', ')} ${from}) AS r`,
  };
}

function readTable(plan: TablePlan, row: Record<string, string | null>): TableFingerprint {
  const fingerprint: TableFingerprint = { rowCount: row.n ?? '0', rowHash: row.h ?? '0', columns: {}, ...(plan.rowColumns ? { rowHashColumns: plan.rowColumns } : {}) };
  plan.columns.forEach((column, i) => {
    fingerprint.columns[column.name] = plan.perColumn ? { type: column.type, hash: row[`c${i}`] ?? '0' } : { type: column.type };
  });
  return fingerprint;
}

export interface FingerprintOptions {
  /** Per-column hashes: for every table (true), for none (false), or for the tables named (`schema.table` keys). */
  perColumn: boolean | ReadonlySet<string>;
  /** The caller holds a REPEATABLE READ transaction open (its snapshot is shared with pg_dump). */
  inTransaction?: boolean;
  /** Per table (`schema.table`), the only columns its row hash covers (those of an earlier fingerprint it is compared with). */
  rowColumns?: ReadonlyMap<string, ReadonlySet<string>>;
}

/** Tables per round trip: their aggregate queries go as one multi-statement simple query. */
const BATCH = 50;

/** Fingerprint every table in one REPEATABLE READ snapshot, so they agree with each other. */
export async function fingerprintTables(client: ClientBase, tables: TableRef[], options: FingerprintOptions = { perColumn: true }): Promise<Fingerprint> {
  const { perColumn } = options;
  const result: Fingerprint = { takenAt: new Date().toISOString(), perColumn: perColumn === true || (perColumn !== false && perColumn.size > 0), tables: {} };
  const own = options.inTransaction !== true;
  if (own) await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const columns = tables.length === 0 ? [] : await columnsOf(client, tables);
    const plans = tables.map((table, i) => {
      const key = tableKey(table);
      return planTable(table, columns[i]!.columns, perColumn === true || (perColumn !== false && perColumn.has(key)), options.rowColumns?.get(key));
    });
    // what the query of an empty table answers: no rows counted, no hash summed
    plans.forEach((plan, i) => {
      if (columns[i]!.empty) result.tables[plan.key] = readTable(plan, { n: '0', h: '0' });
    });
    const toRead = plans.filter((_plan, i) => !columns[i]!.empty);
    for (let start = 0; start < toRead.length; start += BATCH) {
      const batch = toRead.slice(start, start + BATCH);
      const results = await simpleQueryResults<Record<string, string | null>>(client, batch.map((plan) => plan.sql).join(';\n'));
      batch.forEach((plan, i) => {
        result.tables[plan.key] = readTable(plan, results[i]!.rows[0]!);
      });
    }
    if (own) await client.query('COMMIT');
  } catch (error) {
    if (own) await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
  return result;
}
