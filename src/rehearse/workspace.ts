import type { ConnectionParams } from '../db/connection.js';
import { ensureBelaySchema } from '../db/belay-schema.js';
import { openBoth, type Session } from '../db/session.js';
import { newRunId } from '../journal/run-id.js';
import { MigrationEngine } from '../migrations/engine.js';
import type { Revision } from '../migrations/revision.js';
import type { Throwaway } from './throwaway.js';

export type OpenSession = (params: ConnectionParams, applicationName: string) => Promise<Session>;

/**
 * The database a rehearsal runs on, its two sessions (the revisions' and the
 * lock observer's), and a way back to a clean state: a copy kept of the
 * start (after build and data), or made again when there was none,
 * brought forward by the ups only when asked, and copied again to replace
 * a database that a bad down left dirty.
 */
export class Workspace {
  private sessions: { work: Session; observer: Session } | undefined;
  /** Where rebuilds start from: a kept copy, or (`fresh`) a database made again as the first was, plus belay's schema. */
  private base: { params: ConnectionParams; at: number } | 'fresh' | undefined;

  constructor(
    private readonly throwaway: Throwaway,
    public params: ConnectionParams,
    private readonly open: OpenSession,
  ) {}

  get work(): Session {
    if (!this.sessions) throw new Error('the rehearsal has no session open');
    return this.sessions.work;
  }

  get observer(): Session {
    if (!this.sessions) throw new Error('the rehearsal has no session open');
    return this.sessions.observer;
  }

  /** Both sessions, opened at once; neither is left open when the other cannot be. */
  async connect(): Promise<void> {
    const [work, observer] = await openBoth(this.open(this.params, 'belay rehearse'), this.open(this.params, 'belay rehearse locks'));
    this.sessions = { work, observer };
  }

  async close(): Promise<void> {
    await this.sessions?.work.close();
    await this.sessions?.observer.close();
    this.sessions = undefined;
  }

  /** Keep a copy of the state now, the start of the cycle: what every later rebuild starts from. */
  async keepStart(): Promise<void> {
    await this.close();
    this.base = { params: await this.throwaway.copyDatabase(this.params.database), at: -1 };
    await this.connect();
  }

  /**
   * The cycle starts from the database as it was made plus belay's schema
   * (nothing built, no data): nothing to keep, a rebuild makes that start
   * again, and only when one is needed.
   */
  startsFresh(): void {
    this.base = 'fresh';
  }

  private async makeStartAgain(): Promise<{ params: ConnectionParams; at: number }> {
    const params = await this.throwaway.freshDatabase();
    const session = await this.open(params, 'belay rehearse rebuild');
    try {
      await ensureBelaySchema(session.client);
    } finally {
      await session.close();
    }
    return { params, at: -1 };
  }

  /**
   * Replace the database with the state right after `pending[index]`'s up,
   * as `migrate up` would leave it: the kept copy takes the ups it lacks
   * (each up runs there once in the whole rehearsal), then is copied again.
   */
  async rebuildAfter(pending: readonly Revision[], index: number): Promise<void> {
    if (this.base === 'fresh') this.base = await this.makeStartAgain();
    const base = this.base;
    if (!base) throw new Error('no start kept to rebuild from');
    if (base.at < index) {
      const session = await this.open(base.params, 'belay rehearse rebuild');
      try {
        const engine = new MigrationEngine(pending, session.client, newRunId(), { log: () => {} });
        for (let k = base.at + 1; k <= index; k++) {
          await engine.up(pending[k]!.name);
          base.at = k;
        }
      } finally {
        await session.close();
      }
    }
    await this.close();
    const dirty = this.params.database;
    this.params = await this.throwaway.copyDatabase(base.params.database);
    await this.throwaway.dropDatabase(dirty);
    await this.connect();
  }
}
