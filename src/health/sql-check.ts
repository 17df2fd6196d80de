import { isDeepStrictEqual } from 'node:util';
import type { QueryConfig, QueryResult } from 'pg';
import type { SqlHealthCheck } from '../config/types.js';
import type { CheckContext, CheckOutcome, HealthCheck } from './check.js';

function matchesExpected(cell: unknown, expected: unknown): boolean {
  if (cell === expected) return true;
  if (cell instanceof Date) return cell.toISOString() === String(expected);
  const scalar = (v: unknown): boolean => ['string', 'number', 'bigint', 'boolean'].includes(typeof v);
  if (scalar(cell) && scalar(expected)) return String(cell) === String(expected);
  return isDeepStrictEqual(cell, expected);
}

/** The attempt the retry loop starts as the health timeout runs out still gets this long to answer. */
const LEAST_STATEMENT_MS = 1000;

/**
 * The check's query in a READ ONLY transaction, rolled back, so that no check
 * can change data; limited to the time its health timeout has left (or the
 * session's statement_timeout, when that is shorter).
 */
export async function readOnlyQuery(ctx: CheckContext, query: string | QueryConfig): Promise<QueryResult> {
  // the work session keeps the database's DateStyle, whose output node-postgres reads as null: ISO output for the
  // check, the database's day/month order kept (a style alone leaves it), so its literals read as the application's do
  await ctx.client.query("BEGIN READ ONLY; SET LOCAL DateStyle = 'ISO'");
  try {
    if (ctx.deadline !== undefined) {
      const ms = Math.max(LEAST_STATEMENT_MS, Math.ceil(ctx.deadline - performance.now()));
      await ctx.client.query(
        `SELECT pg_catalog.set_config('statement_timeout', CASE WHEN setting::bigint > 0 THEN least(setting::bigint, $1) ELSE $1 END::text, true)
           FROM pg_catalog.pg_settings WHERE name = 'statement_timeout'`,
        [ms],
      );
    }
    // the extended protocol: the server refuses several statements, so none can end the transaction (queryMode is pg's, not in its types)
    const oneStatement: QueryConfig & { queryMode: 'extended' } = { ...(typeof query === 'string' ? { text: query } : query), queryMode: 'extended' };
    return await ctx.client.query(oneStatement);
  } finally {
    await ctx.client.query('ROLLBACK');
  }
}

export function sqlCheck(spec: SqlHealthCheck): HealthCheck {
  return {
    kind: 'sql',
    name: spec.name,
    async run(ctx: CheckContext): Promise<CheckOutcome> {
      let rows: Record<string, unknown>[];
      try {
        rows = (await readOnlyQuery(ctx, spec.query)).rows;
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
