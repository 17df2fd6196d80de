import { createHash } from 'node:crypto';
import type { ClientBase } from 'pg';
import {
  describeColumnOrder,
  diffSchemas,
  SchemaTracker,
  type SchemaDescription,
  type SchemaDiff,
  type SchemaRecord,
} from '../../integrity/schema-digest.js';
import type { Revision } from '../../migrations/revision.js';
import { readRecordedSchemas } from '../../migrations/storage.js';
import type { RunSession } from '../session/run-session.js';

/** Where a rollback's downs left the schema, against the schema recorded when its target was applied. */
export interface Landing {
  /** false: the target was applied before belay recorded schemas; nothing to compare with. */
  compared: boolean;
  differs: boolean;
  /** `+ kind name` (left behind), `- kind name` (missing), `~ kind name` (changed), `; `-separated: the run's message is one line. */
  differences: string;
  count: number;
  /** Column order alone: never a difference (a re-added column goes last). */
  warnings: string[];
}

/** What must be read before the downs: they delete the reverted revisions' records. */
export interface LandingBaseline {
  target: string | null;
  recorded: SchemaRecord | null;
  /** The objects the reverted revisions' ups changed; undefined when one of them has no record (compare every object). */
  changedByUps: Set<string> | undefined;
  before: SchemaDescription;
  tracker: SchemaTracker;
}

/** The start: no user object at all. */
const EMPTY: SchemaRecord = { digest: createHash('sha256').digest('hex'), objects: {}, columnOrder: {} };

/**
 * Read, before the downs, the target's recorded schema, the objects each
 * reverted revision changed, and the live schema. `wholeSchema` compares
 * every object (recover: the revisions an interrupted rollback already
 * reverted took their records with them).
 */
export async function prepareLanding(client: ClientBase, target: string | null, toRevert: readonly Revision[], wholeSchema: boolean): Promise<LandingBaseline> {
  const records = await readRecordedSchemas(client, [...(target === null ? [] : [target]), ...toRevert.map((revision) => revision.name)]);
  const recorded = target === null ? EMPTY : (records.get(target) ?? null);
  let changedByUps: Set<string> | undefined = wholeSchema ? undefined : new Set<string>();
  for (const revision of toRevert) {
    const own = records.get(revision.name);
    if (!own) changedByUps = undefined;
    else for (const key of own.changed) changedByUps?.add(key);
  }
  const tracker = new SchemaTracker();
  return { target, recorded, changedByUps, before: await tracker.describe(client), tracker };
}

/**
 * Only what belay's revisions made or the downs touched counts: an object
 * someone made by hand (a table, an extension the DBA added) is not a down's
 * residue.
 */
function restrict(diff: SchemaDiff, keys: Set<string> | undefined): SchemaDiff {
  if (!keys) return diff;
  return { ...diff, added: diff.added.filter((k) => keys.has(k)), removed: diff.removed.filter((k) => keys.has(k)), changed: diff.changed.filter((c) => keys.has(c.key)) };
}

/** At most this many objects in the message; the schema step in the journal lists them all. */
const SHOWN = 20;

function listDifferences(diff: SchemaDiff): string {
  const all = [...diff.added.map((k) => `+ ${k}`), ...diff.removed.map((k) => `- ${k}`), ...diff.changed.map((c) => `~ ${c.key}`)];
  return all.length > SHOWN ? `${all.slice(0, SHOWN).join('; ')}; … and ${all.length - SHOWN} more (the schema step of \`belay history RUN\`)` : all.join('; ');
}

const keysOf = (diff: SchemaDiff): { added: string[]; removed: string[]; changed: string[]; columnOrder: string[] } => ({
  added: diff.added,
  removed: diff.removed,
  changed: diff.changed.map((c) => c.key),
  columnOrder: diff.columnOrder.map((c) => c.table),
});

/**
 * The schema step after `rollback --to`: the live schema against the
 * target's record (the empty schema for the start), object by object, among
 * the objects the reverted ups changed or the downs touched. A down that
 * leaves a function, a trigger or an extension behind shows here even
 * though the data is intact.
 */
export async function checkLanding(session: RunSession, baseline: LandingBaseline, client: ClientBase = session.work.client): Promise<Landing> {
  const { target, recorded } = baseline;
  const { landing } = await session.setup.events.judged(
    { step: 'schema', ...(target ? { subject: target } : {}) },
    async () => {
      if (!recorded) return { landing: { compared: false, differs: false, differences: '', count: 0, warnings: [] }, diff: undefined };
      const live = await baseline.tracker.describe(client);
      const byDowns = diffSchemas(baseline.before, live);
      const touched = baseline.changedByUps && new Set([...baseline.changedByUps, ...byDowns.added, ...byDowns.removed, ...byDowns.changed.map((c) => c.key)]);
      const diff = restrict(diffSchemas(recorded, live), touched);
      const count = diff.added.length + diff.removed.length + diff.changed.length;
      return { landing: { compared: true, differs: count > 0, differences: listDifferences(diff), count, warnings: describeColumnOrder(diff) }, diff };
    },
    ({ landing, diff }) => ({
      ok: !landing.differs,
      detail: { target, compared: landing.compared, ...(diff ? keysOf(diff) : { added: [], removed: [], changed: [], columnOrder: [] }) },
    }),
  );
  return landing;
}
