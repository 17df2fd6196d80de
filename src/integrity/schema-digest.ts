import { sha256Hex } from '../sha256.js';
import { escapeLiteral, type ClientBase, type QueryResult, type QueryResultRow } from 'pg';
import { BELAY_SCHEMA } from '../db/belay-schema.js';
import { simpleQueryResults } from '../db/simple-query.js';
import { changedKeysQuery, DELETED_IN_TRANSACTION, describeAllQuery, describeKeysQuery, goneKeysQuery, keysLiteral, OID_FLOOR, type Branch, schemasWrittenQuery, SNAPSHOT_HORIZON } from './schema-query.js';

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
    term = BigInt(`0x${sha256Hex(`${keyOf(object)}\n${object.description}`)}`);
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
 * `statements` (literals only) in one round trip after `opening`, with
 * search_path = pg_catalog and jit off for them, inside the caller's
 * transaction or the implicit one of the round trip; the settings are given
 * back after them. Their rows, statement by statement.
 */
async function inCatalogSettings<T>(client: ClientBase, opening: string, statements: string[]): Promise<T[][]> {
  const results = await simpleQueryResults<T & QueryResultRow>(
    client,
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
  );
  return results.slice(-1 - statements.length, -1).map((result) => result.rows);
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

interface TrackOptions {
  /** Statements whose results are not read (e.g. a settings reset), sent first in the same round trip. */
  opening?: string;
  /**
   * The caller holds the transaction that made every change since the last
   * description (a revision's, before it commits): then the objects it knew
   * are looked up only if that transaction deleted catalog rows.
   */
  inOneTransaction?: boolean;
  /** With inOneTransaction: the function that answers in one call (ensureTrackerFunction), when there is one. */
  via?: string;
  /** What the caller got for callVia(via, opening), sent in a round trip of its own (with `opening` and `via` as given here). */
  answered?: QueryResult<QueryResultRow>;
}

/** What an update learns in its first round trip. */
interface Facts {
  since: string;
  /** The highest pg_class OID now (see changedKeysBlock). */
  oid_floor: string;
  schemas_written: boolean;
  deleted: boolean;
  /** Known keys found gone (inline and not in one transaction: asked right away). */
  gone?: string[] | null;
  keys: string[] | null;
  /** The changed objects described, when the function answered. */
  rows?: SchemaRow[];
  kinds?: Array<Branch | null> | null;
}

/**
 * describeSchema for one database described again and again (a run records
 * what each revision changes, a rehearsal describes the schema after every
 * step). The first time it describes every object; after that, only the
 * objects whose catalog rows were written since (by any transaction,
 * including the caller's open one) and the objects that name them, and it
 * checks that the others still exist. Inside a revision's transaction,
 * before it commits, that is what the revision changed. Nothing per update
 * is done for the objects that did not change, in node.
 */
export class SchemaTracker {
  /** What the last description saw, by catalog key, and the oldest transaction whose writes it may not have seen. */
  private seen: { byKey: Map<string, Described>; since: string; oidFloor: string | null; sum: bigint } | undefined;
  /** Each key changed since the last takeChanges(), as it was before its first change (undefined: absent). */
  private readonly touched = new Map<string, Described | undefined>();

  /** `recording`: keep what changed for takeChanges() (a tracker that only describes need not). */
  constructor(private readonly recording = false) {}

  /** Bring the description up to date and hand out a copy of it. In the caller's transaction, or in the implicit one of its round trip. */
  async describe(client: ClientBase, options: TrackOptions = {}): Promise<SchemaDescription> {
    await this.update(client, options);
    return this.lastDescription();
  }

  /** A copy of the last description, asking nothing: for a caller that knows nothing changed since. */
  lastDescription(): SchemaDescription {
    if (!this.seen) throw new Error('lastDescription() needs a tracker that has described the schema');
    return assemble(this.seen.byKey, this.seen.sum);
  }

  /**
   * `opening`, then the one statement (a call of `via`, the tracker function)
   * that answers update() in the caller's transaction: what update() sends,
   * for a caller to send in a round trip of its own and hand back as
   * `answered`; undefined when update() must ask otherwise (nothing described
   * yet).
   */
  callVia(via: string, opening = ''): string | undefined {
    if (!this.seen) return undefined;
    const floor = this.seen.oidFloor === null ? 'NULL' : escapeLiteral(this.seen.oidFloor);
    return `${opening ? `${opening};\n` : ''}SELECT ${via}(${escapeLiteral(this.seen.since)}::xid, ${floor}::oid) AS facts`;
  }

  /** Bring the description up to date, recording what changed for takeChanges(). */
  async update(client: ClientBase, { opening = '', inOneTransaction = false, via, answered }: TrackOptions = {}): Promise<void> {
    if (!this.seen) return this.describeAll(client, opening);
    const since = `${escapeLiteral(this.seen.since)}::xid`;
    // the keys known, for the gone check: a literal as long as the schema, built only when needed
    const gone = (): string | undefined => goneKeysQuery([...this.seen!.byKey.keys()]);
    let facts: Facts;
    if (via && inOneTransaction) {
      const answer = answered ?? (await simpleQueryResults(client, this.callVia(via, opening)!)).at(-1)!;
      facts = (answer.rows[0] as { facts: Facts }).facts;
    } else {
      const looked = !inOneTransaction ? gone() : undefined;
      const [found] = await inCatalogSettings<Omit<Facts, 'rows' | 'keys' | 'kinds'> & { changed: Pick<Facts, 'keys' | 'kinds'> }>(client, opening, [
        `SELECT ${SNAPSHOT_HORIZON} AS since, ${OID_FLOOR} AS oid_floor, ${schemasWrittenQuery(since)} AS schemas_written,
                ${inOneTransaction ? DELETED_IN_TRANSACTION : 'false'} AS deleted,
                ${looked ? `ARRAY(${looked})` : 'NULL::text[]'} AS gone,
                (SELECT to_jsonb(c) FROM (${changedKeysQuery(since, inOneTransaction)}) c) AS changed`,
      ]);
      const { changed, ...rest } = found![0]!;
      facts = { ...rest, ...changed };
    }
    // a schema made or renamed: every name in it may have changed
    if (facts.schemas_written) return this.describeAll(client);
    const keys = facts.keys ?? [];
    const kinds = new Set((facts.kinds ?? []).filter((kind): kind is Branch => kind !== null));
    const describing = !facts.rows && kinds.size > 0 ? describeKeysQuery(escapeLiteral(BELAY_SCHEMA), keysLiteral(keys), kinds) : undefined;
    const checking = facts.deleted ? gone() : undefined;
    const statements = [describing, checking].filter((statement): statement is string => statement !== undefined);
    const results = statements.length > 0 ? await inCatalogSettings<SchemaRow>(client, '', statements) : [];
    const rows = facts.rows ?? (describing ? results.shift()! : []);
    const goneKeys = [...(facts.gone ?? []), ...(checking ? results.shift()!.map((row) => row.key) : [])];
    const seen = this.seen;
    const forget = (key: string): void => this.replace(seen, key, undefined);
    goneKeys.forEach(forget);
    // looked at and not described (again): no longer a user object (moved to belay's schema, taken into an extension)
    keys.forEach(forget);
    for (const row of rows) this.replace(seen, row.key, described(row));
    seen.sum = modDigest(seen.sum);
    seen.since = facts.since;
    seen.oidFloor = facts.oid_floor;
  }

  /**
   * What changed since the last call (or since the first description): a
   * record of each object added, removed or changed, and the digest of the
   * schema now. Costs what changed, not what the schema holds.
   */
  takeChanges(): SchemaChanges {
    if (!this.seen || !this.recording) throw new Error('takeChanges() needs a recording tracker that has described the schema');
    const { byKey, sum } = this.seen;
    const entries = [...this.touched].map(([key, was]): ChangeEntry => [was, byKey.get(key)]);
    this.touched.clear();
    return changeRecord(entries, digestHex(sum));
  }

  /** Start again from a full description (what was described may have been rolled back). */
  reset(): void {
    this.seen = undefined;
    this.touched.clear();
  }

  private replace(seen: NonNullable<SchemaTracker['seen']>, key: string, now: Described | undefined): void {
    const known = seen.byKey.get(key);
    this.touch(key, known);
    if (known) seen.sum -= digestTerm(known.object);
    if (now) {
      seen.sum += digestTerm(now.object);
      seen.byKey.set(key, now);
    } else seen.byKey.delete(key);
  }

  private async describeAll(client: ClientBase, opening = ''): Promise<void> {
    // the horizon first: the listing's snapshot is the same or later, so it misses no write from before it
    const [horizon, rows] = await inCatalogSettings<{ since: string; oid_floor: string } & SchemaRow>(client, opening, [
      `SELECT ${SNAPSHOT_HORIZON} AS since, ${OID_FLOOR} AS oid_floor`,
      describeAllQuery(escapeLiteral(BELAY_SCHEMA)),
    ]);
    const previous = this.seen;
    const seen = { byKey: new Map<string, Described>(), since: horizon![0]!.since, oidFloor: horizon![0]!.oid_floor, sum: 0n };
    for (const row of rows!) {
      const now = described(row);
      seen.byKey.set(row.key, now);
      seen.sum += digestTerm(now.object);
    }
    seen.sum = modDigest(seen.sum);
    if (previous && this.recording) {
      // described again from scratch (a schema was written): record what differs from the last description
      for (const [key, was] of previous.byKey) if (was.object.description !== seen.byKey.get(key)?.object.description || was.object.name !== seen.byKey.get(key)?.object.name) this.touch(key, was);
      for (const key of seen.byKey.keys()) if (!previous.byKey.has(key)) this.touch(key, undefined);
    }
    this.seen = seen;
  }

  private touch(key: string, was: Described | undefined): void {
    if (this.recording && !this.touched.has(key)) this.touched.set(key, was);
  }
}

/** The kinds of object whose columns have an order of their own (SchemaDescription.columnOrder). */
const hasColumnOrder = (kind: string): boolean => kind === 'table' || kind === 'foreign table';

/** One object that may have changed: as it was and as it is (undefined: absent). */
type ChangeEntry = [was: Described | undefined, now: Described | undefined];

/**
 * The record of `entries` to keep, by kind and name (a rename is the old
 * name gone and the new one added): for each object whose description
 * changed, its hash before and after, and each changed table's column order
 * before and after. The entries must hold every object that had or has one
 * of their names.
 */
function changeRecord(entries: readonly ChangeEntry[], digest: string): SchemaChanges {
  const before = new Map<string, Described>();
  const after = new Map<string, Described>();
  for (const [was, now] of entries) {
    if (was) before.set(keyOf(was.object), was);
    if (now) after.set(keyOf(now.object), now);
  }
  const changes: SchemaChanges['changes'] = {};
  const columnOrder: SchemaChanges['columnOrder'] = {};
  for (const key of new Set([...before.keys(), ...after.keys()])) {
    const was = before.get(key);
    const now = after.get(key);
    if (was?.object === now?.object) continue;
    const then = was ? objectHash(was.object) : null;
    const hash = now ? objectHash(now.object) : null;
    if (then === hash) continue;
    changes[key] = [then, hash];
    const { kind, name } = (was ?? now)!.object;
    if (hasColumnOrder(kind)) columnOrder[name] = [was?.columnOrder ?? null, now?.columnOrder ?? null];
  }
  return { format: 2, digest, changes, columnOrder };
}

/** Each object's hash, made once: a tracker hands out the same object until it changes. */
const objectHashes = new WeakMap<SchemaObject, string>();

function objectHash(object: SchemaObject): string {
  let hash = objectHashes.get(object);
  if (hash === undefined) {
    hash = sha256Hex(object.description).slice(0, 32);
    objectHashes.set(object, hash);
  }
  return hash;
}

/** The hash of the object with this key, null when absent. */
export const hashOf = (schema: SchemaDescription, key: string): string | null => {
  const object = schema.objects.get(key);
  return object ? objectHash(object) : null;
};

/** What changed from `before` to `after`, to keep (what a tracker's takeChanges() gives for the same two moments). */
export function schemaChanges(before: SchemaDescription, after: SchemaDescription): SchemaChanges {
  const entries: ChangeEntry[] = [];
  const withOrder = (schema: SchemaDescription, object: SchemaObject | undefined): Described | undefined =>
    object && { object, columnOrder: hasColumnOrder(object.kind) ? (schema.columnOrder[object.name] ?? null) : null };
  for (const [key, object] of after.objects) {
    const was = before.objects.get(key);
    if (was !== object) entries.push([withOrder(before, was), withOrder(after, object)]);
  }
  for (const [key, object] of before.objects) if (!after.objects.has(key)) entries.push([withOrder(before, object), undefined]);
  return changeRecord(entries, after.digest);
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
