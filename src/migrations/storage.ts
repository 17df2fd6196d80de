import { escapeLiteral, type ClientBase, type QueryResult, type QueryResultRow } from 'pg';
import { SESSION_RESET } from '../db/session.js';
import { SchemaTracker, type SchemaChanges, type SchemaDescription } from '../integrity/schema-digest.js';
import { ensureTrackerFunction } from '../integrity/tracker-function.js';
import type { Revision } from './revision.js';

/** Per-run state the storage shares with the revision steps. */
export interface EngineContext {
  client: ClientBase;
  runId: string;
  /** True while a revision's transaction is open: logging/unlogging commits it. */
  inTransaction: boolean;
  startedAt: number;
  /** Runs inside the revision's transaction right before it commits (rehearse looks at its locks there). */
  beforeCommit: ((client: ClientBase) => Promise<void>) | undefined;
  /** Throws when the caller may no longer change the database (its run lost its lock): asked before anything is sent that commits. */
  mayChange?: (() => void) | undefined;
}


export interface AppliedRevision {
  name: string;
  checksum: string;
  files: Record<string, string>;
  appliedAt: string;
  durationMs: number;
  runId: string | null;
}

/**
 * The record of applied revisions, in table belay.migrations. A revision's
 * transaction is opened by the engine and committed here, right after its
 * record is written, so the change and the record of it commit together or
 * not at all.
 */
export class TableStorage {
  /**
   * The applied names, read once and then kept by log/unlog: the engine asks
   * before every revision, and the run holds the advisory lock, so nobody
   * else changes them.
   */
  private applied: Set<string> | undefined;
  /** Describes again only the objects a revision changed: one per engine, across its revisions. */
  private readonly schema = new SchemaTracker(true);
  /**
   * The tracker may not know where the schema stands: nothing described yet,
   * or a down ran, or a revision failed (one outside a transaction may leave
   * part of its change). Only commitRecord() says where the next up starts.
   */
  private unknown = true;
  /** The function that describes a revision's change in one call, once made (undefined: the queries go inline). */
  private via: Promise<string | undefined> | undefined;

  /**
   * `trackDowns`: a down describes what it changed too, in its transaction,
   * when the schema it starts from is known (a rehearsal's up, down, up
   * again): the next up then starts from a known schema, and describedSchema()
   * has the state after the down, neither needing a description from outside.
   */
  constructor(
    private readonly revisions: ReadonlyMap<string, Revision>,
    private readonly trackDowns = false,
  ) {}

  /** The schema as the last revision left it, when the tracker knows it (undefined: it would have to be described again). */
  describedSchema(): SchemaDescription | undefined {
    return this.unknown ? undefined : this.schema.lastDescription();
  }

  /** Something besides the revisions may have changed the schema: describe it again before the next up. */
  forgetSchema(): void {
    this.unknown = true;
  }

  /** A down that describes what it changed: see trackDowns. */
  private tracksDown(context: EngineContext): boolean {
    return this.trackDowns && !this.unknown && context.inTransaction;
  }

  /** Before an up: the schema it starts from, so that recordOf() knows which objects the up changed. */
  async beforeUp(context: EngineContext): Promise<void> {
    if (this.unknown) {
      // made before the first description: its own catalog rows are then not a revision's change
      this.via ??= ensureTrackerFunction(context.client);
      await this.via;
      await this.schema.update(context.client);
    }
    // what changed before this up is not its change
    this.schema.takeChanges();
    this.unknown = true;
  }

  /**
   * What the revision's transaction may send after its last statement, in
   * that statement's round trip: the session reset and, up, the call that
   * describes what it changed (its answer goes to recordOf()); down, its record's
   * DELETE and the COMMIT (unlog() then has nothing left to send). Undefined
   * when they need round trips of their own: outside a transaction, with a
   * look before the commit, or without belay's tracker function.
   */
  async closing(context: EngineContext, name: string, direction: 'up' | 'down'): Promise<string | undefined> {
    if (!context.inTransaction) return undefined;
    if (direction === 'down' && !this.tracksDown(context)) return context.beforeCommit ? undefined : `${this.unlogStatements(name)}; COMMIT`;
    const via = await this.via;
    return via ? this.schema.callVia(via, SESSION_RESET) : undefined;
  }

  /**
   * The statement that records a revision as applied, with what its up
   * changed in the schema (what a later `rollback --to` is compared with);
   * commitRecord sends it, in the revision's transaction. The record is
   * written as the role belay connected as, whatever role the revision took
   * on: the session is reset first (SESSION_RESET), in the round trip that
   * describes what the revision changed; once the record commits, the
   * session is as belay opened it. `closed`: the answer to closing(), which
   * the revision's last round trip carried.
   */
  async recordOf(context: EngineContext, name: string, closed?: QueryResult<QueryResultRow>): Promise<string> {
    const revision = this.revisions.get(name);
    if (!revision) throw new Error(`no revision named ${name}`);
    const durationMs = Date.now() - context.startedAt;
    await this.schema.update(context.client, { opening: SESSION_RESET, inOneTransaction: context.inTransaction, via: await this.via, answered: closed });
    const schema = this.schema.takeChanges();
    const values = [name, revision.checksum, JSON.stringify(revision.fileChecksums), String(durationMs), context.runId, JSON.stringify(schema)];
    return `INSERT INTO belay.migrations (name, checksum, files, duration_ms, run_id, schema) VALUES (${values.map(escapeLiteral).join(', ')})`;
  }

  /**
   * Send the record (recordOf) and commit the revision's transaction.
   * `committed` is called as soon as the commit is answered, before anything
   * else runs: what it sends goes right behind the commit.
   */
  async commitRecord(context: EngineContext, name: string, record: string, committed?: () => void): Promise<void> {
    try {
      await this.commitWith(context, record, committed);
    } catch (error) {
      // what it described may have been rolled back with the revision
      this.schema.reset();
      throw error;
    }
    this.unknown = false;
    this.applied?.add(name);
  }

  /**
   * Remove a revision's record, in its transaction. `closed`: closing() already
   * did, and committed; or, for a down that describes what it changed (see
   * trackDowns), the answer of that description, which reset the session.
   */
  async unlog(context: EngineContext, name: string, closed?: QueryResult<QueryResultRow>): Promise<void> {
    const tracking = this.tracksDown(context);
    this.unknown = true;
    if (tracking) {
      try {
        await this.schema.update(context.client, { opening: SESSION_RESET, inOneTransaction: true, via: await this.via, answered: closed });
        this.schema.takeChanges();
        // the description reset the session (its opening)
        await this.commitWith(context, this.unlogStatements(name, false));
      } catch (error) {
        this.schema.reset();
        throw error;
      }
      this.unknown = false;
    } else if (!closed) await this.commitWith(context, this.unlogStatements(name));
    this.applied?.delete(name);
  }

  private unlogStatements(name: string, reset = true): string {
    const remove = `DELETE FROM belay.migrations WHERE name = ${escapeLiteral(name)}`;
    return reset ? `${SESSION_RESET}; ${remove}` : remove;
  }

  async isApplied(context: EngineContext, name: string): Promise<boolean> {
    if (!this.applied) {
      const { rows } = await context.client.query<{ name: string }>('SELECT name FROM belay.migrations');
      this.applied = new Set(rows.map((row) => row.name));
    }
    return this.applied.has(name);
  }

  /**
   * Run `statements` (literals only: a simple query) and commit the
   * revision's transaction, in one round trip unless a beforeCommit look
   * must come between; then `committed`.
   */
  private async commitWith(context: EngineContext, statements: string, committed?: () => void): Promise<void> {
    const ended = (): void => {
      context.inTransaction = false;
      committed?.();
    };
    context.mayChange?.();
    if (context.inTransaction && !context.beforeCommit) {
      // a callback on the query itself: it runs before any await that follows could let other work in
      await context.client.query(`${statements}; COMMIT`).then(ended);
      return;
    }
    await context.client.query(statements);
    await context.beforeCommit?.(context.client);
    context.mayChange?.();
    if (context.inTransaction) await context.client.query('COMMIT');
    ended();
  }
}

/**
 * What each of `names` changed in the schema when it was applied: null when
 * it was applied before belay recorded that (or is not applied).
 */
export async function readRecordedChanges(client: ClientBase, names: readonly string[]): Promise<Map<string, SchemaChanges | null>> {
  const { rows } = await client.query<{ name: string; schema: SchemaChanges | null }>('SELECT name, schema FROM belay.migrations WHERE name = ANY($1::text[])', [names]);
  // an earlier belay kept the whole schema instead (no format): it does not say what was there before
  const byName = new Map(rows.map((row) => [row.name, row.schema?.format === 2 ? row.schema : null]));
  return new Map(names.map((name) => [name, byName.get(name) ?? null]));
}

export async function readApplied(client: ClientBase): Promise<AppliedRevision[]> {
  const { rows } = await client.query<{
    name: string;
    checksum: string;
    files: Record<string, string>;
    applied_at: string;
    duration_ms: number;
    run_id: string | null;
  }>(
    // read on the session that runs revisions, which has the database's DateStyle: text that does not depend on it;
    // in the order of the files (discover.ts), 10_x after 9_y: the last is the database's revision
    `SELECT name, checksum, files, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS applied_at, duration_ms, run_id
       FROM belay.migrations ORDER BY substring(name FROM '^[0-9]+')::numeric, name COLLATE "C"`,
  );
  return rows.map((row) => ({
    name: row.name,
    checksum: row.checksum,
    files: row.files,
    appliedAt: row.applied_at,
    durationMs: row.duration_ms,
    runId: row.run_id,
  }));
}
