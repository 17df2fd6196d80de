import type { ClientBase } from 'pg';

/**
 * What a revision does to a relation, told by the locks it holds before it
 * commits. A write (INSERT/UPDATE/DELETE/MERGE/COPY) takes RowExclusiveLock;
 * TRUNCATE, DROP, a rewrite or any ALTER that can lose data takes
 * AccessExclusiveLock; REFRESH … CONCURRENTLY takes ExclusiveLock. Reading,
 * indexing, validating or adding a trigger or a foreign key take weaker modes
 * and leave the rows as they were: the definition in the schema is enough.
 */
export const DATA_MODES: readonly string[] = ['RowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'];

export type Need = 'data' | 'definition';

export const needOf = (modes: readonly string[]): Need => (modes.some((mode) => DATA_MODES.includes(mode)) ? 'data' : 'definition');

export type CatalogKind = 'schema' | 'table' | 'partitioned table' | 'view' | 'materialized view' | 'sequence' | 'foreign table' | 'type' | 'function';

export interface CatalogObject {
  kind: CatalogKind;
  schema: string;
  name: string;
  /** A function's argument types as PostgreSQL prints them (pg_get_function_identity_arguments). */
  args?: string;
  /** A sequence that a column owns (serial, identity): it comes and goes with its table. */
  owned?: true;
}

export interface TouchedRelation {
  schema: string;
  name: string;
  kind: CatalogKind;
  /** The lock modes the revision held on it, weakest first. */
  modes: string[];
  need: Need;
}

/** What one revision touched, learned on the schema-only copy. */
export interface RevisionScope {
  revision: string;
  /** For an up run, its downs are learned too (the safety net runs them under the same snapshot). */
  direction: 'up' | 'down';
  transactional: boolean;
  /** Relations that existed before the run and that the revision locked (under their names before the run). */
  touches: TouchedRelation[];
  creates: CatalogObject[];
  /** Existing objects whose catalog row the revision changed (ALTER, CREATE OR REPLACE, GRANT, …). */
  alters: CatalogObject[];
  drops: CatalogObject[];
}

export interface LearnedScope {
  direction: 'up' | 'down';
  /** Where it was learned: the revisions and the throwaway copy, for the manifest and the journal. */
  learnedFrom: string;
  revisions: RevisionScope[];
  /** Why the scope is not known (then only a full snapshot covers the run); null when it is. */
  unknown: string | null;
  /** Relations that existed before the run whose rows some revision may change: what a touched snapshot holds. */
  dataTables: Array<{ schema: string; name: string; kind: CatalogKind }>;
  /**
   * What the revisions' writes set off that may write elsewhere when rows are
   * there, which the empty copy has none of (a trigger, a rule, a foreign key
   * that cascades from a table outside dataTables), each in words.
   */
  setOff: string[];
  /** What the revisions create and leave (not what one creates and a later one drops). */
  created: CatalogObject[];
}

export const objectLabel = (o: { schema: string; name: string; args?: string }): string =>
  `${o.schema === '' ? '' : `${o.schema}.`}${o.name}${o.args === undefined ? '' : `(${o.args})`}`;

/** `n` (a pg_namespace) is not a system schema: no relation of one is a user's table. */
export const NOT_SYSTEM_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

const USER_SCHEMA = `${NOT_SYSTEM_SCHEMA} AND n.nspname <> 'belay'`;

const RELKIND_NAMES: Record<string, CatalogKind> = {
  r: 'table',
  p: 'partitioned table',
  v: 'view',
  m: 'materialized view',
  S: 'sequence',
  f: 'foreign table',
};

export const relkindName = (relkind: string): CatalogKind => RELKIND_NAMES[relkind] ?? 'table';

export interface CatalogEntry extends CatalogObject {
  /** "kind oid": unique across the catalogs listed here. */
  key: string;
  oid: number;
  /** The catalog row's xmin: a new one means the object was changed. */
  version: string;
}

/**
 * The user objects of the connected database (outside system schemas and
 * belay's own): schemas, relations that are not indexes, standalone types and
 * functions, each with the xmin of its catalog row.
 */
export async function readCatalog(client: ClientBase): Promise<Map<string, CatalogEntry>> {
  const { rows } = await client.query<{ kind: string; oid: number; schema: string; name: string; args: string | null; version: string; owned: boolean }>(
    `SELECT 'schema' AS kind, n.oid::int8 AS oid, '' AS schema, n.nspname AS name, NULL AS args, n.xmin::text AS version, false AS owned
       FROM pg_namespace n WHERE ${USER_SCHEMA}
     UNION ALL
     SELECT c.relkind::text, c.oid::int8, n.nspname, c.relname, NULL, c.xmin::text,
            c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ${USER_SCHEMA}
     UNION ALL
     SELECT 'type', t.oid::int8, n.nspname, t.typname, NULL, t.xmin::text, false
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE ${USER_SCHEMA} AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
        AND NOT (t.typcategory = 'A' AND t.typelem <> 0)
        AND NOT EXISTS (SELECT 1 FROM pg_range r WHERE r.rngmultitypid = t.oid)
     UNION ALL
     SELECT 'function', p.oid::int8, n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.xmin::text, false
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE ${USER_SCHEMA}`,
  );
  const catalog = new Map<string, CatalogEntry>();
  for (const row of rows) {
    const kind: CatalogKind = row.kind === 'schema' || row.kind === 'type' || row.kind === 'function' ? row.kind : relkindName(row.kind);
    const oid = Number(row.oid);
    const entry: CatalogEntry = { key: `${kind} ${oid}`, oid, kind, schema: row.schema, name: row.name, version: row.version };
    if (row.args !== null) entry.args = row.args;
    if (row.owned) entry.owned = true;
    catalog.set(entry.key, entry);
  }
  return catalog;
}

/** Why `auto` takes a full snapshot for what the revisions' writes set off. */
export const setOffReason = (setOff: string[]): string =>
  `the tables the revisions write set off what may write other tables once rows are there, which the schema-only copy has none of, so where it writes cannot be learned: ${setOff.join('; ')}`;

export const isRelation = (kind: CatalogKind): boolean => kind !== 'schema' && kind !== 'type' && kind !== 'function';

/** The relation locks this backend holds now, in the connected database: oid → modes. */
export async function ownRelationLocks(client: ClientBase): Promise<Map<number, string[]>> {
  const { rows } = await client.query<{ oid: string; modes: string[] }>(
    `SELECT l.relation::int8::text AS oid, array_agg(DISTINCT l.mode::text ORDER BY l.mode::text) AS modes
       FROM pg_locks l
      WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      GROUP BY l.relation`,
  );
  return new Map(rows.map((row) => [Number(row.oid), row.modes]));
}
