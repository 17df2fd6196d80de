// TEMPORARY minimal loader (lead), replaced by the full validating loader.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { BelayConfig } from './types.js';
import { usageError } from '../errors.js';

export interface LoadConfigOptions {
  cwd: string;
  file?: string;
  overrides: { databaseUrl?: string; migrationsDir?: string; backupsDir?: string };
}

export async function loadConfig(options: LoadConfigOptions): Promise<BelayConfig> {
  const file = options.file ? resolve(options.cwd, options.file) : ['belay.config.json'].map((n) => join(options.cwd, n)).find((f) => existsSync(f));
  let raw: Record<string, unknown> = {};
  if (file) raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  const integrity = (raw.integrity ?? {}) as Record<string, unknown>;
  if (integrity.mode !== undefined && !['strict', 'invariants', 'off'].includes(String(integrity.mode))) {
    throw usageError(`${file}: integrity.mode must be "strict", "invariants" or "off"`);
  }
  return {
    file,
    databaseUrl: options.overrides.databaseUrl,
    migrationsDir: options.overrides.migrationsDir ?? join(options.cwd, 'migrations'),
    backupsDir: options.overrides.backupsDir ?? join(options.cwd, 'backups'),
    database: { statementTimeoutSeconds: 0, lockTimeoutSeconds: 10, connectTimeoutSeconds: 10 },
    health: { sql: [], http: [], command: [], timeoutSeconds: 30, intervalSeconds: 2 },
    integrity: { mode: (integrity.mode as 'strict') ?? 'strict', tables: { include: ['*.*'], exclude: [] }, invariants: [] },
    backup: { format: 'custom', jobs: 1, compress: undefined, keep: undefined },
    hooks: {},
  };
}
