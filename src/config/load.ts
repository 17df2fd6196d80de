import { access, readFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { usageError } from '../errors.js';
import {
  HOOK_NAMES,
  type BelayConfig,
  type CommandHealthCheck,
  type Hook,
  type HookName,
  type HttpHealthCheck,
  type SqlExpectation,
  type SqlHealthCheck,
} from './types.js';
import { ConfigReader } from './validate.js';

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
  for (const name of CANDIDATES) {
    const file = join(options.cwd, name);
    if (await exists(file)) return file;
  }
  return undefined;
}

/** The file's export: JSON, or a module's default export (an object, or a function returning one). */
async function readRaw(file: string): Promise<unknown> {
  try {
    if (extname(file) === '.json') return JSON.parse(await readFile(file, 'utf8')) as unknown;
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
    throw usageError(`cannot read the config ${file}: ${(error as Error).message}`, { hint: 'Fix its syntax; a JS/TS config must `export default` an object.' });
  }
}

/**
 * Load and validate `belay.config.*` (none: all defaults). Besides the
 * contract's sections it accepts `databaseUrl`, `migrations`, `backups` and
 * `database` (timeouts). Any problem is a usage error (exit 2) naming the key.
 */
export async function loadConfig(options: LoadConfigOptions): Promise<BelayConfig> {
  const file = await findConfigFile(options);
  const raw = file === undefined ? {} : await readRaw(file);
  const r = new ConfigReader(file ?? '(defaults)');
  const top = r.object(raw, '', ['databaseUrl', 'migrations', 'backups', 'database', 'health', 'integrity', 'backup', 'hooks']);
  const base = options.cwd;

  const db = r.optionalObject(top.database, 'database', ['statementTimeoutSeconds', 'lockTimeoutSeconds', 'connectTimeoutSeconds']);
  const health = r.optionalObject(top.health, 'health', ['sql', 'http', 'command', 'timeoutSeconds', 'intervalSeconds']);
  const integrity = r.optionalObject(top.integrity, 'integrity', ['mode', 'tables', 'invariants']);
  const tables = r.optionalObject(integrity.tables, 'integrity.tables', ['include', 'exclude']);
  const backup = r.optionalObject(top.backup, 'backup', ['format', 'jobs', 'compress', 'keep']);
  const hooks = r.optionalObject(top.hooks, 'hooks', HOOK_NAMES);

  const sql = r.array(health.sql, 'health.sql').map((item, i): SqlHealthCheck => {
    const path = `health.sql[${i}]`;
    const check = r.object(item, path, ['name', 'query', 'expect']);
    return { name: r.string(check.name, `${path}.name`), query: r.string(check.query, `${path}.query`), expect: expectation(r, check.expect, `${path}.expect`) };
  });
  const http = r.array(health.http, 'health.http').map((item, i): HttpHealthCheck => {
    const path = `health.http[${i}]`;
    const check = r.object(item, path, ['name', 'url', 'method', 'headers', 'body', 'expectStatus', 'timeoutSeconds']);
    const url = r.string(check.url, `${path}.url`);
    if (!/^https?:\/\//.test(url)) r.fail(`${path}.url`, 'an http:// or https:// URL', url);
    const spec: HttpHealthCheck = {
      name: r.string(check.name, `${path}.name`),
      url,
      method: r.oneOf(check.method, `${path}.method`, ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], 'GET'),
      headers: r.stringMap(check.headers, `${path}.headers`),
      expectStatus: r.integer(check.expectStatus, `${path}.expectStatus`, 200, 100, 599),
      timeoutSeconds: r.number(check.timeoutSeconds, `${path}.timeoutSeconds`, 5, 0.1, 3600),
    };
    if (check.body !== undefined) spec.body = typeof check.body === 'string' ? check.body : JSON.stringify(check.body);
    return spec;
  });
  const command = r.array(health.command, 'health.command').map((item, i): CommandHealthCheck => {
    const path = `health.command[${i}]`;
    const check = r.object(item, path, ['name', 'run', 'timeoutSeconds']);
    return { name: r.string(check.name, `${path}.name`), run: r.string(check.run, `${path}.run`), timeoutSeconds: r.number(check.timeoutSeconds, `${path}.timeoutSeconds`, 30, 0.1, 86_400) };
  });
  const hookMap: Partial<Record<HookName, Hook>> = {};
  for (const name of HOOK_NAMES) {
    if (hooks[name] === undefined) continue;
    const hook = r.object(hooks[name], `hooks.${name}`, ['run', 'timeoutSeconds']);
    hookMap[name] = { run: r.string(hook.run, `hooks.${name}.run`), timeoutSeconds: r.number(hook.timeoutSeconds, `hooks.${name}.timeoutSeconds`, 60, 0.1, 86_400) };
  }
  const configuredUrl = r.optionalString(top.databaseUrl, 'databaseUrl');
  return {
    file,
    databaseUrl: options.overrides.databaseUrl ?? configuredUrl,
    migrationsDir: options.overrides.migrationsDir ?? resolve(base, r.optionalString(top.migrations, 'migrations') ?? 'migrations'),
    backupsDir: options.overrides.backupsDir ?? resolve(base, r.optionalString(top.backups, 'backups') ?? 'backups'),
    database: {
      statementTimeoutSeconds: r.number(db.statementTimeoutSeconds, 'database.statementTimeoutSeconds', 0, 0, 86_400),
      lockTimeoutSeconds: r.number(db.lockTimeoutSeconds, 'database.lockTimeoutSeconds', 10, 0, 86_400),
      connectTimeoutSeconds: r.number(db.connectTimeoutSeconds, 'database.connectTimeoutSeconds', 10, 1, 3600),
    },
    health: {
      sql,
      http,
      command,
      timeoutSeconds: r.number(health.timeoutSeconds, 'health.timeoutSeconds', 30, 0, 86_400),
      intervalSeconds: r.number(health.intervalSeconds, 'health.intervalSeconds', 2, 0.1, 3600),
    },
    integrity: {
      mode: r.oneOf(integrity.mode, 'integrity.mode', ['strict', 'invariants', 'off'], 'strict'),
      tables: { include: r.strings(tables.include, 'integrity.tables.include', ['*.*']), exclude: r.strings(tables.exclude, 'integrity.tables.exclude', []) },
      invariants: r.array(integrity.invariants, 'integrity.invariants').map((item, i) => {
        const inv = r.object(item, `integrity.invariants[${i}]`, ['name', 'query']);
        return { name: r.string(inv.name, `integrity.invariants[${i}].name`), query: r.string(inv.query, `integrity.invariants[${i}].query`) };
      }),
    },
    backup: {
      format: r.oneOf(backup.format, 'backup.format', ['custom', 'directory'], 'custom'),
      jobs: r.integer(backup.jobs, 'backup.jobs', 1, 1, 64),
      compress: backup.compress === undefined ? undefined : r.integer(backup.compress, 'backup.compress', 0, 0, 9),
      keep: backup.keep === undefined ? undefined : r.integer(backup.keep, 'backup.keep', 0, 1, 100_000),
    },
    hooks: hookMap,
  };
}

function expectation(r: ConfigReader, value: unknown, path: string): SqlExpectation {
  if (value === 'no-rows' || value === 'some-rows') return value;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 1 && 'equals' in value) {
    return { equals: (value as { equals: unknown }).equals };
  }
  return r.fail(path, '"no-rows", "some-rows" or { equals: VALUE }', value);
}
