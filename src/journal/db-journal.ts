import type { ClientBase } from 'pg';
import type { JournalRecord, RunHeader, RunOutcome } from './record.js';

const INSERT_STEP = `INSERT INTO belay.steps (run_id, seq, at, step, event, revision, subject, outcome, duration_ms, detail)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (run_id, seq) DO NOTHING`;

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

  setHeader(header: RunHeader): void {
    this.header = header;
  }

  /** Start writing to this connection (again, e.g. into a restored copy): writes the whole run so far. */
  async attach(client: ClientBase): Promise<void> {
    this.client = client;
    this.headerWritten = false;
    this.written = 0;
    this.lastStepWritten = undefined;
    // Journal rows need not wait for their own WAL flush: the file journal is
    // fsynced already, and the next revision's (synchronous) commit flushes the
    // WAL they precede. The outcome, written last, is committed synchronously.
    await client.query('SET synchronous_commit = off').catch(() => {});
    await this.flush();
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

  /** Write everything not yet written; a failure leaves it pending and is not an error of the run. */
  async flush(): Promise<boolean> {
    const client = this.client;
    const header = this.header;
    if (!client || !header) return false;
    try {
      if (!this.headerWritten) {
        await client.query(
          `INSERT INTO belay.runs (id, command, status, started_at, from_revision, to_revision, run_by)
           VALUES ($1, $2, 'running', $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
          [header.runId, header.command, header.startedAt, header.fromRevision, header.toRevision, header.runBy],
        );
        this.headerWritten = true;
      }
      while (this.written < this.records.length) {
        const r = this.records[this.written]!;
        const values = [r.runId, r.seq, r.at, r.step, r.event, r.revision ?? null, r.subject ?? null, r.outcome ?? null, r.durationMs ?? null, r.detail ?? null];
        // with the newest record, the run's last step too, in the same statement
        const newLastStep = this.written === this.records.length - 1 && this.lastStep !== this.lastStepWritten ? this.lastStep : undefined;
        await client.query(newLastStep === undefined ? INSERT_STEP : `WITH step AS (${INSERT_STEP}) UPDATE belay.runs SET last_step = $11 WHERE id = $1`, [
          ...values,
          ...(newLastStep === undefined ? [] : [newLastStep]),
        ]);
        if (newLastStep !== undefined) this.lastStepWritten = newLastStep;
        this.written++;
      }
      if (this.outcome) {
        const o = this.outcome;
        await client.query('SET synchronous_commit = on');
        await client.query(
          `UPDATE belay.runs SET status = $2, exit_code = $3, finished_at = $4, snapshot_id = $5,
                  to_revision = coalesce($6, to_revision), summary = $7 WHERE id = $1`,
          [header.runId, o.status, o.exitCode, o.finishedAt, o.snapshotId, o.toRevision, o.summary],
        );
      }
      return true;
    } catch {
      return false;
    }
  }
}
