import type { ClientBase } from 'pg';

const USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'";

/** Indexes left invalid (e.g. by a failed CREATE INDEX CONCURRENTLY). */
export async function findInvalidIndexes(client: ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT i.indisvalid AND ${USER_SCHEMAS} ORDER BY 1`,
  );
  return rows.map((row) => `invalid index ${row.name}`);
}

/** Constraints added NOT VALID and never validated. */
export async function findUnvalidatedConstraints(client: ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ name: string; tbl: string }>(
    `SELECT co.conname AS name, format('%I.%I', n.nspname, c.relname) AS tbl
       FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT co.convalidated AND ${USER_SCHEMAS} ORDER BY 2, 1`,
  );
  return rows.map((row) => `constraint ${row.name} on ${row.tbl} is NOT VALID`);
}
