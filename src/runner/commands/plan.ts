import type { ClientBase } from 'pg';
import { quoteIdent } from '../../db/ident.js';
import type { SchemaChanges } from '../../integrity/schema-digest.js';
import { readRecordedChanges } from '../../migrations/storage.js';
import { measureDownsAtRisk, type DataAtRisk, type DownsAtRisk } from '../../integrity/data-at-risk.js';
import { discoverRevisions } from '../../migrations/discover.js';
import { resolveRevisionOrStart } from '../../migrations/resolve-name.js';
import type { Revision } from '../../migrations/revision.js';
import { revisionFileBytes } from '../../migrations/revision-bytes.js';
import { isReversible, prepareStep } from '../../migrations/run-revision.js';
import { readDatabaseState } from '../session/database-state.js';
import { revisionsToApply } from '../session/database-state.js';
import { checkDrift, checkMissing, checkOrder, checkRevisionsToApply, checkScripts, downsMissing, type PreflightCheck } from '../steps/preflight.js';
import { openTargetSession, type RunSetup } from '../session/setup.js';
import { checkUnsettledUnlocked } from '../session/run-lock.js';
import type { Session } from '../../db/session.js';
import { resolveBackupTools } from '../../backup/pg-tools.js';
import { learnScopeOf } from '../steps/snapshot-step.js';
import { formatRevisionScope, formatScopeTotal, measureScope } from '../../scope/format-scope.js';

export interface PlannedRevision {
  name: string;
  direction: 'up' | 'down';
  reversible: boolean;
  transactional: boolean;
}

export interface Plan {
  direction: 'up' | 'down' | 'none';
  from: string | null;
  to: string | null;
  revisions: PlannedRevision[];
  problems: PreflightCheck[];
  /** For a rollback: data in the tables and columns the downs drop (it stays in the snapshot), and rows they delete. */
  dataAtRisk: DataAtRisk[];
  /** With --scope: what each revision touches, with sizes, then the snapshot it needs (docs/snapshots.md). */
  scope?: string[];
}

/** Learned on a throwaway schema-only copy of the target (created and dropped on its server), measured on the target. */
async function learnedScopeLines(setup: RunSetup, session: Session, revisions: Revision[], direction: 'up' | 'down'): Promise<string[]> {
  if (revisions.length === 0) return [];
  const tools = await resolveBackupTools({ search: setup.pgSearch, serverMajor: Math.floor(session.serverVersionNum / 10000) });
  const learned = await learnScopeOf(setup, tools, revisions, direction);
  const sizes = await measureScope(session.client, learned);
  return [...learned.revisions.map((revision) => formatRevisionScope(revision, sizes)), formatScopeTotal(learned, sizes)];
}

/**
 * What a module's down must drop to land on the schema its up started from,
 * read from what the up was recorded to make: the tables it created and the
 * columns it only added (a rename reads as one gone and one made, and its down
 * renames back: nothing is counted for it).
 */
function undoneBy(changes: SchemaChanges | null): string | undefined {
  if (!changes) return undefined;
  const tables = Object.entries(changes.changes).filter(([key]) => key.startsWith('table '));
  const renamed = tables.some(([, [before, after]]) => before !== null && after === null);
  const statements = renamed ? [] : tables.filter(([, [before]]) => before === null).map(([key]) => `DROP TABLE ${key.slice('table '.length)};`);
  for (const [table, [before, after]] of Object.entries(changes.columnOrder)) {
    if (!before || !after || before.some((column) => !after.includes(column))) continue;
    for (const column of after.filter((c) => !before.includes(c))) statements.push(`ALTER TABLE ${table} DROP COLUMN ${quoteIdent(column)};`);
  }
  return statements.join('\n');
}

/** What the downs of `revisions` would drop, measured now, and which tables they may change columns of. SQL downs are read; a module's, from what its up made. */
export async function dataAtRiskOf(client: ClientBase, revisions: Revision[]): Promise<DownsAtRisk> {
  const modules = revisions.filter((revision) => revision.kind !== 'sql').map((revision) => revision.name);
  const recorded = modules.length > 0 ? await readRecordedChanges(client, modules) : new Map<string, SchemaChanges | null>();
  const downs = await Promise.all(
    revisions.map(async (revision) => {
      const down = revision.kind === 'sql' ? revision.files.down : undefined;
      // the bytes the downs will run, left for them
      if (down) return { revision: revision.name, sql: (await revisionFileBytes(revision, down, { take: false })).toString('utf8') };
      return { revision: revision.name, sql: null, undoes: (await isReversible(revision)) ? undoneBy(recorded.get(revision.name) ?? null) : undefined };
    }),
  );
  const { items: all, perColumn, rowsWithout } = await measureDownsAtRisk(client, downs);
  // rows deleted from or written to a table that a down then drops are not compared: the drop already says so
  const droppedTables = new Set(all.filter((i) => !i.rowsDeleted && !i.rowsWritten && i.column === undefined).map((i) => i.table));
  const seen = new Set<string>();
  const items = all.filter((i) => {
    if (!i.rowsDeleted && !i.rowsWritten) return true;
    const key = `${i.revision} ${i.table} ${i.rowsWritten ? 'written' : 'deleted'}`;
    if (droppedTables.has(i.table) || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return { items, perColumn, rowsWithout };
}


async function planned(revision: Revision, direction: 'up' | 'down'): Promise<PlannedRevision> {
  const reversible = await isReversible(revision);
  const transactional = direction === 'up' || reversible ? (await prepareStep(revision, direction)).transactional : true;
  return { name: revision.name, direction, reversible, transactional };
}

/** Applied revisions above `to` (null: all of them), newest first. */
export function revisionsToRevert(revisions: readonly Revision[], appliedNames: ReadonlySet<string>, to: string | null): Revision[] {
  const index = revisions.findIndex((revision) => revision.name === to);
  return revisions
    .slice(index + 1)
    .filter((revision) => appliedNames.has(revision.name))
    .reverse();
}

/** What `migrate up` (or `rollback --to`, when REV is below the current revision) would do. Changes nothing. */
export async function runPlan(setup: RunSetup, to: string | undefined, scope = false): Promise<Plan> {
  const revisions = await discoverRevisions(setup.config.migrationsDir);
  const target = to === undefined ? undefined : resolveRevisionOrStart(to, revisions.map((r) => r.name));
  const session = await openTargetSession(setup, 'belay plan');
  try {
    const state = await readDatabaseState(session.client, revisions);
    const problems = [...(await checkUnsettledUnlocked(session.client, setup.config.backupsDir)), ...[checkDrift(state), checkMissing(state), checkOrder(state)].filter((check) => !check.ok)];
    const applied = new Set(state.applied.map((row) => row.name));
    if (target !== undefined && (target === null ? state.current !== null : applied.has(target) && target !== state.current)) {
      const toRevert = revisionsToRevert(revisions, applied, target);
      const plannedDowns = await Promise.all(toRevert.map((r) => planned(r, 'down')));
      const irreversible = plannedDowns.filter((r) => !r.reversible).map((r) => r.name);
      // what rollback --to refuses in its preflight, listed here as it would say it
      if (irreversible.length > 0) problems.push({ name: 'downs', ok: false, message: downsMissing(state.current, target, irreversible) });
      const scripts = await checkScripts(toRevert, 'down');
      if (!scripts.ok) problems.push(scripts);
      return {
        direction: 'down',
        from: state.current,
        to: target,
        revisions: plannedDowns,
        problems,
        dataAtRisk: (await dataAtRiskOf(session.client, toRevert)).items,
        // the downs that do not exist cannot be run on the copy: the rollback is refused before any learning (the problem above)
        ...(scope ? { scope: irreversible.length > 0 ? [`snapshot: not learned, ${irreversible.join(', ')} ${irreversible.length === 1 ? 'has' : 'have'} no down`] : await learnedScopeLines(setup, session, toRevert, 'down') } : {}),
      };
    }
    const toApply = revisionsToApply(revisions, state, target ?? undefined);
    // what migrate up refuses in its preflight, as a run without --allow-irreversible meets it
    problems.push(...(await checkRevisionsToApply(toApply, false)).filter((check) => !check.ok));
    return {
      direction: toApply.length > 0 ? 'up' : 'none',
      from: state.current,
      to: toApply[toApply.length - 1]?.name ?? state.current,
      revisions: await Promise.all(toApply.map((r) => planned(r, 'up'))),
      problems,
      dataAtRisk: [],
      ...(scope ? { scope: await learnedScopeLines(setup, session, toApply, 'up') } : {}),
    };
  } finally {
    await session.close();
  }
}
