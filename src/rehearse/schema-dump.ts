import type { PgBinary } from '../cluster/pg-bin.js';
import type { ConnectionParams } from '../db/connection.js';
import { runLibpqChild } from '../backup/pg-tools.js';

/**
 * `pg_dump --schema-only` without what changes from run to run: comments,
 * SET lines, the random \restrict / \unrestrict lines of recent releases,
 * blank lines, and belay's own schema.
 */
export async function normalisedSchema(pgDump: PgBinary, params: ConnectionParams, env: NodeJS.ProcessEnv): Promise<string> {
  const outcome = await runLibpqChild(pgDump, ['--schema-only', '--no-owner', '--no-privileges', '--exclude-schema=belay', '--no-password'], {
    params,
    env,
    timeoutMs: 10 * 60_000,
    signal: undefined,
  });
  if (outcome.code !== 0) throw new Error(`pg_dump --schema-only failed: ${outcome.stderrTail}`);
  return outcome.stdout
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('--') && !/^SET /.test(line) && !/^\\(un)?restrict /.test(line) && !/^SELECT pg_catalog\.set_config/.test(line))
    .join('\n');
}

/** The same schema but for the order of columns (a re-added column goes last; PostgreSQL cannot reorder). */
export function sameButColumnOrder(a: string, b: string): boolean {
  const sortColumns = (dump: string): string =>
    dump.replace(/(CREATE TABLE [^\n]+ \(\n)([\s\S]*?)(\n\);)/g, (_all, head: string, body: string, tail: string) => {
      const columns = body.split('\n').map((line) => line.replace(/,$/, '')).sort();
      return `${head}${columns.join('\n')}${tail}`;
    });
  return sortColumns(a) === sortColumns(b);
}

/** A line diff, unified style, of at most `limit` changed lines. */
export function diffLines(before: string, after: string, limit = 80): string {
  const a = before.split('\n');
  const b = after.split('\n');
  const n = a.length;
  const m = b.length;
  // longest common subsequence, by rows of suffix lengths
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while ((i < n || j < m) && out.length < limit) {
    if (i < n && j < m && a[i] === b[j]) {
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) {
      out.push(`+ ${b[j++]}`);
    } else {
      out.push(`- ${a[i++]}`);
    }
  }
  return out.join('\n');
}
