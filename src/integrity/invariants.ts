import type { ClientBase, QueryConfig } from 'pg';
import type { Invariant } from '../config/types.js';

export interface InvariantViolation {
  name: string;
  /** Rows returned (up to the cap), or -1 when the query itself failed. */
  rows: number;
  sample: string;
}

const CAP = 1000;

/**
 * The invariant's rows, up to the cap, as one statement: sent with the
 * extended protocol, the server refuses a query that would close the
 * parenthesis and go on with statements of its own.
 */
export function invariantQuery(invariant: Invariant): QueryConfig & { queryMode: 'extended' } {
  const query = invariant.query.trim().replace(/;\s*$/, '');
  // (queryMode is pg's, not in its types)
  return { text: `SELECT * FROM (${query}) AS belay_invariant LIMIT ${CAP}`, queryMode: 'extended' };
}

/** What an invariant's answer says: nothing (it holds), or the violation. */
export function violationOf(invariant: Invariant, rows: readonly unknown[]): InvariantViolation | undefined {
  return rows.length === 0 ? undefined : { name: invariant.name, rows: rows.length, sample: JSON.stringify(rows.slice(0, 3)) };
}

/** An invariant is a query whose rows are violations; a query that fails is a violation too. */
export async function checkInvariants(client: ClientBase, invariants: Invariant[]): Promise<InvariantViolation[]> {
  const violations: InvariantViolation[] = [];
  for (const invariant of invariants) {
    try {
      const violation = violationOf(invariant, (await client.query(invariantQuery(invariant))).rows);
      if (violation) violations.push(violation);
    } catch (error) {
      violations.push({ name: invariant.name, rows: -1, sample: `query failed: ${(error as Error).message}` });
    }
  }
  return violations;
}
