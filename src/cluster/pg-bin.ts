import { execFile } from 'node:child_process';
import { access, readdir } from 'node:fs/promises';
import { constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { usageError } from '../errors.js';

const run = promisify(execFile);

export interface PgBinary {
  path: string;
  /** e.g. 15 */
  major: number;
  /** e.g. "15.18" */
  version: string;
}

export interface PgBinSearch {
  /** The PG_BIN setting, when given: searched first. */
  pgBin?: string | undefined;
  /** PATH, for the last resort. */
  path?: string | undefined;
}

export async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** These tools run with PATH alone: no DATABASE_URL, no password. */
const toolEnv = (path: string | undefined): NodeJS.ProcessEnv => (path ? { PATH: path } : {});

async function pgConfigBindir(path: string | undefined): Promise<string | undefined> {
  try {
    const { stdout } = await run('pg_config', ['--bindir'], { timeout: 5000, env: toolEnv(path) });
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Debian's and RHEL's versioned install dirs, newest first. */
async function versionedInstallDirs(): Promise<string[]> {
  const dirs: string[] = [];
  for (const [root, pattern, suffix] of [
    ['/usr/lib/postgresql', /^\d+$/, 'bin'],
    ['/usr', /^pgsql-\d+$/, 'bin'],
    ['/opt/homebrew/opt', /^postgresql@\d+$/, 'bin'],
    ['/usr/local/opt', /^postgresql@\d+$/, 'bin'],
  ] as const) {
    try {
      const names = (await readdir(root)).filter((name) => pattern.test(name));
      names.sort((a, b) => Number(b.replace(/\D/g, '')) - Number(a.replace(/\D/g, '')));
      dirs.push(...names.map((name) => join(root, name, suffix)));
    } catch {
      // not installed there
    }
  }
  return dirs;
}

/** Candidate directories in the contract's order: PG_BIN, pg_config --bindir, usual install paths, PATH. */
export async function candidateBinDirs(search: PgBinSearch): Promise<string[]> {
  const dirs: string[] = [];
  if (search.pgBin) dirs.push(search.pgBin);
  const fromPgConfig = await pgConfigBindir(search.path);
  if (fromPgConfig) dirs.push(fromPgConfig);
  dirs.push(...(await versionedInstallDirs()));
  dirs.push('/usr/local/pgsql/bin');
  if (search.path) dirs.push(...search.path.split(delimiter).filter(Boolean));
  return [...new Set(dirs)];
}

export async function binaryVersion(file: string, path?: string): Promise<PgBinary> {
  const { stdout } = await run(file, ['--version'], { timeout: 10_000, env: toolEnv(path) });
  const match = /(\d+)(?:\.(\d+))?/.exec(stdout.replace(/^[^)]*\)/, ''));
  if (!match) throw usageError(`cannot read the version of ${file}: ${stdout.trim()}`, { hint: 'Point PG_BIN at the PostgreSQL binaries directory.' });
  return { path: file, major: Number(match[1]), version: match[2] === undefined ? match[1]! : `${match[1]}.${match[2]}` };
}

/** Every copy of `name`, in search order, with its version; asked one at a time (a wrapper script costs a process each). */
async function* pgBinaries(name: string, search: PgBinSearch): AsyncGenerator<PgBinary> {
  const seen = new Set<string>();
  for (const dir of await candidateBinDirs(search)) {
    const file = join(dir, name);
    if (seen.has(file) || !(await isExecutable(file))) continue;
    seen.add(file);
    try {
      yield await binaryVersion(file, search.path);
    } catch {
      // a broken wrapper script; keep looking
    }
  }
}

/**
 * The first `name` in search order whose major version is at least `minMajor`
 * (pg_dump must be as new as the server it dumps), else undefined.
 */
export async function findPgBinary(name: string, search: PgBinSearch, minMajor = 0): Promise<PgBinary | undefined> {
  for await (const bin of pgBinaries(name, search)) if (bin.major >= minMajor) return bin;
  return undefined;
}
