import { createHash } from 'node:crypto';
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../db/ident.js';
import { tableKey, type TableRef } from './table-selection.js';

export interface ColumnFingerprint {
  type: string;
  /** Sum of the column's salted value hashes; present when per-column hashes were asked for. */
  hash?: string;
}

export interface TableFingerprint {
  rowCount: string;
  /** Order-independent: the sum over rows of a hash of all the row's column hashes. */
  rowHash: string;
  columns: Record<string, ColumnFingerprint>;
}

export interface Fingerprint {
  takenAt: string;
  perColumn: boolean;
  tables: Record<string, TableFingerprint>;
}

interface ColumnInfo {
  name: string;
  type: string;
  position: number;
  /** The type's own extended hash function (schema, name), when its default hash opclass has one. */
  hashSchema: string | null;
  hashName: string | null;
}

/** Columns with the extended hash function (amprocnum 2) of their type's default hash operator class. */
async function columnsOf(client: ClientBase, table: TableRef): Promise<ColumnInfo[]> {
  const { rows } = await client.query<{ name: string; type: string; position: number; hash_schema: string | null; hash_name: string | null }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnum AS position,
            pn.nspname AS hash_schema, p.proname AS hash_name
       FROM pg_attribute a
       LEFT JOIN pg_opclass oc ON oc.opcintype = a.atttypid AND oc.opcdefault
             AND oc.opcmethod = (SELECT oid FROM pg_am WHERE amname = 'hash')
       LEFT JOIN pg_amproc ap ON ap.amprocfamily = oc.opcfamily AND ap.amprocnum = 2
             AND ap.amproclefttype = a.atttypid AND ap.amprocrighttype = a.atttypid
       LEFT JOIN pg_proc p ON p.oid = ap.amproc AND p.proargtypes[0] = a.atttypid
       LEFT JOIN pg_namespace pn ON pn.oid = p.pronamespace
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      ORDER BY a.attnum`,
    [quoteQualified(table.schema, table.table)],
  );
  return rows.map((r) => ({ name: r.name, type: r.type, position: r.position, hashSchema: r.hash_schema, hashName: r.hash_name }));
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

/**
 * The fingerprint of one table in a single scan, computed by PostgreSQL: row
 * count, the sum (mod nothing: sum(bigint) accumulates in 128 bits) of a
 * hash of each row's column hashes, and optionally per-column sums. Sums
 * rather than XOR, because XOR lets a duplicated pair cancel out.
 */
async function fingerprintTable(client: ClientBase, table: TableRef, perColumn: boolean): Promise<TableFingerprint> {
  const columns = await columnsOf(client, table);
  const hashes = columns.map((column) => columnHashExpr(column));
  const rowHash = hashes.length === 0 ? '0' : `hashint8extended(${hashes.join(' # ')}, 0)`;
  const perColumnSums = perColumn ? hashes.map((h, i) => `, sum(${h})::text AS c${i}`).join('') : '';
  const { rows } = await client.query<Record<string, string | null>>(
    `SELECT count(*)::text AS n, coalesce(sum(${rowHash}), 0)::text AS h${perColumnSums} FROM ONLY ${quoteQualified(table.schema, table.table)}`,
  );
  const row = rows[0]!;
  const fingerprint: TableFingerprint = { rowCount: row.n ?? '0', rowHash: row.h ?? '0', columns: {} };
  columns.forEach((column, i) => {
    fingerprint.columns[column.name] = perColumn ? { type: column.type, hash: row[`c${i}`] ?? '0' } : { type: column.type };
  });
  return fingerprint;
}

export interface FingerprintOptions {
  perColumn: boolean;
  /** The caller holds a REPEATABLE READ transaction open (its snapshot is shared with pg_dump). */
  inTransaction?: boolean;
}

/** Fingerprint every table in one REPEATABLE READ snapshot, so they agree with each other. */
export async function fingerprintTables(client: ClientBase, tables: TableRef[], options: FingerprintOptions = { perColumn: true }): Promise<Fingerprint> {
  const result: Fingerprint = { takenAt: new Date().toISOString(), perColumn: options.perColumn, tables: {} };
  const own = options.inTransaction !== true;
  if (own) await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    for (const table of tables) result.tables[tableKey(table)] = await fingerprintTable(client, table, options.perColumn);
    if (own) await client.query('COMMIT');
  } catch (error) {
    if (own) await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
  return result;
}
