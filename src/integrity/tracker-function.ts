import { escapeLiteral, type ClientBase } from 'pg';
import { BELAY_SCHEMA } from '../db/belay-schema.js';
import { quoteIdent } from '../db/ident.js';
import { sha256Hex } from '../sha256.js';
import { BRANCHES, changedKeysBlock, DELETED_IN_TRANSACTION, describeKeysQuery, OID_FLOOR, relationsOfKeys, schemasWrittenQuery, SNAPSHOT_HORIZON } from './schema-query.js';

/**
 * What a revision's transaction changed in the schema, in one call: the
 * queries a tracker sends inline (changedKeysQuery, then describeKeysQuery
 * for the kinds found), as a PL/pgSQL function in belay's schema, so that
 * their plans are made once per session instead of once per revision
 * (planning them cost about as much as running them). Its answer:
 * { since, oid_floor, schemas_written, deleted, keys, rows } (rows: the
 * described objects).
 */
function functionBody(): string {
  const exclude = escapeLiteral(BELAY_SCHEMA);
  const describeEach = BRANCHES.map(
    (kind) => `
  IF ${escapeLiteral(kind)} = ANY(v_kinds) THEN
    SELECT v_rows || coalesce(jsonb_agg(to_jsonb(d)), '[]'::jsonb) INTO v_rows FROM (${describeKeysQuery(exclude, 'v_keys', new Set([kind]), 'v_relations')}) d;
  END IF;`,
  ).join('');
  return `
DECLARE
  -- the horizon first: every statement after it sees at least what it saw
  v_since text := ${SNAPSHOT_HORIZON};
  v_oldest integer := age(p_since);
  v_floor text := ${OID_FLOOR};
  v_cats oid[] := '{}';
  v_oids oid[] := '{}';
  v_subs integer[] := '{}';
  v_found bigint;
  v_locked oid[];
  v_locked_writing oid[];
  v_keys text[];
  v_kinds text[];
  v_relations oid[];
  v_rows jsonb := '[]'::jsonb;
BEGIN
  IF ${schemasWrittenQuery('p_since')} THEN
    RETURN jsonb_build_object('since', v_since, 'oid_floor', v_floor, 'schemas_written', true);
  END IF;${changedKeysBlock('v_oldest', 'p_oid_floor', 'v_locked', 'v_keys, v_kinds')}
  IF v_kinds IS NOT NULL THEN
    v_relations := ${relationsOfKeys('v_keys')};
  END IF;${describeEach}
  -- a backend's transaction statistics are pending counts, flushed at most once a second: without a flush
  -- after this transaction, the next one's would hold this one's writes too (PostgreSQL 15 on can ask for it)
  IF coalesce(has_function_privilege(to_regprocedure('pg_catalog.pg_stat_force_next_flush()'), 'EXECUTE'), false) THEN
    -- planned at its first run, which a server before 15 (the test above) never comes to
    PERFORM pg_catalog.pg_stat_force_next_flush();
  END IF;
  RETURN jsonb_build_object('since', v_since, 'oid_floor', v_floor, 'schemas_written', false, 'deleted', ${DELETED_IN_TRANSACTION}, 'keys', coalesce(v_keys, '{}'), 'rows', v_rows);
END`;
}

const PREFIX = 'schema_changes_';

let made: { name: string; create: string } | undefined;

/** Named after a hash of its text: a belay that changes the queries makes its own, and drops the others. */
function trackerFunction(): { name: string; create: string } {
  if (made) return made;
  const body = functionBody();
  const name = `${PREFIX}${sha256Hex(body).slice(0, 16)}`;
  // The plans are made at a session's first call and kept (generic), while every revision after it adds
  // catalog rows: a catalog small enough at that call for a sequential scan to look cheapest is then read
  // whole at every call for the rest of a run, a cost that grows with each revision. Every statement here
  // probes an index but the whole-catalog reads, which have no other way and are planned the same.
  const create = `CREATE FUNCTION ${quoteIdent(BELAY_SCHEMA)}.${quoteIdent(name)}(p_since xid, p_oid_floor oid) RETURNS jsonb LANGUAGE plpgsql
  SET search_path = pg_catalog SET jit = off SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
  AS ${dollarQuoted(body)}`;
  made = { name, create };
  return made;
}

function dollarQuoted(body: string): string {
  let tag = '$belay$';
  for (let i = 0; body.includes(tag); i++) tag = `$belay${i}$`;
  return `${tag}${body}${tag}`;
}

/**
 * Make sure the function exists and may be called, under the run's lock,
 * outside a revision's transaction; drop the versions an earlier belay made.
 * Its qualified name, or undefined when it cannot be had (no CREATE on
 * belay's schema, no EXECUTE, no PL/pgSQL): the tracker then sends the
 * queries inline, with the same answers.
 */
export async function ensureTrackerFunction(client: ClientBase): Promise<string | undefined> {
  const { name, create } = trackerFunction();
  const qualified = `${quoteIdent(BELAY_SCHEMA)}.${quoteIdent(name)}`;
  const { rows } = await client.query<{ present: boolean; callable: boolean; creatable: boolean; others: Array<{ name: string; args: string }> }>(
    `SELECT to_regprocedure($1) IS NOT NULL AS present,
            coalesce(has_function_privilege(to_regprocedure($1), 'EXECUTE'), false) AS callable,
            has_schema_privilege($2, 'CREATE') AND EXISTS (SELECT 1 FROM pg_catalog.pg_language WHERE lanname = 'plpgsql') AS creatable,
            ARRAY(SELECT jsonb_build_object('name', p.proname, 'args', pg_catalog.oidvectortypes(p.proargtypes)) FROM pg_catalog.pg_proc p WHERE p.pronamespace = to_regnamespace($2) AND starts_with(p.proname, $3) AND p.proname <> $4
                    AND pg_has_role(p.proowner, 'USAGE')) AS others`,
    [`${qualified}(xid,oid)`, BELAY_SCHEMA, PREFIX, name],
  );
  const found = rows[0]!;
  if (found.present) return found.callable ? qualified : undefined;
  if (!found.creatable) return undefined;
  const drops = found.others.map(({ name: other, args }) => `DROP FUNCTION IF EXISTS ${quoteIdent(BELAY_SCHEMA)}.${quoteIdent(other)}(${args})`);
  try {
    await client.query([create, ...drops].join(';\n'));
  } catch {
    return undefined;
  }
  return qualified;
}
