import type { ClientBase } from 'pg';
import { BELAY_SCHEMA } from '../db/belay-schema.js';
import { fingerprintTables, type Fingerprint, type TableFingerprint } from '../integrity/fingerprint.js';
import { selectProtectedTables, tableKey } from '../integrity/table-selection.js';

/**
 * The tables this transaction may have written: those it holds a lock on
 * that allows writing (DML takes RowExclusiveLock, DDL and TRUNCATE
 * stronger); and whether it is the revision's own transaction (it holds the
 * lock of its belay.migrations row): a revision that runs outside a
 * transaction has committed as it went, and its locks are gone.
 */
const WRITTEN = `
  SELECT n.nspname AS schema, c.relname AS table
    FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted AND c.relkind = 'r'
     AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')`;

/**
 * The fingerprint of every table, kept up to date step after step without
 * scanning every table each time: a table is fingerprinted again only when
 * a step may have written it (seen from inside the step's transaction), or
 * when it is new. A step outside a transaction, or one that failed there,
 * makes every table suspect.
 */
export class DataTracker {
  private readonly known = new Map<string, TableFingerprint>();
  private readonly suspect = new Set<string>();
  private allSuspect = true;

  /** Inside a revision's transaction, right before it commits. */
  async noteFromInside(client: ClientBase): Promise<void> {
    const { rows } = await client.query<{ schema: string; table: string }>(WRITTEN);
    const own = rows.some((row) => row.schema === BELAY_SCHEMA && row.table === 'migrations');
    if (!own) this.allSuspect = true;
    for (const row of rows) this.suspect.add(tableKey(row));
  }

  /** Anything may have changed (a step outside a transaction, a failure halfway, another database). */
  forgetAll(): void {
    this.allSuspect = true;
  }

  /** Every table's fingerprint now. */
  async fingerprint(client: ClientBase): Promise<Fingerprint> {
    const tables = await selectProtectedTables(client, { include: ['*.*'], exclude: [] });
    const present = new Set(tables.map(tableKey));
    for (const key of [...this.known.keys()]) if (!present.has(key)) this.known.delete(key);
    const stale = tables.filter((table) => this.allSuspect || this.suspect.has(tableKey(table)) || !this.known.has(tableKey(table)));
    if (stale.length > 0) {
      const fresh = await fingerprintTables(client, stale, { perColumn: false });
      for (const [key, value] of Object.entries(fresh.tables)) this.known.set(key, value);
    }
    this.suspect.clear();
    this.allSuspect = false;
    return { takenAt: new Date().toISOString(), perColumn: false, tables: Object.fromEntries(this.known) };
  }
}
