import { rm } from 'node:fs/promises';
import type { ClientBase } from 'pg';
import type { BelayError } from '../errors.js';
import type { RunEvent } from '../events/run-events.js';
import { scrub } from '../db/secret-forms.js';
import { DatabaseJournal } from './db-journal.js';
import { FileJournal } from './file-journal.js';
import type { JournalRecord, RunHeader } from './record.js';

/**
 * The lines of a revision's apply or down step (start, notes, end): not each
 * fdatasynced, and their rows written in batches. What recover needs of them is in belay.migrations, committed
 * with the revision, except the start of a revision that runs outside a
 * transaction, which the engine makes durable (sync) before it runs; see
 * docs/performance.md, "One durable point per revision".
 */
const perRevision = (record: JournalRecord): boolean => (record.step === 'apply' || record.step === 'down') && record.revision !== undefined;

/** Listens to a run's events and records each step, in the file first, then the database. */
export class Journal {
  private seq = 0;
  /** The run's outcome is written (or the file closed): nothing more is recorded. */
  private ended = false;
  readonly database = new DatabaseJournal();

  private constructor(
    private readonly file: FileJournal,
    readonly header: RunHeader,
    private readonly secrets: string[],
  ) {
    this.database.setHeader(header);
  }

  static async open(backupsDir: string, header: RunHeader, secrets: string[]): Promise<Journal> {
    const file = await FileJournal.open(backupsDir, header.runId);
    await file.append({ type: 'run', ...header });
    if (file.failure) {
      // the file is this run's, new and without a line: nothing is left behind
      await file.close().catch(() => {});
      await rm(file.path, { force: true }).catch(() => {});
      throw file.failure;
    }
    return new Journal(file, header, secrets);
  }

  /** Detail comes from errors and command output: make sure no secret rides along, as the terminal does. Taken as the file holds it (JSON). */
  private scrub(detail: Record<string, unknown>): Record<string, unknown> {
    return scrub(JSON.parse(JSON.stringify(detail)) as Record<string, unknown>, this.secrets);
  }

  get path(): string {
    return this.file.path;
  }

  /** The journal file could no longer be written (a full disk): why. The database's copy goes on. */
  get fileFailure(): BelayError | undefined {
    return this.file.failure;
  }

  attachDatabase(client: ClientBase): Promise<void> {
    return this.database.attach(client);
  }

  readonly listener = async (event: RunEvent): Promise<void> => {
    if (event.type === 'progress' || event.type === 'run-start') return;
    if (event.type === 'run-end') {
      // before the write, which happens in this same turn: a line noted now would follow the outcome
      this.ended = true;
      const outcome = { ...event.outcome, summary: this.scrub(event.outcome.summary) };
      await this.file.append({ type: 'outcome', runId: this.header.runId, ...outcome });
      await this.database.finish(outcome);
      return;
    }
    const record: JournalRecord = {
      runId: this.header.runId,
      seq: ++this.seq,
      at: new Date().toISOString(),
      step: event.step,
      event: event.type === 'step-start' ? 'start' : event.type === 'step-end' ? 'end' : 'note',
    };
    if (event.revision) record.revision = event.revision;
    if (event.subject) record.subject = event.subject;
    if (event.type === 'step-end') {
      record.outcome = event.outcome;
      record.durationMs = event.durationMs;
    }
    const detail: object | undefined = event.type === 'note' ? { message: event.message, ...event.detail } : event.detail;
    if (detail) record.detail = this.scrub({ ...detail });
    const batched = perRevision(record);
    await this.file.append({ type: 'step', ...record }, { sync: !batched });
    this.database.record(record, { batched });
  };

  /**
   * Record a note at once, durably, in the file only (the database's copy
   * cannot be written without waiting): for a run abandoned by a process
   * about to exit. False when the run has recorded its outcome already, or
   * the line could not be written.
   */
  noteNow(step: JournalRecord['step'], message: string, detail: Record<string, unknown>): boolean {
    if (this.ended) return false;
    const record: JournalRecord = { runId: this.header.runId, seq: ++this.seq, at: new Date().toISOString(), step, event: 'note', detail: this.scrub({ message, ...detail }) };
    try {
      this.file.appendNow({ type: 'step', ...record });
      return true;
    } catch {
      return false;
    }
  }

  /** Whether the run's outcome has been recorded. */
  get hasEnded(): boolean {
    return this.ended;
  }

  /**
   * Make every line so far durable, and write the queued rows: the engine
   * calls it before a revision that runs outside a transaction, whose start
   * recover must find, in the file or (from another machine) the database.
   */
  async sync(): Promise<void> {
    await this.file.sync();
    await this.database.flush();
  }

  /** Whether the run has begun writing its journal into the database (it changes the database from then on). */
  get databaseAttached(): boolean {
    return this.database.attachedOnce;
  }

  /**
   * Whether the database copy has every record so far and still answers.
   * False when it is attached and the server is gone: the run's row stays
   * "running" there, and only `belay recover` can settle it.
   */
  async databaseUpToDate(): Promise<boolean> {
    return this.database.reachable();
  }

  async close(): Promise<void> {
    this.ended = true;
    await this.file.close();
  }
}
