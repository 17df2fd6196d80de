import type { Manifest } from '../backup/manifest.js';
import { runBackup, runBackupsList, runBackupsPrune, runBackupsVerify, runRestore } from '../runner/backup-commands.js';
import type { RestoreStrategy } from '../runner/restore-step.js';
import { runRecover } from '../runner/recover.js';
import { runRollback, type RollbackOptions } from '../runner/rollback.js';
import { runVerify, type VerifyReport } from '../runner/verify-now.js';
import { prepare, prepareOffline, prepareRehearsal } from './prepare.js';
import { runRehearse, type RehearseOptions } from '../runner/rehearse.js';
import type { RehearsalReport } from '../rehearse/report.js';
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

/** `belay rollback --to REV`: the orchestrated run pointed down. */
export async function rollback(options: BelayOptions & RollbackOptions): Promise<RunResult> {
  return runRollback(await prepare(options), options);
}

/** `belay backup`: a verified snapshot now. */
export async function backup(options: BelayOptions = {}): Promise<RunResult> {
  return runBackup(await prepare(options));
}

/** `belay backups list` */
export async function listBackups(options: BelayOptions = {}): Promise<{ snapshots: Manifest[]; unreadable: string[] }> {
  return runBackupsList(await prepareOffline(options));
}

/** `belay backups verify ID`: sha256, size and pg_restore --list. */
export async function verifyBackup(id: string, options: BelayOptions = {}): Promise<{ snapshot: Manifest; ok: boolean; problems: string[] }> {
  return runBackupsVerify(await prepareOffline(options), id);
}

/** `belay backups prune --keep N` */
export async function pruneBackups(keep: number, options: BelayOptions = {}): Promise<{ removed: string[] }> {
  return runBackupsPrune(await prepareOffline(options), keep);
}

/** `belay restore ID [--strategy swap|in-place]` */
export async function restore(id: string, options: BelayOptions & { strategy?: RestoreStrategy } = {}): Promise<RunResult> {
  return runRestore(await prepare(options), id, options.strategy ?? 'swap');
}

/** `belay verify`: health and integrity checks now. */
export async function verify(options: BelayOptions = {}): Promise<VerifyReport> {
  return runVerify(await prepare(options));
}

/** `belay recover`: settle a run that was interrupted (crash, kill, lost connection). */
export async function recover(options: BelayOptions = {}): Promise<RunResult> {
  return runRecover(await prepare(options));
}

/** `belay rehearse`: up, down and up again on a throwaway database, with every check. */
export async function rehearse(options: BelayOptions & Omit<RehearseOptions, 'server'> = {}): Promise<RehearsalReport> {
  const { setup, server } = await prepareRehearsal(options);
  return runRehearse(setup, { ...options, server });
}
