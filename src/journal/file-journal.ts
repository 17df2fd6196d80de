import { mkdir, open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { JournalRecord } from './record.js';

export const journalDir = (backupsDir: string): string => join(backupsDir, 'journal');
export const journalFile = (backupsDir: string, runId: string): string => join(journalDir(backupsDir), `${runId}.jsonl`);

/**
 * The durable journal: one JSON line per record, appended and fsynced before
 * the run moves on. It lives beside the backups so that it survives a restore
 * of the database.
 */
export class FileJournal {
  private constructor(private readonly handle: FileHandle, readonly path: string) {}

  static async open(backupsDir: string, runId: string): Promise<FileJournal> {
    await mkdir(journalDir(backupsDir), { recursive: true, mode: 0o700 });
    const path = journalFile(backupsDir, runId);
    const handle = await open(path, 'a', 0o600);
    await handle.chmod(0o600);
    return new FileJournal(handle, path);
  }

  async append(line: object): Promise<void> {
    await this.handle.appendFile(`${JSON.stringify(line)}\n`);
    await this.handle.datasync();
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
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
