import type { ClientBase } from 'pg';
import { BELAY_SCHEMA } from '../db/belay-schema.js';
import { quoteIdent } from '../db/ident.js';
import { runLibpqChild, type BackupTools } from './pg-tools.js';
import { BelayError } from '../errors.js';

/**
 * The objects an in-place restore must leave exactly as the snapshot has
 * them: schemas, relations (tables, views, materialized views, sequences,
 * foreign tables), routines, types and extensions. Keys are shared by the
 * archive's table of contents and the live catalog: `kind:schema name` (a
 * space between, as `pg_restore --list` prints them).
 *
 * What is not compared: what pg_dump lists as part of another object
 * (constraints, indexes, triggers, defaults, rules, policies, comments,
 * ACLs, partition attachments, default privileges). `pg_restore --clean`
 * drops and makes them with their table, and a failure there fails the restore.
 */
export interface CatalogEntry {
  key: string;
  /**
   * Archive entries: every key the line can be read as. A line is
   * `SCHEMA TAG OWNER` with only spaces between, so a name or an owner
   * with a space in it can be split more than one way; the entry matches
   * when any reading does.
   */
  readings?: string[];
  /** For messages: "table public.t". */
  label: string;
  /** The statement that removes it (live objects that go on their own; a sequence owned by a column goes with its table). */
  drop?: string;
  /** Routines are matched by signature, and by count per name where the two spell a type differently. */
  routineName?: string;
}

/** Every `desc` pg_dump writes that starts like one of the kinds compared (the longest one that fits a line is its kind). */
const TOC_KINDS: Array<[string, string]> = [
  ['MATERIALIZED VIEW DATA', ''],
  ['MATERIALIZED VIEW', 'rel'],
  ['FOREIGN TABLE', 'rel'],
  ['TABLE DATA', ''],
  ['TABLE ATTACH', ''],
  ['TABLE', 'rel'],
  ['VIEW', 'rel'],
  ['SEQUENCE SET', ''],
  ['SEQUENCE OWNED BY', ''],
  ['SEQUENCE', 'rel'],
  ['FUNCTION', 'routine'],
  ['PROCEDURE', 'routine'],
  ['AGGREGATE', 'routine'],
  ['TYPE', 'type'],
  ['DOMAIN', 'type'],
  ['COLLATION', 'collation'],
  ['CONVERSION', 'conversion'],
  ['TEXT SEARCH CONFIGURATION', 'tsconfig'],
  ['TEXT SEARCH DICTIONARY', 'tsdict'],
  ['STATISTICS', 'statistics'],
  ['SCHEMA', 'schema'],
  ['EXTENSION', 'extension'],
];

/**
 * Schemas belay leaves alone: the system's, its own bookkeeping (restored by
 * pg_restore with the rest), and the quarantine schemas its targeted restores
 * keep damaged tables in (`belay_quarantine_<time>`, src/scope/touched-restore.ts):
 * never dropped by belay, whichever snapshot is restored over them.
 */
const SKIPPED_SCHEMAS = new Set(['pg_catalog', 'information_schema', 'belay']);
const QUARANTINE_SCHEMA = /^belay_quarantine_[0-9]{8}t[0-9]{9}$/;
const skippedSchema = (name: string): boolean => SKIPPED_SCHEMAS.has(name) || name.startsWith('pg_') || QUARANTINE_SCHEMA.test(name);

/** The archive lists its large objects in groups: the live ones are then left out of the comparison. */
const GROUPED_BLOBS = 'blobs:grouped';

/** One `pg_restore --list` line (`ID; CLASS OID DESC SCHEMA TAG OWNER`) as a catalog entry, or undefined. */
function tocEntry(line: string): CatalogEntry | undefined {
  // a large object: `BLOB - OID OWNER` before pg_dump 17, which lists them in groups (BLOB METADATA), not read one by one here
  const blob = /^\d+; \d+ \d+ BLOB - (\d+) /.exec(line);
  if (blob) return { key: `blob:${blob[1]}`, label: `large object ${blob[1]}` };
  if (/^\d+; \d+ \d+ BLOB METADATA /.test(line)) return { key: GROUPED_BLOBS, label: 'large objects' };
  const rest = /^\d+; \d+ \d+ (.*)$/.exec(line)?.[1];
  if (!rest) return undefined;
  const found = TOC_KINDS.filter(([desc]) => rest.startsWith(`${desc} `)).sort((a, b) => b[0].length - a[0].length)[0];
  if (!found || !found[1]) return undefined;
  const [desc, kind] = found;
  const what = desc.toLowerCase();
  const tokens = rest.slice(desc.length + 1).split(' ');
  // the owner is the last word or words (none for an extension); the namespace ("-" for a schema or an extension) and the tag are before it
  const bodies: string[] = [];
  for (let ownerWords = 1; tokens.length - ownerWords >= 2; ownerWords++) bodies.push(tokens.slice(0, tokens.length - ownerWords).join(' '));
  if (bodies.length === 0) return undefined;
  if (kind === 'schema' || kind === 'extension') {
    const names = bodies.map((body) => body.slice(body.indexOf(' ') + 1));
    // an extension's name is no schema's: pg_trgm and pg_stat_statements are compared like the others
    if (kind === 'schema' && (skippedSchema(names[0]!) || names[0] === 'public')) return undefined;
    return { key: `${kind}:${names[0]}`, readings: names.map((name) => `${kind}:${name}`), label: `${what} ${names[0]}` };
  }
  if (skippedSchema(tokens[0]!)) return undefined;
  // a routine's tag ends with its arguments: the owner is what follows them
  const readings = kind === 'routine' ? bodies.filter((body) => body.endsWith(')')) : bodies;
  const body = readings[0];
  if (body === undefined) return undefined;
  const label = `${what} ${tokens[0]}.${body.slice(tokens[0]!.length + 1)}`;
  const entry: CatalogEntry = { key: `${kind}:${body}`, readings: readings.map((reading) => `${kind}:${reading}`), label };
  return kind === 'routine' ? { ...entry, routineName: body.slice(0, body.indexOf('(')) } : entry;
}

/** A snapshot's table of contents: its objects, and the listing they were read from (what `pg_restore --use-list` takes). */
export interface ArchiveContents {
  entries: CatalogEntry[];
  listing: string;
}

/** The snapshot's objects, from its table of contents (`pg_restore --list`; no connection). */
export async function archiveCatalog(tools: BackupTools, path: string, env: NodeJS.ProcessEnv): Promise<ArchiveContents> {
  const outcome = await runLibpqChild(tools.pgRestore, ['--list', path], {
    params: { host: '/nonexistent', port: 5432, user: 'none', database: 'none', source: 'none' },
    env,
    timeoutMs: 10 * 60_000,
    signal: undefined,
  });
  if (outcome.code !== 0) {
    throw new BelayError('manual', `cannot read the table of contents of ${path}: ${outcome.stderrTail.trim()}`, { hint: 'Nothing was restored. Check it with `belay backups verify`.' });
  }
  return { entries: outcome.stdout.split('\n').flatMap((line) => tocEntry(line) ?? []), listing: outcome.stdout };
}

/** The roles that own something in a table of contents: each entry's last word (an extension's is empty). */
export function archiveOwners(listing: string): string[] {
  const owners = listing.split('\n').flatMap((line) => /^\d+; \d+ \d+ .* (\S+)$/.exec(line)?.[1] ?? []);
  return [...new Set(owners)].sort();
}

/**
 * The listing with belay's own schema entry commented out: `pg_restore
 * --clean` would drop that schema, which fails while it holds anything the
 * snapshot does not (the schema function a later run made, a table a later
 * belay added). Left out, the schema stays as it is, and the tables of it
 * the snapshot has are dropped and restored like any other.
 */
export function withoutOwnSchema(listing: string): string {
  const own = new RegExp(`^\\d+; \\d+ \\d+ SCHEMA - ${BELAY_SCHEMA} `);
  return listing
    .split('\n')
    .map((line) => (own.test(line) ? `;${line}` : line))
    .join('\n');
}

const extensionOf = (line: string): string | undefined => /^\d+; \d+ \d+ EXTENSION - (.*) $/.exec(line)?.[1];

/** The extensions a table of contents creates (named pg_* too, which the catalog comparison leaves out). */
export const archiveExtensions = (listing: string): string[] => listing.split('\n').flatMap((line) => extensionOf(line) ?? []);

/**
 * The listing without the entries of the extensions the live database has
 * (the extension and its comment): `pg_restore --clean` would drop and
 * re-create them, which only their owner may, and an extension a superuser
 * installed is not the restoring role's. Their member objects are not in the
 * archive; pg_dump does not record an extension's version either, so a
 * re-created one would be at its default version, not the snapshot's.
 */
export function withoutLiveExtensions(listing: string, live: readonly string[]): string {
  const names = new Set(live);
  const isLive = (line: string): boolean => {
    const extension = extensionOf(line);
    if (extension !== undefined) return names.has(extension);
    const commented = /^\d+; \d+ \d+ COMMENT - EXTENSION (.*) \S*$/.exec(line)?.[1];
    // the comment's tag names the extension as pg_dump quotes it: only where it must
    return commented !== undefined && live.some((name) => name === commented || quoteIdent(name) === commented);
  };
  return listing
    .split('\n')
    .map((line) => (isLive(line) ? `;${line}` : line))
    .join('\n');
}

/**
 * The listing with the constraints and indexes of partitions moved ahead of
 * their parents' (deepest partition first, the order otherwise kept).
 * `pg_restore --clean` drops in the reverse of the listing: a partition's
 * primary key, unique constraint or index dropped before its parent's fails
 * (`cannot drop inherited constraint`), while the parent's takes the
 * partitions' with it. Made in that order, the partitions' come first and the
 * parent's then take them (INDEX ATTACH stays after both).
 */
export async function partitionsFirst(client: ClientBase, listing: string): Promise<string> {
  const { rows } = await client.query<{ schema: string; name: string; depth: number }>(
    `SELECT n.nspname AS schema, i.relname AS name, (SELECT count(*) FROM pg_catalog.pg_partition_ancestors(x.indrelid))::int - 1 AS depth
       FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
      WHERE t.relispartition`,
  );
  if (rows.length === 0) return listing;
  const depths = new Map(rows.map(({ schema, name, depth }) => [`${schema} ${name}`, depth]));
  // `CONSTRAINT schema table name owner`, `INDEX schema name owner`: a constraint made with an index shares its name
  const depthOf = (line: string): number | undefined => {
    const rest = /^\d+; \d+ \d+ (?:CONSTRAINT|INDEX) (?!ATTACH )(.*)$/.exec(line)?.[1];
    if (rest === undefined) return undefined;
    const tokens = rest.split(' ');
    for (let end = tokens.length - 1; end > 1; end--) {
      for (let start = 1; start < end; start++) {
        const depth = depths.get(`${tokens[0]} ${tokens.slice(start, end).join(' ')}`);
        if (depth !== undefined) return depth;
      }
    }
    return 0;
  };
  const lines = listing.split('\n');
  const at = lines.flatMap((line, index) => (depthOf(line) === undefined ? [] : [index]));
  const moved = at.map((index) => lines[index]!).sort((a, b) => depthOf(b)! - depthOf(a)!);
  at.forEach((index, k) => (lines[index] = moved[k]!));
  return lines.join('\n');
}

const USER_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'belay') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname !~ '${QUARANTINE_SCHEMA.source}'`;
const notMember = (catalog: string, column: string): string =>
  `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '${catalog}'::pg_catalog.regclass AND d.objid = ${column} AND d.deptype = 'e')`;

/** Not pg_dump's to list on its own: part of another object (a range type's constructors, an identity column's sequence). */
const notInternal = (catalog: string, column: string): string =>
  `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '${catalog}'::pg_catalog.regclass AND d.objid = ${column} AND d.deptype = 'i')`;

const RELATION_KIND: Record<string, string> = { r: 'TABLE', p: 'TABLE', v: 'VIEW', m: 'MATERIALIZED VIEW', S: 'SEQUENCE', f: 'FOREIGN TABLE' };

/**
 * The live database's objects, spelled as pg_dump spells them in a table of
 * contents (types schema-qualified: the caller's search_path is set empty).
 */
async function liveCatalog(client: ClientBase, withLargeObjects: boolean): Promise<CatalogEntry[]> {
  const entries: CatalogEntry[] = [];
  const schemas = await client.query<{ name: string }>(
    `SELECT n.nspname AS name FROM pg_catalog.pg_namespace n WHERE ${USER_SCHEMA} AND n.nspname <> 'public' AND ${notMember('pg_namespace', 'n.oid')}`,
  );
  for (const { name } of schemas.rows) entries.push({ key: `schema:${name}`, label: `schema ${name}`, drop: `DROP SCHEMA IF EXISTS ${quoteIdent(name)} CASCADE` });
  // a sequence owned by a column (serial, identity, OWNED BY) is listed by pg_dump, but goes and comes with its table
  const relations = await client.query<{ schema: string; name: string; kind: string; owner: string | null }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
            (SELECT d.refobjid::pg_catalog.regclass::text || '.' || pg_catalog.quote_ident(a.attname)
               FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE c.relkind = 'S' AND d.classid = 'pg_class'::pg_catalog.regclass AND d.objid = c.oid
                AND d.refclassid = 'pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS owner
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ${USER_SCHEMA} AND ${notMember('pg_class', 'c.oid')}`,
  );
  for (const { schema, name, kind, owner } of relations.rows) {
    const what = RELATION_KIND[kind]!;
    const label = `${what.toLowerCase()} ${schema}.${name}${owner ? ` (owned by ${owner})` : ''}`;
    entries.push({ key: `rel:${schema} ${name}`, label, ...(owner ? {} : { drop: `DROP ${what} IF EXISTS ${quoteIdent(schema)}.${quoteIdent(name)} CASCADE` }) });
  }
  const routines = await client.query<{ schema: string; name: string; signature: string; kind: string; identity: string }>(
    `SELECT n.nspname AS schema, p.proname AS name, p.prokind::text AS kind, p.oid::pg_catalog.regprocedure::text AS identity,
            p.proname || '(' || coalesce((SELECT pg_catalog.string_agg(pg_catalog.format_type(a.t, NULL), ', ' ORDER BY a.i)
                                            FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY AS a(t, i)), '') || ')' AS signature
       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE ${USER_SCHEMA} AND ${notMember('pg_proc', 'p.oid')} AND ${notInternal('pg_proc', 'p.oid')}`,
  );
  for (const { schema, name, signature, kind, identity } of routines.rows) {
    const what = kind === 'p' ? 'PROCEDURE' : kind === 'a' ? 'AGGREGATE' : 'FUNCTION';
    // regprocedure's text is the server's own quoted, qualified spelling of the routine
    entries.push({ key: `routine:${schema} ${signature}`, label: `${what.toLowerCase()} ${schema}.${signature}`, drop: `DROP ${what} IF EXISTS ${identity} CASCADE`, routineName: `${schema} ${name}` });
  }
  const types = await client.query<{ schema: string; name: string; domain: boolean }>(
    `SELECT n.nspname AS schema, t.typname AS name, t.typtype = 'd' AS domain
       FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
      WHERE t.typtype IN ('b', 'c', 'd', 'e', 'r') AND ${USER_SCHEMA} AND ${notMember('pg_type', 't.oid')} AND ${notInternal('pg_type', 't.oid')}
        AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c')
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.typarray = t.oid)`,
  );
  for (const { schema, name, domain } of types.rows) {
    const what = domain ? 'DOMAIN' : 'TYPE';
    entries.push({ key: `type:${schema} ${name}`, label: `${what.toLowerCase()} ${schema}.${name}`, drop: `DROP ${what} IF EXISTS ${quoteIdent(schema)}.${quoteIdent(name)} CASCADE` });
  }
  // objects of a schema that go with it alone: left, one made after the snapshot keeps pg_restore --clean from dropping its schema
  const schemaObjects = await client.query<{ kind: string; what: string; schema: string; name: string }>(
    `SELECT x.kind, x.what, n.nspname AS schema, x.name
       FROM (SELECT 'collation', 'COLLATION', collnamespace, collname, oid, 'pg_collation' FROM pg_catalog.pg_collation
             UNION ALL SELECT 'conversion', 'CONVERSION', connamespace, conname, oid, 'pg_conversion' FROM pg_catalog.pg_conversion
             UNION ALL SELECT 'tsconfig', 'TEXT SEARCH CONFIGURATION', cfgnamespace, cfgname, oid, 'pg_ts_config' FROM pg_catalog.pg_ts_config
             UNION ALL SELECT 'tsdict', 'TEXT SEARCH DICTIONARY', dictnamespace, dictname, oid, 'pg_ts_dict' FROM pg_catalog.pg_ts_dict
             UNION ALL SELECT 'statistics', 'STATISTICS', stxnamespace, stxname, oid, 'pg_statistic_ext' FROM pg_catalog.pg_statistic_ext)
            AS x(kind, what, namespace, name, oid, catalog)
       JOIN pg_catalog.pg_namespace n ON n.oid = x.namespace
      WHERE ${USER_SCHEMA}
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = x.catalog::pg_catalog.regclass AND d.objid = x.oid AND d.deptype = 'e')`,
  );
  for (const { kind, what, schema, name } of schemaObjects.rows) {
    entries.push({ key: `${kind}:${schema} ${name}`, label: `${what.toLowerCase()} ${schema}.${name}`, drop: `DROP ${what} IF EXISTS ${quoteIdent(schema)}.${quoteIdent(name)} CASCADE` });
  }
  if (withLargeObjects) {
    const largeObjects = await client.query<{ oid: string }>('SELECT oid::text AS oid FROM pg_catalog.pg_largeobject_metadata');
    for (const { oid } of largeObjects.rows) entries.push({ key: `blob:${oid}`, label: `large object ${oid}`, drop: `SELECT pg_catalog.lo_unlink(${Number(oid)})` });
  }
  const extensions = await client.query<{ name: string }>("SELECT extname AS name FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql'");
  for (const { name } of extensions.rows) entries.push({ key: `extension:${name}`, label: `extension ${name}`, drop: `DROP EXTENSION IF EXISTS ${quoteIdent(name)} CASCADE` });
  return entries;
}

function countBy(entries: readonly CatalogEntry[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const entry of entries) if (entry.routineName) counts.set(entry.routineName, (counts.get(entry.routineName) ?? 0) + 1);
  return counts;
}

export interface CatalogDifference {
  /** Live objects the snapshot does not have: created after it. */
  extra: CatalogEntry[];
  /** Snapshot objects the live database lacks. */
  missing: CatalogEntry[];
}

/** Compare the live database (search_path is set empty on `client` for the comparison) with the snapshot's objects. */
export async function compareWithArchive(client: ClientBase, archive: readonly CatalogEntry[]): Promise<CatalogDifference> {
  await client.query("SELECT pg_catalog.set_config('search_path', '', false)");
  const grouped = archive.some((entry) => entry.key === GROUPED_BLOBS);
  const live = await liveCatalog(client, !grouped);
  const archiveKeys = new Set(archive.flatMap((entry) => entry.readings ?? [entry.key]));
  const liveKeys = new Set(live.map((entry) => entry.key));
  const archiveCounts = countBy(archive);
  const liveCounts = countBy(live);
  // a routine whose signature reads differently on the two sides still matches when its name is there as often
  const sameCount = (name: string | undefined): boolean => name !== undefined && archiveCounts.get(name) === liveCounts.get(name);
  return {
    extra: live.filter((entry) => !archiveKeys.has(entry.key) && !sameCount(entry.routineName)),
    missing: archive.filter((entry) => entry.key !== GROUPED_BLOBS && !(entry.readings ?? [entry.key]).some((key) => liveKeys.has(key)) && !sameCount(entry.routineName)),
  };
}
