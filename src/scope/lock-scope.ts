import type { ClientBase } from 'pg';
import { BelayError } from '../errors.js';
import { DATA_MODES, ownRelationLocks } from './scope.js';

export interface ScopedRelation {
  oid: number;
  schema: string;
  name: string;
}

/**
 * Enforces a touched snapshot's scope during the real apply: called on the
 * revision's own connection right before its transaction commits (the
 * engine's beforeCommit), it refuses the commit when the revision holds a
 * write-or-rewrite lock on a relation that existed when the snapshot was taken
 * and whose rows the snapshot does not hold. Relations the run created itself
 * are fine: they were not there to lose.
 */
export class ScopeGuard {
  constructor(
    /** Every row-holding relation outside system schemas and belay's own when the snapshot was taken. */
    private readonly existing: ReadonlyMap<number, ScopedRelation>,
    /** The relations whose rows the snapshot holds. */
    private readonly covered: ReadonlySet<number>,
    /** What the learned writes set off that the empty copy could not show (LearnedScope.setOff): the likely writer. */
    private readonly setOff: readonly string[] = [],
  ) {}

  /** Throws BelayError (rolledBack) naming each relation outside the scope that the open transaction may have changed. */
  async check(client: ClientBase): Promise<void> {
    // outside a transaction block (a no-transaction revision) nothing is held to look at: such revisions are never run under a touched snapshot
    const { rows } = await client.query<{ open: boolean }>('SELECT txid_current_if_assigned() IS NOT NULL AS open');
    if (rows[0]?.open !== true) return;
    const outside: string[] = [];
    for (const [oid, modes] of await ownRelationLocks(client)) {
      const relation = this.existing.get(oid);
      if (!relation || this.covered.has(oid)) continue;
      const writes = modes.filter((mode) => DATA_MODES.includes(mode));
      if (writes.length > 0) outside.push(`${relation.schema}.${relation.name} (${writes.join(', ')})`);
    }
    if (outside.length === 0) return;
    const where = this.setOff.length > 0 ? `without the rows that set off ${this.setOff.join('; ')}, the likely writer` : 'where this branch was not taken';
    throw new BelayError(
      'rolledBack',
      `it may change ${outside.join(', ')}, outside the touched snapshot (whose scope was learned on a schema-only copy, ${where}); rolled back before commit, so it changed nothing. Rerun with --backup-scope full`,
      {
        hint: 'Rerun with `--backup-scope full`: a full snapshot covers every table.',
        details: { outsideScope: outside },
      },
    );
  }
}
