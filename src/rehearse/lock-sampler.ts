import type { ClientBase } from 'pg';

/** Lock modes from weakest to strongest. */
const STRENGTH = [
  'AccessShareLock',
  'RowShareLock',
  'RowExclusiveLock',
  'ShareUpdateExclusiveLock',
  'ShareLock',
  'ShareRowExclusiveLock',
  'ExclusiveLock',
  'AccessExclusiveLock',
];

export interface TableLock {
  table: string;
  /** The strongest mode the revision held on the table. */
  mode: string;
  /** How long that mode was seen held (from the first sample to the revision's end). */
  heldMs: number;
}

const locksOf = (pid: string): string => `
  SELECT c.oid::regclass::text AS rel, l.mode
    FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE l.pid = ${pid} AND l.locktype = 'relation' AND l.granted AND c.relkind IN ('r', 'p', 'm')
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'belay')`;
const LOCKS_OF_PID = locksOf('$1');
/** A named statement: the observer's session is never reset, so it is parsed and planned once, not every few milliseconds. */
const SAMPLE = 'belay_rehearse_lock_sample';

/** A lock the revision's own transaction holds, belay's tables included (they tell a transaction of its own). */
export interface OwnLock {
  rel: string;
  schema: string;
  table: string;
  kind: string;
  mode: string;
}

const OWN_LOCKS = `
  SELECT c.oid::regclass::text AS rel, n.nspname AS schema, c.relname AS table, c.relkind AS kind, l.mode
    FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted AND c.relkind IN ('r', 'p', 'm')
     AND n.nspname NOT IN ('pg_catalog', 'information_schema')`;

/**
 * Watches the locks one backend holds while a revision runs: sampled from a
 * second connection every few milliseconds, plus one look from inside the
 * revision's own transaction and one from the second connection just before
 * it commits (locks are held until then, so nothing it took is missed).
 */
export class LockSampler {
  private readonly seen = new Map<string, { mode: string; since: number }>();
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private started = 0;
  private wake: (() => void) | undefined;

  constructor(private readonly observer: ClientBase, private readonly pid: number, private readonly intervalMs = 10) {}

  private record(rows: Array<{ rel: string; mode: string }>, at: number): void {
    for (const { rel, mode } of rows) {
      const previous = this.seen.get(rel);
      if (!previous || STRENGTH.indexOf(mode) > STRENGTH.indexOf(previous.mode)) this.seen.set(rel, { mode, since: at });
    }
  }

  start(): void {
    this.running = true;
    this.started = performance.now();
    this.loop = (async () => {
      while (this.running) {
        try {
          this.record((await this.observer.query<{ rel: string; mode: string }>({ name: SAMPLE, text: LOCKS_OF_PID, values: [this.pid] })).rows, performance.now());
        } catch {
          // a sample lost is a sample lost; the pre-commit look still sees every lock
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.intervalMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    })();
  }

  /**
   * Called on the revision's own connection just before COMMIT; answers every
   * lock it holds. A table it dropped is gone from its own catalogs, so the
   * observer, for which the drop is not committed yet, looks at the same time.
   */
  async lookFromInside(client: ClientBase): Promise<OwnLock[]> {
    const [{ rows }, outside] = await Promise.all([
      client.query<OwnLock>(OWN_LOCKS),
      this.observer.query<{ rel: string; mode: string }>({ name: SAMPLE, text: LOCKS_OF_PID, values: [this.pid] }),
    ]);
    // seen only now: held at most since the revision began
    this.record([...rows.filter((row) => row.schema !== 'belay'), ...outside.rows], this.started);
    return rows;
  }

  async stop(): Promise<TableLock[]> {
    const ended = performance.now();
    this.running = false;
    this.wake?.();
    await this.loop;
    return [...this.seen]
      .map(([table, { mode, since }]) => ({ table, mode, heldMs: Math.max(0, Math.round(ended - Math.max(since, this.started))) }))
      .sort((a, b) => STRENGTH.indexOf(b.mode) - STRENGTH.indexOf(a.mode) || a.table.localeCompare(b.table));
  }
}
