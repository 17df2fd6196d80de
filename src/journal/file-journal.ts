import { appendFileSync, fdatasyncSync } from 'node:fs';
import { open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EXIT, preflightError, type BelayError } from '../errors.js';
import { errnoCode, writeFix, writeProblem } from '../unreadable.js';
import type { JournalRecord, RunHeader, RunOutcome } from './record.js';
import { makeDir } from '../make-dir.js';

export const journalDir = (backupsDir: string): string => join(backupsDir, 'journal');
export const journalFile = (backupsDir: string, runId: string): string => join(journalDir(backupsDir), `${runId}.jsonl`);

/**
 * How long a line that need not be synced at once waits for the lines after
 * it: one fdatasync then makes them all durable (a revision writes two, and
 * each fdatasync is a trip through the thread pool), where one per line cost
 * as many as the lines.
 */
const BACKGROUND_SYNC_DELAY_MS = 20;

/**
 * The durable journal: one JSON line per record, written before the run moves
 * on. A line that `belay recover` needs before the run goes on is appended
 * with `sync` and fdatasynced before append returns; any other line is written
 * (a SIGKILL cannot lose it) and made durable by a fdatasync started in the
 * background at most BACKGROUND_SYNC_DELAY_MS later, or by the next synced
 * line or close if sooner. It lives beside the backups so that it survives a
 * restore of the database.
 */
export class FileJournal {
  /** The background fdatasync in flight, if any. */
  private syncing: Promise<void> | undefined;
  /** The background fdatasync to come, if any. */
  private waiting: NodeJS.Timeout | undefined;
  /** Lines were written since the last fdatasync started. */
  private dirty = false;
  /**
   * The first write or fdatasync that failed (a full disk, an I/O error):
   * nothing more is written to the file, and the run stops at its next safe
   * point (src/runner/session/run-session.ts); the database's copy goes on.
   */
  private writeFailure: BelayError | undefined;

  private constructor(private readonly handle: FileHandle, readonly path: string) {}

  static async open(backupsDir: string, runId: string): Promise<FileJournal> {
    await makeDir(journalDir(backupsDir), 0o700);
    const path = journalFile(backupsDir, runId);
    const handle = await open(path, 'a', 0o600);
    await handle.chmod(0o600);
    return new FileJournal(handle, path);
  }

  /** Why the file stopped being written, once it did. */
  get failure(): BelayError | undefined {
    return this.writeFailure;
  }

  private failed(error: unknown): void {
    this.writeFailure ??= journalWriteError(this.path, error);
  }

  async append(line: object, { sync = true }: { sync?: boolean } = {}): Promise<void> {
    if (this.writeFailure) return;
    try {
      // written before this returns, on this thread: a few microseconds into the page cache, where a write
      // through the thread pool costs a turn of the event loop (two per revision)
      appendFileSync(this.handle.fd, `${JSON.stringify(line)}\n`);
    } catch (error) {
      return this.failed(error);
    }
    this.dirty = true;
    if (sync) await this.sync();
    else this.syncSoon();
  }

  /** Append a line and make the file durable before returning, without a turn of the event loop: for a process about to exit. */
  appendNow(line: object): void {
    if (this.writeFailure) throw this.writeFailure;
    appendFileSync(this.handle.fd, `${JSON.stringify(line)}\n`);
    fdatasyncSync(this.handle.fd);
    clearTimeout(this.waiting);
    this.waiting = undefined;
    this.dirty = false;
  }

  /** Every line written so far is on disk when this returns (unless writing failed: see `failure`). */
  async sync(): Promise<void> {
    clearTimeout(this.waiting);
    this.waiting = undefined;
    await this.syncing;
    if (this.writeFailure || !this.dirty) return;
    this.dirty = false;
    try {
      await this.handle.datasync();
    } catch (error) {
      this.failed(error);
    }
  }

  private syncSoon(): void {
    this.waiting ??= setTimeout(() => {
      this.waiting = undefined;
      if (this.dirty) this.syncing ??= this.syncInBackground();
    }, BACKGROUND_SYNC_DELAY_MS);
  }

  private async syncInBackground(): Promise<void> {
    try {
      this.dirty = false;
      await this.handle.datasync();
    } catch (error) {
      this.failed(error);
    } finally {
      this.syncing = undefined;
    }
    // lines written while it ran: the next one
    if (this.dirty && !this.writeFailure) this.syncSoon();
  }

  async close(): Promise<void> {
    try {
      await this.sync();
    } finally {
      await this.handle.close();
    }
  }
}

/** A journal line that could not be written or made durable, told by its cause. */
function journalWriteError(path: string, error: unknown): BelayError {
  const code = errnoCode(error);
  return preflightError(`the run's journal file ${path} could not be written (${writeProblem(error)})`, {
    hint: `${writeFix(dirname(path), error)} (or give belay another folder with --backups DIR), then run again.`,
    // not `journalFile`, which names the run's journal in a report: a file that failed at its first line is removed
    details: { failedFile: path, ...(code ? { errno: code } : {}) },
    cause: error,
  });
}

export type JournalLine = ({ type: 'step' } & JournalRecord) | ({ type: 'run' } & Record<string, unknown>) | ({ type: 'outcome' } & Record<string, unknown>);

export async function readJournalFile(path: string): Promise<JournalLine[]> {
  const text = await readFile(path, 'utf8');
  const lines: JournalLine[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    try {
      lines.push(JSON.parse(raw) as JournalLine);
    } catch {
      // a line torn by a crash mid-write: everything before it is intact
    }
  }
  return lines;
}

export async function listJournalFiles(backupsDir: string): Promise<string[]> {
  try {
    return (await readdir(journalDir(backupsDir)))
      .filter((name) => name.endsWith('.jsonl'))
      .sort()
      .map((name) => join(journalDir(backupsDir), name));
  } catch {
    return [];
  }
}

/**
 * The outcome a run's journal file holds, when it leaves nothing for `belay
 * recover` to do: the file is the authority on how a run ended, its row in
 * belay.runs can lag it (a server stopped before the outcome reached it). Not
 * a 12: a run that lost its server ends so, for recover to settle.
 */
export function settledOutcome(lines: JournalLine[]): RunOutcome | undefined {
  const outcome = lines.find((line) => line.type === 'outcome') as ({ type: 'outcome' } & RunOutcome) | undefined;
  return outcome && outcome.exitCode !== EXIT.manual ? outcome : undefined;
}

/** The journals of `database`'s runs, oldest first. */
export async function journalsOf(backupsDir: string, database: string): Promise<Array<{ header: RunHeader; lines: JournalLine[] }>> {
  const found: Array<{ header: RunHeader; lines: JournalLine[] }> = [];
  for (const file of await listJournalFiles(backupsDir)) {
    const lines = await readJournalFile(file).catch((): JournalLine[] => []);
    const header = lines.find((line) => line.type === 'run') as ({ type: 'run' } & RunHeader) | undefined;
    if (header?.database === database) found.push({ header, lines });
  }
  return found;
}

/** The journals of `database`'s runs whose file has no outcome (running, or stopped before it), oldest first. */
export async function unfinishedJournals(backupsDir: string, database: string): Promise<Array<{ header: RunHeader; lines: JournalLine[] }>> {
  return (await journalsOf(backupsDir, database)).filter(({ lines }) => !lines.some((line) => line.type === 'outcome'));
}
