import type { ClientBase } from 'pg';
import type { JournalRecord, RunHeader, RunOutcome } from './record.js';
import { insertRunHeader, insertSteps, writeRunOutcome } from './run-store.js';

/** A revision's rows wait for at most this many to go in one statement, */
const BATCH_ROWS = 64;
/** or for this long: a revision that runs longer is named in belay.runs.last_step (status, a locked-out run) while it runs. */
const BATCH_WAIT_MS = 200;

/**
 * The journal's copy in belay.runs / belay.steps. Written on the control
 * connection (never inside a revision's transaction). When the database is
 * unreachable, records wait here and are written by `flush`, e.g. into the
 * database a restore put in place.
 */
export class DatabaseJournal {
  private client: ClientBase | undefined;
  private header: RunHeader | undefined;
  private headerWritten = false;
  /** Every record of the run; `written` of them are in the attached database. */
  private readonly records: JournalRecord[] = [];
  private written = 0;
  private lastStep: string | undefined;
  private lastStepWritten: string | undefined;
  private outcome: RunOutcome | undefined;
  /** Attached once: from then on the database must hold the run's journal. */
  private wanted = false;
  /** The writes queued so far, one after another: a step's row is not waited for. */
  private queue: Promise<boolean> = Promise.resolve(true);
  /** Flushes the batched rows once the oldest has waited BATCH_WAIT_MS. */
  private batchTimer: NodeJS.Timeout | undefined;

  setHeader(header: RunHeader): void {
    this.header = header;
  }

  /** Start writing to this connection (again, e.g. into a restored copy): writes the whole run so far. */
  async attach(client: ClientBase): Promise<void> {
    await this.queue;
    this.client = client;
    this.wanted = true;
    this.headerWritten = false;
    this.written = 0;
    this.lastStepWritten = undefined;
    // Journal rows need not wait for their own WAL flush: they copy the file
    // journal, which recover reads first, and a later synchronous commit
    // flushes them. The run's row and its outcome are committed synchronously.
    await client.query('SET synchronous_commit = off').catch(() => {});
    await this.flush();
  }

  get attachedOnce(): boolean {
    return this.wanted;
  }

  detach(): void {
    this.client = undefined;
  }

  /**
   * Queue a step's row: it is a copy of the file journal's line, written
   * beside the run on the control connection instead of before it goes on.
   * A `batched` row (a revision's) waits for the next row that is not, a
   * flush, a full batch or BATCH_WAIT_MS, and goes with them in one statement. The outcome
   * (finish) and reachable() wait for every queued row.
   */
  record(record: JournalRecord, { batched = false }: { batched?: boolean } = {}): void {
    this.records.push(record);
    if (record.event === 'start') this.lastStep = [record.step, record.revision ?? record.subject].filter(Boolean).join(' ');
    if (!batched || this.records.length - this.written >= BATCH_ROWS) void this.flush();
    else this.batchTimer ??= setTimeout(() => void this.flush(), BATCH_WAIT_MS).unref();
  }

  async finish(outcome: RunOutcome): Promise<void> {
    this.outcome = outcome;
    await this.flush();
  }

  /** True when never attached, else whether all is written and the server answers. */
  async reachable(): Promise<boolean> {
    const client = this.client;
    if (!this.wanted) return true;
    if (!client) return false;
    if (!(await this.flush())) return false;
    return client.query('SELECT 1').then(
      () => true,
      () => false,
    );
  }

  /** Write everything not yet written, after the writes already queued; a failure leaves it pending and is not an error of the run. */
  flush(): Promise<boolean> {
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    this.queue = this.queue.then(() => this.write());
    return this.queue;
  }

  private async write(): Promise<boolean> {
    const client = this.client;
    const header = this.header;
    if (!client || !header) return false;
    try {
      if (!this.headerWritten) {
        // the mark that a run is in flight (status and a new run's refusal read it) is on disk before the run goes on:
        // with its commit asynchronous, a crash before the next synchronous commit anywhere could lose it
        await client.query('SET synchronous_commit = on');
        await insertRunHeader(client, header);
        await client.query('SET synchronous_commit = off');
        this.headerWritten = true;
      }
      while (this.written < this.records.length) {
        const batch = this.records.slice(this.written);
        // with the newest record, the run's last step too
        const newLastStep = this.lastStep !== this.lastStepWritten ? this.lastStep : undefined;
        await insertSteps(client, batch, newLastStep);
        if (newLastStep !== undefined) this.lastStepWritten = newLastStep;
        this.written += batch.length;
      }
      if (this.outcome) {
        await client.query('SET synchronous_commit = on');
        await writeRunOutcome(client, header.runId, this.outcome);
      }
      return true;
    } catch {
      return false;
    }
  }
}
