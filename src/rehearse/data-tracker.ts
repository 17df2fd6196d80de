import type { ClientBase } from 'pg';
import { BELAY_SCHEMA } from '../db/belay-schema.js';
import { fingerprintTables, type Fingerprint, type TableFingerprint } from '../integrity/fingerprint.js';
import { selectProtectedTables, tableKey } from '../integrity/table-selection.js';
import type { OwnLock } from './lock-sampler.js';

/** Lock modes that allow writing rows: DML takes RowExclusiveLock, DDL and TRUNCATE stronger ones. */
const WRITING = new Set(['RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock']);

/**
 * The fingerprint of every table, kept up to date step after step without
 * scanning every table each time: a table is fingerprinted again only when
 * a step may have written it (seen from inside the step's transaction), or
 * when it is new. A step outside a transaction, or one that failed halfway
 * there, makes every table suspect.
 */
export class DataTracker {
  private readonly known = new Map<string, TableFingerprint>();
  private readonly suspect = new Set<string>();
  private allSuspect = true;

  /**
   * The locks a revision's transaction holds right before it commits: the
   * tables it may have written. Without the lock of its belay.migrations row
   * it ran outside a transaction, committed as it went, and its locks are gone.
   */
  noteLocks(locks: readonly OwnLock[]): void {
    const written = locks.filter((lock) => lock.kind === 'r' && WRITING.has(lock.mode));
    if (!written.some((lock) => lock.schema === BELAY_SCHEMA && lock.table === 'migrations')) this.allSuspect = true;
    for (const lock of written) this.suspect.add(tableKey(lock));
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
