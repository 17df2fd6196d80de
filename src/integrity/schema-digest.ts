import { createHash } from 'node:crypto';
import { escapeLiteral, type ClientBase, type QueryResult } from 'pg';
import { BELAY_SCHEMA } from '../db/belay-schema.js';
import { changedKeysQuery, describeAllQuery, describeKeysQuery, goneKeysQuery, type Branch, schemasWrittenQuery, SNAPSHOT_HORIZON } from './schema-query.js';

export interface SchemaObject {
  kind: string;
  /** Qualified name, e.g. `public.people`, `public.people.people_pkey`, `public.f(integer)`. */
  name: string;
  /** Normalized, order-independent description: equal when the object is the same. */
  description: string;
}

/** The schema of a database at one moment, described object by object (see describeAllQuery). */
export interface SchemaDescription {
  /**
   * The sum (mod 2^256) of a sha256 of each object's kind, name and
   * description: equal for equal schemas, and kept up to date object by
   * object as a tracker follows changes. Column order is not part of it.
   */
  digest: string;
  /** Keyed by `kind name`. */
  objects: Map<string, SchemaObject>;
  /** Per table (`public.people`), its columns in their physical order. */
  columnOrder: Record<string, string[]>;
}

/**
 * What one revision's up changed, to keep with it (one per applied revision
 * in belay.migrations): for each object it added, removed or changed, a hash
 * of its description before and after (null: absent), and for each of those
 * tables its columns in order before and after. What it did not change is not
 * repeated: the record grows with the change, not with the schema.
 */
export interface SchemaChanges {
  format: 2;
  /** The digest of the whole schema the revision left. */
  digest: string;
  /** Keyed by `kind name`: [before, after]. */
  changes: Record<string, [string | null, string | null]>;
  /** Keyed by table (`public.people`), among the changed tables: [before, after]. */
  columnOrder: Record<string, [string[] | null, string[] | null]>;
}

export interface SchemaChange {
  key: string;
  /** Both descriptions, when both sides carry them (a record of hashes does not). */
  before?: string;
  after?: string;
}

export interface SchemaDiff {
  added: string[];
  removed: string[];
  changed: SchemaChange[];
  /** Tables whose common columns stand in another order: a warning, never a difference (PostgreSQL cannot reorder columns). */
  columnOrder: Array<{ table: string; before: string[]; after: string[] }>;
}

/**
 * 'now' in a default or a view is evaluated once, when the object is made,
 * and frozen as a literal ('2026-12-01 22:33:44.123456+00'::timestamp with
 * time zone): the same object made at another moment freezes another one. A
 * time literal with fractional seconds is that signature; written by hand it
 * rarely has them.
 */
const FROZEN_TIME = /'(\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}:\d{2}\.\d+([+-]\d{2}(:\d{2})?)?'::(timestamp|time)( with(out)? time zone)?/g;

export function normalizeDescription(text: string): string {
  return text.replace(FROZEN_TIME, "'(time of creation)'::$4$5");
}

const keyOf = (object: SchemaObject): string => `${object.kind} ${object.name}`;

const DIGEST_MODULUS = 1n << 256n;

/** Each object's part of a digest, made once: a tracker hands out the same object until it changes. */
const digestTerms = new WeakMap<SchemaObject, bigint>();

function digestTerm(object: SchemaObject): bigint {
  let term = digestTerms.get(object);
  if (term === undefined) {
    term = BigInt(`0x${createHash('sha256').update(`${keyOf(object)}\n${object.description}`).digest('hex')}`);
    digestTerms.set(object, term);
  }
  return term;
}

/** A sum of terms, some taken away, back into [0, 2^256). */
const modDigest = (sum: bigint): bigint => ((sum % DIGEST_MODULUS) + DIGEST_MODULUS) % DIGEST_MODULUS;

const digestHex = (sum: bigint): string => sum.toString(16).padStart(64, '0');

/** The digest of a schema without a single user object (what `rollback --to 0` lands on). */
export const EMPTY_DIGEST = digestHex(0n);

interface SchemaRow {
  kind: string;
  name: string;
  key: string;
  description: string | null;
  column_order: string[] | null;
}

/**
 * Whether the open transaction deleted rows of the catalogs whose rows are
 * described objects (a drop); without statistics, assume it did.
 */
const DELETED_IN_TRANSACTION = `(current_setting('track_counts') <> 'on' OR ${['pg_namespace', 'pg_extension', 'pg_class', 'pg_constraint', 'pg_trigger', 'pg_rewrite', 'pg_policy', 'pg_proc', 'pg_type']
  .map((catalog) => `pg_catalog.pg_stat_get_xact_tuples_deleted('pg_catalog.${catalog}'::regclass)`)
  .join(' + ')} > 0)`;

/**
 * `statements` (literals only) in one round trip after `opening`, with
 * search_path = pg_catalog and jit off for them, inside the caller's
 * transaction or the implicit one of the round trip; the settings are given
 * back after them. Their rows, statement by statement.
 */
async function inCatalogSettings<T>(client: ClientBase, opening: string, statements: string[]): Promise<T[][]> {
  const results = (await client.query(
    [
      opening,
      "SELECT set_config('belay.search_path', current_setting('search_path'), true), set_config('belay.jit', current_setting('jit'), true)",
      // a catalog query's estimates pass jit_above_cost on a large catalog: compiling it costs more than running it
      'SET LOCAL search_path = pg_catalog; SET LOCAL jit = off',
      ...statements,
      "SELECT set_config('search_path', current_setting('belay.search_path'), true), set_config('jit', current_setting('belay.jit'), true)",
    ]
      .filter((statement) => statement !== '')
      .join(';\n'),
  )) as unknown as QueryResult[];
  return results.slice(-1 - statements.length, -1).map((result) => result.rows as T[]);
}

interface Described {
  object: SchemaObject;
  columnOrder: string[] | null;
}

function described(row: SchemaRow): Described {
  return { object: { kind: row.kind, name: row.name, description: normalizeDescription(row.description ?? '') }, columnOrder: row.column_order };
}

function assemble(byKey: ReadonlyMap<string, Described>, sum: bigint): SchemaDescription {
  const objects = new Map<string, SchemaObject>();
  const columnOrder: Record<string, string[]> = {};
  for (const { object, columnOrder: order } of byKey.values()) {
    objects.set(keyOf(object), object);
    if (order) columnOrder[object.name] = order;
  }
  return { digest: digestHex(sum), objects, columnOrder };
}

/**
 * Describe every object in the user's schemas (belay's own left out) with
 * one catalog query, under search_path = pg_catalog so that the names in the
 * descriptions do not depend on the caller's search_path.
 */
export async function describeSchema(client: ClientBase): Promise<SchemaDescription> {
  return new SchemaTracker().describe(client);
}

/**
 * describeSchema for one database described again and again (a run records
 * the schema each revision leaves, a rehearsal describes it after every
 * step). The first time it describes every object; after that, only the
 * objects whose catalog rows were written since (by any transaction,
 * including the caller's open one) and the objects that name them, and it
 * checks that the others still exist. Inside a revision's transaction,
 * before it commits, that is what the revision changed.
 */
export class SchemaTracker {
  /** What the last description saw, by catalog key, and the oldest transaction whose writes it may not have seen. */
  private seen: { byKey: Map<string, Described>; since: string; sum: bigint } | undefined;

  /**
   * In the caller's transaction, or in the implicit one of its round trip.
   * `opening`: statements whose results are not read (e.g. a settings
   * reset), sent first in the same round trip. `inOneTransaction`: the caller
   * holds the transaction that made every change since the last description
   * (a revision's, before it commits): then the objects it knew are looked up
   * only if that transaction deleted catalog rows.
   */
  async describe(client: ClientBase, { opening = '', inOneTransaction = false }: { opening?: string; inOneTransaction?: boolean } = {}): Promise<SchemaDescription> {
    if (!this.seen) return this.describeAll(client, opening);
    const since = `${escapeLiteral(this.seen.since)}::xid`;
    const gone = goneKeysQuery([...this.seen.byKey.keys()]);
    const [facts] = await inCatalogSettings<{ since: string; schemas_written: boolean; gone: string[]; changed: { keys: string[] | null; kinds: Array<Branch | null> | null } }>(
      client,
      opening,
      [
        `SELECT ${SNAPSHOT_HORIZON} AS since, ${schemasWrittenQuery(since)} AS schemas_written,
                ${gone ? `CASE WHEN ${inOneTransaction ? DELETED_IN_TRANSACTION : 'true'} THEN ARRAY(${gone}) ELSE ARRAY[]::text[] END` : 'ARRAY[]::text[]'} AS gone,
                (SELECT to_jsonb(c) FROM (${changedKeysQuery(since, inOneTransaction)}) c) AS changed`,
      ],
    );
    const { since: next, schemas_written: schemasWritten, gone: goneKeys, changed } = facts![0]!;
    // a schema made or renamed: every name in it may have changed
    if (schemasWritten) return this.describeAll(client);
    const byKey = new Map(this.seen.byKey);
    let sum = this.seen.sum;
    const forget = (key: string): void => {
      const known = byKey.get(key);
      if (known) sum -= digestTerm(known.object);
      byKey.delete(key);
    };
    goneKeys.forEach(forget);
    const keys = changed.keys ?? [];
    // looked at and not described (again): no longer a user object (moved to belay's schema, taken into an extension)
    keys.forEach(forget);
    const kinds = new Set((changed.kinds ?? []).filter((kind): kind is Branch => kind !== null));
    if (kinds.size > 0) {
      const [rows] = await inCatalogSettings<SchemaRow>(client, '', [describeKeysQuery(escapeLiteral(BELAY_SCHEMA), keys, kinds)]);
      for (const row of rows!) {
        const made = described(row);
        sum += digestTerm(made.object);
        byKey.set(row.key, made);
      }
    }
    sum = modDigest(sum);
    this.seen = { byKey, since: next, sum };
    return assemble(byKey, sum);
  }

  private async describeAll(client: ClientBase, opening = ''): Promise<SchemaDescription> {
    // the horizon first: the listing's snapshot is the same or later, so it misses no write from before it
    const [horizon, rows] = await inCatalogSettings<{ since: string } & SchemaRow>(client, opening, [
      `SELECT ${SNAPSHOT_HORIZON} AS since`,
      describeAllQuery(escapeLiteral(BELAY_SCHEMA)),
    ]);
    const byKey = new Map(rows!.map((row) => [row.key, described(row)]));
    let sum = 0n;
    for (const { object } of byKey.values()) sum += digestTerm(object);
    sum = modDigest(sum);
    this.seen = { byKey, since: horizon![0]!.since, sum };
    return assemble(byKey, sum);
  }
}

/** Each object's hash, made once: a tracker hands out the same object until it changes. */
const objectHashes = new WeakMap<SchemaObject, string>();

function objectHash(object: SchemaObject): string {
  let hash = objectHashes.get(object);
  if (hash === undefined) {
    hash = createHash('sha256').update(object.description).digest('hex').slice(0, 32);
    objectHashes.set(object, hash);
  }
  return hash;
}

/** The hash of the object with this key, null when absent. */
export const hashOf = (schema: SchemaDescription, key: string): string | null => {
  const object = schema.objects.get(key);
  return object ? objectHash(object) : null;
};

/**
 * What changed from `before` to `after`, to keep. A tracker hands out the
 * same object for what it did not describe again, so unchanged objects cost
 * a comparison of references.
 */
export function schemaChanges(before: SchemaDescription, after: SchemaDescription): SchemaChanges {
  const changes: SchemaChanges['changes'] = {};
  for (const [key, object] of after.objects) {
    const was = before.objects.get(key);
    if (was === object) continue;
    const then = was ? objectHash(was) : null;
    const now = objectHash(object);
    if (then !== now) changes[key] = [then, now];
  }
  for (const [key, object] of before.objects) if (!after.objects.has(key)) changes[key] = [objectHash(object), null];
  const columnOrder: SchemaChanges['columnOrder'] = {};
  for (const key of Object.keys(changes)) {
    const object = before.objects.get(key) ?? after.objects.get(key)!;
    if (object.kind !== 'table' && object.kind !== 'foreign table') continue;
    columnOrder[object.name] = [before.columnOrder[object.name] ?? null, after.columnOrder[object.name] ?? null];
  }
  return { format: 2, digest: after.digest, changes, columnOrder };
}

/** Common columns in another order, table by table. */
export function columnOrderChanges(before: Record<string, string[]>, after: Record<string, string[]>): SchemaDiff['columnOrder'] {
  const changes: SchemaDiff['columnOrder'] = [];
  for (const [table, then] of Object.entries(before)) {
    const now = after[table];
    if (!now) continue;
    const common = new Set(then.filter((column) => now.includes(column)));
    const a = then.filter((column) => common.has(column));
    const b = now.filter((column) => common.has(column));
    if (a.join('\0') !== b.join('\0')) changes.push({ table, before: then, after: now });
  }
  return changes;
}

/** What differs between two schemas, object by object (added, removed, changed), and column order apart. */
export function diffSchemas(before: SchemaDescription, after: SchemaDescription): SchemaDiff {
  const diff: SchemaDiff = { added: [], removed: [], changed: [], columnOrder: columnOrderChanges(before.columnOrder, after.columnOrder) };
  for (const [key, then] of before.objects) {
    const now = after.objects.get(key);
    if (!now) diff.removed.push(key);
    else if (now !== then && now.description !== then.description) diff.changed.push({ key, before: then.description, after: now.description });
  }
  for (const key of after.objects.keys()) if (!before.objects.has(key)) diff.added.push(key);
  diff.added.sort();
  diff.removed.sort();
  diff.changed.sort((x, y) => x.key.localeCompare(y.key));
  return diff;
}

export const schemasDiffer = (diff: SchemaDiff): boolean => diff.added.length + diff.removed.length + diff.changed.length > 0;

/** One line per object: `+ index public.people_name: CREATE INDEX …`, `- …`, `~ …` with the lines that changed. */
export function describeSchemaDiff(diff: SchemaDiff, after?: SchemaDescription, before?: SchemaDescription, limit = 80): string {
  const lines: string[] = [];
  const firstLine = (text: string | undefined): string => (text ? `: ${text.split('\n')[0]}` : '');
  for (const key of diff.added) lines.push(`+ ${key}${firstLine(after?.objects.get(key)?.description)}`);
  for (const key of diff.removed) lines.push(`- ${key}${firstLine(before?.objects.get(key)?.description)}`);
  for (const change of diff.changed) {
    lines.push(`~ ${change.key}`);
    if (change.before === undefined || change.after === undefined) continue;
    const was = new Set(change.before.split('\n'));
    const is = new Set(change.after.split('\n'));
    for (const line of change.before.split('\n')) if (!is.has(line)) lines.push(`  - ${line}`);
    for (const line of change.after.split('\n')) if (!was.has(line)) lines.push(`  + ${line}`);
  }
  return (lines.length > limit ? [...lines.slice(0, limit), `… ${lines.length - limit} more line(s)`] : lines).join('\n');
}

/** The column-order warnings, in words. */
export function describeColumnOrder(diff: SchemaDiff): string[] {
  return diff.columnOrder.map((c) => `the columns of ${c.table} stand in another order (${c.before.join(', ')} → ${c.after.join(', ')}): a re-added column goes last`);
}
