import { startEmbeddedCluster } from '../cluster/embedded.js';
import { fromLibpqEnv, parseDatabaseUrl, withLibpqFallbacks, type ConnectionParams } from '../db/connection.js';

export interface TargetSources {
  /** --database-url */
  flag: string | undefined;
  /** `databaseUrl` in the config file */
  configured: string | undefined;
  env: NodeJS.ProcessEnv;
  projectDir: string;
}

/**
 * The contract's order: --database-url, DATABASE_URL, the config file, the
 * libpq variables, else the embedded project-local cluster (started on demand).
 */
export async function resolveTarget(sources: TargetSources): Promise<ConnectionParams> {
  const { flag, configured, env } = sources;
  let params: ConnectionParams | undefined;
  if (flag) params = parseDatabaseUrl(flag, '--database-url');
  else if (env.DATABASE_URL) params = parseDatabaseUrl(env.DATABASE_URL, 'DATABASE_URL');
  else if (configured) params = parseDatabaseUrl(configured, 'databaseUrl in the config');
  else params = fromLibpqEnv(env);
  if (!params) return startEmbeddedCluster({ projectDir: sources.projectDir, pgBin: env.PG_BIN, path: env.PATH });
  return withLibpqFallbacks(params, env);
}

/** Whether no connection is configured, so the embedded cluster would be used. */
export function usesEmbedded(sources: Omit<TargetSources, 'projectDir'>): boolean {
  return !sources.flag && !sources.env.DATABASE_URL && !sources.configured && fromLibpqEnv(sources.env) === undefined;
}
