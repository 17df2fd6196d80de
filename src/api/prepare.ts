import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { resolveTarget, usesEmbedded } from '../config/target.js';
import { describeTarget, type ConnectionParams } from '../db/connection.js';
import { RunEvents } from '../events/run-events.js';
import type { RunSetup } from '../runner/session/setup.js';
import type { BelayOptions, TargetInfo } from './options.js';

function runBy(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (some containers)
  }
  return `${user}@${hostname()} pid ${process.pid}`;
}

/** Read the config and resolve the connection: the one place that looks at the environment. */
export async function prepare(options: BelayOptions): Promise<RunSetup> {
  return prepareWith(options, 'read');
}

/**
 * The same for a command that changes the database (migrate up, rollback,
 * backup, restore, recover): under CI it refuses the embedded cluster unless
 * `embedded` asks for it.
 */
export async function prepareChange(options: BelayOptions): Promise<RunSetup> {
  return prepareWith(options, 'change');
}

export function targetInfo(params: ConnectionParams): TargetInfo {
  return { database: describeTarget(params), source: params.source, embedded: params.source === 'embedded cluster' || params.source === '--embedded' };
}

/** The password the connection resolved to, handed to the caller's scrubber too. */
function secretsOf(target: ConnectionParams, options: BelayOptions): string[] {
  const secrets = target.password ? [target.password] : [];
  options.onSecrets?.(secrets);
  return secrets;
}

/**
 * For `rehearse`: the connected server when one is configured, else none
 * (the rehearsal makes an ephemeral cluster; the embedded one is not started).
 */
export async function prepareRehearsal(options: BelayOptions): Promise<{ setup: RunSetup; server: ConnectionParams | undefined }> {
  const setup = await prepareWith(options, 'offline');
  const env = options.env ?? process.env;
  const sources = { flag: options.databaseUrl, configured: setup.config.databaseUrl, env, embedded: options.embedded === true };
  if (usesEmbedded(sources)) return { setup, server: undefined };
  const server = await resolveTarget({ ...sources, projectDir: resolve(options.cwd ?? process.cwd()) });
  options.onTarget?.(targetInfo(server));
  return { setup: { ...setup, target: server, secrets: secretsOf(server, options) }, server };
}

/** The same, for commands that work on files only (backups list/verify/prune): no connection is opened or started. */
export async function prepareOffline(options: BelayOptions): Promise<RunSetup> {
  return prepareWith(options, 'offline');
}

async function prepareWith(options: BelayOptions, mode: 'offline' | 'read' | 'change'): Promise<RunSetup> {
  const cwd = resolve(options.cwd ?? process.cwd());
  const env = options.env ?? process.env;
  const overrides: { databaseUrl?: string; migrationsDir?: string; backupsDir?: string } = {};
  if (options.databaseUrl !== undefined) overrides.databaseUrl = options.databaseUrl;
  if (options.migrations !== undefined) overrides.migrationsDir = resolve(cwd, options.migrations);
  if (options.backups !== undefined) overrides.backupsDir = resolve(cwd, options.backups);
  const config = await loadConfig({ cwd, ...(options.config === undefined ? {} : { file: options.config }), overrides });
  const target =
    mode === 'offline'
      ? { host: '', port: 0, user: '', database: '', source: 'none (offline)' }
      : await resolveTarget({ flag: options.databaseUrl, configured: config.databaseUrl, env, projectDir: cwd, embedded: options.embedded === true, changing: mode === 'change' });
  if (mode !== 'offline') options.onTarget?.(targetInfo(target));
  const secrets = secretsOf(target, options);
  const events = new RunEvents();
  if (options.onEvent) events.on(options.onEvent);
  return {
    config,
    target,
    env,
    pgSearch: { pgBin: env.PG_BIN, path: env.PATH },
    events,
    signal: options.signal,
    runBy: runBy(),
    secrets,
    onRun: options.onRun,
  };
}
