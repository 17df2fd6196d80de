import { basename } from 'node:path';
import type { ClientBase, QueryResult, QueryResultRow } from 'pg';
import { watchBlockers, type BlockerWatch } from '../db/lock-watchdog.js';
import { SQLSTATE, sqlstateOf } from '../db/sqlstate.js';
import { openSibling, resetSession, sessionOrigin } from '../db/session.js';
import { failureFromError, RevisionFailedError, withBlockers } from './revision-error.js';
import type { Revision } from './revision.js';
import { errorMessage } from '../errors.js';
import { prepareStep, prepareVerify, type Direction, type PreparedStep, type StepHooks } from './run-revision.js';
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
  /** A warning about a revision (without it, a process warning). */
  warn?(revision: Revision, message: string): void;
}

/** What a revision's up may send right behind its record (see MigrationEngine.up). */
export interface UpNext {
  /** The revision the caller applies next, unless it stops first. */
  next: string;
  /** Asked when the record has committed, before the next revision is sent: true when the caller is about to stop. */
  stopping?: () => boolean;
}

const LEFT_OPEN = 'it left a transaction open (a BEGIN without its COMMIT); belay rolled that transaction back: what it ran after its BEGIN did not land';

/** A revision's first round trip, sent: its answer (never a rejection), and the lock watch beside it. */
interface Running {
  revision: Revision;
  step: PreparedStep;
  watch: BlockerWatch | undefined;
  answer: Promise<{ closed: QueryResult<QueryResultRow> | undefined } | { error: unknown }>;
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
  /** The next revision's up, sent when the previous one's record committed (see up), until the caller asks for it. */
  private ahead: Running | undefined;

  constructor(
    revisions: readonly Revision[],
    client: ClientBase,
    runId: string,
    private readonly listener: EngineListener,
    beforeCommit?: (client: ClientBase) => Promise<void>,
    private readonly options: { trackDowns?: boolean; signal?: AbortSignal; mayChange?: () => void } = {},
  ) {
    this.byName = new Map(revisions.map((revision) => [revision.name, revision]));
    this.context = { client, runId, inTransaction: false, startedAt: 0, beforeCommit, mayChange: options.mayChange };
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

  /**
   * Apply one pending revision; throws RevisionFailedError with its
   * transaction rolled back. With `then`, once this revision's record has
   * committed, the next revision's first round trip (BEGIN, its statements,
   * the call that describes what it changed) is sent at once, before this
   * call returns: the server runs it while the caller journals this step,
   * and the next up() takes its answer. Nothing of it commits before the
   * caller asks for it: a caller that stops instead calls settle(), which
   * rolls it back. Only a revision that runs as one SQL transaction with
   * nothing to look at before it commits (no verify, no beforeCommit) is
   * sent ahead.
   */
  async up(name: string, then?: UpNext): Promise<void> {
    if (this.ahead && this.ahead.revision.name !== name) await this.settle();
    const ahead = this.ahead;
    this.ahead = undefined;
    await this.guard(name, 'up', async (revision) => {
      let closed: QueryResult<QueryResultRow> | undefined;
      if (ahead) {
        // its pending check and its start were done when it was sent
        await this.storage.beforeUp(this.context);
        closed = await this.finish(ahead, 'up');
      } else {
        if (await this.storage.isApplied(this.context, name)) throw new Error(`${name} is already applied`);
        await this.storage.beforeUp(this.context);
        closed = await this.runRevision(revision, 'up');
      }
      const record = await this.storage.recordOf(this.context, name, closed);
      const next = then && (await this.sendable(then.next));
      await this.storage.commitRecord(this.context, name, record, () => {
        if (next && !then?.stopping?.()) this.ahead = this.start(next.revision, next.step, next.closing);
      });
    });
  }

  /**
   * A revision sent ahead and not asked for (the caller stopped before it):
   * its transaction rolled back, its session reset. Never throws: a
   * connection that failed here fails the caller's next use of it.
   */
  async settle(): Promise<void> {
    const ahead = this.ahead;
    if (!ahead) return;
    this.ahead = undefined;
    await ahead.answer;
    await ahead.watch?.stop();
    const { client } = this.context;
    this.context.inTransaction = false;
    // its round trip opened a transaction (BEGIN came first); not told by getTransactionStatus(), which a failed
    // query's answer leaves as it was before it (node-postgres rejects at the error, before the server's ReadyForQuery)
    this.sessionReset = await client
      .query('ROLLBACK')
      .then(() => resetSession(client))
      .then(
        () => true,
        () => false,
      );
  }

  /** The next revision's step, its closing (the tracker's call), when it can be sent behind a record; undefined otherwise. */
  private async sendable(name: string): Promise<{ revision: Revision; step: PreparedStep; closing: string } | undefined> {
    const revision = this.byName.get(name);
    if (!revision || revision.kind !== 'sql' || this.context.beforeCommit) return undefined;
    try {
      if (await this.storage.isApplied(this.context, name)) return undefined;
      const step = await prepareStep(revision, 'up');
      if (!step.transactional || (await prepareVerify(revision))) return undefined;
      // the record's transaction is open: the tracker's call as it will stand once the record commits
      const closing = await this.storage.closing(this.context, name, 'up');
      return closing === undefined ? undefined : { revision, step, closing };
    } catch {
      // what keeps it from running is told when the caller asks for it
      return undefined;
    }
  }

  /** Revert one applied revision. */
  async down(name: string): Promise<void> {
    await this.settle();
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
    // a down's first round trip may carry its COMMIT, and a step outside a transaction commits as it goes
    this.context.mayChange?.();
    if (step.transactional) this.context.inTransaction = true;
    else await this.listener.durable?.();
    // BEGIN goes with the step's first statement, and the storage's closing with its last unless a verify comes between
    // (up: the session reset and the schema call; down: also the record's DELETE and the COMMIT): a round trip fewer each
    const closing = verify ? undefined : await this.storage.closing(this.context, revision.name, direction);
    return this.finish(this.start(revision, step, closing, direction), direction, verify);
  }

  /** What a module's step is given: its log, the run's stop, and where what it raises after its step ended is told. */
  private hooksOf(revision: Revision, direction: Direction | 'verify'): StepHooks {
    return {
      log: (message) => this.listener.log(revision, message),
      signal: this.options.signal,
      late: (error, known) => {
        const message = `an error thrown where nothing could catch it, after its ${direction} ended, ${known ? 'by' : 'most likely by'} revision ${revision.name}: ${errorMessage(error)}`;
        if (this.listener.warn) this.listener.warn(revision, message);
        else process.emitWarning(message);
      },
    };
  }

  /** Send the step's first round trip, on the session as belay opened it: nothing is awaited before it goes. */
  private start(revision: Revision, step: PreparedStep, closing: string | undefined, direction: Direction = 'up'): Running {
    const { client } = this.context;
    this.sessionReset = false;
    this.context.startedAt = Date.now();
    if (step.transactional) this.context.inTransaction = true;
    const origin = sessionOrigin(client);
    const watch = origin ? watchBlockers(() => openSibling(client, 'watch'), origin.backendPid, origin.lockTimeoutMs) : undefined;
    const answer = step.run(client, this.hooksOf(revision, direction), step.transactional ? 'BEGIN' : undefined, closing).then(
      (closed) => ({ closed }),
      (error: unknown) => ({ error }),
    );
    return { revision, step, watch, answer };
  }

  /** The step's answer, once its round trips are done; its failure with the sessions that blocked it. */
  private async finish(running: Running, direction: Direction, verify?: PreparedStep): Promise<QueryResult<QueryResultRow> | undefined> {
    const { client } = this.context;
    try {
      const answer = await running.answer;
      if ('error' in answer) throw answer.error;
      // a closing may end the transaction (a down's record commits with it)
      if (answer.closed && client.getTransactionStatus() === 'I') this.context.inTransaction = false;
      if (verify) await verify.run(client, this.hooksOf(running.revision, 'verify'));
      if (!running.step.transactional) await this.assertNoOpenTransaction(running.revision, direction, running.step.file);
      return answer.closed;
    } catch (error) {
      const failed = withBlockers(error, running.watch?.seen() ?? []);
      if (!running.step.transactional && failed instanceof RevisionFailedError && (await this.leftTransactionOpen())) {
        // the guard rolls it back
        this.context.inTransaction = true;
        const { failure } = failed;
        throw new RevisionFailedError(
          { ...failure, message: `${LEFT_OPEN}; it failed: ${failure.message}` },
          { cause: failed.cause },
        );
      }
      throw failed;
    } finally {
      await running.watch?.stop();
    }
  }

  /**
   * A revision that runs outside a transaction may open one (a module's
   * BEGIN) and forget its COMMIT: belay's record would go into it, and the
   * session reset would run inside it. Rolled back and failed instead.
   */
  private async assertNoOpenTransaction(revision: Revision, direction: Direction, file: string): Promise<void> {
    if (!(await this.leftTransactionOpen())) return;
    this.context.inTransaction = true;
    throw new RevisionFailedError({ revision: revision.name, direction, file: basename(file), message: LEFT_OPEN, transactional: false });
  }

  /** Whether a revision outside a transaction left one of its own open: a block a statement failed in refuses the question. */
  private async leftTransactionOpen(): Promise<boolean> {
    // outside a transaction block, this statement starts its own: its transaction began when it did
    return this.context.client.query<{ open: boolean }>('SELECT now() <> statement_timestamp() AS open').then(
      ({ rows }) => rows[0]?.open === true,
      (error: unknown) => sqlstateOf(error) === SQLSTATE.inFailedSqlTransaction,
    );
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
      // (a revision sent ahead runs on the session the record reset: settle() resets it if it is not asked for)
      this.sessionReset = this.ahead
        ? false
        : recorded ||
          (await resetSession(this.context.client).then(
            () => true,
            () => false,
          ));
    }
  }
}
