import { execFile } from 'node:child_process';
import { access, readdir, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { BelayError, usageError } from '../errors.js';

const run = promisify(execFile);

export interface PgBinary {
  path: string;
  /** e.g. 15 */
  major: number;
  /** e.g. "15.18" */
  version: string;
}

export interface PgBinSearch {
  /** The PG_BIN setting, when given: searched first, and it must hold each program asked for. */
  pgBin?: string | undefined;
  /** PATH, for the last resort. */
  path?: string | undefined;
}

async function isExecutable(file: string): Promise<boolean> {
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
async function candidateBinDirs(search: PgBinSearch): Promise<string[]> {
  const dirs: string[] = [];
  if (search.pgBin) dirs.push(search.pgBin);
  const fromPgConfig = await pgConfigBindir(search.path);
  if (fromPgConfig) dirs.push(fromPgConfig);
  dirs.push(...(await versionedInstallDirs()));
  dirs.push('/usr/local/pgsql/bin');
  if (search.path) dirs.push(...search.path.split(delimiter).filter(Boolean));
  return [...new Set(dirs)];
}

async function binaryVersion(file: string, path?: string): Promise<PgBinary> {
  const { stdout } = await run(file, ['--version'], { timeout: 10_000, env: toolEnv(path) });
  const match = /(\d+)(?:\.(\d+))?/.exec(stdout.replace(/^[^)]*\)/, ''));
  if (!match) throw usageError(`cannot read the version of ${file}: ${stdout.trim()}`, { hint: 'Point PG_BIN at the PostgreSQL binaries directory.' });
  return { path: file, major: Number(match[1]), version: match[2] === undefined ? match[1]! : `${match[1]}.${match[2]}` };
}

/**
 * The copies of the PostgreSQL programs a search finds, asked once per
 * process: one `pg_config --bindir` for every program, and each file's
 * `--version` at most once (a run may ask again: a restore, a rehearsal, a
 * quarantine snapshot).
 */
class BinarySearch {
  private readonly dirs: Promise<string[]>;
  private readonly versions = new Map<string, Promise<PgBinary | undefined>>();

  constructor(private readonly search: PgBinSearch) {
    this.dirs = candidateBinDirs(search);
  }

  private versionOf(file: string): Promise<PgBinary | undefined> {
    let known = this.versions.get(file);
    if (!known) {
      // a missing file, or a broken wrapper script: not a copy; keep looking
      known = isExecutable(file).then((ok) => (ok ? binaryVersion(file, this.search.path).catch(() => undefined) : undefined));
      this.versions.set(file, known);
    }
    return known;
  }

  /**
   * The first copy of `name` in search order at least `minMajor` new, asked one at a time (a wrapper script costs a process each).
   * A PG_BIN that lacks it is refused, not passed over: the operator named that folder.
   */
  async first(name: string, minMajor: number): Promise<PgBinary | undefined> {
    const { pgBin } = this.search;
    if (pgBin && !(await this.versionOf(join(pgBin, name)))) throw await notInPgBin(pgBin, name);
    for (const dir of await this.dirs) {
      const bin = await this.versionOf(join(dir, name));
      if (bin && bin.major >= minMajor) return bin;
    }
    return undefined;
  }

  /** PG_BIN's own copy of `name`, when PG_BIN is set and holds one. */
  inPgBin(name: string): Promise<PgBinary | undefined> {
    const { pgBin } = this.search;
    return pgBin ? this.versionOf(join(pgBin, name)) : Promise.resolve(undefined);
  }

  async all(name: string): Promise<PgBinary[]> {
    const found = await Promise.all((await this.dirs).map((dir) => this.versionOf(join(dir, name))));
    return found.filter((bin): bin is PgBinary => bin !== undefined);
  }
}

async function notInPgBin(pgBin: string, name: string): Promise<BelayError> {
  const what = await stat(pgBin).then(
    (info) => (info.isDirectory() ? `holds no ${name} that runs and says its version` : 'is not a folder'),
    () => 'does not exist',
  );
  return usageError(`PG_BIN is ${pgBin}, which ${what}; nothing was used or changed`, {
    hint: `Point PG_BIN at the bin folder of a PostgreSQL installation (the one \`pg_config --bindir\` names), or unset it to let belay look in the usual places.`,
  });
}

const searches = new Map<string, BinarySearch>();

function binarySearch(search: PgBinSearch): BinarySearch {
  const key = `${search.pgBin ?? ''}\0${search.path ?? ''}`;
  let found = searches.get(key);
  if (!found) {
    found = new BinarySearch(search);
    searches.set(key, found);
  }
  return found;
}

/**
 * The first `name` in search order whose major version is at least `minMajor`
 * (pg_dump must be as new as the server it dumps), else undefined; refused
 * when PG_BIN is set and does not hold it.
 */
export function findPgBinary(name: string, search: PgBinSearch, minMajor = 0): Promise<PgBinary | undefined> {
  return binarySearch(search).first(name, minMajor);
}

/**
 * PG_BIN's copy of `name` when the search used another one (`used`): PG_BIN's
 * is older than the server asked for. Undefined when PG_BIN is not set or
 * its copy is the one used.
 */
export async function passedOverInPgBin(name: string, search: PgBinSearch, used: PgBinary): Promise<PgBinary | undefined> {
  const own = await binarySearch(search).inPgBin(name);
  return own && own.path !== used.path ? own : undefined;
}

/** Every copy of `name` the search finds, in search order, with its version. */
export function findPgBinaries(name: string, search: PgBinSearch): Promise<PgBinary[]> {
  return binarySearch(search).all(name);
}
