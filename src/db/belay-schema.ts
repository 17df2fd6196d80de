import type { ClientBase } from 'pg';
import { preflightError } from '../errors.js';
import { quoteIdent } from './ident.js';
import { SQLSTATE, sqlstateOf } from './sqlstate.js';

export const BELAY_SCHEMA = 'belay';

/** belay's own bookkeeping. Idempotent; run under the advisory lock before a changing command. */
const DDL = `
CREATE TABLE IF NOT EXISTS belay.migrations (
  name        text PRIMARY KEY,
  checksum    text NOT NULL,
  files       jsonb NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now(),
  duration_ms integer NOT NULL,
  run_id      uuid,
  schema      jsonb
);
CREATE TABLE IF NOT EXISTS belay.runs (
  id            uuid PRIMARY KEY,
  command       text NOT NULL,
  status        text NOT NULL,
  started_at    timestamptz NOT NULL,
  finished_at   timestamptz,
  from_revision text,
  to_revision   text,
  exit_code     integer,
  snapshot_id   text,
  last_step     text,
  run_by        text NOT NULL,
  summary       jsonb
);
CREATE TABLE IF NOT EXISTS belay.steps (
  run_id      uuid NOT NULL,
  seq         integer NOT NULL,
  at          timestamptz NOT NULL,
  step        text NOT NULL,
  event       text NOT NULL,
  revision    text,
  subject     text,
  outcome     text,
  duration_ms integer,
  detail      jsonb,
  PRIMARY KEY (run_id, seq)
);
`;

/** Columns added after the first release: an existing install gets them on its next changing command. */
const UPGRADE = 'ALTER TABLE belay.migrations ADD COLUMN IF NOT EXISTS schema jsonb';

/**
 * The schema, made only when it is not there: CREATE SCHEMA IF NOT EXISTS
 * needs CREATE on the database even when the schema exists, so a role that
 * was given the schema (CREATE SCHEMA belay AUTHORIZATION it) and not that
 * privilege could never use it.
 */
async function createSchemaWhenMissing(client: ClientBase): Promise<void> {
  const { rows } = await client.query<{ present: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = '${BELAY_SCHEMA}') AS present`);
  if (rows[0]?.present === true) return;
  try {
    await client.query(`CREATE SCHEMA ${BELAY_SCHEMA}`);
  } catch (error) {
    // another session made it between the look and the create: duplicate_schema, or the catalog's unique index
    const code = sqlstateOf(error);
    if (code !== SQLSTATE.duplicateSchema && code !== SQLSTATE.uniqueViolation) throw error;
  }
}

/** Creates what is missing; when it all exists, needs no CREATE privilege. */
export async function ensureBelaySchema(client: ClientBase): Promise<void> {
  const { rows } = await client.query<{ ok: boolean; upgraded: boolean }>(
    `SELECT to_regclass('belay.migrations') IS NOT NULL AND to_regclass('belay.runs') IS NOT NULL AND to_regclass('belay.steps') IS NOT NULL AS ok,
            EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass('belay.migrations') AND attname = 'schema' AND NOT attisdropped) AS upgraded`,
  );
  if (rows[0]?.ok !== true) {
    await createSchemaWhenMissing(client);
    await client.query(DDL);
  } else if (rows[0].upgraded !== true) await client.query(UPGRADE);
}

/** The row of pg_namespace for schema belay, if any, as `belay_ns`: for BELAY_ACCESS_COLUMNS. */
export const BELAY_ACCESS_JOIN = "LEFT JOIN pg_catalog.pg_namespace belay_ns ON belay_ns.nspname = 'belay'";

/** Whether belay's record is there and this role may read it, without an error when it may not (see belayRecordPresent). */
export const BELAY_ACCESS_COLUMNS = `belay_ns.oid IS NOT NULL AS belay_present, current_user AS belay_role, belay_ns.nspowner::pg_catalog.regrole::text AS belay_owner,
            COALESCE(pg_catalog.has_schema_privilege(belay_ns.oid, 'USAGE'), false) AS belay_usable,
            CASE WHEN pg_catalog.has_schema_privilege(belay_ns.oid, 'USAGE')
                 THEN pg_catalog.to_regclass('belay.migrations') IS NOT NULL AND pg_catalog.to_regclass('belay.runs') IS NOT NULL ELSE false END AS belay_tables,
            CASE WHEN pg_catalog.has_schema_privilege(belay_ns.oid, 'USAGE')
                 THEN COALESCE(pg_catalog.has_table_privilege(pg_catalog.to_regclass('belay.migrations'), 'SELECT'), true)
                      AND COALESCE(pg_catalog.has_table_privilege(pg_catalog.to_regclass('belay.runs'), 'SELECT'), true)
                      AND COALESCE(pg_catalog.has_table_privilege(pg_catalog.to_regclass('belay.steps'), 'SELECT'), true)
                 ELSE false END AS belay_readable`;

export interface BelayAccessRow {
  belay_present: boolean;
  belay_role: string;
  belay_owner: string | null;
  belay_usable: boolean;
  belay_tables: boolean;
  belay_readable: boolean;
}

/**
 * Whether belay's record (schema belay) is in this database. A role that
 * may not read it, without USAGE on the schema or SELECT on its tables, is
 * refused (exit 4) with what to do: PostgreSQL's "permission denied for
 * schema belay" says neither which role belay runs as nor which one to use.
 */
export function belayRecordPresent(row: BelayAccessRow): boolean {
  if (!row.belay_present) return false;
  if (!row.belay_usable || (row.belay_tables && !row.belay_readable)) {
    const role = row.belay_role;
    const needs = row.belay_usable ? 'SELECT on its tables' : 'USAGE on it';
    throw preflightError(`role ${role} may not read belay's record (schema belay, owned by ${row.belay_owner}): it needs ${needs}; nothing was changed`, {
      hint: `Run belay as the role that runs this database's migrations (${row.belay_owner}, the owner of schema belay), or, to let ${role} read it: GRANT USAGE ON SCHEMA belay TO ${quoteIdent(role)}; GRANT SELECT ON ALL TABLES IN SCHEMA belay TO ${quoteIdent(role)};`,
      details: { role, owner: row.belay_owner },
    });
  }
  return row.belay_tables;
}

/** What a changing run writes in belay's record (src/journal, src/migrations/storage.ts). */
const WRITES: ReadonlyArray<[table: string, privilege: string]> = [
  ['migrations', 'INSERT'],
  ['migrations', 'DELETE'],
  ['runs', 'INSERT'],
  ['runs', 'UPDATE'],
  ['steps', 'INSERT'],
];

/**
 * Refuse (exit 4) a run whose role may not write belay's record, before it
 * changes anything: each privilege is asked alone (has_table_privilege with a
 * list answers whether any of them is held).
 */
export async function assertBelayWritable(client: ClientBase): Promise<void> {
  const { rows } = await client.query<{ role: string; owner: string | null; missing: string[] }>(
    `SELECT current_user AS role,
            (SELECT pg_catalog.pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace WHERE nspname = 'belay') AS owner,
            array(SELECT need.privilege || ' on belay.' || need.name FROM unnest($1::text[], $2::text[]) AS need(name, privilege)
                   WHERE NOT pg_catalog.has_table_privilege(pg_catalog.to_regclass('belay.' || need.name), need.privilege)) AS missing`,
    [WRITES.map(([table]) => table), WRITES.map(([, privilege]) => privilege)],
  );
  const { role, owner, missing } = rows[0]!;
  if (missing.length === 0) return;
  throw preflightError(`role ${role} may not write belay's record of this run (schema belay, owned by ${owner}): it lacks ${missing.join(', ')}; nothing was changed`, {
    hint: `Run belay as the role that runs this database's migrations (${owner}, the owner of schema belay): it needs the rights the migrations need too. Or, as ${owner}: GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA belay TO ${quoteIdent(role)};`,
    details: { role, owner, missing },
  });
}

export async function belaySchemaExists(client: ClientBase): Promise<boolean> {
  const { rows } = await client.query<BelayAccessRow>(`SELECT ${BELAY_ACCESS_COLUMNS} FROM (SELECT) AS one ${BELAY_ACCESS_JOIN}`);
  return belayRecordPresent(rows[0]!);
}
