import { BelayError, errorMessage } from '../errors.js';
import type { Revision } from '../migrations/revision.js';
import { prepareStep } from '../migrations/run-revision.js';
import { setOffReason, type LearnedScope } from './scope.js';

export type BackupScopeMode = 'full' | 'touched' | 'auto';

export interface ScopeDecision {
  kind: 'full' | 'touched';
  /** Said to the user and journaled: which snapshot, and why. */
  why: string;
  learned: LearnedScope | null;
}

/**
 * Which snapshot a run takes. `full` always; `touched` only when the scope is
 * learned (else preflight refuses, exit 4); `auto` a touched one when every
 * revision is SQL that runs in a transaction, its scope was learned and its
 * writes set off nothing the empty copy could not show (a trigger, a rule, a
 * cascading foreign key), else a full one, saying why; for a rollback
 * (`down`), `auto` is full.
 */
export async function decideScope(
  mode: BackupScopeMode,
  revisions: Revision[],
  direction: 'up' | 'down',
  learn: () => Promise<LearnedScope>,
): Promise<ScopeDecision> {
  if (mode === 'full') return { kind: 'full', why: 'backup scope is full', learned: null };
  if (direction === 'down' && mode === 'auto') {
    // a rollback's restore must bring back the revision it started from: belay.migrations and what the downs drop are outside a touched snapshot
    return { kind: 'full', why: 'full snapshot: a rollback restores the revision it started from (belay.migrations, and what the downs drop), which a touched snapshot does not hold; --backup-scope touched takes one all the same', learned: null };
  }
  const refuse = (why: string): never => {
    throw new BelayError('preflight', `--backup-scope touched: ${why}`, { hint: 'Nothing was changed. Run with --backup-scope full (or auto, which falls back to full by itself).' });
  };
  for (const revision of revisions) {
    // learning runs each revision on a copy first: a module's effects outside the database would happen twice
    if (mode === 'auto' && revision.kind === 'module') {
      return { kind: 'full', why: `full snapshot: ${revision.name} is a module, which learning would run twice (on a copy, then for real), with any effect outside the database`, learned: null };
    }
    if (!(await prepareStep(revision, direction)).transactional) {
      const why = `${revision.name} runs outside a transaction (-- belay:no-transaction), so what it touches can be neither learned nor enforced`;
      if (mode === 'touched') refuse(why);
      return { kind: 'full', why: `full snapshot: ${why}`, learned: null };
    }
  }
  let learned: LearnedScope;
  try {
    learned = await learn();
  } catch (error) {
    if (mode === 'touched' || !(error instanceof BelayError)) throw error;
    return { kind: 'full', why: `full snapshot: ${errorMessage(error)}`, learned: null };
  }
  if (learned.unknown !== null) {
    if (mode === 'touched') refuse(learned.unknown);
    return { kind: 'full', why: `full snapshot: ${learned.unknown}`, learned };
  }
  if (mode === 'auto' && learned.setOff.length > 0) {
    return { kind: 'full', why: `full snapshot: ${setOffReason(learned.setOff)}; --backup-scope touched takes one all the same, and stops the run if one of them writes outside it`, learned };
  }
  const tables = learned.dataTables.filter((t) => t.kind === 'table').length;
  return { kind: 'touched', why: `touched snapshot: every revision runs in a transaction and its scope was learned (${tables} ${tables === 1 ? 'table' : 'tables'} whose rows may change)`, learned };
}
