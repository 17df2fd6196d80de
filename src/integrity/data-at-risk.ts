import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../db/ident.js';

/** What a down is about to drop, found by reading its SQL. */
export interface DroppedObject {
  table: string;
  /** Undefined when the whole table goes. */
  column?: string;
  /** The down keeps the table but deletes rows (TRUNCATE, DELETE): integrity counts lost rows as corruption. */
  rowsDeleted?: boolean;
}

export interface DataAtRisk extends DroppedObject {
  revision: string;
  rows: number;
  /** Non-null values in the column (or rows, for a table). */
  values: number;
}

const NAME = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\.(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*))?`;
const DROP_TABLE = new RegExp(String.raw`\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?((?:${NAME})(?:\s*,\s*${NAME})*)`, 'gi');
const ALTER_TABLE = new RegExp(String.raw`\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(${NAME})([^;]*)`, 'gi');
const DROP_COLUMN = new RegExp(String.raw`\bDROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(${NAME})`, 'gi');
const DELETE_ROWS = new RegExp(String.raw`\b(?:TRUNCATE(?:\s+TABLE)?|DELETE\s+FROM)\s+((?:ONLY\s+)?(?:${NAME})(?:\s*,\s*(?:ONLY\s+)?${NAME})*)`, 'gi');
const NOT_A_COLUMN = /^(constraint|default|not|identity|expression)$/i;

/** Tables and columns a down's SQL drops (a reading of the text: modules and dynamic SQL are not seen). */
export function droppedBy(sql: string): DroppedObject[] {
  const text = sql.replace(/--[^\n]*/g, '');
  const found: DroppedObject[] = [];
  for (const match of text.matchAll(DROP_TABLE)) {
    for (const table of match[1]!.split(/\s*,\s*/)) found.push({ table: table.trim() });
  }
  for (const match of text.matchAll(ALTER_TABLE)) {
    for (const drop of match[2]!.matchAll(DROP_COLUMN)) {
      if (!NOT_A_COLUMN.test(drop[1]!)) found.push({ table: match[1]!, column: drop[1]!.replace(/^"|"$/g, '').replaceAll('""', '"') });
    }
  }
  for (const match of text.matchAll(DELETE_ROWS)) {
    for (const table of match[1]!.split(/\s*,\s*/)) found.push({ table: table.replace(/^ONLY\s+/i, '').trim(), rowsDeleted: true });
  }
  return found;
}

/** How many rows and non-null values the dropped objects hold now; objects that do not exist are skipped. */
export async function measureDataAtRisk(client: ClientBase, revision: string, dropped: DroppedObject[]): Promise<DataAtRisk[]> {
  const out: DataAtRisk[] = [];
  for (const item of dropped) {
    const { rows } = await client.query<{ schema: string; name: string; has_column: boolean }>(
      `SELECT n.nspname AS schema, c.relname AS name,
              EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $2 AND NOT a.attisdropped) AS has_column
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`,
      [item.table, item.column ?? ''],
    );
    const found = rows[0];
    if (!found || (item.column && !found.has_column)) continue;
    const counted = item.column ? `count(${quoteIdent(item.column)})` : 'count(*)';
    const { rows: counts } = await client.query<{ n: string; v: string }>(`SELECT count(*)::text AS n, ${counted}::text AS v FROM ${quoteQualified(found.schema, found.name)}`);
    out.push({
      revision,
      table: `${found.schema}.${found.name}`,
      ...(item.column ? { column: item.column } : {}),
      ...(item.rowsDeleted ? { rowsDeleted: true } : {}),
      rows: Number(counts[0]?.n ?? 0),
      values: Number(counts[0]?.v ?? 0),
    });
  }
  return out;
}

export function describeDataAtRisk(items: DataAtRisk[]): string {
  const dropped = items.filter((i) => !i.rowsDeleted);
  const deleted = items.filter((i) => i.rowsDeleted);
  const parts = [
    dropped.length === 0
      ? 'no data in dropped tables or columns'
      : dropped.map((i) => (i.column ? `${i.table}.${i.column}: ${i.values} non-null value(s) in ${i.rows} row(s)` : `${i.table}: ${i.rows} row(s)`)).join('; '),
  ];
  if (deleted.length > 0) {
    parts.push(
      `and rows deleted from tables that stay (${deleted.map((i) => `${i.table}: ${i.rows} row(s) now, by ${i.revision}`).join('; ')}): integrity counts lost rows as corruption and restores the snapshot, unless those tables are in integrity.tables.exclude`,
    );
  }
  return parts.join(', ');
}
