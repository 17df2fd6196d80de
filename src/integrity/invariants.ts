import type { ClientBase } from 'pg';
import type { Invariant } from '../config/types.js';

export interface InvariantViolation {
  name: string;
  /** Rows returned (up to the cap), or -1 when the query itself failed. */
  rows: number;
  sample: string;
}

const CAP = 1000;

/** An invariant is a query whose rows are violations; a query that fails is a violation too. */
export async function checkInvariants(client: ClientBase, invariants: Invariant[]): Promise<InvariantViolation[]> {
  const violations: InvariantViolation[] = [];
  for (const invariant of invariants) {
    try {
      const query = invariant.query.trim().replace(/;\s*$/, '');
      const { rows } = await client.query(`SELECT * FROM (${query}) AS belay_invariant LIMIT ${CAP}`);
      if (rows.length > 0) violations.push({ name: invariant.name, rows: rows.length, sample: JSON.stringify(rows.slice(0, 3)) });
    } catch (error) {
      violations.push({ name: invariant.name, rows: -1, sample: `query failed: ${(error as Error).message}` });
    }
  }
  return violations;
}
