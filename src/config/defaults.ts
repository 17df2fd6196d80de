import type { ConfigFile } from './schema.js';

export const HOOK_NAMES = ['beforeApply', 'afterApply', 'onRollback', 'afterRollback', 'afterRestore'] as const;

/**
 * The config when there is no file: what the schema makes of `{}`
 * (test/config-schema.test.ts holds them equal). Written out so that a project
 * without a config does not load zod on every command (about 90 ms).
 */
export const DEFAULT_CONFIG: ConfigFile = {
  migrations: 'migrations',
  backups: 'backups',
  database: { statementTimeoutSeconds: 0, lockTimeoutSeconds: 10, connectTimeoutSeconds: 10 },
  health: { sql: [], http: [], command: [], timeoutSeconds: 30, intervalSeconds: 2 },
  integrity: { mode: 'strict', tables: { include: ['*.*'], exclude: [] }, invariants: [] },
  backup: { format: 'custom', jobs: 1, scope: 'auto' },
  hooks: {},
};
