import type { ClientBase } from 'pg';
import { MigrationError, Umzug } from 'umzug';
import type { Revision } from './revision.js';
import { failureFromError, RevisionFailedError } from './revision-error.js';
import { prepareStep, prepareVerify, type Direction } from './run-revision.js';
import { TableStorage, type EngineContext } from './storage.js';

export interface EngineListener {
  /** A message a module revision logs through ctx.log. */
  log(revision: Revision, message: string): void;
}

/**
 * umzug drives the order and the bookkeeping; each revision runs in its own
 * transaction (unless its file says no-transaction) that also holds its
 * belay.migrations record, with its verify inside that transaction.
 */
export class MigrationEngine {
  private readonly umzug: Umzug<EngineContext>;
  private readonly context: EngineContext;
  private readonly byName: Map<string, Revision>;

  constructor(
    revisions: readonly Revision[],
    client: ClientBase,
    runId: string,
    listener: EngineListener,
    beforeCommit?: (client: ClientBase) => Promise<void>,
  ) {
    this.byName = new Map(revisions.map((revision) => [revision.name, revision]));
    this.context = { client, runId, inTransaction: false, startedAt: 0, beforeCommit };
    this.umzug = new Umzug<EngineContext>({
      context: this.context,
      storage: new TableStorage(this.byName),
      logger: undefined,
      migrations: revisions.map((revision) => ({
        name: revision.name,
        path: revision.files.up,
        up: () => this.runRevision(revision, 'up', listener),
        down: () => this.runRevision(revision, 'down', listener),
      })),
    });
  }

  private async runRevision(revision: Revision, direction: Direction, listener: EngineListener): Promise<void> {
    const { client } = this.context;
    const step = await prepareStep(revision, direction);
    const verify = direction === 'up' ? await prepareVerify(revision) : undefined;
    this.context.startedAt = Date.now();
    const log = (message: string): void => listener.log(revision, message);
    if (step.transactional) {
      await client.query('BEGIN');
      this.context.inTransaction = true;
    }
    await step.run(client, log);
    if (verify) await verify.run(client, log);
  }

  /** Apply one pending revision; throws RevisionFailedError with its transaction rolled back. */
  async up(name: string): Promise<void> {
    await this.guard(name, 'up', () => this.umzug.up({ migrations: [name] }));
  }

  /** Revert one applied revision. */
  async down(name: string): Promise<void> {
    await this.guard(name, 'down', () => this.umzug.down({ migrations: [name] }));
  }

  async executed(): Promise<string[]> {
    return (await this.umzug.executed()).map((m) => m.name);
  }

  private async guard(name: string, direction: Direction, work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (error) {
      const transactional = this.context.inTransaction;
      if (this.context.inTransaction) {
        this.context.inTransaction = false;
        await this.context.client.query('ROLLBACK').catch(() => {});
      }
      const cause = error instanceof MigrationError ? error.cause : error;
      if (cause instanceof RevisionFailedError) throw cause;
      const revision = this.byName.get(name);
      throw new RevisionFailedError(
        failureFromError(cause, {
          revision: name,
          direction,
          file: revision ? revision.files.up.split('/').pop()! : name,
          transactional,
        }),
        { cause },
      );
    }
  }
}
