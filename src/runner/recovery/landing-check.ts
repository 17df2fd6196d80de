import type { ClientBase } from 'pg';
import { columnOrderChanges, describeColumnOrder, EMPTY_DIGEST, hashOf, SchemaTracker, type SchemaDescription, type SchemaDiff } from '../../integrity/schema-digest.js';
import type { Revision } from '../../migrations/revision.js';
import { readRecordedChanges } from '../../migrations/storage.js';
import type { RunSession } from '../session/run-session.js';

/** Where a rollback's downs left the schema, against the schema its target left. */
export interface Landing {
  /** false: a reverted revision was applied before belay recorded what each changes; nothing to compare with. */
  compared: boolean;
  differs: boolean;
  /** `+ kind name` (left behind), `- kind name` (missing), `~ kind name` (changed), `; `-separated: the run's message is one line. */
  differences: string;
  count: number;
  /** Column order alone, where a re-added column may explain it (a re-added column goes last): not a difference. */
  warnings: string[];
  /** When not compared, why, in words. */
  notCompared?: string;
}

/** What must be read before the downs: they delete the reverted revisions' records. */
export interface LandingBaseline {
  target: string | null;
  /**
   * Each object a reverted up changed, as the target left it: the hash its
   * first reverted up found (null: absent); undefined when a reverted
   * revision has no record.
   */
  expected: Map<string, string | null> | undefined;
  /** The first reverted up's record of each changed table's column order. */
  expectedOrder: Map<string, string[] | null>;
  /** Why there is nothing to compare with, in words. */
  notCompared: string | undefined;
  /** The digest of the whole schema the target left, when recorded: a live schema with the same digest is the same. */
  targetDigest: string | undefined;
  /** The hash of each object before the downs: an object a down changed that no reverted up changed must be as it was. */
  before: Map<string, string>;
  tracker: SchemaTracker;
}

/**
 * A rollback's baseline as its journal keeps it, read before its first down:
 * a `recover` that finishes the rollback compares with it, since the downs
 * that ran before the stop took their revisions' records with them.
 */
export interface RecordedLanding {
  target: string | null;
  expected: Array<[string, string | null]> | null;
  expectedOrder: Array<[string, string[] | null]>;
  notCompared: string | null;
  targetDigest: string | null;
  before: Array<[string, string]>;
}

export const recordLanding = (baseline: LandingBaseline): RecordedLanding => ({
  target: baseline.target,
  expected: baseline.expected ? [...baseline.expected] : null,
  expectedOrder: [...baseline.expectedOrder],
  notCompared: baseline.notCompared ?? null,
  targetDigest: baseline.targetDigest ?? null,
  before: [...baseline.before],
});

export const landingFromRecord = (recorded: RecordedLanding): LandingBaseline => ({
  target: recorded.target,
  expected: recorded.expected ? new Map(recorded.expected) : undefined,
  expectedOrder: new Map(recorded.expectedOrder),
  notCompared: recorded.notCompared ?? undefined,
  targetDigest: recorded.targetDigest ?? undefined,
  before: new Map(recorded.before),
  tracker: new SchemaTracker(),
});

const hashesOf = (schema: SchemaDescription): Map<string, string> => new Map([...schema.objects.keys()].map((key) => [key, hashOf(schema, key)!]));

/**
 * Read, before the downs, what each reverted up changed, and the live schema.
 * The target's schema, for the objects the ups changed, is what the first of
 * them to change each object found. The revisions an interrupted rollback
 * already reverted took their records with them: a recover finishing it
 * compares with the baseline the rollback journaled (RecordedLanding), and
 * only without one with what is left.
 */
export async function prepareLanding(client: ClientBase, target: string | null, toRevert: readonly Revision[]): Promise<LandingBaseline> {
  const tracker = new SchemaTracker();
  if (toRevert.length === 0) {
    const notCompared = 'no record left of what the reverted revisions changed';
    return { target, expected: undefined, expectedOrder: new Map(), notCompared, targetDigest: undefined, before: hashesOf(await tracker.describe(client)), tracker };
  }
  const records = await readRecordedChanges(client, [...(target === null ? [] : [target]), ...toRevert.map((revision) => revision.name)]);
  const targetDigest = target === null ? EMPTY_DIGEST : records.get(target)?.digest;
  const expected = new Map<string, string | null>();
  const expectedOrder = new Map<string, string[] | null>();
  let unrecorded: string | undefined;
  // in the order they were applied: the first to change an object found it as the target left it
  for (const revision of [...toRevert].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const record = records.get(revision.name);
    if (!record) {
      unrecorded ??= revision.name;
      continue;
    }
    for (const [key, [then]] of Object.entries(record.changes)) if (!expected.has(key)) expected.set(key, then);
    for (const [table, [then]] of Object.entries(record.columnOrder)) if (!expectedOrder.has(table)) expectedOrder.set(table, then);
  }
  const notCompared = unrecorded && `${unrecorded} was applied before belay recorded what each revision changes`;
  return { target, expected: notCompared ? undefined : expected, expectedOrder, notCompared, targetDigest, before: hashesOf(await tracker.describe(client)), tracker };
}

/**
 * Among `changes`, the tables where renames moved names across columns (a
 * down that renames `a` to `y` and `b` to `x` where the target had `x`
 * before `y`): each name now holds the other's values. A re-added column
 * goes last, behind the slot of the column dropped: a column that now stands
 * before one it followed, with no dropped column before it, was not re-added.
 * The columns named, by table.
 */
async function namesMovedAcross(client: ClientBase, changes: SchemaDiff['columnOrder']): Promise<Map<string, string[]>> {
  if (changes.length === 0) return new Map();
  const { rows } = await client.query<{ table: string; column: string; attnum: number; dropped: boolean }>(
    `SELECT w.name AS table, a.attname::text AS column, a.attnum::int AS attnum, a.attisdropped AS dropped
       FROM unnest($1::text[]) AS w(name) JOIN pg_attribute a ON a.attrelid = to_regclass(w.name) AND a.attnum > 0`,
    [changes.map((change) => change.table)],
  );
  const moved = new Map<string, string[]>();
  for (const { table, before } of changes) {
    const attributes = rows.filter((row) => row.table === table);
    const firstDropped = Math.min(...attributes.filter((row) => row.dropped).map((row) => row.attnum));
    const attnum = new Map(attributes.filter((row) => !row.dropped).map((row) => [row.column, row.attnum]));
    const common = before.filter((column) => attnum.has(column));
    const names = new Set<string>();
    common.forEach((p, i) => {
      for (const q of common.slice(i + 1)) if (attnum.get(q)! < attnum.get(p)! && !(firstDropped < attnum.get(q)!)) names.add(p).add(q);
    });
    if (names.size > 0) moved.set(table, common.filter((column) => names.has(column)));
  }
  return moved;
}

/** At most this many objects in the message; the schema step in the journal lists them all. */
const SHOWN = 20;

/** The columns a changed table has beyond, or lacks of, those the target left it with (` (+ column nick)`), when a reverted up recorded them. */
function columnsDiffering(baseline: LandingBaseline, live: SchemaDescription, key: string): string {
  const object = live.objects.get(key);
  const then = object && baseline.expectedOrder.get(object.name);
  const now = object && live.columnOrder[object.name];
  if (!then || !now) return '';
  const columns = [...now.filter((column) => !then.includes(column)).map((column) => `+ column ${column}`), ...then.filter((column) => !now.includes(column)).map((column) => `- column ${column}`)];
  return columns.length === 0 ? '' : ` (${columns.join(', ')})`;
}

const namesMoved = (columns: string[] | undefined): string =>
  columns === undefined ? '' : ` (columns ${columns.join(', ')} renamed across: each holds the values another had at the target)`;

function listDifferences(diff: SchemaDiff, columns: (key: string) => string, runId: string): string {
  const all = [...diff.added.map((k) => `+ ${k}`), ...diff.removed.map((k) => `- ${k}`), ...diff.changed.map((c) => `~ ${c.key}${columns(c.key)}`)];
  return all.length > SHOWN ? `${all.slice(0, SHOWN).join('; ')}; … and ${all.length - SHOWN} more (the schema step of \`belay history ${runId}\`)` : all.join('; ');
}

const keysOf = (diff: SchemaDiff): { added: string[]; removed: string[]; changed: string[]; columnOrder: string[] } => ({
  added: diff.added,
  removed: diff.removed,
  changed: diff.changed.map((c) => c.key),
  columnOrder: diff.columnOrder.map((c) => c.table),
});

/**
 * The schema step after `rollback --to`: the live schema against the
 * target's, object by object, among the objects the reverted ups changed or
 * the downs touched (an object the downs touched and no reverted up changed
 * was as the downs found it). A down that leaves a function, a trigger or an
 * extension behind shows here even though the data is intact. An object
 * someone made by hand (a table, an extension the DBA added) is not a down's
 * residue and is not counted.
 */
export async function checkLanding(session: RunSession, baseline: LandingBaseline, client: ClientBase = session.work.client): Promise<Landing> {
  const { target, expected } = baseline;
  const { landing } = await session.setup.events.judged(
    { step: 'schema', ...(target ? { subject: target } : {}) },
    async () => {
      if (!expected) {
        return { landing: { compared: false, differs: false, differences: '', count: 0, warnings: [], ...(baseline.notCompared ? { notCompared: baseline.notCompared } : {}) }, diff: undefined };
      }
      const live = await baseline.tracker.describe(client);
      const wanted = new Map(expected);
      // what the downs changed (added, removed or changed since before them), as it was before them
      for (const key of new Set([...baseline.before.keys(), ...live.objects.keys()])) {
        const then = baseline.before.get(key) ?? null;
        if (!wanted.has(key) && then !== hashOf(live, key)) wanted.set(key, then);
      }
      const diff: SchemaDiff = { added: [], removed: [], changed: [], columnOrder: [] };
      // the whole schema as the target left it: nothing to look at object by object
      if (live.digest === baseline.targetDigest) wanted.clear();
      for (const [key, then] of wanted) {
        const now = hashOf(live, key);
        if (now === then) continue;
        if (then === null) diff.added.push(key);
        else if (now === null) diff.removed.push(key);
        else diff.changed.push({ key });
      }
      const orderThen = [...baseline.expectedOrder].filter((entry): entry is [string, string[]] => entry[1] !== null);
      diff.columnOrder = columnOrderChanges(Object.fromEntries(orderThen), live.columnOrder);
      // names renamed across columns are a difference: the values stand under other names
      const moved = await namesMovedAcross(client, diff.columnOrder);
      const movedKeys = new Map<string, string[]>();
      for (const [table, columns] of moved) {
        const key = ['table', 'foreign table'].map((kind) => `${kind} ${table}`).find((candidate) => live.objects.has(candidate));
        if (key === undefined) continue;
        movedKeys.set(key, columns);
        if (!diff.changed.some((change) => change.key === key)) diff.changed.push({ key });
      }
      diff.columnOrder = diff.columnOrder.filter((change) => !moved.has(change.table));
      diff.added.sort();
      diff.removed.sort();
      diff.changed.sort((x, y) => x.key.localeCompare(y.key));
      const count = diff.added.length + diff.removed.length + diff.changed.length;
      return { landing: { compared: true, differs: count > 0, differences: listDifferences(diff, (key) => columnsDiffering(baseline, live, key) + namesMoved(movedKeys.get(key)), session.runId), count, warnings: describeColumnOrder(diff) }, diff };
    },
    ({ landing, diff }) => ({
      ok: !landing.differs,
      detail: { target, compared: landing.compared, ...(diff ? keysOf(diff) : { added: [], removed: [], changed: [], columnOrder: [] }) },
    }),
  );
  return landing;
}
