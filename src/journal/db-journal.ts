import type { ClientBase } from 'pg';
import type { JournalRecord, RunHeader, RunOutcome } from './record.js';
import { insertRunHeader, insertStep, writeRunOutcome } from './run-store.js';

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

  setHeader(header: RunHeader): void {
    this.header = header;
  }

  /** Start writing to this connection (again, e.g. into a restored copy): writes the whole run so far. */
  async attach(client: ClientBase): Promise<void> {
    this.client = client;
    this.wanted = true;
    this.headerWritten = false;
    this.written = 0;
    this.lastStepWritten = undefined;
    // Journal rows need not wait for their own WAL flush: the file journal is
    // fsynced already, and the next revision's (synchronous) commit flushes the
    // WAL they precede. The outcome, written last, is committed synchronously.
    await client.query('SET synchronous_commit = off').catch(() => {});
    await this.flush();
  }

  get attachedOnce(): boolean {
    return this.wanted;
  }

  detach(): void {
    this.client = undefined;
  }

  async record(record: JournalRecord): Promise<void> {
    this.records.push(record);
    if (record.event === 'start') this.lastStep = [record.step, record.revision ?? record.subject].filter(Boolean).join(' ');
    await this.flush();
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

  /** Write everything not yet written; a failure leaves it pending and is not an error of the run. */
  async flush(): Promise<boolean> {
    const client = this.client;
    const header = this.header;
    if (!client || !header) return false;
    try {
      if (!this.headerWritten) {
        await insertRunHeader(client, header);
        this.headerWritten = true;
      }
      while (this.written < this.records.length) {
        const r = this.records[this.written]!;
        // with the newest record, the run's last step too
        const newLastStep = this.written === this.records.length - 1 && this.lastStep !== this.lastStepWritten ? this.lastStep : undefined;
        await insertStep(client, r, newLastStep);
        if (newLastStep !== undefined) this.lastStepWritten = newLastStep;
        this.written++;
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
