import type { ClientBase } from 'pg';
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

  constructor(private readonly revisions: ReadonlyMap<string, Revision>) {}

  async log(context: EngineContext, name: string): Promise<void> {
    const revision = this.revisions.get(name);
    if (!revision) throw new Error(`no revision named ${name}`);
    await context.client.query(
      `INSERT INTO belay.migrations (name, checksum, files, duration_ms, run_id) VALUES ($1, $2, $3, $4, $5)`,
      [name, revision.checksum, JSON.stringify(revision.fileChecksums), Date.now() - context.startedAt, context.runId],
    );
    await this.commit(context);
    this.applied?.add(name);
  }

  async unlog(context: EngineContext, name: string): Promise<void> {
    await context.client.query('DELETE FROM belay.migrations WHERE name = $1', [name]);
    await this.commit(context);
    this.applied?.delete(name);
  }

  async isApplied(context: EngineContext, name: string): Promise<boolean> {
    if (!this.applied) {
      const { rows } = await context.client.query<{ name: string }>('SELECT name FROM belay.migrations');
      this.applied = new Set(rows.map((row) => row.name));
    }
    return this.applied.has(name);
  }

  private async commit(context: EngineContext): Promise<void> {
    await context.beforeCommit?.(context.client);
    if (!context.inTransaction) return;
    await context.client.query('COMMIT');
    context.inTransaction = false;
  }
}

export async function readApplied(client: ClientBase): Promise<AppliedRevision[]> {
  const { rows } = await client.query<{
    name: string;
    checksum: string;
    files: Record<string, string>;
    applied_at: Date;
    duration_ms: number;
    run_id: string | null;
  }>('SELECT name, checksum, files, applied_at, duration_ms, run_id FROM belay.migrations ORDER BY name');
  return rows.map((row) => ({
    name: row.name,
    checksum: row.checksum,
    files: row.files,
    appliedAt: row.applied_at.toISOString(),
    durationMs: row.duration_ms,
    runId: row.run_id,
  }));
}
