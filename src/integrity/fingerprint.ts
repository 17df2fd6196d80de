import { createHash } from 'node:crypto';
import type { ClientBase } from 'pg';
import { quoteIdent, quoteQualified } from '../db/ident.js';
import { simpleQueryResults } from '../db/simple-query.js';
import { holdsNoRow, tableKey, type TableRef } from './table-selection.js';

export interface ColumnFingerprint {
  type: string;
  /** Sum of the column's salted value hashes; present when per-column hashes were asked for this table. */
  hash?: string;
  /** The column's type when this fingerprint was taken, when its values were hashed as the earlier fingerprint's `type` (cast to it) to compare with it. */
  castFrom?: string;
  /** An enum's (a domain's over one: that enum's) type OID and its labels by their OIDs: a later fingerprint of the same type reads its values as these labels (see castToEarlier). */
  enum?: EnumLabels;
  /** `hash` with a cast between timestamptz and a type without a zone made in UTC instead of the session's TimeZone (see castExpr). */
  hashInUtc?: string;
  /** Its pg_attribute.attnum, kept with per-column hashes: a later fingerprint of the same table finds it under a name a down gave it (see followRenames). */
  attnum?: number;
  /** Its name now, when it is recorded under the earlier fingerprint's name (see followRenames). */
  renamed?: string;
  /** The table's row hash over its other columns, for a column a down may drop (FingerprintOptions.rowsWithout): compared with the whole rows it leaves. */
  rowHashWithout?: string;
}

export interface EnumLabels {
  typeOid: string;
  labels: Record<string, string>;
}

export interface TableFingerprint {
  rowCount: string;
  /** Order-independent: the sum over rows of a hash of all the row's column hashes. */
  rowHash: string;
  columns: Record<string, ColumnFingerprint>;
  /** Set when the row hash covers only these columns (a comparison with an earlier fingerprint asked for them); otherwise it covers every column. */
  rowHashColumns?: string[];
  /** The table's OID: a comparison in the same database finds it under a later name. */
  oid?: string;
  /** `rowHash` with a cast between timestamptz and a type without a zone made in UTC instead of the session's TimeZone (see castExpr). */
  rowHashInUtc?: string;
  /** The partitioned table at the root of its partition tree, when every leaf of that tree was fingerprinted with it: their sum (sumFingerprints) is that table's. */
  partitionOf?: string;
}

export interface Fingerprint {
  takenAt: string;
  /** How values were hashed (see HASHING); absent: version 1, from a belay before the version was recorded. */
  hashing?: HashingVersion;
  /** Per-column hashes were asked for: of every table (written before they were chosen per table), or of the tables whose columns then hold a `hash`. */
  perColumn: boolean;
  tables: Record<string, TableFingerprint>;
  /** The state of every sequence no column owns (absent: taken without them, or by a belay before they were). */
  sequences?: Record<string, SequenceState>;
  /** The large objects (absent: taken without them, or by a belay before they were). */
  largeObjects?: LargeObjectsFingerprint;
}

export interface SequenceState {
  /** As pg_sequences shows it: null until the sequence is first read. */
  lastValue: string | null;
  increment: string;
  /** It wraps around at its end (CYCLE): nextval then moves it back. */
  cycle?: boolean;
}

export interface LargeObjectsFingerprint {
  count: string;
  /** The set of their OIDs: the sum of a hash of each. */
  oids: string;
  /** The sum of a hash of each one's OID and content; null when the role may not read `unreadable` of them. */
  contents: string | null;
  unreadable: string;
}

/**
 * How values are hashed. 1: by its type's own extended hash function wherever
 * the type has one. 2: only for the built-in types whose equality is identity
 * (below); every other type by the text its output function writes, since a
 * hash operator class may call distinct values equal (float 0 and -0,
 * interval '1 day' and '24 hours', citext 'A' and 'a', 1.0 and 1.00 inside a
 * jsonb): a change between such values passed unseen. The text is written
 * under fixed settings (date, time, float and bytea output), whichever session
 * reads it. A fingerprint compared with an earlier one is taken the earlier
 * one's way.
 */
export type HashingVersion = 1 | 2;
export const HASHING: HashingVersion = 2;

/** How `fingerprint` hashed its values: to take one to compare with it the same way. */
export const hashingOf = (fingerprint: Fingerprint): HashingVersion => fingerprint.hashing ?? 1;

/**
 * Built-in types (their fixed OIDs) whose equal values are the same value: bool, bytea, "char", name, int8,
 * int2, int4, text (a nondeterministic collation is hashed under "C"), oid, money, macaddr, inet, bpchar (a
 * char(n) is always padded to n), varchar, date, time, timestamp, timestamptz, uuid; and numeric, whose equal
 * values differ only in their display scale, which a column's type change alters (numeric(14,4) to (10,2) and
 * back) without changing a number.
 */
const IDENTITY_HASHED_TYPES = [16, 17, 18, 19, 20, 21, 23, 25, 26, 790, 829, 869, 1042, 1043, 1082, 1083, 1114, 1184, 1700, 2950];

/**
 * The session's TimeZone, kept before FIXED_OUTPUT sets UTC: the revisions ran
 * in it, so a cast between timestamptz and a type without a zone, as they cast,
 * takes it (see castExpr).
 */
const KEEP_TIME_ZONE = "SELECT pg_catalog.set_config('belay.time_zone', pg_catalog.current_setting('TimeZone'), true)";
const SESSION_TIME_ZONE = "pg_catalog.current_setting('belay.time_zone')";

/** What the text of a value depends on, fixed for a fingerprint of version 2 (version 1 read the session's). */
const FIXED_OUTPUT = "SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'";

/** How the values of one type are hashed: by the type's own extended hash function, else by the text its output function writes. */
interface TypeHashing {
  /** The type's OID. */
  typeOid: string;
  /** The extended hash function (schema, name) of the type's default hash opclass, if it has one. */
  hashSchema: string | null;
  hashName: string | null;
  /** The type's output function (schema, name): the text pg_dump writes. */
  outputSchema: string;
  outputName: string;
  /** A domain's base type (through domains over domains), which its output function takes: the value is cast to it. */
  outputAs: string | null;
}

interface ColumnInfo extends TypeHashing {
  name: string;
  attnum: number;
  /** The name it is hashed and recorded under, when not its own: an earlier fingerprint's, before a down renamed it (see followRenames). */
  as?: string;
  type: string;
  /** Its values are hashed as this type (PostgreSQL's name for it, no modifier): cast to it. */
  castTo?: string;
  castFrom?: string;
  /** The OID of castFrom. */
  castFromOid?: string;
  /** The type an earlier fingerprint recorded, when it differs: how to compare with it (see castToEarlier). */
  earlier?: EarlierType;
  /** Its values are cast to castTo from their text (see readableAs). */
  throughText?: boolean;
  /** Its collation is nondeterministic: hashed under "C", so that values equal only under the collation differ. */
  nondeterministic: boolean;
  enum?: EnumLabels;
  /** Labels of its enum an earlier fingerprint of the same type saw otherwise (renamed since): its values are hashed as the earlier labels. */
  relabel?: { now: string[]; then: string[] };
}

type EarlierType = TypeHashing & { type: string; castTo?: string; throughText?: boolean };

interface TableColumns {
  oid: string;
  columns: ColumnInfo[];
  /** The table has no pages: no row in any snapshot, its fingerprint is known without reading it. */
  empty: boolean;
  partition: boolean;
}

/** Select-list items and joins naming the hashing of the type whose OID is `typeOid` (see TypeHashing, HashingVersion). */
const typeHashing = (typeOid: string, version: HashingVersion): { select: string; joins: string } => ({
  select: `ty.oid::text AS type_oid, hp.nspname AS hash_schema, h.proname AS hash_name, op.nspname AS output_schema, o.proname AS output_name,
            ty.typtype = 'd' AS is_domain`,
  joins: `
       JOIN pg_type ty ON ty.oid = ${typeOid}
       JOIN pg_proc o ON o.oid = ty.typoutput
       JOIN pg_namespace op ON op.oid = o.pronamespace
       LEFT JOIN pg_opclass oc ON oc.opcintype = ty.oid AND oc.opcdefault
             AND oc.opcmethod = (SELECT oid FROM pg_am WHERE amname = 'hash')${version === 1 ? '' : `
             AND ty.oid IN (${IDENTITY_HASHED_TYPES.join(', ')})`}
       LEFT JOIN pg_amproc ap ON ap.amprocfamily = oc.opcfamily AND ap.amprocnum = 2
             AND ap.amproclefttype = ty.oid AND ap.amprocrighttype = ty.oid
       LEFT JOIN pg_proc h ON h.oid = ap.amproc AND h.proargtypes[0] = ty.oid
       LEFT JOIN pg_namespace hp ON hp.oid = h.pronamespace`,
});

interface HashingRow {
  type_oid: string;
  hash_schema: string | null;
  hash_name: string | null;
  output_schema: string;
  output_name: string;
  is_domain: boolean;
}

/** A domain's base type (format_type), and its labels when that is an enum (its values are the enum's). */
interface DomainBase {
  base: string;
  enum?: EnumLabels;
}

/**
 * The base type of each domain among `rows`, through domains over domains:
 * its output function takes the base type. Asked apart, and only when there
 * is one: a recursive CTE in the column query's select list made it ten
 * times slower, domains or not (25 against 550 ms at 800 tables).
 */
async function domainBases(client: ClientBase, rows: readonly HashingRow[]): Promise<Map<string, DomainBase>> {
  const domains = [...new Set(rows.filter((r) => r.is_domain).map((r) => r.type_oid))];
  if (domains.length === 0) return new Map();
  const { rows: bases } = await client.query<{ domain: string; base: string; base_oid: string; labels: Record<string, string> | null }>(
    `WITH RECURSIVE base(domain, oid) AS (
       SELECT t.oid, t.typbasetype FROM pg_type t WHERE t.oid = ANY($1::oid[])
       UNION ALL
       SELECT base.domain, b.typbasetype FROM base JOIN pg_type b ON b.oid = base.oid AND b.typtype = 'd'
     )
     SELECT base.domain::text AS domain, format_type(base.oid, NULL) AS base, b.oid::text AS base_oid,
            CASE WHEN b.typtype = 'e' THEN (SELECT json_object_agg(e.oid, e.enumlabel) FROM pg_enum e WHERE e.enumtypid = b.oid) END AS labels
       FROM base JOIN pg_type b ON b.oid = base.oid AND b.typtype <> 'd'`,
    [domains],
  );
  return new Map(bases.map((r) => [r.domain, { base: r.base, ...(r.labels ? { enum: { typeOid: r.base_oid, labels: r.labels } } : {}) }]));
}

const typeHashingOf = (r: HashingRow, bases: ReadonlyMap<string, DomainBase>): TypeHashing => ({
  typeOid: r.type_oid,
  hashSchema: r.hash_schema,
  hashName: r.hash_name,
  outputSchema: r.output_schema,
  outputName: r.output_name,
  outputAs: bases.get(r.type_oid)?.base ?? null,
});

/**
 * The columns of every table in one catalog query, each with its type's
 * hashing (the extended hash function, amprocnum 2, of its default hash
 * operator class, and its output function), and whether the table is empty
 * for sure (holdsNoRow).
 */
async function columnsOf(client: ClientBase, tables: TableRef[], version: HashingVersion): Promise<TableColumns[]> {
  const hashing = typeHashing('a.atttypid', version);
  const { rows } = await client.query<HashingRow & { i: number; oid: string; empty: boolean; partition: boolean; name: string; attnum: number; type: string; nondeterministic: boolean; labels: Record<string, string> | null }>(
    `WITH t AS MATERIALIZED (
       SELECT t.i, c.oid, ${holdsNoRow('c')} AS empty, c.relispartition AS partition
         FROM unnest($1::text[]) WITH ORDINALITY AS t(rel, i) JOIN pg_class c ON c.oid = t.rel::regclass
     )
     SELECT t.i::int AS i, t.oid::text AS oid, t.empty, t.partition, a.attname AS name, a.attnum::int AS attnum, format_type(a.atttypid, a.atttypmod) AS type,
            coalesce((SELECT NOT co.collisdeterministic FROM pg_collation co WHERE co.oid = a.attcollation), false) AS nondeterministic,
            CASE WHEN ty.typtype = 'e' THEN (SELECT json_object_agg(e.oid, e.enumlabel) FROM pg_enum e WHERE e.enumtypid = ty.oid) END AS labels,
            ${hashing.select}
       FROM t
       JOIN pg_attribute a ON a.attrelid = t.oid${hashing.joins}
      WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      ORDER BY t.i, a.attnum`,
    [tables.map((table) => quoteQualified(table.schema, table.table))],
  );
  // a table without columns has no row here: it is read
  const byTable: TableColumns[] = tables.map(() => ({ oid: '', columns: [], empty: false, partition: false }));
  const bases = await domainBases(client, rows);
  for (const r of rows) {
    const table = byTable[r.i - 1]!;
    table.oid = r.oid;
    table.empty = r.empty;
    table.partition = r.partition;
    const labels = r.labels ? { typeOid: r.type_oid, labels: r.labels } : bases.get(r.type_oid)?.enum;
    table.columns.push({ name: r.name, attnum: r.attnum, type: r.type, nondeterministic: r.nondeterministic, ...typeHashingOf(r, bases), ...(labels ? { enum: labels } : {}) });
  }
  return byTable;
}

/**
 * The hashing of the earlier types named, as PostgreSQL resolves them now:
 * the type to cast to, without modifier (a value that fitted the earlier
 * modifier is unchanged by it), and how that type hashes. Named by its own
 * schema and name: the SQL spelling format_type gives reads with a
 * modifier of its own for some (`character` is char(1), `bit` bit(1)), and
 * a cast to it would cut the values. A name that no longer resolves is left out.
 */
async function earlierTypes(client: ClientBase, names: string[], version: HashingVersion): Promise<Map<string, TypeHashing & { castTo: string }>> {
  const hashing = typeHashing('to_regtype(w.name)', version);
  const { rows } = await client.query<HashingRow & { name: string; type_schema: string; type_name: string }>(
    `SELECT w.name, (SELECT nspname FROM pg_namespace WHERE oid = ty.typnamespace) AS type_schema, ty.typname AS type_name, ${hashing.select}
       FROM unnest($1::text[]) AS w(name)${hashing.joins}`,
    [names],
  );
  const bases = await domainBases(client, rows);
  return new Map(rows.map((r) => [r.name, { castTo: quoteQualified(r.type_schema, r.type_name), ...typeHashingOf(r, bases) }]));
}

/** The name `column` is hashed and recorded under. */
const keyOf = (column: ColumnInfo): string => column.as ?? column.name;

/** Seeds made so far: most column names (id, created_at, …) recur from table to table. */
const seeds = new Map<string, number>();

/** A seed per column name: stable when other columns come and go, different per column. */
function seedOf(name: string): number {
  let seed = seeds.get(name);
  if (seed === undefined) {
    seed = createHash('sha256').update(name).digest().readUIntBE(0, 6);
    seeds.set(name, seed);
  }
  return seed;
}

/**
 * One column's hash, salted by its name so that values swapping columns
 * change the fingerprint. Types with a hash opclass use their own typed hash
 * (much cheaper than text); the rest (json, xml, point, …) hash the text
 * their output function writes, which is what pg_dump writes (an xml value's
 * cast to text keeps a declaration its output drops). A NULL gets a
 * per-column constant no hash is likely to equal.
 */
function columnHashExpr(column: ColumnInfo, params: string[][], zone = SESSION_TIME_ZONE): string {
  const seed = seedOf(keyOf(column));
  const name = quoteIdent(column.name);
  const cast = column.castTo ? castExpr(column.throughText ? `CAST(${name} AS text)` : name, column.castFromOid, column.typeOid, column.castTo, zone) : name;
  const value = column.nondeterministic && !column.castTo ? `(${cast} COLLATE "C")` : cast;
  if (column.hashSchema && column.hashName) return `coalesce(${quoteQualified(column.hashSchema, column.hashName)}(${value}, ${seed}), ${-seed - 1})`;
  let text = `${quoteQualified(column.outputSchema, column.outputName)}(${column.outputAs ? `CAST(${value} AS ${column.outputAs})` : value})::text`;
  if (column.relabel && !column.castTo) {
    params.push(column.relabel.now, column.relabel.then);
    text = `coalesce(($${params.length}::text[])[array_position($${params.length - 1}::text[], ${text})], ${text})`;
  }
  return `coalesce(hashtextextended(${text}, ${seed}), ${-seed - 1})`;
}

const TEXT = '25';
const TIMESTAMPTZ = '1184';
const UTC = "'UTC'";
/** timestamp, date, time: a timestamptz cast to one is its wall clock in the session's TimeZone. */
const WALL_CLOCK_OF = ['1114', '1082', '1083'];
/** timestamp, date: one cast to timestamptz is read as a wall clock in the session's TimeZone. */
const WALL_CLOCK_TO = ['1114', '1082'];
/** text, varchar: a timestamptz cast to one is written in the session's TimeZone. */
const TEXT_OF = [TEXT, '1043'];

/** Whether casting the column to its earlier type reads or writes a wall clock, or writes its text, which takes a zone. */
const castTakesZone = (column: ColumnInfo): boolean =>
  column.castTo !== undefined &&
  ((column.castFromOid === TIMESTAMPTZ && (WALL_CLOCK_OF.includes(column.typeOid) || TEXT_OF.includes(column.typeOid))) ||
    (column.typeOid === TIMESTAMPTZ && column.castFromOid !== undefined && WALL_CLOCK_TO.includes(column.castFromOid)));

/**
 * The text a timestamptz `value` is written as in `zone` (SQL), as its output
 * writes it in the ISO DateStyle (FIXED_OUTPUT) with that TimeZone, which
 * this session's is not: the wall clock, then the zone's offset ("+01",
 * "-03:30", or "+00:53:28" for a local mean time) before any " BC".
 */
const timestamptzText = (value: string, zone: string): string => {
  const wall = `(${value} AT TIME ZONE ${zone})`;
  const offset = `regexp_replace(regexp_replace((${wall} - (${value} AT TIME ZONE ${UTC}))::text, '(:00)?:00$', ''), '^(?!-)', '+')`;
  return `CASE WHEN isfinite(${value}) THEN regexp_replace(${wall}::text, '( BC)?$', ${offset} || E'\\\\1') ELSE ${value}::text END`;
};

/**
 * `value`, of the type `fromOid`, cast to `castTo` (OID `toOid`) in `zone`
 * (SQL): the session's TimeZone, as a cast without USING makes it, or UTC,
 * as a migration that writes `AT TIME ZONE 'UTC'` makes it; a down is
 * trusted when either reads its values back (planTable).
 */
function castExpr(value: string, fromOid: string | undefined, toOid: string, castTo: string, zone: string): string {
  if (fromOid === TIMESTAMPTZ && WALL_CLOCK_OF.includes(toOid)) return `CAST((${value} AT TIME ZONE ${zone}) AS ${castTo})`;
  if (toOid === TIMESTAMPTZ && fromOid !== undefined && WALL_CLOCK_TO.includes(fromOid)) return `(CAST(${value} AS timestamp) AT TIME ZONE ${zone})`;
  if (fromOid === TIMESTAMPTZ && TEXT_OF.includes(toOid)) return `CAST(${timestamptzText(value, zone)} AS ${castTo})`;
  return `CAST(${value} AS ${castTo})`;
}

const rowHashOf = (hashes: string[]): string => (hashes.length === 0 ? '0' : `hashint8extended(${hashes.join(' # ')}, 0)`);

interface TablePlan {
  key: string;
  columns: ColumnInfo[];
  perColumn: boolean;
  /** The columns (their index) whose rowHashWithout is computed, as `w<i>`. */
  without: number[];
  /** Names of the columns the row hash covers, when not all of them. */
  rowColumns?: string[];
  sql: string;
  /** Its parameters: only a table read alone (see castToEarlier) has any. */
  params: string[][];
}

/**
 * The fingerprint of one table in a single scan, computed by PostgreSQL: row
 * count, the sum (mod nothing: sum(bigint) accumulates in 128 bits) of a
 * hash of each row's column hashes, and optionally per-column sums. Sums
 * rather than XOR, because XOR lets a duplicated pair cancel out.
 */
function planTable(table: TableRef, key: string, columns: ColumnInfo[], perColumn: boolean, rowColumns: ReadonlySet<string> | undefined, rowsWithout?: true | ReadonlySet<string>): TablePlan {
  const from = `FROM ONLY ${quoteQualified(table.schema, table.table)}`;
  const inRow = rowColumns ? columns.filter((column) => rowColumns.has(keyOf(column))) : columns;
  const restricted = rowColumns ? { rowColumns: inRow.map(keyOf) } : {};
  const params: string[][] = [];
  const zoned = columns.some(castTakesZone);
  if (!perColumn) {
    const inUtc = zoned ? `, coalesce(sum(${rowHashOf(inRow.map((column) => columnHashExpr(column, params, UTC)))}), 0)::text AS hu` : '';
    return { key, columns, perColumn, without: [], ...restricted, params, sql: `SELECT count(*)::text AS n, coalesce(sum(${rowHashOf(inRow.map((column) => columnHashExpr(column, params)))}), 0)::text AS h${inUtc} ${from}` };
  }
  // Each column's hash feeds both the row hash and its column's sum: computed once per row in a subquery.
  // A volatile, parallel-safe and cheap call in its select list (pg_is_in_recovery(), a flag in shared
  // memory) keeps the planner from flattening it into the aggregate, which would evaluate every column
  // hash twice; OFFSET 0 would too, but rules out a parallel scan. (pg_jit_available() would load the
  // JIT library into every backend and worker.)
  const hashed = columns.flatMap((column, i) => [`${columnHashExpr(column, params)} AS c${i}`, ...(castTakesZone(column) ? [`${columnHashExpr(column, params, UTC)} AS u${i}`] : [])]);
  const inRowRefs = (utc: boolean): string[] => columns.flatMap((column, i) => (inRow.includes(column) ? [utc && castTakesZone(column) ? `u${i}` : `c${i}`] : []));
  const sums = columns.map((column, i) => `, sum(c${i})::text AS c${i}${castTakesZone(column) ? `, sum(u${i})::text AS u${i}` : ''}`).join('');
  const inUtc = zoned ? `, coalesce(sum(${rowHashOf(inRowRefs(true))}), 0)::text AS hu` : '';
  let source = `(SELECT ${[...hashed, 'pg_catalog.pg_is_in_recovery() AS keep'].join(', ')} ${from}) AS r`;
  // The row hash without each column a down may drop: the rows it leaves are then compared whole, a swap
  // between rows too, which per-column sums miss. The XOR of every column's hash is made once per row, one level up.
  const without = rowsWithout === undefined || columns.length < 2 ? [] : columns.flatMap((column, i) => (rowsWithout === true || rowsWithout.has(column.name) ? [i] : []));
  if (without.length > 0) source = `(SELECT r.*, ${columns.map((_column, i) => `c${i}`).join(' # ')} AS x, pg_catalog.pg_is_in_recovery() AS keep_x FROM ${source}) AS r`;
  const withoutSums = without.map((i) => `, sum(hashint8extended(x # c${i}, 0))::text AS w${i}`).join('');
  return {
    key,
    columns,
    perColumn,
    without,
    ...restricted,
    params,
    sql: `SELECT count(*)::text AS n, coalesce(sum(${rowHashOf(inRowRefs(false))}), 0)::text AS h${inUtc}${sums}${withoutSums} FROM ${source}`,
  };
}

function readTable(plan: TablePlan, oid: string, row: Record<string, string | null>): TableFingerprint {
  const fingerprint: TableFingerprint = {
    rowCount: row.n ?? '0',
    rowHash: row.h ?? '0',
    columns: {},
    ...(plan.rowColumns ? { rowHashColumns: plan.rowColumns } : {}),
    oid,
    ...(row.hu !== undefined && row.hu !== null ? { rowHashInUtc: row.hu } : {}),
  };
  plan.columns.forEach((column, i) => {
    const inUtc = row[`u${i}`];
    fingerprint.columns[keyOf(column)] = {
      type: column.type,
      ...(plan.perColumn ? { hash: row[`c${i}`] ?? '0', attnum: column.attnum } : {}),
      ...(plan.perColumn && inUtc !== undefined ? { hashInUtc: inUtc ?? '0' } : {}),
      ...(plan.without.includes(i) ? { rowHashWithout: row[`w${i}`] ?? '0' } : {}),
      ...(column.castFrom ? { castFrom: column.castFrom } : {}),
      ...(keyOf(column) !== column.name ? { renamed: column.name } : {}),
      ...(column.enum && !column.castFrom ? { enum: column.enum } : {}),
    };
  });
  return fingerprint;
}

/** A table to fingerprint, and the key its fingerprint goes under when not its own name (an earlier fingerprint's, before a rename). */
export type FingerprintTarget = TableRef & { as?: string };

export interface FingerprintOptions {
  /** Per-column hashes: for every table (true), for none (false), or for the tables named (keys as in the result). */
  perColumn: boolean | ReadonlySet<string>;
  /** The caller holds a REPEATABLE READ transaction open (its snapshot is shared with pg_dump). */
  inTransaction?: boolean;
  /**
   * Per table (key as in the result), the columns of an earlier fingerprint
   * it is compared with: the row hash covers only those, and a column whose
   * type changed since is hashed as a value of its earlier type (cast to it,
   * or from its text), where PostgreSQL still knows that type and its values
   * read as one.
   */
  earlier?: ReadonlyMap<string, Readonly<Record<string, ColumnFingerprint>>>;
  /**
   * Per table with per-column sums (key as in the result), the columns a down
   * may drop, each given a row hash over the other columns (rowHashWithout);
   * true: every column of those tables. Only for a fingerprint compared with none.
   */
  rowsWithout?: true | ReadonlyMap<string, ReadonlySet<string>>;
  /** The tables (keys as in the result) that are the very table their earlier fingerprint read (its OID): their columns are followed through renames (see followRenames). */
  sameTables?: ReadonlySet<string>;
  /** Hash as this version does: an earlier fingerprint's, to compare with it (default HASHING). */
  hashing?: HashingVersion;
  /**
   * Scan without parallel workers: beside a whole-database pg_dump on the
   * same machine, the longer of the two, whose compression they would take
   * CPU from (a parallel scan finishes sooner, and pg_dump later).
   */
  oneProcess?: boolean;
  /** Also every sequence's state and the large objects (see fingerprintObjects). */
  objects?: boolean;
}

/** The per-column sums a fingerprint keeps, and the row hashes without a column (a rollback's comparison needs them). */
export type ColumnSums = Pick<FingerprintOptions, 'perColumn' | 'rowsWithout'>;

/**
 * SQL: the current role may read the large object whose pg_largeobject_metadata
 * row is `m` (it has its owner's privileges, or SELECT on it), as lo_get checks.
 */
const readableLargeObject = (m: string): string =>
  `(current_setting('lo_compat_privileges')::bool OR pg_has_role(${m}.lomowner, 'USAGE')
    OR EXISTS (SELECT FROM aclexplode(${m}.lomacl) a WHERE a.privilege_type = 'SELECT' AND (a.grantee = 0 OR pg_has_role(a.grantee, 'USAGE'))))`;

/**
 * What lives outside the tables: the state of every sequence no column owns
 * and the role may read (those of serial and identity columns are left out:
 * each read opens the sequence, some 10 ms per fingerprint on a schema of
 * 300 tables), and the large objects. A database without large objects pays
 * one catalog query, which reads the sequences too; with some, their contents
 * are hashed through lo_get, which checks the role's privileges
 * (pg_largeobject itself is readable by superusers only).
 */
async function fingerprintObjects(client: ClientBase): Promise<Pick<Fingerprint, 'sequences' | 'largeObjects'>> {
  // has_sequence_privilege raises on a relation that is not a sequence: asked only of those the materialized CTE holds
  const { rows } = await client.query<{ sequences: Array<{ schema: string; name: string; last_value: string | null; increment: string; cycle: boolean }>; any_large_object: boolean }>(
    `WITH q AS MATERIALIZED (
       SELECT q.seqrelid, n.nspname, c.relname, q.seqincrement, q.seqcycle
         FROM pg_sequence q JOIN pg_class c ON c.oid = q.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname <> 'belay' AND NOT pg_is_other_temp_schema(n.oid)
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
     )
     SELECT coalesce((SELECT json_agg(json_build_object('schema', nspname, 'name', relname, 'last_value', pg_sequence_last_value(seqrelid)::text, 'increment', seqincrement::text, 'cycle', seqcycle))
                        FROM q WHERE has_sequence_privilege(seqrelid, 'SELECT, USAGE')), '[]') AS sequences,
            EXISTS (SELECT FROM pg_largeobject_metadata) AS any_large_object`,
  );
  const { sequences, any_large_object: anyLargeObject } = rows[0]!;
  const states = Object.fromEntries(sequences.map((q) => [tableKey({ schema: q.schema, table: q.name }), { lastValue: q.last_value, increment: q.increment, cycle: q.cycle }]));
  if (!anyLargeObject) return { sequences: states, largeObjects: { count: '0', oids: '0', contents: '0', unreadable: '0' } };
  const lo = await client.query<LargeObjectsFingerprint>(
    `SELECT count(*)::text AS count, coalesce(sum(hashoidextended(m.oid, 0)), 0)::text AS oids,
            count(*) FILTER (WHERE NOT m.readable)::text AS unreadable,
            CASE WHEN bool_and(m.readable) THEN coalesce(sum(hashtextextended(m.oid::text || ':' || md5(lo_get(m.oid)), 0)) FILTER (WHERE m.readable), 0)::text END AS contents
       FROM (SELECT l.oid, ${readableLargeObject('l')} AS readable FROM pg_largeobject_metadata l) AS m`,
  );
  return { sequences: states, largeObjects: lo.rows[0]! };
}

/** Tables per round trip: their aggregate queries go as one multi-statement simple query. */
const BATCH = 50;

/**
 * How to compare each column whose type differs from its earlier one: cast to
 * that type, where it resolves. One that no longer does (a down dropped the
 * enum, domain or extension type it turned the column back from) hashed, in
 * version 2, by its output's text, as every type that is not built in: the
 * column's own output's text is then compared with it.
 */
async function castToEarlier(client: ClientBase, columns: TableColumns[], earlier: Array<Readonly<Record<string, ColumnFingerprint>> | undefined>, version: HashingVersion): Promise<void> {
  columns.forEach((table, i) => {
    for (const column of table.columns) relabel(column, earlier[i]?.[keyOf(column)]?.enum);
  });
  const changed = columns.flatMap((table, i) =>
    table.columns.flatMap((column) => {
      const was = earlier[i]?.[keyOf(column)]?.type;
      return was !== undefined && was !== column.type ? [{ column, was }] : [];
    }),
  );
  if (changed.length === 0) return;
  const resolved = await guarded(client, () => earlierTypes(client, [...new Set(changed.map((c) => c.was))], version));
  for (const { column, was } of changed) {
    const type = resolved?.get(was);
    if (type) column.earlier = { ...type, type: was };
    else if (resolved && version !== 1) column.earlier = { ...byText(column), type: was };
  }
}

/**
 * An enum column (or a domain's over one) of the same enum as an earlier
 * fingerprint's (the same OID): its values are the same OIDs whatever their
 * labels are called now, and a label renamed since (and back) is the
 * schema's matter. Those hashed by their label (version 2) are then hashed
 * as the label each OID had then. A type dropped and made again has other
 * OIDs: its values compare by label.
 */
function relabel(column: ColumnInfo, then: EnumLabels | undefined): void {
  if (!column.enum || column.enum.typeOid !== then?.typeOid) return;
  const renamed = Object.entries(column.enum.labels).filter(([oid, label]) => then.labels[oid] !== undefined && then.labels[oid] !== label);
  if (renamed.length > 0) column.relabel = { now: renamed.map(([, label]) => label), then: renamed.map(([oid]) => then.labels[oid]!) };
}

/**
 * The columns of the table an earlier fingerprint read whose names it did
 * not see, known by their attnum (kept with per-column hashes): one a down
 * renamed back, from a name no column has now, is hashed and compared under
 * its name then, so that a down that renames a column back and changes its
 * values is seen (it compared the columns whose names had not changed). A
 * name there then and now is compared by name: a down that drops `x` and
 * renames `y` to `x` leaves `x` other values than it had.
 */
function followRenames(table: TableColumns, then: Readonly<Record<string, ColumnFingerprint>>): void {
  const names = new Map(Object.entries(then).flatMap(([name, column]) => (column.attnum === undefined ? [] : [[column.attnum, name] as const])));
  const present = new Set(table.columns.map((column) => column.name));
  for (const column of table.columns) {
    const name = names.get(column.attnum);
    if (then[column.name] === undefined && name !== undefined && !present.has(name)) column.as = name;
  }
}

/** `column` read as its earlier type, when it has one (see castToEarlier). */
const asEarlier = (column: ColumnInfo): ColumnInfo => {
  const { earlier } = column;
  return earlier ? { ...column, ...earlier, castFrom: column.type, castFromOid: earlier.throughText ? TEXT : column.typeOid, nondeterministic: false } : column;
};

/**
 * How the values of `column` read as its earlier type: by a cast, else by a
 * cast from their text, where PostgreSQL has none between the two types
 * (smallint to boolean: '1' and '0' read as true and false). Either reads the
 * earlier values back only from a down that kept them apart; a text the
 * earlier type does not read fails the cast. Undefined when neither reads
 * every value (no cast at all, epoch seconds turned back from a timestamptz):
 * the column is then not compared (see columnsNotCompared).
 */
async function readableAs(client: ClientBase, table: TableRef, column: ColumnInfo, earlier: EarlierType): Promise<EarlierType | undefined> {
  for (const way of [earlier, { ...earlier, throughText: true }]) {
    const probe = planTable(table, '', [asEarlier({ ...column, earlier: way })], false, undefined);
    if (await guarded(client, () => client.query(probe.sql, probe.params))) return way;
  }
  return undefined;
}

/** Hashing `column` by the text its own output function writes. */
const byText = (column: ColumnInfo): TypeHashing => ({ typeOid: column.typeOid, hashSchema: null, hashName: null, outputSchema: column.outputSchema, outputName: column.outputName, outputAs: column.outputAs });

/** `work` inside a savepoint: undefined, and the transaction still usable, when it fails. */
async function guarded<T>(client: ClientBase, work: () => Promise<T>): Promise<T | undefined> {
  await client.query('SAVEPOINT belay_fingerprint');
  try {
    const result = await work();
    await client.query('RELEASE SAVEPOINT belay_fingerprint');
    return result;
  } catch {
    await client.query('ROLLBACK TO SAVEPOINT belay_fingerprint');
    return undefined;
  }
}

/**
 * The root of each partition among `tables` whose tree has no leaf outside
 * them, by the partition's OID: those leaves' rows are all of that table's.
 * Asked once per root, and only when some table is a partition.
 */
async function partitionRoots(client: ClientBase, tables: TableColumns[]): Promise<Map<string, string>> {
  const partitions = tables.filter((table) => table.partition).map((table) => table.oid);
  if (partitions.length === 0) return new Map();
  const { rows } = await client.query<{ oid: string; schema: string; table: string }>(
    `WITH p AS MATERIALIZED (SELECT p.oid, pg_partition_root(p.oid) AS root FROM unnest($1::oid[]) AS p(oid)),
          whole AS (SELECT r.root FROM (SELECT DISTINCT root FROM p) AS r
                     WHERE NOT EXISTS (SELECT FROM pg_partition_tree(r.root) l WHERE l.isleaf AND l.relid <> ALL($1::oid[])))
     SELECT p.oid::text AS oid, n.nspname AS schema, c.relname AS table
       FROM p JOIN whole USING (root) JOIN pg_class c ON c.oid = p.root JOIN pg_namespace n ON n.oid = c.relnamespace`,
    [partitions],
  );
  return new Map(rows.map((r) => [r.oid, tableKey(r)]));
}

const sumOf = (values: readonly string[]): string => values.reduce((sum, value) => sum + BigInt(value), 0n).toString();

/**
 * The fingerprint of the rows of `parts` as one table's: that of a
 * partitioned table from its leaves' (they have its columns, and a row hash
 * does not depend on the columns' order). A column sum is known when every
 * part has one.
 */
export function sumFingerprints(parts: readonly TableFingerprint[]): TableFingerprint {
  const [first] = parts;
  const utc = parts.some((part) => part.rowHashInUtc !== undefined);
  const columns = Object.entries(first?.columns ?? {}).map(([name, column]): [string, ColumnFingerprint] => {
    const { hash, hashInUtc, rowHashWithout, ...rest } = column;
    const hashes = parts.map((part) => part.columns[name]);
    if (hash === undefined || hashes.some((c) => c?.hash === undefined)) return [name, rest];
    const inUtc = hashInUtc !== undefined ? { hashInUtc: sumOf(hashes.map((c) => c!.hashInUtc ?? c!.hash!)) } : {};
    const without = rowHashWithout !== undefined && hashes.every((c) => c!.rowHashWithout !== undefined) ? { rowHashWithout: sumOf(hashes.map((c) => c!.rowHashWithout!)) } : {};
    return [name, { ...rest, hash: sumOf(hashes.map((c) => c!.hash!)), ...inUtc, ...without }];
  });
  return {
    rowCount: sumOf(parts.map((part) => part.rowCount)),
    rowHash: sumOf(parts.map((part) => part.rowHash)),
    columns: Object.fromEntries(columns),
    ...(first?.rowHashColumns ? { rowHashColumns: first.rowHashColumns } : {}),
    ...(utc ? { rowHashInUtc: sumOf(parts.map((part) => part.rowHashInUtc ?? part.rowHash)) } : {}),
  };
}

/** Fingerprint every table in one REPEATABLE READ snapshot, so they agree with each other. */
export async function fingerprintTables(client: ClientBase, tables: FingerprintTarget[], options: FingerprintOptions = { perColumn: true }): Promise<Fingerprint> {
  const { perColumn } = options;
  const version = options.hashing ?? HASHING;
  const result: Fingerprint = {
    takenAt: new Date().toISOString(),
    ...(version === 1 ? {} : { hashing: version }),
    perColumn: perColumn === true || (perColumn !== false && perColumn.size > 0),
    tables: {},
  };
  const own = options.inTransaction !== true;
  if (own) await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    // every row or an error, as pg_dump asks: a row-level security policy would otherwise hide rows from the count
    const settings = ['SET LOCAL row_security = off', KEEP_TIME_ZONE, ...(version === 1 ? [] : [FIXED_OUTPUT]), ...(options.oneProcess ? ['SET LOCAL max_parallel_workers_per_gather = 0'] : [])];
    await client.query(settings.join('; '));
    const columns = tables.length === 0 ? [] : await columnsOf(client, tables, version);
    const keys = tables.map((table) => table.as ?? tableKey(table));
    const earlier = keys.map((key) => options.earlier?.get(key));
    columns.forEach((table, i) => {
      const then = earlier[i];
      if (then && options.sameTables?.has(keys[i]!)) followRenames(table, then);
    });
    await castToEarlier(client, columns, earlier, version);
    const planOf = (i: number): TablePlan => {
      const columnsThen = earlier[i];
      const tablePerColumn = perColumn === true || (perColumn !== false && perColumn.has(keys[i]!));
      const { rowsWithout } = options;
      const without = !tablePerColumn || columnsThen ? undefined : rowsWithout === true ? true : rowsWithout?.get(keys[i]!);
      return planTable(tables[i]!, keys[i]!, columns[i]!.columns.map(asEarlier), tablePerColumn, columnsThen ? new Set(Object.keys(columnsThen)) : undefined, without);
    };
    const toRead: number[] = [];
    const casting: number[] = [];
    tables.forEach((_table, i) => {
      // what the query of an empty table answers: no rows counted, no hash summed
      if (columns[i]!.empty) result.tables[keys[i]!] = readTable(planOf(i), columns[i]!.oid, { n: '0', h: '0' });
      else if (columns[i]!.columns.some((column) => column.earlier || column.relabel)) casting.push(i);
      else toRead.push(i);
    });
    for (let start = 0; start < toRead.length; start += BATCH) {
      const batch = toRead.slice(start, start + BATCH).map((i) => ({ i, plan: planOf(i) }));
      const results = await simpleQueryResults<Record<string, string | null>>(client, batch.map(({ plan }) => plan.sql).join(';\n'));
      batch.forEach(({ i, plan }, n) => {
        result.tables[plan.key] = readTable(plan, columns[i]!.oid, results[n]!.rows[0]!);
      });
    }
    const read = async (plan: TablePlan): Promise<Record<string, string | null>> => (await client.query<Record<string, string | null>>(plan.sql, plan.params)).rows[0]!;
    for (const i of casting) {
      let plan = planOf(i);
      let row = await guarded(client, () => read(plan));
      if (!row) {
        // a cast failed: each column is then read the way its values cast (readableAs), the rest as they are (their types differ)
        for (const column of columns[i]!.columns) if (column.earlier) column.earlier = await readableAs(client, tables[i]!, column, column.earlier);
        plan = planOf(i);
        row = await read(plan);
      }
      result.tables[plan.key] = readTable(plan, columns[i]!.oid, row);
    }
    const roots = await partitionRoots(client, columns);
    columns.forEach((table, i) => {
      const root = roots.get(table.oid);
      if (root !== undefined) result.tables[keys[i]!]!.partitionOf = root;
    });
    if (options.objects) Object.assign(result, await fingerprintObjects(client));
    if (own) await client.query('COMMIT');
  } catch (error) {
    if (own) await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
  return result;
}
