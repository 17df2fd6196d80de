import { isDeepStrictEqual } from 'node:util';
import type { SqlHealthCheck } from '../config/types.js';
import type { CheckContext, CheckOutcome, HealthCheck } from './check.js';

function matchesExpected(cell: unknown, expected: unknown): boolean {
  if (cell === expected) return true;
  if (cell instanceof Date) return cell.toISOString() === String(expected);
  const scalar = (v: unknown): boolean => ['string', 'number', 'bigint', 'boolean'].includes(typeof v);
  if (scalar(cell) && scalar(expected)) return String(cell) === String(expected);
  return isDeepStrictEqual(cell, expected);
}

export function sqlCheck(spec: SqlHealthCheck): HealthCheck {
  return {
    kind: 'sql',
    name: spec.name,
    async run(ctx: CheckContext): Promise<CheckOutcome> {
      let rows: Record<string, unknown>[];
      try {
        rows = (await ctx.client.query(spec.query)).rows;
      } catch (error) {
        return { ok: false, evidence: `query failed: ${(error as Error).message}` };
      }
      const head = JSON.stringify(rows.slice(0, 3));
      if (spec.expect === 'no-rows') return { ok: rows.length === 0, evidence: rows.length === 0 ? 'no rows' : `${rows.length} row(s): ${head}` };
      if (spec.expect === 'some-rows') return { ok: rows.length > 0, evidence: rows.length > 0 ? `${rows.length} row(s)` : 'no rows' };
      const first = rows[0];
      const cell = first ? Object.values(first)[0] : undefined;
      const ok = first !== undefined && matchesExpected(cell, spec.expect.equals);
      return { ok, evidence: first === undefined ? 'no rows' : `got ${JSON.stringify(cell)}, expected ${JSON.stringify(spec.expect.equals)}` };
    },
  };
}
