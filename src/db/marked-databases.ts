import { escapeLiteral, type ClientBase } from 'pg';
import { dropDatabase } from './databases.js';
import { quoteIdent } from './ident.js';
import { errorMessage } from '../errors.js';

/**
 * The throwaway databases belay makes on a real server (the scope-learning
 * copies, the rehearsals' databases). A run killed while one exists leaves it;
 * these find the ones belay can prove it made (the name and the marker it sets
 * as the database's COMMENT right after creating it) and that no live run uses
 * (the session the marker names is gone, nobody is connected to it), so that a
 * user's database merely named like one is never touched.
 */
export interface MarkedKind {
  /** Starts the marker: `belay scope copy `, `belay rehearsal `. */
  markerPrefix: string;
  /** What every such name of `database` starts with. */
  namePrefix(database: string): string;
  /** What follows that prefix, as a regular expression. */
  nameRest: string;
}

interface Marker {
  /** The database it was made for. */
  of: string;
  /** A session of the run that made it, alive while the run uses it. */
  pid: number;
  backendStart: string;
}

/** Mark a database just created as belay's; the marker names `admin`'s session, which the run keeps open while it uses it. */
export async function markDatabase(admin: ClientBase, kind: MarkedKind, name: string, of: string): Promise<void> {
  const { rows } = await admin.query<{ pid: number; start: string }>('SELECT pid, backend_start::text AS start FROM pg_stat_activity WHERE pid = pg_backend_pid()');
  const marker: Marker = { of, pid: rows[0]!.pid, backendStart: rows[0]!.start };
  await admin.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${escapeLiteral(`${kind.markerPrefix}${JSON.stringify(marker)}`)}`);
}

function parseMarker(comment: string | null, kind: MarkedKind, database: string): Marker | undefined {
  if (comment === null || !comment.startsWith(kind.markerPrefix)) return undefined;
  try {
    const marker = JSON.parse(comment.slice(kind.markerPrefix.length)) as Partial<Marker>;
    if (marker.of !== database || typeof marker.pid !== 'number' || typeof marker.backendStart !== 'string') return undefined;
    return marker as Marker;
  } catch {
    return undefined;
  }
}

/**
 * The databases of `kind` made for `database` that a killed run left:
 * belay's by name and marker, or by name and a killed run's journal that
 * named it before making it (`journaled`: killed during the CREATE DATABASE,
 * it never marked it); unused by any live session.
 */
export async function findLeftMarked(client: ClientBase, kind: MarkedKind, database: string, journaled: ReadonlySet<string> = new Set()): Promise<string[]> {
  const { rows } = await client.query<{ name: string; comment: string | null }>(
    `SELECT d.datname::text AS name, shobj_description(d.oid, 'pg_database') AS comment
       FROM pg_catalog.pg_database d
      WHERE starts_with(d.datname, $1) AND substr(d.datname, length($1) + 1) ~ $2
      ORDER BY d.datname`,
    [kind.namePrefix(database), kind.nameRest],
  );
  const left: string[] = [];
  for (const row of rows) {
    const marker = parseMarker(row.comment, kind, database);
    if (!marker && !journaled.has(row.name)) continue;
    // the marking session alive (same pid and start: not a reused pid), or anyone on the database: a live run's
    const { rows: live } = await client.query<{ live: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                       WHERE (pid = $1 AND (backend_start IS NULL OR backend_start::text = $2)) OR datname = $3) AS live`,
      [marker?.pid ?? null, marker?.backendStart ?? null, row.name],
    );
    if (live[0]?.live !== true) left.push(row.name);
  }
  return left;
}

/** Drop those (run under the run lock); answers the ones dropped and the ones this role could not drop, with why. */
export async function dropLeftMarked(
  client: ClientBase,
  kind: MarkedKind,
  database: string,
  journaled: ReadonlySet<string> = new Set(),
): Promise<{ dropped: string[]; kept: Array<{ name: string; why: string }> }> {
  const dropped: string[] = [];
  const kept: Array<{ name: string; why: string }> = [];
  for (const name of await findLeftMarked(client, kind, database, journaled)) {
    try {
      await dropDatabase(client, name);
      dropped.push(name);
    } catch (error) {
      // another role's database (must be owner): not a reason to leave the interrupted run unsettled
      kept.push({ name, why: errorMessage(error) });
    }
  }
  return { dropped, kept };
}
