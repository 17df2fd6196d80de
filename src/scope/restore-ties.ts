import type { ClientBase } from 'pg';
import type { Manifest } from '../backup/manifest.js';
import { listSnapshots } from '../backup/snapshot-store.js';
import { quoteQualified } from '../db/ident.js';

/**
 * What ties a table to other live objects in a way a targeted restore cannot
 * carry over: it moves the table into the quarantine schema and re-creates it
 * from the snapshot, and each of these would stay with the quarantined copy
 * (an inheritance child, a column of its row type, a view reading it), leave
 * the live object without the table (a publication), or cannot be dropped and
 * re-made around it (a partitioned table's foreign key). Objects in `created`
 * (what the run made) move into the quarantine with the table and are not ties.
 */
const TIES = `
WITH t AS (SELECT c.oid, c.reltype FROM unnest($1::text[]) AS q(name) JOIN pg_class c ON c.oid = to_regclass(q.name) WHERE c.relkind = 'r'),
made AS (SELECT to_regclass(x) AS oid FROM unnest($2::text[]) AS x
         UNION SELECT ty.typrelid FROM unnest($3::text[]) AS x JOIN pg_type ty ON ty.oid = to_regtype(x)),
made_proc AS (SELECT to_regprocedure(x) AS oid FROM unnest($4::text[]) AS x),
tie(relation, routine, what) AS (
  SELECT i.inhrelid, NULL::oid, format('%s %s %s', i.inhrelid::regclass, CASE WHEN c.relispartition THEN 'is a partition of' ELSE 'inherits from' END, i.inhparent::regclass)
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhrelid IN (SELECT oid FROM t)
  UNION ALL
  SELECT i.inhrelid, NULL, format('%s inherits from %s', i.inhrelid::regclass, i.inhparent::regclass)
    FROM pg_inherits i WHERE i.inhparent IN (SELECT oid FROM t)
  UNION ALL
  SELECT CASE WHEN d.classid = 'pg_class'::regclass THEN d.objid END, CASE WHEN d.classid = 'pg_proc'::regclass THEN d.objid END,
         format('%s uses the row type of %s', pg_describe_object(d.classid, d.objid, d.objsubid), t.oid::regclass)
    FROM t JOIN pg_type ty ON ty.oid = t.reltype
    JOIN pg_depend d ON d.refclassid = 'pg_type'::regclass AND d.refobjid IN (ty.oid, ty.typarray) AND d.deptype = 'n'
   WHERE NOT (d.classid = 'pg_class'::regclass AND d.objid IN (SELECT oid FROM t))
  UNION ALL
  SELECT NULL, NULL, format('%s is in publication %s', r.prrelid::regclass, quote_ident(p.pubname))
    FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid WHERE r.prrelid IN (SELECT oid FROM t)
  UNION ALL
  SELECT con.conrelid, NULL, format('foreign key %s of %s %s references %s', quote_ident(con.conname), CASE WHEN c.relkind = 'p' THEN 'partitioned table' ELSE 'partition' END, con.conrelid::regclass, con.confrelid::regclass)
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
   WHERE con.contype = 'f' AND con.conparentid = 0 AND con.confrelid IN (SELECT oid FROM t) AND (c.relkind = 'p' OR c.relispartition)
  UNION ALL
  SELECT r.ev_class, NULL, CASE WHEN r.rulename = '_RETURN' THEN format('%s %s reads %s', CASE WHEN v.relkind = 'm' THEN 'materialized view' ELSE 'view' END, r.ev_class::regclass, d.refobjid::regclass)
                                ELSE format('rule %s on %s uses %s', quote_ident(r.rulename), r.ev_class::regclass, d.refobjid::regclass) END
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
   WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM t) AND r.ev_class NOT IN (SELECT oid FROM t)
  UNION ALL
  SELECT p.polrelid, NULL, format('policy %s on %s uses %s', quote_ident(p.polname), p.polrelid::regclass, d.refobjid::regclass)
    FROM pg_depend d JOIN pg_policy p ON p.oid = d.objid
   WHERE d.classid = 'pg_policy'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM t) AND p.polrelid NOT IN (SELECT oid FROM t)
  UNION ALL
  SELECT NULL, d.objid, format('%s reads %s', pg_describe_object(d.classid, d.objid, 0), d.refobjid::regclass)
    FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT oid FROM t) AND d.deptype = 'n'
)
SELECT DISTINCT what FROM tie
 WHERE (relation IS NULL OR relation NOT IN (SELECT oid FROM made WHERE oid IS NOT NULL))
   AND (routine IS NULL OR routine NOT IN (SELECT oid FROM made_proc WHERE oid IS NOT NULL))
 ORDER BY 1`;

/** The ties of `tables` (of the connected database, as they are now) that a targeted restore could not keep, each in words. */
export async function unrestorableTies(client: ClientBase, tables: Array<{ schema: string; name: string }>, created: Array<{ kind: string; schema: string; name: string; args?: string }> = []): Promise<string[]> {
  if (tables.length === 0) return [];
  const named = (kinds: (kind: string) => boolean): string[] =>
    created.filter((o) => kinds(o.kind)).map((o) => `${quoteQualified(o.schema, o.name)}${o.kind === 'function' ? `(${o.args ?? ''})` : ''}`);
  const { rows } = await client.query<{ what: string }>(TIES, [
    tables.map((t) => quoteQualified(t.schema, t.name)),
    named((kind) => kind !== 'type' && kind !== 'function' && kind !== 'schema'),
    named((kind) => kind === 'type'),
    named((kind) => kind === 'function'),
  ]);
  return rows.map((row) => row.what);
}

/** Why a targeted restore would not be faithful, given the ties. */
export const tiesReason = (ties: string[]): string =>
  `a targeted restore moves a table aside into a quarantine schema and re-creates it, and cannot carry over what ties it to live objects (they would stay tied to the quarantined copy, or lose the table): ${ties.join('; ')}`;

export interface TiedRefusal {
  /** Why the snapshot's tables are not put back, nothing having been changed. */
  message: string;
  /** What to run instead: a full snapshot of the same revision when there is one. */
  next: string[];
}

/**
 * Before a targeted restore: the live database may have gained ties since the
 * snapshot was chosen (a publication, an inheritance child, a view). Null when
 * there are none; else why it is refused, and the full snapshot of the same
 * database and revision to restore instead when there is one.
 */
export async function tiedRefusal(client: ClientBase, manifest: Manifest, backupsDir: string): Promise<TiedRefusal | null> {
  const scope = manifest.scope;
  if (!scope) return null;
  const ties = await unrestorableTies(client, scope.tables.filter((t) => t.kind === 'table'), scope.created);
  if (ties.length === 0) return null;
  const { snapshots } = await listSnapshots(backupsDir);
  const whole = snapshots.find((m) => !m.scope && !m.quarantine && m.database === manifest.database && m.revision === manifest.revision);
  const untie = `or undo what ties them, run \`belay restore ${manifest.id}\` again, then re-make it`;
  return {
    message: `the tables of touched snapshot ${manifest.id} were not put back, nothing was changed: ${tiesReason(ties)}`,
    next: whole
      ? [`restore the full snapshot ${whole.id} of ${manifest.revision ?? 'the start'} (taken ${whole.createdAt}; what was written after it is lost): belay restore ${whole.id}`, untie]
      : [`there is no full snapshot of ${manifest.database} at ${manifest.revision ?? 'the start'}: restore an earlier one (\`belay backups list\`, then \`belay restore ID\`) or your own backup`, untie],
  };
}
