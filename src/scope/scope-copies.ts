import type { ClientBase } from 'pg';
import { derivedName, dropDatabase } from '../db/databases.js';
import { quoteIdent } from '../db/ident.js';
import { errorMessage } from '../errors.js';

/**
 * The throwaway schema-only copies learning the backup scope makes
 * (`<db>_belay_scope_<8 hex>`, learn-scope.ts). A run killed while learning
 * leaves its copy; these find the ones belay can prove it made (the name
 * and the marker it sets as the copy's COMMENT right after creating it) and
 * that no live run uses (the creating session is gone, nobody is connected
 * to it), so that a user's database merely named like one is never touched.
 */

const MARKER_PREFIX = 'belay scope copy ';
const HEX_LENGTH = 8;

interface Marker {
  /** The database it is a copy of. */
  of: string;
  /** The learning run's session on the target, alive while it learns. */
  pid: number;
  backendStart: string;
}

export const scopeCopyName = (database: string, hex: string): string => derivedName(database, `belay_scope_${hex}`);

/** Mark a copy just created as belay's; the marker names the session on the target that learns on it. */
export async function markScopeCopy(admin: ClientBase, copy: string, of: string): Promise<void> {
  const { rows } = await admin.query<{ pid: number; start: string }>('SELECT pid, backend_start::text AS start FROM pg_stat_activity WHERE pid = pg_backend_pid()');
  const marker: Marker = { of, pid: rows[0]!.pid, backendStart: rows[0]!.start };
  await admin.query(`COMMENT ON DATABASE ${quoteIdent(copy)} IS ${quoteLiteral(`${MARKER_PREFIX}${JSON.stringify(marker)}`)}`);
}

const quoteLiteral = (text: string): string => `'${text.replace(/'/g, "''")}'`;

function parseMarker(comment: string | null, database: string): Marker | undefined {
  if (comment === null || !comment.startsWith(MARKER_PREFIX)) return undefined;
  try {
    const marker = JSON.parse(comment.slice(MARKER_PREFIX.length)) as Partial<Marker>;
    if (marker.of !== database || typeof marker.pid !== 'number' || typeof marker.backendStart !== 'string') return undefined;
    return marker as Marker;
  } catch {
    return undefined;
  }
}

export interface LeftScopeCopy {
  name: string;
}

/** The scope copies of `database` a killed run left: belay's by name and marker, unused by any live session. */
export async function findLeftScopeCopies(client: ClientBase, database: string): Promise<LeftScopeCopy[]> {
  const prefix = scopeCopyName(database, '0'.repeat(HEX_LENGTH)).slice(0, -HEX_LENGTH);
  const { rows } = await client.query<{ name: string; comment: string | null }>(
    `SELECT d.datname::text AS name, shobj_description(d.oid, 'pg_database') AS comment
       FROM pg_catalog.pg_database d
      WHERE starts_with(d.datname, $1) AND length(d.datname) = length($1) + $2 AND substr(d.datname, length($1) + 1) ~ '^[0-9a-f]+$'
      ORDER BY d.datname`,
    [prefix, HEX_LENGTH],
  );
  const left: LeftScopeCopy[] = [];
  for (const row of rows) {
    const marker = parseMarker(row.comment, database);
    if (!marker) continue;
    // the learning session alive (same pid and start: not a reused pid), or anyone on the copy: a live run's
    const { rows: live } = await client.query<{ live: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                       WHERE (pid = $1 AND (backend_start IS NULL OR backend_start::text = $2)) OR datname = $3) AS live`,
      [marker.pid, marker.backendStart, row.name],
    );
    if (live[0]?.live !== true) left.push({ name: row.name });
  }
  return left;
}

/** Drop those (run under the run lock); answers the ones dropped and the ones this role could not drop, with why. */
export async function dropLeftScopeCopies(client: ClientBase, database: string): Promise<{ dropped: string[]; kept: Array<{ name: string; why: string }> }> {
  const dropped: string[] = [];
  const kept: Array<{ name: string; why: string }> = [];
  for (const copy of await findLeftScopeCopies(client, database)) {
    try {
      await dropDatabase(client, copy.name);
      dropped.push(copy.name);
    } catch (error) {
      // another role's copy (must be owner): not a reason to leave the interrupted run unsettled
      kept.push({ name: copy.name, why: errorMessage(error) });
    }
  }
  return { dropped, kept };
}
