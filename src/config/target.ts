import { startEmbeddedCluster } from '../cluster/embedded.js';
import { fromLibpqEnv, parseDatabaseUrl, withLibpqFallbacks, type ConnectionParams } from '../db/connection.js';
import { usageError } from '../errors.js';

export interface TargetSources {
  /** --database-url */
  flag: string | undefined;
  /** `databaseUrl` in the config file */
  configured: string | undefined;
  env: NodeJS.ProcessEnv;
  projectDir: string;
  /** --embedded: the project-local cluster, chosen on purpose. */
  embedded?: boolean;
  /** A command that changes the database; under CI it is not sent to the embedded cluster by default. */
  changing?: boolean;
}

/** `CI=true` (or any CI value but false/0), as CI services set it. */
export function inCi(env: NodeJS.ProcessEnv): boolean {
  const value = env.CI?.trim().toLowerCase();
  return value !== undefined && value !== '' && value !== 'false' && value !== '0';
}

/**
 * The contract's order: --database-url, DATABASE_URL, the config file, the
 * libpq variables, else the embedded project-local cluster (started on demand).
 * Under CI a changing command with none of these refuses instead of falling
 * back to the embedded cluster, so a forgotten DATABASE_URL in a deploy job
 * cannot "succeed" against a local cluster; `--embedded` asks for it explicitly.
 */
export async function resolveTarget(sources: TargetSources): Promise<ConnectionParams> {
  const { flag, configured, env } = sources;
  const embedded = { projectDir: sources.projectDir, pgBin: env.PG_BIN, path: env.PATH };
  if (sources.embedded) {
    if (flag) throw usageError('--embedded and --database-url name two different databases', { hint: 'Pass one of them.' });
    return { ...(await startEmbeddedCluster(embedded)), source: '--embedded' };
  }
  let params: ConnectionParams | undefined;
  if (flag) params = parseDatabaseUrl(flag, '--database-url');
  else if (env.DATABASE_URL) params = parseDatabaseUrl(env.DATABASE_URL, 'DATABASE_URL');
  else if (configured) params = parseDatabaseUrl(configured, 'databaseUrl in the config');
  else params = fromLibpqEnv(env);
  if (params) return withLibpqFallbacks(params, env);
  if (sources.changing && inCi(env)) {
    throw usageError('no database given, and under CI belay does not change the project-local embedded cluster by default', {
      hint: 'Point at the server with DATABASE_URL (or --database-url, PGHOST/PGDATABASE/PGUSER, databaseUrl in the config), or pass --embedded to use the embedded cluster on purpose.',
      details: { ci: true, looked: ['--database-url', 'DATABASE_URL', 'databaseUrl in the config', 'PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD'] },
    });
  }
  return startEmbeddedCluster(embedded);
}

/** Whether no connection is configured, so the embedded cluster would be used. */
export function usesEmbedded(sources: Omit<TargetSources, 'projectDir'>): boolean {
  return !sources.embedded && !sources.flag && !sources.env.DATABASE_URL && !sources.configured && fromLibpqEnv(sources.env) === undefined;
}
