import { basename } from 'node:path';
import type { ClientBase, QueryResult, QueryResultRow } from 'pg';
import { watchBlockers } from '../db/lock-watchdog.js';
import { openSibling, resetSession, sessionOrigin } from '../db/session.js';
import { failureFromError, RevisionFailedError, withBlockers } from './revision-error.js';
import type { Revision } from './revision.js';
import { prepareStep, prepareVerify, type Direction } from './run-revision.js';
import type { SchemaDescription } from '../integrity/schema-digest.js';
import { TableStorage, type EngineContext } from './storage.js';

export interface EngineListener {
  /** A message a module revision logs through ctx.log. */
  log(revision: Revision, message: string): void;
  /**
   * Called before a step that runs outside a transaction: the run's journal
   * must be on disk first, since no commit will tell recover that it started.
   */
  durable?(): Promise<void>;
}

/**
 * Applies and reverts revisions one at a time: each in its own transaction
 * (unless its file says no-transaction) that also holds its belay.migrations
 * record, with its verify inside that transaction, and each on the session as
 * belay opened it (see resetSession). The order is the caller's:
 * discovery sorts the revisions, the runner picks which to apply or revert.
 */
export class MigrationEngine {
  private readonly context: EngineContext;
  private readonly storage: TableStorage;
  private readonly byName: Map<string, Revision>;
  /**
   * The session was reset after the previous revision and nothing of the
   * engine's ran on it since: the next revision need not reset it again. The
   * caller owns the client between up/down calls and must not change its
   * session state there (belay's runner runs nothing on it in between).
   */
  private sessionReset = false;

  constructor(
    revisions: readonly Revision[],
    client: ClientBase,
    runId: string,
    private readonly listener: EngineListener,
    beforeCommit?: (client: ClientBase) => Promise<void>,
    options: { trackDowns?: boolean } = {},
  ) {
    this.byName = new Map(revisions.map((revision) => [revision.name, revision]));
    this.context = { client, runId, inTransaction: false, startedAt: 0, beforeCommit };
    this.storage = new TableStorage(this.byName, options.trackDowns);
  }

  /** The schema as the last revision left it, when the engine knows it without asking (see TableStorage.describedSchema). */
  describedSchema(): SchemaDescription | undefined {
    return this.storage.describedSchema();
  }

  /** Something besides the revisions may have changed the schema (see TableStorage.forgetSchema). */
  forgetSchema(): void {
    this.storage.forgetSchema();
  }

  /** Apply one pending revision; throws RevisionFailedError with its transaction rolled back. */
  async up(name: string): Promise<void> {
    await this.guard(name, 'up', async (revision) => {
      if (await this.storage.isApplied(this.context, name)) throw new Error(`${name} is already applied`);
      await this.storage.beforeUp(this.context);
      await this.storage.log(this.context, name, await this.runRevision(revision, 'up'));
    });
  }

  /** Revert one applied revision. */
  async down(name: string): Promise<void> {
    await this.guard(name, 'down', async (revision) => {
      if (!(await this.storage.isApplied(this.context, name))) throw new Error(`${name} is not applied`);
      await this.storage.unlog(this.context, name, await this.runRevision(revision, 'down'));
    });
  }

  /** Run the revision's step (and verify); the answer to the storage's closing, when the step's last round trip carried it. */
  private async runRevision(revision: Revision, direction: Direction): Promise<QueryResult<QueryResultRow> | undefined> {
    const { client } = this.context;
    const step = await prepareStep(revision, direction);
    const verify = direction === 'up' ? await prepareVerify(revision) : undefined;
    if (!this.sessionReset) await resetSession(client);
    this.sessionReset = false;
    this.context.startedAt = Date.now();
    const log = (message: string): void => this.listener.log(revision, message);
    if (step.transactional) this.context.inTransaction = true;
    else await this.listener.durable?.();
    // BEGIN goes with the step's first statement, and the storage's closing with its last unless a verify comes between
    // (up: the session reset and the schema call; down: also the record's DELETE and the COMMIT): a round trip fewer each
    const closing = verify ? undefined : await this.storage.closing(this.context, revision.name, direction);
    const origin = sessionOrigin(client);
    const watch = origin && watchBlockers(() => openSibling(client, 'watch'), origin.backendPid, origin.lockTimeoutMs);
    try {
      const closed = await step.run(client, log, step.transactional ? 'BEGIN' : undefined, closing);
      // a closing may end the transaction (a down's record commits with it)
      if (closed && client.getTransactionStatus() === 'I') this.context.inTransaction = false;
      if (verify) await verify.run(client, log);
      if (!step.transactional) await this.assertNoOpenTransaction(revision, direction, step.file);
      return closed;
    } catch (error) {
      throw withBlockers(error, watch?.seen() ?? []);
    } finally {
      await watch?.stop();
    }
  }

  /**
   * A revision that runs outside a transaction may open one (a module's
   * BEGIN) and forget its COMMIT: belay's record would go into it, and the
   * session reset would run inside it. Rolled back and failed instead.
   */
  private async assertNoOpenTransaction(revision: Revision, direction: Direction, file: string): Promise<void> {
    // outside a transaction block, this statement starts its own: its transaction began when it did
    const { rows } = await this.context.client.query<{ open: boolean }>('SELECT now() <> statement_timestamp() AS open');
    if (!rows[0]?.open) return;
    this.context.inTransaction = true;
    throw new RevisionFailedError({
      revision: revision.name,
      direction,
      file: basename(file),
      message: 'it left a transaction open (a BEGIN without its COMMIT); belay rolled that transaction back',
      transactional: false,
    });
  }

  private async guard(name: string, direction: Direction, work: (revision: Revision) => Promise<void>): Promise<void> {
    const revision = this.byName.get(name);
    // the record (log/unlog) resets the session in the round trip that commits it
    let recorded = false;
    try {
      if (!revision) throw new Error(`no revision named ${name}`);
      await work(revision);
      recorded = true;
    } catch (error) {
      const transactional = this.context.inTransaction;
      if (this.context.inTransaction) {
        this.context.inTransaction = false;
        await this.context.client.query('ROLLBACK').catch(() => {});
      }
      if (error instanceof RevisionFailedError) throw error;
      throw new RevisionFailedError(
        failureFromError(error, {
          revision: name,
          direction,
          file: revision ? revision.files.up.split('/').pop()! : name,
          transactional,
        }),
        { cause: error },
      );
    } finally {
      // what the revision did to the session must not reach the health checks and integrity that follow on it;
      // its outcome is already decided, and a session that cannot be reset fails the reset before the next revision
      this.sessionReset =
        recorded ||
        (await resetSession(this.context.client).then(
          () => true,
          () => false,
        ));
    }
  }
}
