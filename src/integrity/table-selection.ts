import type { ClientBase } from 'pg';

export interface TableRef {
  schema: string;
  table: string;
}

export const tableKey = (t: TableRef): string => `${t.schema}.${t.table}`;

/**
 * SQL: the relation whose pg_class row is `alias` is a plain or partitioned
 * table without a page, and so holds no row any snapshot can see (a row a
 * snapshot sees was committed, so written to a page, before it was taken; a
 * partitioned table's own rows are none). A foreign table's size says
 * nothing of its rows, and reading a materialized view never populated must
 * still raise its error: neither is ever taken for empty.
 */
export const holdsNoRow = (alias: string): string => `${alias}.relkind IN ('r', 'p') AND pg_relation_size(${alias}.oid) = 0`;

function globToRegExp(pattern: string): RegExp {
  const qualified = pattern.includes('.') ? pattern : `public.${pattern}`;
  const body = qualified.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/**
 * The protected tables: ordinary tables and partitions (not partitioned
 * parents: their rows are in the partitions) outside system schemas and
 * belay's own, filtered by `schema.table` globs (a bare name means public).
 */
export async function selectProtectedTables(client: ClientBase, patterns: { include: string[]; exclude: string[] }): Promise<TableRef[]> {
  const { rows } = await client.query<{ schema: string; table: string }>(
    `SELECT n.nspname AS schema, c.relname AS table
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'belay')
        AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
      ORDER BY 1, 2`,
  );
  const include = patterns.include.map(globToRegExp);
  const exclude = patterns.exclude.map(globToRegExp);
  return rows.filter((t) => {
    const key = tableKey(t);
    return include.some((re) => re.test(key)) && !exclude.some((re) => re.test(key));
  });
}
