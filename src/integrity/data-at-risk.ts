import type { ClientBase } from 'pg';
import { foldUnquoted, quoteIdent, quoteQualified } from '../db/ident.js';
import { searchPathEntries } from '../db/search-path.js';
import { simpleQueryResults } from '../db/simple-query.js';
import { splitSql } from '../migrations/split-sql.js';
import { holdsNoRow } from './table-selection.js';

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

/** A down's SQL without its line comments, which the readings below must not take for statements. */
const uncommented = (sql: string): string => sql.replace(/--[^\n]*/g, '');

const SET_SEARCH_PATH = /^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?search_path\s*(?:TO|=)\s*([^;]*?)\s*;?\s*$/i;
const RESET_SEARCH_PATH = /^\s*RESET\s+(?:search_path|ALL)\b/i;
/** pg_dump's way, and a function's: set_config('search_path', '…', …). */
const SET_CONFIG_SEARCH_PATH = /\bset_config\s*\(\s*'search_path'\s*,\s*'((?:[^']|'')*)'/i;
/** "$user", left as it is written: it names the role's own schema, which the reading below does not look for. */
const USER_ENTRY = '$user';

/**
 * The search_path a statement sets for the statements after it: the schemas
 * (in order), null for the session's own again, undefined when it sets none.
 * A down that sets one (as a pg_dump-made or hand-written file often does)
 * names its tables through it.
 */
function searchPathSetBy(statement: string): string[] | null | undefined {
  if (RESET_SEARCH_PATH.test(statement)) return null;
  const set = SET_SEARCH_PATH.exec(statement);
  if (set) {
    if (/^DEFAULT$/i.test(set[1]!)) return null;
    // SET's list holds names and string constants (each one name, as written): the constants as quoted names
    const asSetting = set[1]!.replace(/'((?:[^']|'')*)'/g, (_quoted, name: string) => `"${name.replaceAll("''", "'").replaceAll('"', '""')}"`);
    return searchPathEntries(asSetting, USER_ENTRY);
  }
  const configured = SET_CONFIG_SEARCH_PATH.exec(statement);
  if (configured) return searchPathEntries(configured[1]!.replaceAll("''", "'"), USER_ENTRY);
  return undefined;
}

/** A name as the down wrote it, and the names to resolve in turn: itself when it is qualified or the session's path holds, else the down's search_path's schemas before it. */
interface NameRead {
  name: string;
  candidates: string[];
}

const isQualified = (name: string): boolean => /^(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)\./.test(name);

function readName(name: string, path: readonly string[] | null): NameRead {
  if (path === null || isQualified(name)) return { name, candidates: [name] };
  // "$user" and pg_temp name no schema of their own here; a table of pg_catalog is never the user's
  const schemas = path.filter((schema) => schema !== USER_ENTRY && schema !== 'pg_temp' && schema !== 'pg_catalog');
  return { name, candidates: schemas.map((schema) => `${quoteIdent(schema)}.${name}`) };
}

/**
 * Each statement of a down (uncommented), with the search_path in effect
 * for it: null for the session's own, which the names are resolved in.
 */
function statementsWithPath(sql: string): Array<{ text: string; path: string[] | null }> {
  let path: string[] | null = null;
  return splitSql(sql).statements.map((statement) => {
    const text = uncommented(statement.text);
    const at = { text, path };
    const set = searchPathSetBy(text);
    if (set !== undefined) path = set;
    return at;
  });
}

/** A column as PostgreSQL reads its name: quoted as written, else folded to lower case. */
const columnName = (written: string): string => (written.startsWith('"') ? written.slice(1, -1).replaceAll('""', '"') : foldUnquoted(written));

/** Tables and columns a down's SQL (uncommented) drops (a reading of the text: modules and dynamic SQL are not seen). */
function droppedBy(text: string): DroppedObject[] {
  const found: DroppedObject[] = [];
  for (const match of text.matchAll(DROP_TABLE)) {
    for (const table of match[1]!.split(/\s*,\s*/)) found.push({ table: table.trim() });
  }
  for (const match of text.matchAll(ALTER_TABLE)) {
    for (const drop of match[2]!.matchAll(DROP_COLUMN)) {
      if (!NOT_A_COLUMN.test(drop[1]!)) found.push({ table: match[1]!, column: columnName(drop[1]!) });
    }
  }
  for (const match of text.matchAll(DELETE_ROWS)) {
    for (const table of match[1]!.split(/\s*,\s*/)) found.push({ table: table.replace(/^ONLY\s+/i, '').trim(), rowsDeleted: true });
  }
  return found;
}

/** A down to measure: its SQL, or null when it is a module (whose text is not read). */
export interface DownToMeasure {
  revision: string;
  sql: string | null;
}

export interface DownsAtRisk {
  /** What the downs drop and delete, revision by revision (newest first), in the order their SQL says it. */
  items: DataAtRisk[];
  /**
   * The tables (`schema.table`) whose columns the downs may drop or rename,
   * which a rollback's integrity check compares column by column: every table
   * (true) when a down may change columns where its text does not show it.
   */
  perColumn: true | Set<string>;
}

/** Dynamic SQL and routines (DO, EXECUTE, CALL), and drops that cascade from a type, domain, function… to the columns using it. */
const HIDDEN_COLUMN_CHANGES = /\b(?:DO|EXECUTE|CALL)\b|\bDROP\s+(?:TYPE|DOMAIN|EXTENSION|COLLATION|FUNCTION|PROCEDURE|OPERATOR|SCHEMA|SEQUENCE)\b[^;]*\bCASCADE\b/i;

/** Tables a down's SQL (uncommented) alters (it may drop, rename or retype their columns). */
function alteredBy(text: string): string[] {
  return [...text.matchAll(ALTER_TABLE)].map((match) => match[1]!);
}

interface Resolved {
  schema: string;
  name: string;
  has_column: boolean;
  /** `schema.table` of the relation and of its partitions and inheritance children, which an ALTER TABLE of it alters too. */
  family: string[];
  /** The relation and every member of its family hold no row (holdsNoRow): counting is not needed. */
  empty: boolean;
}

/**
 * What the downs drop, measured now, in two round trips whatever their
 * number: one catalog query resolves every name, one multi-statement query
 * counts each table's rows and non-null values once. Objects that do not
 * exist are skipped.
 */
export async function measureDownsAtRisk(client: ClientBase, measured: DownToMeasure[]): Promise<DownsAtRisk> {
  const downs = measured.map((down) => ({ revision: down.revision, sql: down.sql === null ? null : uncommented(down.sql), statements: down.sql === null ? [] : statementsWithPath(down.sql) }));
  const wanted = downs.flatMap((down) =>
    down.statements.flatMap(({ text, path }) => droppedBy(text).map((item) => ({ revision: down.revision, item, name: readName(item.table, path) }))),
  );
  const altered = downs.flatMap((down) => down.statements.flatMap(({ text, path }) => alteredBy(text).map((table) => readName(table, path))));
  const names = [...wanted.map((w) => w.name), ...altered];
  const resolved = await resolveNames(client, names, [...wanted.map((w) => w.item.column ?? ''), ...altered.map(() => '')]);
  const found = wanted.flatMap((w, i) => {
    const at = resolved[i];
    return at && (!w.item.column || at.has_column) ? [{ ...w, at }] : [];
  });
  const counts = await countValues(client, found.map((f) => ({ schema: f.at.schema, name: f.at.name, column: f.item.column, empty: f.at.empty })));
  const items = found.map((f, i): DataAtRisk => ({
    revision: f.revision,
    table: `${f.at.schema}.${f.at.name}`,
    ...(f.item.column ? { column: f.item.column } : {}),
    ...(f.item.rowsDeleted ? { rowsDeleted: true } : {}),
    rows: counts[i]!.rows,
    values: counts[i]!.values,
  }));
  const hidden = downs.some((down) => down.sql === null || HIDDEN_COLUMN_CHANGES.test(down.sql));
  const alteredTables = resolved.slice(wanted.length).flatMap((at) => at?.family ?? []);
  return { items, perColumn: hidden ? true : new Set(alteredTables) };
}

/**
 * Each name as to_regclass resolves it now (undefined: no such relation),
 * the first of its candidates that does, and whether it has the column
 * paired with it.
 */
async function resolveNames(client: ClientBase, names: NameRead[], columns: string[]): Promise<Array<Resolved | undefined>> {
  if (names.length === 0) return [];
  const tried = names.flatMap((name, i) => name.candidates.map((candidate, rank) => ({ candidate, col: columns[i]!, i: i + 1, rank })));
  // the families in one recursion over every name: a recursion per name cost a fifth of a millisecond each
  const { rows } = await client.query<Resolved & { i: number }>(
    `WITH RECURSIVE named AS (
       SELECT DISTINCT ON (w.i) w.i, w.col, c.oid, n.nspname, c.relname
         FROM unnest($1::text[], $2::text[], $3::int[], $4::int[]) AS w(rel, col, i, rank)
         JOIN pg_class c ON c.oid = to_regclass(w.rel) JOIN pg_namespace n ON n.oid = c.relnamespace
        ORDER BY w.i, w.rank
     ),
     family(i, oid) AS (SELECT i, oid FROM named UNION SELECT f.i, h.inhrelid FROM family f JOIN pg_inherits h ON h.inhparent = f.oid),
     family_names(i, family, empty) AS (
       SELECT f.i, array_agg(fn.nspname || '.' || fc.relname), bool_and(${holdsNoRow('fc')})
         FROM family f JOIN pg_class fc ON fc.oid = f.oid JOIN pg_namespace fn ON fn.oid = fc.relnamespace GROUP BY f.i
     )
     SELECT named.i::int AS i, named.nspname AS schema, named.relname AS name,
            EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = named.oid AND a.attname = named.col AND NOT a.attisdropped) AS has_column,
            family_names.family, family_names.empty
       FROM named JOIN family_names USING (i)`,
    [tried.map((t) => t.candidate), tried.map((t) => t.col), tried.map((t) => t.i), tried.map((t) => t.rank)],
  );
  const out: Array<Resolved | undefined> = names.map(() => undefined);
  for (const row of rows) out[row.i - 1] = { schema: row.schema, name: row.name, has_column: row.has_column, family: row.family, empty: row.empty };
  return out;
}

/**
 * Rows, and non-null values of the column (rows again without one), of each
 * relation: one scan per table, all in one round trip; none for a table
 * whose family has no page.
 */
async function countValues(client: ClientBase, wanted: Array<{ schema: string; name: string; column: string | undefined; empty: boolean }>): Promise<Array<{ rows: number; values: number }>> {
  const byTable = new Map<string, { schema: string; name: string; counted: string[] }>();
  const slots = wanted.map((w) => {
    if (w.empty) return undefined;
    const key = JSON.stringify([w.schema, w.name]);
    const table = byTable.get(key) ?? { schema: w.schema, name: w.name, counted: [] };
    byTable.set(key, table);
    table.counted.push(w.column ? `count(${quoteIdent(w.column)})` : 'count(*)');
    return { table, index: table.counted.length - 1 };
  });
  const tables = [...byTable.values()];
  const rowsOf = new Map<(typeof tables)[number], Record<string, string>>();
  if (tables.length > 0) {
    const sql = tables.map((t) => `SELECT count(*)::text AS n${t.counted.map((c, i) => `, ${c}::text AS v${i}`).join('')} FROM ${quoteQualified(t.schema, t.name)}`).join(';\n');
    const results = await simpleQueryResults<Record<string, string>>(client, sql);
    tables.forEach((t, i) => rowsOf.set(t, results[i]!.rows[0]!));
  }
  return slots.map((slot) => {
    if (!slot) return { rows: 0, values: 0 };
    const row = rowsOf.get(slot.table)!;
    return { rows: Number(row.n ?? 0), values: Number(row[`v${slot.index}`] ?? 0) };
  });
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
