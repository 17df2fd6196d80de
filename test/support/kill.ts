import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Poll `probe` until it says yes; bounded by a count, never by a clock. */
export async function pollUntil(probe: () => Promise<boolean>, what: string, tries = 5000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never saw: ${what}`);
}

/** The journal lines of the one run that started a journal file in `backupsDir` after `before` was taken. */
export async function freshJournal(backupsDir: string, before: ReadonlySet<string>): Promise<Array<Record<string, unknown>>> {
  const dir = join(backupsDir, 'journal');
  const fresh = (await readdir(dir).catch(() => [] as string[])).filter((f) => !before.has(f));
  if (!fresh[0]) return [];
  const text = await readFile(join(dir, fresh[0]), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** Pids whose parent is `pid`. */
export async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const name of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    if (stat && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) found.push(Number(name));
  }
  return found;
}

export async function processGone(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // a zombie has exited; only its parent's wait is missing
  return stat === '' || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}
