import type { ClientBase } from 'pg';
import type { Manifest, SnapshotScope } from '../backup/manifest.js';
import { takeSnapshot, type SnapshotOptions } from '../backup/take-snapshot.js';
import { BelayError } from '../errors.js';
import { fingerprintTables, type ColumnSums, type Fingerprint } from '../integrity/fingerprint.js';
import { ScopeGuard } from './lock-scope.js';
import { simpleQueryResults } from '../db/simple-query.js';
import { BELAY_SCHEMA } from '../db/belay-schema.js';
import { NOT_SYSTEM_SCHEMA, objectLabel, type LearnedScope } from './scope.js';

export interface TouchedSnapshotOptions extends Omit<SnapshotOptions, 'fingerprint' | 'snapshotId' | 'scope' | 'quarantine'> {
  /** A session on the target, outside any transaction: the snapshot is read in a REPEATABLE READ transaction on it. */
  client: ClientBase;
  scope: LearnedScope;
  /** Per-column hashes in the fingerprint (integrity after a rollback compares columns). */
  sums: ColumnSums;
}

export interface TouchedSnapshot {
  manifest: Manifest;
  /** Of the snapshot's tables only, read in the very snapshot pg_dump dumped: the baseline to verify a restore and integrity against. */
  fingerprint: Fingerprint;
  /** For the apply: engine beforeCommit → guard.check(client). */
  guard: ScopeGuard;
}

interface Relation {
  oid: number;
  schema: string;
  name: string;
  kind: 'table' | 'sequence';
}

/** A pg_dump table pattern that matches exactly this relation (quoted parts lose their pattern meaning). */
const exactPattern = (schema: string, name: string): string => `"${schema.replaceAll('"', '""')}"."${name.replaceAll('"', '""')}"`;

interface Relations {
  /** The scope's relations in the target, with the sequences their columns own. */
  kept: Relation[];
  /** Every other row-holding relation: its data is left out. */
  excludeTableData: string[];
  guard: ScopeGuard;
  /** Tables whose contents pg_dump will dump, for its progress lines. */
  tableCount: number;
}

/** In one catalog query: the scope's relations, the patterns of every other one's data, and the guard's list. */
async function readRelations(client: ClientBase, scope: LearnedScope): Promise<Relations> {
  const { rows } = await client.query<{ oid: string; schema: string; name: string; relkind: string; kept: boolean; listed: boolean }>(
    `WITH wanted AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      JOIN unnest($1::text[], $2::text[]) AS w(schema, name) ON w.schema = n.nspname AND w.name = c.relname),
          kept AS (SELECT oid FROM wanted
                   UNION SELECT d.objid FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                      AND d.refobjid IN (SELECT oid FROM wanted) AND d.deptype IN ('a', 'i'))
     SELECT c.oid::int8::text AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind,
            c.oid IN (SELECT oid FROM kept) AS kept,
            c.relkind IN ('r', 'p', 'm', 'S', 'f') AND ${NOT_SYSTEM_SCHEMA} AS listed
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid IN (SELECT oid FROM kept) OR c.relkind IN ('r', 'p', 'm', 'S', 'f') AND ${NOT_SYSTEM_SCHEMA}
      ORDER BY 2, 3`,
    [scope.dataTables.map((t) => t.schema), scope.dataTables.map((t) => t.name)],
  );
  const keptRows = rows.filter((row) => row.kept);
  const found = new Set(keptRows.map((row) => `${row.schema}.${row.name}`));
  const missing = scope.dataTables.filter((t) => !found.has(objectLabel(t)));
  if (missing.length > 0) {
    throw new BelayError('preflight', `the learned scope names ${missing.map(objectLabel).join(', ')}, which the database does not have (its schema changed while belay learned)`, {
      hint: 'Nothing was changed. Run again, or with --backup-scope full.',
    });
  }
  const kinds: Record<string, Relation['kind']> = { r: 'table', S: 'sequence' };
  const kept = keptRows.map((row) => {
    const kind = kinds[row.relkind];
    if (!kind) throw new BelayError('preflight', `${row.schema}.${row.name} (relkind ${row.relkind}) cannot be in a touched snapshot`, { hint: 'Nothing was changed. Run with --backup-scope full.' });
    return { oid: Number(row.oid), schema: row.schema, name: row.name, kind };
  });
  const listed = rows.filter((row) => row.listed);
  // the guard watches what existed outside belay's own schema; a foreign table's rows are not the database's
  const existing = listed.filter((row) => row.relkind !== 'f' && row.schema !== BELAY_SCHEMA).map((row) => ({ oid: Number(row.oid), schema: row.schema, name: row.name }));
  return {
    kept,
    excludeTableData: listed.filter((row) => !row.kept).map((row) => exactPattern(row.schema, row.name)),
    guard: new ScopeGuard(new Map(existing.map((relation) => [relation.oid, relation])), new Set(kept.map((relation) => relation.oid)), scope.setOff),
    tableCount: listed.filter((row) => ['r', 'p', 'm'].includes(row.relkind)).length,
  };
}

/**
 * The archive entries (catalog id, object id) a targeted restore replays:
 * each table (definition and data), its indexes, constraints, triggers,
 * defaults, policies, rules and statistics, the foreign keys of other tables
 * that reference it, and the sequences. ACLs, comments and sequence values
 * carry no ids in the archive and are matched by name.
 */
async function restoreObjects(client: ClientBase, relations: Relation[]): Promise<Array<[number, number]>> {
  const tables = relations.filter((r) => r.kind === 'table').map((r) => r.oid);
  const sequences = relations.filter((r) => r.kind === 'sequence').map((r) => r.oid);
  const { rows } = await client.query<{ classid: number; objid: string }>(
    `WITH t AS (SELECT unnest($1::oid[]) AS oid)
     SELECT 1259 AS classid, oid::int8::text AS objid FROM t
     UNION ALL SELECT 0, oid::int8::text FROM t
     UNION ALL SELECT 1259, unnest($2::oid[])::int8::text
     UNION ALL SELECT 1259, indexrelid::int8::text FROM pg_index WHERE indrelid IN (SELECT oid FROM t)
     UNION ALL SELECT 2606, oid::int8::text FROM pg_constraint WHERE conrelid IN (SELECT oid FROM t) OR confrelid IN (SELECT oid FROM t)
     UNION ALL SELECT 2620, oid::int8::text FROM pg_trigger WHERE tgrelid IN (SELECT oid FROM t) AND NOT tgisinternal
     UNION ALL SELECT 2604, oid::int8::text FROM pg_attrdef WHERE adrelid IN (SELECT oid FROM t)
     UNION ALL SELECT 3256, oid::int8::text FROM pg_policy WHERE polrelid IN (SELECT oid FROM t)
     UNION ALL SELECT 2618, oid::int8::text FROM pg_rewrite WHERE ev_class IN (SELECT oid FROM t) AND rulename <> '_RETURN'
     UNION ALL SELECT 3381, oid::int8::text FROM pg_statistic_ext WHERE stxrelid IN (SELECT oid FROM t)`,
    [tables, sequences],
  );
  return rows.map((row) => [Number(row.classid), Number(row.objid)]);
}

/**
 * A touched snapshot: the schema of the whole database, the rows of the
 * scope's tables (and their sequences) only, and the fingerprint of those
 * tables, all of one moment: the REPEATABLE READ transaction opened here
 * exports its snapshot to pg_dump and computes the fingerprint in it. The
 * guard that enforces the scope during the apply is read in it too.
 */
export async function takeTouchedSnapshot(options: TouchedSnapshotOptions): Promise<TouchedSnapshot> {
  const { client, scope } = options;
  if (scope.unknown !== null) throw new BelayError('preflight', `no touched snapshot: ${scope.unknown}`, { hint: 'Nothing was changed. Run with --backup-scope full.' });
  try {
    const opened = await simpleQueryResults<{ id: string; version: string }>(
      client,
      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot() AS id, current_setting('server_version') AS version",
    );
    const { id: snapshotId, version: serverVersion } = opened.at(-1)!.rows[0]!;
    const { kept: relations, excludeTableData, guard, tableCount } = await readRelations(client, scope);
    const tables = relations.filter((r) => r.kind === 'table').map((r) => ({ schema: r.schema, table: r.name }));
    // pg_dump starts now: what only the manifest needs is read beside it, in the same snapshot
    const stopDump = new AbortController();
    const manifestScope: Promise<SnapshotScope> = restoreObjects(client, relations).then((objects) => ({
      kind: 'touched',
      tables: relations.map(({ schema, name, kind }) => ({ schema, name, kind })),
      learnedFrom: scope.learnedFrom,
      created: scope.created.map((o) => ({ kind: o.kind, schema: o.schema, name: o.name, ...(o.args === undefined ? {} : { args: o.args }) })),
      objects,
    }));
    // one query at a time on the client
    const fingerprinting = manifestScope.then(() => fingerprintTables(client, tables, { ...options.sums, inTransaction: true, objects: true }));
    for (const reading of [manifestScope, fingerprinting]) reading.catch(() => stopDump.abort());
    const signal = options.signal ? AbortSignal.any([options.signal, stopDump.signal]) : stopDump.signal;
    const [readScope, fingerprint, manifest] = await Promise.allSettled([
      manifestScope,
      fingerprinting,
      takeSnapshot({ ...options, signal, snapshotId, described: { tables: tableCount, serverVersion }, fingerprint: fingerprinting, scope: { manifest: manifestScope, excludeTableData } }),
    ]);
    if (readScope.status === 'rejected') throw readScope.reason;
    if (fingerprint.status === 'rejected') throw fingerprint.reason;
    if (manifest.status === 'rejected') throw manifest.reason;
    return { manifest: manifest.value, fingerprint: fingerprint.value, guard };
  } finally {
    // read only: ending it releases the exported snapshot
    await client.query('ROLLBACK').catch(() => {});
  }
}
