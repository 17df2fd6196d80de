import { escapeLiteral, type ClientBase } from 'pg';
import { foldUnquoted, quoteIdent, quoteQualified } from '../db/ident.js';
import { searchPathEntries } from '../db/search-path.js';
import { simpleQueryResults } from '../db/simple-query.js';
import { BELAY_SCHEMA } from '../db/belay-schema.js';
import { splitSql, sqlCode } from '../migrations/split-sql.js';
import { holdsNoRow } from './table-selection.js';

/** What a down is about to drop, found by reading its SQL. */
export interface DroppedObject {
  table: string;
  /** Undefined when the whole table goes. */
  column?: string;
  /** The down keeps the table but deletes rows (TRUNCATE, DELETE): integrity counts lost rows as corruption. */
  rowsDeleted?: boolean;
  /** The down keeps the table but writes rows (INSERT, UPDATE, MERGE, COPY FROM): integrity counts any change as corruption. */
  rowsWritten?: boolean;
}

export interface DataAtRisk extends DroppedObject {
  revision: string;
  rows: number;
  /** Non-null values in the column (or rows, for a table). */
  values: number;
}

/** One part of a name as written: quoted, or a word as PostgreSQL's scanner reads one (any non-ASCII character counts as a letter). */
const NAME_PART = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*)`;
const NAME = String.raw`${NAME_PART}(?:\.${NAME_PART})?`;
const DROP_TABLE = new RegExp(String.raw`\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?((?:${NAME})(?:\s*,\s*${NAME})*)`, 'gi');
/** A table a down makes (not a temporary one): under the name of one it dropped, it takes that one's place. */
const CREATE_TABLE = new RegExp(String.raw`\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(${NAME})`, 'gi');
const ALTER_TABLE = new RegExp(String.raw`\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(${NAME})([^;]*)`, 'gi');
const WRITE_ROWS = new RegExp(
  String.raw`\b(?:INSERT\s+INTO|MERGE\s+INTO|COPY)\s+(${NAME})|\bUPDATE\s+(?:ONLY\s+)?(?!SET\b)(${NAME})(?:\s+(?:AS\s+)?${NAME_PART})?\s+SET\b`,
  'gi',
);
const DROP_COLUMN = new RegExp(String.raw`\bDROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(${NAME})`, 'gi');
const DELETE_ROWS = new RegExp(String.raw`\b(?:TRUNCATE(?:\s+TABLE)?|DELETE\s+FROM)\s+((?:ONLY\s+)?(?:${NAME})(?:\s*,\s*(?:ONLY\s+)?${NAME})*)`, 'gi');
const NOT_A_COLUMN = /^(constraint|default|not|identity|expression)$/i;

/**
 * Statements that only define or describe: a routine's or a rule's body
 * runs later, if ever, and a comment is text; what they hold is not what the
 * down does (a down re-creating a function that deletes rows deletes none).
 * A DO block does run, and is read.
 */
const DEFINES_ONLY = /^\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE|RULE)|COMMENT\s+ON)\b/i;
/** A routine the down makes may be called later in it (a SELECT of it): its body, dynamic SQL it may EXECUTE, is read for HIDDEN_COLUMN_CHANGES. */
const DEFINES_ROUTINE = /^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\b/i;

const SET_SEARCH_PATH = /^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?search_path\s*(?:TO|=)\s*([^;]*?)\s*;?\s*$/i;
const RESET_SEARCH_PATH = /^\s*RESET\s+(?:search_path|ALL)\b/i;
/** pg_dump's way, and a function's: set_config('search_path', '…', …). */
const SET_CONFIG_SEARCH_PATH = /\bset_config\s*\(\s*'search_path'\s*,\s*'((?:[^']|'')*)'/i;
/** "$user", left as it is written in a down's search_path: candidatesOf reads it as the session's role. */
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

/**
 * Each statement of a down, with the search_path in effect for it (null for
 * the session's own, which the names are resolved in): `code`, its text
 * without comments, and `reads`, that code with its string constants empty
 * (what a statement stores or compares is not what it does).
 */
function statementsWithPath(sql: string): Array<{ code: string; reads: string; path: string[] | null }> {
  let path: string[] | null = null;
  return splitSql(sql).statements.map((statement) => {
    const code = sqlCode(statement.text);
    const at = { code, reads: sqlCode(statement.text, { blankStrings: true }), path };
    const set = searchPathSetBy(code);
    if (set !== undefined) path = set;
    return at;
  });
}

/** A name as PostgreSQL reads it: quoted as written, else folded to lower case. */
const identName = (written: string): string => (written.startsWith('"') ? written.slice(1, -1).replaceAll('""', '"') : foldUnquoted(written));

const RENAME_TABLE = new RegExp(String.raw`^\s*RENAME\s+TO\s+(${NAME_PART})`, 'i');
const SET_SCHEMA = new RegExp(String.raw`^\s*SET\s+SCHEMA\s+(${NAME_PART})`, 'i');
const DROP_SCHEMA = new RegExp(String.raw`\bDROP\s+SCHEMA\s+(?:IF\s+EXISTS\s+)?(${NAME_PART}(?:\s*,\s*${NAME_PART})*)[^;]*\bCASCADE\b`, 'gi');
const DROP_CASCADING = new RegExp(String.raw`\bDROP\s+(TYPE|DOMAIN|EXTENSION|COLLATION)\s+(?:IF\s+EXISTS\s+)?(${NAME}(?:\s*,\s*${NAME})*)[^;]*\bCASCADE\b`, 'gi');
/** A routine's name and its argument types, which may hold parentheses of their own (`numeric(10, 2)`). */
const ROUTINE = String.raw`${NAME}(?:\s*\((?:[^()]|\([^()]*\))*\))?`;
/** DROP FUNCTION … CASCADE takes the generated columns computed with it (each overload of the name is taken for it). */
const DROP_FUNCTION = new RegExp(String.raw`\bDROP\s+FUNCTION\s+(?:IF\s+EXISTS\s+)?(${ROUTINE}(?:\s*,\s*${ROUTINE})*)[^;]*\bCASCADE\b`, 'gi');
/** DROP OWNED BY drops what the roles own in this database, with or without CASCADE; the words for the session's role are not names. */
const DROP_OWNED = new RegExp(String.raw`\bDROP\s+OWNED\s+BY\s+(${NAME_PART}(?:\s*,\s*${NAME_PART})*)\s*(CASCADE)?`, 'gi');
const SESSION_ROLE_WORD = /^(?:current_user|current_role|session_user)$/i;
const RENAME_COLUMN = new RegExp(String.raw`^\s*RENAME\s+(?:COLUMN\s+)?(?!CONSTRAINT\s)(${NAME_PART})\s+TO\s+(${NAME_PART})`, 'i');

/** The names of a comma-separated list as written (a quoted name may hold a comma), each without DELETE's or TRUNCATE's ONLY. */
const listed = (list: string, name: string): string[] => [...list.matchAll(new RegExp(String.raw`(?:\bONLY\s+)?(${name})`, 'gi'))].map((match) => match[1]!);

/** What one statement of a down does to a table, in the order it says it; `table` as written. */
type Mention =
  | { kind: 'drop' | 'delete' | 'alter'; table: string }
  /** `columns`: the columns an UPDATE sets, when they could be read (an INSERT, MERGE or COPY writes whole rows). */
  | { kind: 'write'; table: string; columns?: string[] }
  | { kind: 'drop-column'; table: string; column: string }
  | { kind: 'rename'; table: string; to: string }
  | { kind: 'create'; table: string }
  | { kind: 'set-schema'; table: string; schema: string }
  | { kind: 'drop-schema'; schema: string }
  | { kind: 'drop-cascading'; what: 'type' | 'collation' | 'extension' | 'function'; name: string }
  | { kind: 'drop-owned'; role: string | null; cascade: boolean }
  | { kind: 'rename-column'; table: string; column: string; to: string };

/**
 * The tables a statement (its code, strings empty) drops (by name, or with their schema's
 * DROP SCHEMA … CASCADE, or a type's, a domain's, a collation's or an
 * extension's DROP … CASCADE, which takes the columns of that type or
 * collation with it, or a role's DROP OWNED BY), deletes rows from,
 * alters, renames or moves, and the columns it drops or renames (a reading of
 * the text: modules and dynamic SQL are not seen).
 */
function mentionsIn(text: string): Mention[] {
  const found: Mention[] = [];
  for (const match of text.matchAll(DROP_TABLE)) {
    for (const table of listed(match[1]!, NAME)) found.push({ kind: 'drop', table });
  }
  for (const match of text.matchAll(CREATE_TABLE)) found.push({ kind: 'create', table: match[1]! });
  for (const match of text.matchAll(ALTER_TABLE)) {
    const table = match[1]!;
    const rest = match[2]!;
    // any ALTER TABLE may drop, rename or retype columns: the table is compared column by column
    found.push({ kind: 'alter', table });
    const renamed = RENAME_TABLE.exec(rest);
    const moved = SET_SCHEMA.exec(rest);
    const renamedColumn = RENAME_COLUMN.exec(rest);
    if (renamed) found.push({ kind: 'rename', table, to: identName(renamed[1]!) });
    else if (moved) found.push({ kind: 'set-schema', table, schema: identName(moved[1]!) });
    else if (renamedColumn) found.push({ kind: 'rename-column', table, column: identName(renamedColumn[1]!), to: identName(renamedColumn[2]!) });
    else {
      for (const drop of rest.matchAll(DROP_COLUMN)) {
        if (!NOT_A_COLUMN.test(drop[1]!)) found.push({ kind: 'drop-column', table, column: identName(drop[1]!) });
      }
    }
  }
  for (const match of text.matchAll(DELETE_ROWS)) {
    for (const table of listed(match[1]!, NAME)) found.push({ kind: 'delete', table });
  }
  for (const match of text.matchAll(WRITE_ROWS)) {
    const rest = text.slice(match.index + match[0].length);
    if (match[2] !== undefined) {
      const columns = columnsSet(rest);
      found.push({ kind: 'write', table: match[2], ...(columns ? { columns } : {}) });
    } else if (!/^COPY\b/i.test(match[0]) || /\bFROM\b/i.test(rest)) {
      // COPY … TO reads the table
      found.push({ kind: 'write', table: match[1]! });
    }
  }
  for (const match of text.matchAll(DROP_SCHEMA)) {
    for (const schema of listed(match[1]!, NAME_PART)) found.push({ kind: 'drop-schema', schema: identName(schema) });
  }
  for (const match of text.matchAll(DROP_CASCADING)) {
    const what = /^EXTENSION$/i.test(match[1]!) ? 'extension' : /^COLLATION$/i.test(match[1]!) ? 'collation' : 'type';
    for (const name of listed(match[2]!, NAME)) found.push({ kind: 'drop-cascading', what, name });
  }
  for (const match of text.matchAll(DROP_FUNCTION)) {
    for (const name of listed(withoutArguments(match[1]!), NAME)) found.push({ kind: 'drop-cascading', what: 'function', name });
  }
  for (const match of text.matchAll(DROP_OWNED)) {
    // null: the session's role (CURRENT_USER and its kin, unquoted)
    for (const role of listed(match[1]!, NAME_PART)) found.push({ kind: 'drop-owned', role: SESSION_ROLE_WORD.test(role) ? null : identName(role), cascade: match[2] !== undefined });
  }
  return found;
}

/**
 * The columns an UPDATE's SET list (`rest`: the text after SET) assigns
 * (`a = …`, `(a, b) = …`, `a[1] = …`, `a.f = …`), or undefined when it cannot
 * tell.
 */
function columnsSet(rest: string): string[] | undefined {
  const columns: string[] = [];
  let depth = 0;
  let start = 0;
  const assignment = (part: string): boolean => {
    const target = new RegExp(String.raw`^\s*(?:\(([^()]*)\)|(${NAME_PART})(?:\[[^\]]*\]|\.${NAME_PART})*)\s*=`).exec(part);
    if (!target) return false;
    const names = target[1] !== undefined ? [...target[1].matchAll(new RegExp(NAME_PART, 'g'))].map((name) => name[0]) : [target[2]!];
    columns.push(...names.map(identName));
    return true;
  };
  for (let i = 0; i <= rest.length; i++) {
    const c = rest[i];
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    const atEnd = i === rest.length || c === ';' || (depth === 0 && /^\s(?:FROM|WHERE|RETURNING)\b/i.test(rest.slice(i)));
    if (depth === 0 && (c === ',' || atEnd)) {
      if (!assignment(rest.slice(start, i))) return undefined;
      start = i + 1;
    }
    if (atEnd) break;
    if (depth < 0) return undefined;
  }
  return columns.length > 0 ? columns : undefined;
}

/** A list of routines without their argument types: the names alone. */
function withoutArguments(list: string): string {
  let names = list;
  for (let inner = names.replace(/\([^()]*\)/g, ''); inner !== names; inner = names.replace(/\([^()]*\)/g, '')) names = inner;
  return names;
}

/** A relation's schema and name. */
type RelationKey = readonly [schema: string, name: string];
const keyText = (key: RelationKey): string => JSON.stringify(key);

/**
 * The relations a name written in a down may be, in the order PostgreSQL
 * tries them: itself when qualified, else in each schema of the search_path
 * in effect ("$user" as the session's role; pg_temp and pg_catalog hold no
 * table of the user's).
 */
function candidatesOf(written: string, path: readonly string[], role: string): RelationKey[] {
  const parts = [...written.matchAll(new RegExp(NAME_PART, 'g'))].map((part) => identName(part[0]));
  if (parts.length === 2) return [[parts[0]!, parts[1]!]];
  return path.filter((schema) => schema !== 'pg_temp' && schema !== 'pg_catalog').map((schema) => [schema === USER_ENTRY ? role : schema, parts[0]!]);
}

/** A down to measure: its SQL, or null when it is a module (whose text is not read). */
export interface DownToMeasure {
  revision: string;
  sql: string | null;
  /** For a module: statements dropping what its up was recorded to make, which its down must drop to land where the up started. */
  undoes?: string;
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
  /** Per table, the columns the downs may drop (FingerprintOptions.rowsWithout): every column of every table (true) when a down may change columns where its text does not show it. */
  rowsWithout: true | Map<string, Set<string>>;
}

/** Dynamic SQL and routines (DO, EXECUTE, CALL), and drops that cascade from a type, domain, function… to the columns using it. */
const HIDDEN_COLUMN_CHANGES = /\b(?:DO|EXECUTE|CALL)\b|\bDROP\s+(?:TYPE|DOMAIN|EXTENSION|COLLATION|FUNCTION|PROCEDURE|OPERATOR|SCHEMA|SEQUENCE)\b[^;]*\bCASCADE\b|\bDROP\s+OWNED\b/i;

/** A relation the downs name, as it is now. */
interface Relation {
  schema: string;
  name: string;
  columns: ReadonlySet<string>;
  /** `schema.table` of the relation and of its partitions and inheritance children, which an ALTER TABLE of it alters too. */
  family: string[];
  /** The relation and every member of its family hold no row (holdsNoRow): counting is not needed. */
  empty: boolean;
  /** A table with rows of its own to lose (not a partition, whose rows its parent's count holds; not a view, index or sequence). */
  isTable: boolean;
  /** Its columns the downs read so far renamed or dropped: a name then → the column's name now (null: none of the columns now). */
  renamedColumns: Map<string, string | null>;
}

/** A name's column as it is now, through the renames and drops of the downs before. */
function columnNow(relation: Relation, name: string): string | undefined {
  const renamed = relation.renamedColumns.get(name);
  if (renamed !== undefined) return renamed ?? undefined;
  return relation.columns.has(name) ? name : undefined;
}

/**
 * The relations the downs see as they run, statement after statement: the
 * database's as they are now, changed by the downs' renames, moves and
 * drops (a table a down creates is not followed: it holds no data now).
 */
class DownsCatalog {
  private readonly changed = new Map<string, { key: RelationKey; slot: Relation | 'gone' }>();

  /** `now`: keyed by keyText of the relation's own schema and name. */
  constructor(private readonly now: ReadonlyMap<string, Relation>) {}

  find(candidates: readonly RelationKey[]): { key: RelationKey; relation: Relation } | undefined {
    for (const key of candidates) {
      const text = keyText(key);
      const slot = this.changed.has(text) ? this.changed.get(text)!.slot : this.now.get(text);
      if (slot !== undefined && slot !== 'gone') return { key, relation: slot };
    }
    return undefined;
  }

  /** The tables in `schema` at this point of the downs. */
  tablesIn(schema: string): Array<{ key: RelationKey; relation: Relation }> {
    const here = [...this.now.values()]
      .filter((relation) => relation.schema === schema && !this.changed.has(keyText([relation.schema, relation.name])))
      .map((relation) => ({ key: [relation.schema, relation.name] as const, slot: relation }));
    const moved = [...this.changed.values()].filter((entry) => entry.key[0] === schema);
    return [...here, ...moved].flatMap(({ key, slot }) => (slot !== 'gone' && slot.isTable ? [{ key, relation: slot }] : []));
  }

  remove(key: RelationKey): void {
    this.changed.set(keyText(key), { key, slot: 'gone' });
  }

  place(key: RelationKey, relation: Relation): void {
    this.changed.set(keyText(key), { key, slot: relation });
  }
}

interface Found {
  revision: string;
  /** The table whose rows or values are counted, as it is now; `without` the members of its family a down before drops, counted there. */
  counted: { schema: string; name: string; empty: boolean; without?: Array<{ schema: string; name: string }> };
  item: DroppedObject;
}

/**
 * What the downs drop, measured now: the names they write are followed
 * through the renames and moves before (ALTER TABLE … RENAME TO, SET SCHEMA,
 * RENAME COLUMN), in the order the downs run, so that a table a later down
 * drops under the name an earlier one gave it is the table it is now; a
 * DROP SCHEMA … CASCADE drops the tables the schema then holds, and a type's,
 * a domain's, a collation's or an extension's the columns that depend on it.
 * Three round trips whatever their number (four with a DROP TYPE, DOMAIN,
 * COLLATION or EXTENSION … CASCADE, or a DROP OWNED): the session's search_path, one catalog query for every name, one
 * multi-statement query that counts each table's rows and non-null values
 * once. Objects that do not exist are skipped.
 */
export async function measureDownsAtRisk(client: ClientBase, measured: DownToMeasure[]): Promise<DownsAtRisk> {
  // a module's down is not read: what its up was recorded to make stands in for it (undoes)
  const read = measured.map((down) => ({ revision: down.revision, statements: down.sql === null ? null : statementsWithPath(down.sql), undoes: down.sql === null ? statementsWithPath(down.undoes ?? '') : [] }));
  const statements = read.flatMap((down) => (down.statements ?? down.undoes).map((statement) => ({ revision: down.revision, path: statement.path, mentions: DEFINES_ONLY.test(statement.code) ? [] : mentionsIn(statement.reads) })));
  const hidden = read.some((down) => down.statements === null || down.statements.some((statement) => HIDDEN_COLUMN_CHANGES.test(DEFINES_ROUTINE.test(statement.code) ? statement.code : statement.reads)));
  if (!statements.some((statement) => statement.mentions.length > 0)) return { items: [], perColumn: hidden ? true : new Set(), rowsWithout: hidden ? true : new Map() };
  const session = await client.query<{ path: string[]; role: string }>('SELECT current_schemas(false)::text[] AS path, current_user::text AS role');
  const { path: sessionPath, role } = session.rows[0]!;
  const named = statements.map((statement) => ({
    ...statement,
    mentions: statement.mentions.map((mention) => ({
      mention,
      candidates: mention.kind === 'drop-schema' || mention.kind === 'drop-cascading' || mention.kind === 'drop-owned' ? [] : candidatesOf(mention.table, statement.path ?? sessionPath, role),
      // a type's or a collation's name resolves through the search_path as a table's does (pg_catalog's own are no user's data)
      nameCandidates: mention.kind === 'drop-cascading' && mention.what !== 'extension' ? candidatesOf(mention.name, statement.path ?? sessionPath, role) : [],
    })),
  }));
  const cascading = named.flatMap((s) => s.mentions.flatMap((entry) => (entry.mention.kind === 'drop-cascading' || entry.mention.kind === 'drop-owned' ? [{ entry, mention: entry.mention }] : [])));
  const dropped = await columnsDroppedWith(
    client,
    cascading.map(({ entry, mention }) =>
      mention.kind === 'drop-owned'
        ? { owner: mention.role ?? role, cascade: mention.cascade }
        : mention.what === 'extension'
          ? { extension: identName(mention.name) }
          : { catalog: CATALOG_OF[mention.what], candidates: entry.nameCandidates },
    ),
  );
  const droppedWith = new Map(cascading.map(({ entry }, i) => [entry, dropped[i] ?? []]));
  const keys = [...new Map(named.flatMap((s) => s.mentions.flatMap((m) => m.candidates)).map((key) => [keyText(key), key])).values()];
  const droppedSchemas = [...new Set(named.flatMap((s) => s.mentions.flatMap(({ mention }) => (mention.kind === 'drop-schema' ? [mention.schema] : []))))];
  const catalog = new DownsCatalog(await relationsNow(client, keys, droppedSchemas));
  const found: Found[] = [];
  const altered = new Set<string>();
  const droppedColumns = new Map<string, Set<string>>();
  // `schema.name` as a family lists them: a partition a down detaches and drops before another drops its parent
  const droppedBefore = new Map<string, Relation>();
  const reported = new Set<string>();
  const report = (f: Found): void => {
    const key = JSON.stringify([f.item.table, f.item.column ?? null, f.item.rowsDeleted ?? false, f.item.rowsWritten ?? false]);
    if (!f.item.rowsDeleted && !f.item.rowsWritten && (reported.has(key) || reported.has(JSON.stringify([f.item.table, null, false, false])))) return;
    reported.add(key);
    found.push(f);
  };
  /**
   * A table the downs make under the name of one they dropped (re-created with fewer columns, its rows copied
   * over): compared with the dropped one by name, column by column, and whole rows over the columns that stay.
   */
  const replacing = (names: string[]): void => {
    const gone = names.map((name) => droppedBefore.get(name)).find((relation) => relation !== undefined);
    if (!gone) return;
    for (const member of gone.family) altered.add(member);
    const name = `${gone.schema}.${gone.name}`;
    droppedColumns.set(name, new Set([...(droppedColumns.get(name) ?? []), ...gone.columns]));
  };
  for (const { revision, mentions } of named) {
    for (const entry of mentions) {
      const { mention } = entry;
      const at = catalog.find(entry.candidates);
      const relation = at?.relation;
      switch (mention.kind) {
        case 'alter':
          for (const member of relation?.family ?? []) altered.add(member);
          break;
        case 'drop':
          if (at) {
            const without = at.relation.family.flatMap((member) => droppedBefore.get(member) ?? []);
            report({ revision, counted: { ...at.relation, without }, item: { table: `${at.relation.schema}.${at.relation.name}` } });
            droppedBefore.set(`${at.relation.schema}.${at.relation.name}`, at.relation);
            catalog.remove(at.key);
          }
          break;
        case 'delete':
          if (relation) report({ revision, counted: relation, item: { table: `${relation.schema}.${relation.name}`, rowsDeleted: true } });
          break;
        case 'write':
          // an UPDATE of columns the downs add (none of them there now) changes nothing integrity compares
          if (relation?.isTable && (mention.columns === undefined || mention.columns.some((column) => columnNow(relation, column) !== undefined))) {
            report({ revision, counted: relation, item: { table: `${relation.schema}.${relation.name}`, rowsWritten: true } });
          }
          break;
        case 'drop-column': {
          const column = relation && columnNow(relation, mention.column);
          if (relation && column) {
            report({ revision, counted: relation, item: { table: `${relation.schema}.${relation.name}`, column } });
            for (const member of relation.family) droppedColumns.set(member, (droppedColumns.get(member) ?? new Set()).add(column));
          }
          relation?.renamedColumns.set(mention.column, null);
          break;
        }
        case 'rename-column':
          if (relation) {
            const column = columnNow(relation, mention.column) ?? null;
            relation.renamedColumns.set(mention.column, null);
            relation.renamedColumns.set(mention.to, column);
          }
          break;
        case 'drop-schema':
          for (const table of catalog.tablesIn(mention.schema)) {
            report({ revision, counted: table.relation, item: { table: `${table.relation.schema}.${table.relation.name}` } });
            catalog.remove(table.key);
          }
          break;
        case 'drop-cascading':
        case 'drop-owned':
          for (const column of droppedWith.get(entry) ?? []) {
            report({ revision, counted: { ...column, empty: false }, item: { table: `${column.schema}.${column.name}`, ...(column.column ? { column: column.column } : {}) } });
          }
          break;
        case 'create':
          replacing(entry.candidates.map(([schema, name]) => `${schema}.${name}`));
          break;
        case 'rename':
        case 'set-schema':
          // a table the downs made, renamed to the name of one they dropped
          if (!at && mention.kind === 'rename') replacing(entry.candidates.map(([schema]) => `${schema}.${mention.to}`));
          if (at) {
            catalog.remove(at.key);
            catalog.place(mention.kind === 'rename' ? [at.key[0], mention.to] : [mention.schema, at.key[1]], at.relation);
          }
          break;
      }
    }
  }
  const counts = await countValues(client, found.map((f) => ({ ...f.counted, column: f.item.column })));
  const items = found.map((f, i): DataAtRisk => ({ revision: f.revision, ...f.item, rows: counts[i]!.rows, values: counts[i]!.values }));
  return { items, perColumn: hidden ? true : altered, rowsWithout: hidden ? true : droppedColumns };
}

/** The catalog a cascading drop's name is looked up in. */
const CATALOG_OF = { type: 'pg_type', collation: 'pg_collation', function: 'pg_proc' } as const;

/**
 * What PostgreSQL drops with each type, collation or function (the first of
 * its candidates that exists; a function's every overload there) or extension
 * when the drop cascades: the tables and columns that depend on it, following
 * pg_depend as DROP … CASCADE does (a domain over the type, an array of it,
 * the columns of those, the columns under the collation, an extension's
 * member tables), and the object something dropped is an internal part of (a
 * generated column, whose expression calls the function). For a role's DROP OWNED
 * BY, what it owns in this database (pg_shdepend, as DROP OWNED reads it),
 * followed through pg_depend only with CASCADE (without, a dependent object
 * makes the statement fail). A partition's rows are its parent's, counted there.
 */
async function columnsDroppedWith(
  client: ClientBase,
  objects: Array<{ catalog: (typeof CATALOG_OF)[keyof typeof CATALOG_OF]; candidates: readonly RelationKey[] } | { extension: string } | { owner: string; cascade: boolean }>,
): Promise<Array<Array<{ schema: string; name: string; column: string | null }>>> {
  if (objects.length === 0) return [];
  const named = objects.flatMap((object, i) => ('catalog' in object ? object.candidates.map((key, rank) => ({ i: i + 1, rank, catalog: object.catalog, key })) : []));
  const extensions = objects.flatMap((object, i) => ('extension' in object ? [{ i: i + 1, name: object.extension }] : []));
  const owners = objects.flatMap((object, i) => ('owner' in object ? [{ i: i + 1, role: object.owner, cascade: object.cascade }] : []));
  const { rows } = await client.query<{ i: number; schema: string; name: string; column: string | null }>(
    `WITH RECURSIVE wanted(i, classid, objid, cascade) AS (
       -- what the first candidate that exists names (a function: each of its overloads there)
       SELECT f.i, f.classid, f.objid, true FROM (
         SELECT w.i, w.rank, o.classid, o.objid, min(w.rank) OVER (PARTITION BY w.i) AS first
           FROM unnest($1::int[], $2::int[], $3::text[], $4::text[], $5::text[]) AS w(i, rank, catalog, schema, name)
           JOIN pg_namespace n ON n.nspname = w.schema
           CROSS JOIN LATERAL (
             SELECT 'pg_type'::regclass::oid, t.oid FROM pg_type t WHERE w.catalog = 'pg_type' AND t.typnamespace = n.oid AND t.typname = w.name
             UNION ALL
             -- a collation of this database's encoding, or of any
             (SELECT 'pg_collation'::regclass::oid, co.oid FROM pg_collation co
               WHERE w.catalog = 'pg_collation' AND co.collnamespace = n.oid AND co.collname = w.name
                 AND co.collencoding IN (-1, pg_char_to_encoding(pg_catalog.getdatabaseencoding()))
               ORDER BY co.collencoding DESC LIMIT 1)
             UNION ALL
             SELECT 'pg_proc'::regclass::oid, p.oid FROM pg_proc p WHERE w.catalog = 'pg_proc' AND p.pronamespace = n.oid AND p.proname = w.name
           ) AS o(classid, objid)) f
        WHERE f.rank = f.first
       UNION ALL
       SELECT w.i, 'pg_extension'::regclass::oid, e.oid, true FROM unnest($6::int[], $7::text[]) AS w(i, name) JOIN pg_extension e ON e.extname = w.name
       UNION ALL
       SELECT w.i, s.classid, s.objid, w.cascade FROM unnest($8::int[], $9::text[], $10::bool[]) AS w(i, role, cascade)
         JOIN pg_roles r ON r.rolname = w.role
         JOIN pg_shdepend s ON s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid AND s.deptype = 'o'
          AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
     ),
     dropped(i, classid, objid, objsubid, cascade) AS (
       SELECT i, classid, objid, 0, cascade FROM wanted
       UNION
       SELECT x.i, o.classid, o.objid, o.objsubid, x.cascade FROM dropped x
         CROSS JOIN LATERAL (
           SELECT d.classid, d.objid, d.objsubid FROM pg_depend d
            WHERE d.refclassid = x.classid AND d.refobjid = x.objid AND (x.objsubid = 0 OR d.refobjsubid = x.objsubid) AND d.deptype IN ('n', 'a', 'i', 'e')
           UNION ALL
           -- an internal part takes what it is part of with it (a generated column's expression, its column)
           SELECT d.refclassid, d.refobjid, d.refobjsubid FROM pg_depend d
            WHERE d.classid = x.classid AND d.objid = x.objid AND (x.objsubid = 0 OR d.objsubid = x.objsubid) AND d.deptype = 'i'
         ) AS o(classid, objid, objsubid)
        WHERE x.cascade
     )
     SELECT DISTINCT x.i::int AS i, n.nspname AS schema, c.relname AS name, a.attname::text AS column
       FROM dropped x JOIN pg_class c ON x.classid = 'pg_class'::regclass AND c.oid = x.objid JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attribute a ON x.objsubid > 0 AND a.attrelid = c.oid AND a.attnum = x.objsubid
      WHERE c.relkind IN ('r', 'p') AND n.nspname <> $11
        -- a partition's rows (or a column's values) are counted with its parent's, unless the parent stays (a partition owned by
        -- the role, its parent not)
        AND NOT EXISTS (SELECT 1 FROM pg_inherits ih JOIN dropped p ON p.i = x.i AND p.classid = 'pg_class'::regclass AND p.objid = ih.inhparent
                         WHERE c.relispartition AND ih.inhrelid = c.oid AND (p.objsubid = 0 OR x.objsubid > 0))
      ORDER BY 1, 2, 3, 4 NULLS FIRST`,
    [
      named.map((o) => o.i),
      named.map((o) => o.rank),
      named.map((o) => o.catalog),
      named.map((o) => o.key[0]),
      named.map((o) => o.key[1]),
      extensions.map((e) => e.i),
      extensions.map((e) => e.name),
      owners.map((o) => o.i),
      owners.map((o) => o.role),
      owners.map((o) => o.cascade),
      // belay's own record is no down's data: a down that drops it fails on it, and nothing is lost
      BELAY_SCHEMA,
    ],
  );
  return objects.map((_object, i) => rows.filter((row) => row.i === i + 1).map(({ schema, name, column }) => ({ schema, name, column })));
}

/**
 * The relations of `keys` that exist now (by exact schema and name), and the
 * tables of `schemas`, with their columns and families; keyed by keyText.
 */
async function relationsNow(client: ClientBase, keys: readonly RelationKey[], schemas: readonly string[]): Promise<Map<string, Relation>> {
  // the families in one recursion over every name: a recursion per name cost a fifth of a millisecond each
  const { rows } = await client.query<{ schema: string; name: string; is_table: boolean; columns: string[]; family: string[]; empty: boolean }>(
    `WITH RECURSIVE named AS (
       SELECT c.oid FROM unnest($1::text[], $2::text[]) AS w(schema, name)
         JOIN pg_namespace n ON n.nspname = w.schema
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.name
       UNION
       SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY($3::text[]) AND c.relkind IN ('r', 'p')
     ),
     family(top, oid) AS (SELECT oid, oid FROM named UNION SELECT f.top, h.inhrelid FROM family f JOIN pg_inherits h ON h.inhparent = f.oid),
     family_names(top, family, empty) AS (
       SELECT f.top, array_agg(fn.nspname || '.' || fc.relname), bool_and(${holdsNoRow('fc')})
         FROM family f JOIN pg_class fc ON fc.oid = f.oid JOIN pg_namespace fn ON fn.oid = fc.relnamespace GROUP BY f.top
     )
     SELECT n.nspname AS schema, c.relname AS name, c.relkind IN ('r', 'p') AND NOT c.relispartition AS is_table,
            ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            family_names.family, family_names.empty
       FROM named JOIN pg_class c ON c.oid = named.oid JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN family_names ON family_names.top = named.oid`,
    [keys.map((key) => key[0]), keys.map((key) => key[1]), schemas],
  );
  return new Map(
    rows.map((row) => [
      keyText([row.schema, row.name]),
      { schema: row.schema, name: row.name, isTable: row.is_table, columns: new Set(row.columns), family: row.family, empty: row.empty, renamedColumns: new Map() },
    ]),
  );
}

/**
 * Rows, and non-null values of the column (rows again without one), of each
 * relation: one scan per table, all in one round trip; none for a table
 * whose family has no page.
 */
async function countValues(
  client: ClientBase,
  wanted: Array<{ schema: string; name: string; column: string | undefined; empty: boolean; without?: Array<{ schema: string; name: string }> }>,
): Promise<Array<{ rows: number; values: number }>> {
  const byTable = new Map<string, { from: string; counted: string[] }>();
  const slots = wanted.map((w) => {
    if (w.empty) return undefined;
    // a member dropped before with its own partitions, at any depth
    const without = (w.without ?? []).map((member) => {
      const oid = `${escapeLiteral(quoteQualified(member.schema, member.name))}::regclass`;
      return `SELECT ${oid} UNION ALL SELECT relid FROM pg_catalog.pg_partition_tree(${oid})`;
    });
    const from = `${quoteQualified(w.schema, w.name)}${without.length === 0 ? '' : ` WHERE tableoid <> ALL (ARRAY(${without.join(' UNION ALL ')}))`}`;
    const table = byTable.get(from) ?? { from, counted: [] };
    byTable.set(from, table);
    // one expression per column, however many downs' statements name it: a SELECT lists at most 1664 (a table has at most 1600 columns)
    const counted = w.column ? `count(${quoteIdent(w.column)})` : 'count(*)';
    if (!table.counted.includes(counted)) table.counted.push(counted);
    return { table, index: table.counted.indexOf(counted) };
  });
  const tables = [...byTable.values()];
  const rowsOf = new Map<(typeof tables)[number], Record<string, string>>();
  if (tables.length > 0) {
    const sql = tables.map((t) => `SELECT count(*)::text AS n${t.counted.map((c, i) => `, ${c}::text AS v${i}`).join('')} FROM ${t.from}`).join(';\n');
    const results = await simpleQueryResults<Record<string, string>>(client, sql);
    tables.forEach((t, i) => rowsOf.set(t, results[i]!.rows[0]!));
  }
  return slots.map((slot) => {
    if (!slot) return { rows: 0, values: 0 };
    const row = rowsOf.get(slot.table)!;
    return { rows: Number(row.n ?? 0), values: Number(row[`v${slot.index}`] ?? 0) };
  });
}

/** How many tables or columns holding data a description of the data at risk names; the rest are counted. */
const NAMED_AT_MOST = 10;

/** What the downs drop, for a person to read before saying yes. */
export function describeDataAtRisk(items: DataAtRisk[]): string {
  const dropped = items.filter((i) => !i.rowsDeleted && !i.rowsWritten);
  const deleted = items.filter((i) => i.rowsDeleted);
  const written = items.filter((i) => i.rowsWritten);
  // what holds data first, the most first; an empty table or column is counted, not named one by one
  const holding = dropped.filter((i) => (i.column ? i.values : i.rows) > 0).sort((a, b) => (b.column ? b.values : b.rows) - (a.column ? a.values : a.rows));
  const empty = dropped.length - holding.length;
  const named = holding.slice(0, NAMED_AT_MOST).map((i) => (i.column ? `${i.table}.${i.column}: ${i.values} non-null value(s) in ${i.rows} row(s)` : `${i.table}: ${i.rows} row(s)`));
  const unnamed = holding.slice(NAMED_AT_MOST);
  if (unnamed.length > 0) named.push(`${unnamed.length} more table(s) or column(s) holding data (\`belay plan --json\` lists every one)`);
  if (empty > 0) named.push(`${empty} empty table(s) or column(s)`);
  const parts = [holding.length === 0 ? `no data in dropped tables or columns${empty > 0 ? ` (${empty} empty)` : ''}` : named.join('; ')];
  if (deleted.length > 0) {
    parts.push(
      `and rows deleted from tables that stay (${deleted.map((i) => `${i.table}: ${i.rows} row(s) now, by ${i.revision}`).join('; ')}): integrity counts lost rows as corruption and restores the snapshot, unless those tables are in integrity.tables.exclude`,
    );
  }
  if (written.length > 0) {
    parts.push(
      `and rows written to tables that stay (${written.map((i) => `${i.table}: ${i.rows} row(s) now, by ${i.revision}`).join('; ')}): integrity counts a changed row count, or a changed value in a column there both before and after the downs, as corruption and restores the snapshot, unless those tables are in integrity.tables.exclude`,
    );
  }
  return parts.join(', ');
}
