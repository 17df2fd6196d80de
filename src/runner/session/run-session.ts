import { assertBelayWritable, ensureBelaySchema } from '../../db/belay-schema.js';
import { isConnectionLost } from '../../db/connection-lost.js';
import { isConnectFailure, openBoth, openSession, openSibling, type Session } from '../../db/session.js';
import { assertWritable } from '../../db/writable.js';
import { quoteIdent } from '../../db/ident.js';
import { SQLSTATE, sqlstateOf } from '../../db/sqlstate.js';
import { BelayError, errorMessage, preflightError } from '../../errors.js';
import { Journal } from '../../journal/journal.js';
import type { RunHeader } from '../../journal/record.js';
import { newRunId } from '../../journal/run-id.js';
import { RunLedger } from '../result/ledger.js';
import { acquireRunLock, refuseWhileUnfinished, runSuffix } from './run-lock.js';
import { openTargetSession, sessionOptions, type RunSetup } from './setup.js';

/** Between attempts to connect again to a server that does not answer yet (a restart). */
const RECONNECT_PAUSE_MS = 250;

/** Whether the server ended this connection (a session that was never opened, or was closed, counts as lost). */
/** Why a session no longer answers, in lossCause's words; undefined while it does. */
async function lost(session: Session | undefined): Promise<string | undefined> {
  if (!session) return 'connection lost';
  return session.client.query('SELECT 1').then(
    () => undefined,
    (error: unknown) => (isConnectionLost(error) ? lossCause(error) : undefined),
  );
}

/** A lost session's cause: an error the server sent (a FATAL) has a SQLSTATE; a socket's has an errno or none. */
function lossCause(error: unknown): string {
  const message = errorMessage(error);
  return sqlstateOf(error) !== undefined ? `terminated by the server: ${message}` : `connection lost: ${message}`;
}

/**
 * A changing run: its id, the control connection that holds the advisory
 * lock and writes the journal, and the journal itself. Revisions run on a
 * separate work connection, so journal rows never share their transactions.
 */
export class RunSession {
  journal: Journal | undefined;
  /** The run's facts, reduced from its step events. */
  readonly ledger = new RunLedger();
  private lockStarted = 0;
  /** The cancel a signal sent for the work connection's statement, until the server has answered it. */
  private cancelling: Promise<void> = Promise.resolve();
  /** Ends the first signal's cancel of the work connection's statement (see keepWorkOnAbort). */
  private stopCancelling: (() => void) | undefined;
  /** Why the control session ended while it held the lock: from then on the run changes nothing (see watchLock). */
  private lockLoss: string | undefined;
  /** The first error the watched control session reported (see watchLock). */
  private controlError: string | undefined;
  /** Stops watching the control session (see watchLock), before belay closes it itself. */
  private unwatchLock: (() => void) | undefined;
  /** Why belay gave up its own connections (a signal's cancel unanswered): not a lock another run took. */
  private gaveUp: string | undefined;

  private constructor(
    readonly runId: string,
    readonly setup: RunSetup,
    readonly command: string,
    private controlSession: Session | undefined,
    private workSession: Session | undefined,
  ) {}

  /** Holds the advisory lock and writes the journal. */
  get control(): Session {
    if (!this.controlSession) throw new Error('the run has no connection to the database right now');
    return this.controlSession;
  }

  /** Runs the revisions, checks and fingerprints. */
  get work(): Session {
    if (!this.workSession) throw new Error('the run has no connection to the database right now');
    return this.workSession;
  }

  /** False after a restore could not connect again: nothing more can be written to the database. */
  get connected(): boolean {
    return this.controlSession !== undefined;
  }

  get applicationName(): string {
    return `belay ${this.command} ${runSuffix(this.runId)}`;
  }

  static async open(setup: RunSetup, command: string): Promise<RunSession> {
    const session = new RunSession(newRunId(), setup, command, undefined, undefined);
    setup.events.on(session.ledger.listener);
    await session.connect();
    return session;
  }

  /** Both connections at once; when one fails, the other is closed and the control's error wins. */
  private async connect(): Promise<void> {
    [this.controlSession, this.workSession] = await openBoth(openTargetSession(this.setup, this.applicationName), this.openWork());
  }

  private openWork(): Promise<Session> {
    return openSession(this.setup.target, { ...sessionOptions(this.setup, `${this.applicationName} work`), keepDateStyle: true });
  }

  /** Close both connections (releasing the lock), e.g. so a restore can rename the database. */
  async disconnect(): Promise<void> {
    this.unwatchLock?.();
    this.unwatchLock = undefined;
    this.journal?.database.detach();
    await this.workSession?.close();
    await this.controlSession?.close();
    this.workSession = undefined;
    this.controlSession = undefined;
  }

  /** Connect again (to the database now under the target's name), retake the lock and rewrite the journal into it. */
  async reconnect(): Promise<void> {
    await this.disconnect();
    await this.connect();
    await this.takeLock();
    await this.attachDatabaseJournal();
  }

  /**
   * The work connection, when the server ended it under the run (its backend
   * terminated) while the control connection, and with it the run's lock,
   * still answers: opened again, trying until the connect timeout has passed.
   * Answers what was lost, in words; undefined when both connections answer,
   * or when the control connection was lost too (a restart) before its end
   * was seen: the lock went with it (lockLost), and another run may hold it
   * now. Throws when the server does not answer in time.
   */
  async replaceLostConnections(): Promise<string | undefined> {
    // connections belay gave up itself: nothing to open again on a path that did not answer
    if (this.gaveUp !== undefined) throw new Error(this.gaveUp);
    if (this.lockLoss === undefined) {
      const controlLoss = await lost(this.controlSession);
      // the first error the control session reported, as its end would word it
      if (controlLoss !== undefined && this.lockLoss === undefined) this.loseLock(this.controlError ?? controlLoss);
    }
    if (this.lockLoss !== undefined || (await lost(this.workSession)) === undefined) return undefined;
    const deadline = performance.now() + this.setup.config.database.connectTimeoutSeconds * 1000;
    for (;;) {
      try {
        await this.workSession?.close();
        this.workSession = undefined;
        this.workSession = await this.openWork();
        return 'the work connection was lost: a new one carried on';
      } catch (error) {
        if ((!isConnectFailure(error) && !isConnectionLost(error)) || performance.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_PAUSE_MS));
      }
    }
  }

  /**
   * Exit 3 at once when another run holds the lock; exit 4 when the database
   * cannot be written (a hot standby, read-only for the role) or an earlier
   * run was interrupted and not yet settled (unless this is `recover`).
   */
  async lock(): Promise<void> {
    this.lockStarted = performance.now();
    await this.takeLock();
    await assertWritable(this.control.client, this.setup.target.database);
    // recover settles an interrupted run; so does a restore, once the snapshot it puts back is verified
    if (this.command !== 'recover' && this.command !== 'restore') await refuseWhileUnfinished(this.control.client, this.runId, this.setup.config.backupsDir);
    // a forward run stops at a signal wherever it is; a rollback only before its downs or restore, which run to the end
    if (this.command === 'migrate-up' || this.command === 'rollback') this.cancelWorkOnAbort();
  }

  /** The run's lock on the control session, watched from then on (watchLock). */
  private async takeLock(): Promise<void> {
    await acquireRunLock(this.control.client, this.setup.config.backupsDir);
    this.watchLock();
  }

  /**
   * The advisory lock lives as long as the control session: when that ends
   * under the run (pg_terminate_backend, a connection lost), another run can
   * take the lock at once. The statement the work connection runs is
   * cancelled, from a connection of its own (the control one is gone), and
   * nothing more commits (assertLocked).
   */
  private watchLock(): void {
    const { client } = this.control;
    this.controlError = undefined;
    const onError = (error: Error): void => {
      this.controlError ??= lossCause(error);
    };
    const onEnd = (): void => this.loseLock(this.controlError ?? 'connection lost');
    client.on('error', onError);
    client.once('end', onEnd);
    this.unwatchLock = () => {
      client.off('error', onError);
      client.off('end', onEnd);
    };
  }

  private loseLock(cause: string): void {
    this.unwatchLock?.();
    this.unwatchLock = undefined;
    this.lockLoss = `the session holding the run's lock ended (${cause})`;
    // nothing more is written on the dead connection: the run's row stays "running" for `belay recover`
    this.journal?.database.detach();
    const work = this.workSession;
    if (!work) return;
    const reason = `${this.lockLoss}: the work connection was given up`;
    this.cancelling = openSibling(work.client, 'cancel')
      .then(async (sibling) => {
        if (!sibling) return;
        try {
          await sibling.client.query('SELECT pg_cancel_backend($1)', [work.backendPid]);
        } finally {
          await sibling.close();
        }
      })
      // a server that cannot be reached to cancel: the statement fails here at once, and there once it notices
      .catch(() => work.sever(reason));
  }

  /** Why the run lost its lock, once it has. */
  get lockLost(): string | undefined {
    return this.lockLoss;
  }

  /** Throws once the run has lost its lock: asked before each commit. */
  assertLocked(): void {
    if (this.lockLoss) throw new Error(`${this.lockLoss}: nothing more is committed`);
  }

  /** From here a signal no longer cancels what the work connection runs: a rollback's downs and restore go on to their end. */
  keepWorkOnAbort(): void {
    this.stopCancelling?.();
  }

  /**
   * On the first signal, cancel the statement the work connection is running,
   * so the run reaches its safe point. A server that does not answer the
   * cancel within the connect timeout is given up: both connections are
   * ended, so that the run stops waiting on them and ends for `belay recover`.
   */
  private cancelWorkOnAbort(): void {
    const { signal } = this.setup;
    const cancel = (): void => {
      const { workSession: work, controlSession: control } = this;
      if (!work || !control) return;
      const { connectTimeoutSeconds } = this.setup.config.database;
      const giveUp = setTimeout(() => {
        const reason = `the server did not answer belay's cancel request within ${connectTimeoutSeconds} s (database.connectTimeoutSeconds): the connection was given up`;
        // given up by belay, for the reason the run already stops for
        this.gaveUp = reason;
        this.unwatchLock?.();
        work.sever(reason);
        control.sever(reason);
      }, connectTimeoutSeconds * 1000);
      this.cancelling = control.client
        .query('SELECT pg_cancel_backend($1)', [work.backendPid])
        .then(() => {}, () => {})
        .finally(() => clearTimeout(giveUp));
    };
    signal?.addEventListener('abort', cancel, { once: true });
    this.stopCancelling = () => signal?.removeEventListener('abort', cancel);
  }

  /**
   * Once the signal's cancel has reached the server: a statement sent on the
   * work connection before then (the rollback's) could be the one it cancels.
   */
  cancelSettled(): Promise<void> {
    return this.cancelling;
  }

  /** Open the journal file and record the run and its lock step. */
  async startJournal(fromRevision: string | null, toRevision: string | null): Promise<Journal> {
    const header: RunHeader = {
      runId: this.runId,
      command: this.command,
      startedAt: new Date().toISOString(),
      runBy: this.setup.runBy,
      database: this.setup.target.database,
      fromRevision,
      toRevision,
    };
    this.ledger.startAt(fromRevision);
    const journal = await this.openJournal(header);
    this.journal = journal;
    const { events } = this.setup;
    events.on(journal.listener);
    await events.emit({ type: 'run-start', header });
    await events.emit({ type: 'step-start', step: 'lock' });
    await events.emit({
      type: 'step-end',
      step: 'lock',
      outcome: 'ok',
      durationMs: Math.round(performance.now() - this.lockStarted),
      detail: { applicationName: this.applicationName },
    });
    return journal;
  }

  /** The journal lives under the backups folder: a folder belay cannot write there refuses the run before anything changes. */
  private async openJournal(header: RunHeader): Promise<Journal> {
    const dir = this.setup.config.backupsDir;
    try {
      return await Journal.open(dir, header, this.setup.secrets);
    } catch (error) {
      // its first line could not be written (a full disk): told by its cause
      if (error instanceof BelayError) throw error;
      throw preflightError(`cannot write the run's journal under the backups folder ${dir}: ${errorMessage(error)}`, {
        hint: `Make ${dir} a folder this user can write (it holds the journal and the snapshots), or choose another with --backups DIR. Nothing was changed.`,
      });
    }
  }

  /** From here the run changes the database: create belay's schema and journal into it too. */
  async attachDatabaseJournal(): Promise<void> {
    // a run whose journal file cannot be written (a full disk) changes nothing
    const lost = this.journal?.databaseAttached ? undefined : this.journal?.fileFailure;
    if (lost) throw lost;
    const client = this.control.client;
    try {
      await ensureBelaySchema(client);
    } catch (error) {
      if (sqlstateOf(error) !== SQLSTATE.insufficientPrivilege) throw error;
      const { rows } = await client.query<{ role: string; owner: string | null }>(
        "SELECT current_user AS role, (SELECT pg_catalog.pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace WHERE nspname = 'belay') AS owner",
      );
      const role = rows[0]?.role ?? 'the role';
      const owner = rows[0]?.owner ?? null;
      const database = this.setup.target.database;
      // the schema is there (someone made it for this role, or for another): it is its tables the role may not make
      throw owner !== null
        ? preflightError(`${role} may not create belay's bookkeeping tables in schema "belay" of ${database} (owned by ${owner}): ${errorMessage(error)}`, {
            hint: `As ${quoteIdent(owner)} or a superuser: ALTER SCHEMA belay OWNER TO ${quoteIdent(role)}; (or GRANT USAGE, CREATE ON SCHEMA belay TO ${quoteIdent(role)};). Nothing was changed.`,
          })
        : preflightError(`${role} may not create belay's bookkeeping schema "belay" in ${database}: ${errorMessage(error)}`, {
            hint: `As the database owner or a superuser: GRANT CREATE ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(role)}; (or create the schema once: CREATE SCHEMA belay AUTHORIZATION ${quoteIdent(role)};). Nothing was changed.`,
          });
    }
    await assertBelayWritable(client);
    await this.journal?.attachDatabase(client);
  }

  async close(): Promise<void> {
    await this.cancelling;
    await this.journal?.close().catch(() => {});
    // ending the control session releases the advisory lock
    await this.disconnect();
  }
}
