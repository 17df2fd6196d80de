import { constants } from 'node:fs';
import { lstat, open, readdir, readFile, rm, rmdir, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, ownWorkDir } from '../temp-dirs.js';

interface PgpassTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** Split one passfile line on unescaped colons, unescaping `\:` and `\\`. */
function splitFields(line: string): string[] {
  const fields: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === '\\' && i + 1 < line.length) {
      current += line[++i];
    } else if (ch === ':') {
      fields.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  fields.push(current);
  return fields;
}

const matches = (pattern: string, value: string): boolean => pattern === '*' || pattern === value;

/** The password libpq would take from a .pgpass file, or undefined. */
export async function findPgpassPassword(file: string, target: PgpassTarget): Promise<string | undefined> {
  let text: string;
  try {
    const info = await stat(file);
    // libpq ignores a passfile readable by group or others; so do we.
    if (!info.isFile() || (info.mode & 0o077) !== 0) return undefined;
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  // libpq matches a Unix-socket connection against the host name "localhost".
  const host = target.host.startsWith('/') ? 'localhost' : target.host;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) continue;
    const fields = splitFields(line);
    if (fields.length < 5) continue;
    const [h, p, d, u, ...rest] = fields as [string, string, string, string, ...string[]];
    if (matches(h, host) && matches(p, String(target.port)) && matches(d, target.database) && matches(u, target.user)) {
      return rest.join(':');
    }
  }
  return undefined;
}

export interface PrivatePassfile {
  /** What PGPASSFILE names. */
  path: string;
  /** An open descriptor to hand the child as its fd 3, when the file has no name on disk. */
  fd: number | undefined;
  cleanup: () => Promise<void>;
}

const PASS_DIR_PREFIX = 'belay-pass-';
// Linux: open an unnamed file in a folder (__O_TMPFILE | O_DIRECTORY); it vanishes with its last descriptor
const O_TMPFILE = 0o20000000 | (constants.O_DIRECTORY ?? 0);
const CHILD_FD = '/proc/self/fd/3';

let swept: Promise<void> | undefined;

/**
 * Remove killed runs' passfile folders, once per process: the first passfile
 * waits for it. A run starts it early (it reads the whole temp folder), so
 * that pg_dump's start does not wait for it.
 */
export function sweepStalePassfiles(): Promise<void> {
  swept ??= removeStalePassfiles();
  return swept;
}

async function haveProcFd(): Promise<boolean> {
  return process.platform === 'linux' && (await stat('/proc/self/fd').then(() => true, () => false));
}

async function unnamedFile(content: string): Promise<FileHandle | undefined> {
  try {
    const handle = await open(tmpdir(), O_TMPFILE | constants.O_RDWR, 0o600);
    await handle.writeFile(content);
    return handle;
  } catch {
    return undefined;
  }
}

/**
 * A 0600 passfile that no SIGKILL can leave behind. On Linux it has no name
 * on disk: an O_TMPFILE file (or a named one, opened and unlinked at once),
 * handed to the child as its fd 3 with PGPASSFILE=/proc/self/fd/3; libpq
 * stats that (a regular file, 0600) and reads it. Elsewhere a named file in a
 * private folder, removed after the child, and by the next belay if killed.
 */
export async function privatePassfile(content: string): Promise<PrivatePassfile> {
  await sweepStalePassfiles();
  if (await haveProcFd()) {
    let handle = await unnamedFile(content);
    if (!handle) {
      const dir = await ownWorkDir(PASS_DIR_PREFIX);
      const file = join(dir, 'pgpass');
      await writeFile(file, content, { mode: 0o600 });
      handle = await open(file, 'r');
      await unlink(file);
      await rmdir(dir);
    }
    const opened = handle;
    return { path: CHILD_FD, fd: opened.fd, cleanup: () => opened.close() };
  }
  const dir = await ownWorkDir(PASS_DIR_PREFIX);
  const file = join(dir, 'pgpass');
  await writeFile(file, content, { mode: 0o600 });
  return { path: file, fd: undefined, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Remove the passfile folders that killed belay processes of this user left
 * in the temp folder: `belay-pass-<pid>-*` whose process is gone, and those
 * of older belay versions (`belay-pass-XXXXXX`, no pid).
 */
export async function removeStalePassfiles(): Promise<void> {
  const dir = tmpdir();
  const uid = process.getuid?.();
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.startsWith(PASS_DIR_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = /^belay-pass-(\d+)-[A-Za-z0-9]{6}$/.exec(name)?.[1];
    const legacy = /^belay-pass-[A-Za-z0-9]{6}$/.test(name);
    if (!legacy && (pid === undefined || isAlive(Number(pid)))) continue;
    const path = join(dir, name);
    const info = await lstat(path).catch(() => undefined);
    if (!info?.isDirectory() || (uid !== undefined && info.uid !== uid)) continue;
    // only what belay put there: the passfile, then the folder if that leaves it empty
    await unlink(join(path, 'pgpass')).catch(() => {});
    await rmdir(path).catch(() => {});
  }
}
