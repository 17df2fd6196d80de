import { access, readFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { errorMessage, usageError, type BelayError } from '../errors.js';
import { readProblem } from '../unreadable.js';
import type { BelayConfig } from './types.js';
import { DEFAULT_CONFIG } from './defaults.js';
import type { ConfigFile } from './schema.js';

export interface LoadConfigOptions {
  /** Project directory: where belay.config.* is looked for and relative paths start. */
  cwd: string;
  /** --config FILE */
  file?: string;
  /** From the command line; they win over the file. */
  overrides: { databaseUrl?: string; migrationsDir?: string; backupsDir?: string };
}

const CANDIDATES = ['belay.config.ts', 'belay.config.js', 'belay.config.mjs', 'belay.config.json'];

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

async function findConfigFile(options: LoadConfigOptions): Promise<string | undefined> {
  if (options.file !== undefined) {
    const file = resolve(options.cwd, options.file);
    if (!(await exists(file))) throw usageError(`--config ${options.file}: no such file`, { hint: `Looked for ${file}.` });
    return file;
  }
  const found: string[] = [];
  for (const name of CANDIDATES) if (await exists(join(options.cwd, name))) found.push(name);
  // one would be read and the others silently not: an edit to one of those would change nothing
  if (found.length > 1) throw usageError(`${found.join(' and ')} are both in ${options.cwd}: belay reads one config file`, { hint: `Keep one of them (belay would read ${found[0]}), or name it with --config FILE.` });
  return found[0] === undefined ? undefined : join(options.cwd, found[0]);
}

/** The file's export: JSON, or a module's default export (an object, or a function returning one). */
async function readRaw(file: string): Promise<unknown> {
  try {
    // an editor's UTF-8 byte order mark is not JSON, nor part of the config
    if (extname(file) === '.json') return JSON.parse((await readFile(file, 'utf8')).replace(/^\uFEFF/, '')) as unknown;
    let mod: { default?: unknown };
    if (/\.m?ts$/.test(file)) {
      const { tsImport } = await import('tsx/esm/api');
      mod = (await tsImport(pathToFileURL(file).href, import.meta.url)) as { default?: unknown };
    } else {
      mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
    }
    const exported = (mod.default as { default?: unknown } | undefined)?.default ?? mod.default;
    return typeof exported === 'function' ? await (exported as () => unknown)() : exported;
  } catch (error) {
    throw configReadError(file, error);
  }
}

/** The advice follows the cause: a file belay may not read is not fixed by editing its syntax. */
function configReadError(file: string, error: unknown): BelayError {
  // a module's own code may fail on a file it reads: only the config file's own errors are about the config
  const problem = (error as { path?: unknown }).path === file || extname(file) === '.json' ? readProblem(error, `the config ${file}`) : undefined;
  if (problem) {
    return usageError(`cannot read the config ${file}: ${problem.code}: ${problem.reason}`, { hint: problem.hint, details: { file, code: problem.code }, cause: error });
  }
  const hint =
    error instanceof SyntaxError
      ? 'Fix its syntax; a JS/TS config must `export default` an object.'
      : extname(file) === '.json'
        ? 'Fix the file; it must hold one JSON object.'
        : 'Fix the error it raises when loaded; a JS/TS config must `export default` an object (or a function returning one).';
  return usageError(`cannot read the config ${file}: ${errorMessage(error)}`, { hint, cause: error });
}

/**
 * Load and validate `belay.config.*` (none: all defaults). Besides the
 * contract's sections it accepts `databaseUrl`, `migrations`, `backups` and
 * `database` (timeouts). Any problem is a usage error (exit 2) listing every
 * key that is wrong and what was expected, not only the first.
 */
export async function loadConfig(options: LoadConfigOptions): Promise<BelayConfig> {
  const file = await findConfigFile(options);
  const { databaseUrl, migrations, backups, database, health, integrity, backup, hooks } = file === undefined ? structuredClone(DEFAULT_CONFIG) : await readValid(file);
  return {
    file,
    databaseUrl: options.overrides.databaseUrl ?? databaseUrl,
    migrationsDir: options.overrides.migrationsDir ?? resolve(options.cwd, migrations),
    backupsDir: options.overrides.backupsDir ?? resolve(options.cwd, backups),
    database,
    health,
    integrity,
    backup,
    hooks,
  };
}

async function readValid(file: string): Promise<ConfigFile> {
  const raw = await readRaw(file);
  try {
    // the config is journaled and compared as JSON: a module's BigInt, cycle or throwing getter is told here, not mid-run
    JSON.stringify(raw);
  } catch (error) {
    throw usageError(`invalid config ${file}: it holds a value that is not plain data: ${errorMessage(error)}`, {
      hint: 'Use plain values (strings, numbers, booleans, null, arrays and objects of them): no BigInt, no object that holds itself, no getter that throws.',
      cause: error,
    });
  }
  const { validateConfig } = await import('./schema.js');
  const checked = validateConfig(raw);
  if (!checked.ok) {
    const count = checked.problems.length;
    throw usageError(`invalid config ${file}: ${count} problem${count === 1 ? '' : 's'}\n${checked.problems.map((p) => `  - ${p}`).join('\n')}`, {
      hint: 'Fix those keys; belay.schema.json (for editors) and README.md "Config" list every key and its default.',
      details: { problems: checked.problems },
    });
  }
  return checked.config;
}
