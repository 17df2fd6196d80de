import type { ConfigFile } from './schema.js';
import { HOOK_NAMES } from './defaults.js';

/** The shape of `belay.config.*` after validation and defaults: inferred from the schema in schema.ts. */

export { HOOK_NAMES };
export type HookName = (typeof HOOK_NAMES)[number];

export type HealthConfig = ConfigFile['health'];
export type SqlHealthCheck = HealthConfig['sql'][number];
export type HttpHealthCheck = HealthConfig['http'][number];
export type CommandHealthCheck = HealthConfig['command'][number];

export type IntegrityConfig = ConfigFile['integrity'];
export type Invariant = IntegrityConfig['invariants'][number];

export type BackupConfig = ConfigFile['backup'];

export type Hook = NonNullable<ConfigFile['hooks'][HookName]>;

export type DatabaseSessionConfig = ConfigFile['database'];

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
