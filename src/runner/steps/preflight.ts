import type { PreflightCheck } from '../../events/run-events.js';
import type { ClientBase } from 'pg';
import { BELAY_SCHEMA } from '../../db/belay-schema.js';
import { quoteIdent } from '../../db/ident.js';
import { creationSchema } from '../../db/search-path.js';
import { preflightError } from '../../errors.js';
import type { Revision } from '../../migrations/revision.js';
import { isReversible, scriptProblems, type Direction } from '../../migrations/run-revision.js';
import type { DatabaseState } from '../session/database-state.js';

export type { PreflightCheck };

export function checkDrift(state: DatabaseState): PreflightCheck {
  if (state.drift.length === 0) return { name: 'drift', ok: true, message: 'applied revisions match their files' };
  const list = state.drift.map((d) => `${d.name} (${d.files.join(', ')})`).join('; ');
  return { name: 'drift', ok: false, message: `files of applied revisions changed since they were applied: ${list}` };
}

export function checkMissing(state: DatabaseState): PreflightCheck {
  if (state.missing.length === 0) return { name: 'missing', ok: true, message: 'every applied revision is on disk' };
  return {
    name: 'missing',
    ok: false,
    message: `applied revisions are missing from the migrations folder: ${state.missing.join(', ')}`,
  };
}

export function checkOrder(state: DatabaseState): PreflightCheck {
  if (state.outOfOrder.length === 0) return { name: 'order', ok: true, message: 'pending revisions come after the applied ones' };
  return {
    name: 'order',
    ok: false,
    message: `pending revisions are numbered below the current revision ${state.current}: ${state.outOfOrder.join(', ')}`,
  };
}

async function checkDowns(revisions: readonly Revision[], allowIrreversible: boolean): Promise<PreflightCheck> {
  const irreversible: string[] = [];
  for (const revision of revisions) if (!(await isReversible(revision))) irreversible.push(revision.name);
  if (irreversible.length === 0) return { name: 'downs', ok: true, message: 'every revision to apply has a down' };
  if (allowIrreversible) {
    return { name: 'downs', ok: true, message: `irreversible revisions allowed (--allow-irreversible): ${irreversible.join(', ')}` };
  }
  return { name: 'downs', ok: false, message: `revisions without a down: ${irreversible.join(', ')}` };
}

/** What a rollback to `to` refuses when revisions without a down stand in its way (plan says it the same way). */
export const downsMissing = (from: string | null, to: string | null, names: readonly string[]): string =>
  `revisions without a down stand between ${from ?? 'the start'} and ${to ?? 'the start'}: ${names.join(', ')}`;

export async function checkScripts(revisions: readonly Revision[], direction: Direction): Promise<PreflightCheck> {
  const problems: string[] = [];
  for (const revision of revisions) problems.push(...(await scriptProblems(revision, direction)));
  if (problems.length === 0) return { name: 'scripts', ok: true, message: `every ${direction} script can run as written` };
  return { name: 'scripts', ok: false, message: `scripts belay cannot run as written: ${problems.join('; ')}` };
}

/** What migrate up refuses of the revisions it would apply; plan lists the same (as a run without --allow-irreversible meets them). */
export async function checkRevisionsToApply(toApply: readonly Revision[], allowIrreversible: boolean): Promise<PreflightCheck[]> {
  return [await checkDowns(toApply, allowIrreversible), await checkScripts(toApply, 'up'), await checkScripts(toApply, 'down')];
}

/**
 * A role named like belay's schema ("$user" first in the default search_path)
 * would create the revisions' unqualified tables inside belay's bookkeeping.
 */
export async function checkSearchPath(client: ClientBase): Promise<PreflightCheck> {
  const { role, schema } = await creationSchema(client);
  if (schema !== BELAY_SCHEMA) return { name: 'search-path', ok: true, message: `unqualified objects go to schema ${schema ?? '(none)'}` };
  return {
    name: 'search-path',
    ok: false,
    message: `the search_path of role ${role} would put the revisions' unqualified objects in belay's own schema "${BELAY_SCHEMA}"`,
    hint: `Give the role another search_path first, e.g. ALTER ROLE ${quoteIdent(role)} SET search_path = public; then reconnect.`,
  };
}

const HINTS: Record<string, string> = {
  drift: 'An applied revision must not be edited: restore its file from version control and put the change in a new revision (`belay new NAME`).',
  missing: 'Restore the missing revision files, or point --migrations at the right folder.',
  order: 'Renumber the pending revisions after the current one (`belay new` picks the next number).',
  scripts: 'Fix the named lines; `belay rehearse` tries the fixed revisions on a throwaway database.',
  downs: 'Add the missing down files, or pass --allow-irreversible to accept that they cannot be rolled back automatically.',
};

/** Refuse (exit 4) with every failed check listed, and the next step for the first. */
export function assertPreflight(checks: PreflightCheck[], lead = 'preflight refused the run'): void {
  const failed = checks.filter((check) => !check.ok);
  if (failed.length === 0) return;
  const hints = [...new Set(failed.map((check) => check.hint ?? HINTS[check.name]).filter((hint): hint is string => hint !== undefined))];
  throw preflightError(`${lead}: ${failed.map((check) => check.message).join('; ')}`, {
    hint: `${hints.join(' ')} Nothing was changed.`.trim(),
    details: { checks },
  });
}
