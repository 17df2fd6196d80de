/** The shape of `belay.config.*`, after validation and defaults. */

export type SqlExpectation = 'no-rows' | 'some-rows' | { equals: unknown };

export interface SqlHealthCheck {
  name: string;
  query: string;
  expect: SqlExpectation;
}

export interface HttpHealthCheck {
  name: string;
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
  expectStatus: number;
  timeoutSeconds: number;
}

export interface CommandHealthCheck {
  name: string;
  run: string;
  timeoutSeconds: number;
}

export interface HealthConfig {
  sql: SqlHealthCheck[];
  http: HttpHealthCheck[];
  command: CommandHealthCheck[];
  timeoutSeconds: number;
  intervalSeconds: number;
}

export type IntegrityMode = 'strict' | 'invariants' | 'off';

export interface Invariant {
  name: string;
  query: string;
}

export interface IntegrityConfig {
  mode: IntegrityMode;
  tables: { include: string[]; exclude: string[] };
  invariants: Invariant[];
}

export type BackupFormat = 'custom' | 'directory';

export interface BackupConfig {
  format: BackupFormat;
  jobs: number;
  compress: number | undefined;
  keep: number | undefined;
}

export interface Hook {
  run: string;
  timeoutSeconds: number;
}

export const HOOK_NAMES = ['beforeApply', 'afterApply', 'onRollback', 'afterRollback', 'afterRestore'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

export interface DatabaseSessionConfig {
  /** Per statement, for belay's own queries and migrations; 0 disables. */
  statementTimeoutSeconds: number;
  /** How long any statement may wait for a lock. */
  lockTimeoutSeconds: number;
  connectTimeoutSeconds: number;
}

export interface BelayConfig {
  /** The file it was read from, or undefined when defaults only. */
  file: string | undefined;
  databaseUrl: string | undefined;
  migrationsDir: string;
  backupsDir: string;
  database: DatabaseSessionConfig;
  health: HealthConfig;
  integrity: IntegrityConfig;
  backup: BackupConfig;
  hooks: Partial<Record<HookName, Hook>>;
}
