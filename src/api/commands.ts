import { prepare } from './prepare.js';
import type { BelayOptions } from './options.js';
import { runMigrateUp, type MigrateUpOptions } from '../runner/migrate-up.js';
import { runStatus, type StatusReport } from '../runner/status.js';
import { runPlan, type Plan } from '../runner/plan.js';
import { runHistoryList, runHistoryOf, type RunHistory } from '../runner/history.js';
import type { RunSummary } from '../runner/status.js';
import { newRevision as scaffold, type NewRevisionResult } from '../runner/new-revision.js';
import type { RunResult } from '../runner/results.js';
import { loadConfig } from '../config/load.js';
import { resolve } from 'node:path';

/** `belay migrate up`: the orchestrated forward run. */
export async function migrateUp(options: BelayOptions & MigrateUpOptions = {}): Promise<RunResult> {
  return runMigrateUp(await prepare(options), options);
}

/** `belay status` */
export async function status(options: BelayOptions = {}): Promise<StatusReport> {
  return runStatus(await prepare(options));
}

/** `belay plan [--to REV]` */
export async function plan(options: BelayOptions & { to?: string } = {}): Promise<Plan> {
  return runPlan(await prepare(options), options.to);
}

/** `belay history`: past runs, newest first. */
export async function history(options: BelayOptions & { limit?: number } = {}): Promise<RunSummary[]> {
  return runHistoryList(await prepare(options), options.limit);
}

/** `belay history RUN`: every step of one run. */
export async function runHistory(run: string, options: BelayOptions = {}): Promise<RunHistory> {
  return runHistoryOf(await prepare(options), run);
}

/** `belay new NAME`: needs no database. */
export async function newRevision(name: string, options: BelayOptions & { kind?: 'sql' | 'ts' } = {}): Promise<NewRevisionResult> {
  const cwd = resolve(options.cwd ?? process.cwd());
  const config = await loadConfig({
    cwd,
    ...(options.config === undefined ? {} : { file: options.config }),
    overrides: options.migrations === undefined ? {} : { migrationsDir: resolve(cwd, options.migrations) },
  });
  return scaffold(config.migrationsDir, name, options.kind ?? 'sql');
}
