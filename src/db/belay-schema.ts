import type { ClientBase } from 'pg';
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

export async function belaySchemaExists(client: ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    "SELECT to_regclass('belay.migrations') IS NOT NULL AND to_regclass('belay.runs') IS NOT NULL AS ok",
  );
  return rows[0]?.ok === true;
}
