import { resolve } from 'node:path';
import type { Manifest } from '../backup/manifest.js';
import type { SnapshotListing } from '../backup/snapshot-store.js';
import type { PruneResult } from '../runner/commands/backup-commands.js';
import { loadConfig } from '../config/load.js';
import type { RehearsalReport } from '../rehearse/report.js';
import type { MigrateUpOptions } from '../runner/commands/migrate-up.js';
import type { NewRevisionResult } from '../runner/commands/new-revision.js';
import type { Plan } from '../runner/commands/plan.js';
import type { RehearseOptions } from '../runner/rehearse.js';
import type { RestoreStrategy } from '../events/run-events.js';
import type { RunResult } from '../runner/result/results.js';
import type { RollbackOptions } from '../runner/commands/rollback.js';
import type { RunHistory, RunList } from '../runner/commands/history.js';
import type { StatusReport } from '../runner/commands/status.js';
import type { VerifyReport } from '../runner/commands/verify-now.js';
import type { BelayOptions } from './options.js';
import { prepare, prepareChange, prepareOffline, prepareRehearsal } from './prepare.js';

// Each command loads its runner when it runs: `belay status` need not load the engine, pg_dump code or tsx.

/** `belay migrate up`: the orchestrated forward run. */
export async function migrateUp(options: BelayOptions & MigrateUpOptions = {}): Promise<RunResult> {
  const { runMigrateUp } = await import('../runner/commands/migrate-up.js');
  return runMigrateUp(await prepareChange(options), options);
}

/** `belay status` */
export async function status(options: BelayOptions = {}): Promise<StatusReport> {
  const { runStatus } = await import('../runner/commands/status.js');
  return runStatus(await prepare(options));
}

/** `belay plan [--to REV] [--scope]`; `scope` learns what each revision touches on a throwaway schema-only copy. */
export async function plan(options: BelayOptions & { to?: string; scope?: boolean } = {}): Promise<Plan> {
  const { runPlan } = await import('../runner/commands/plan.js');
  return runPlan(await prepare(options), options.to, options.scope === true);
}

/** `belay history`: past runs, newest first: the newest `limit` (every one when not given) and how many there are. */
export async function history(options: BelayOptions & { limit?: number; all?: boolean } = {}): Promise<RunList> {
  const { runHistoryList } = await import('../runner/commands/history.js');
  return runHistoryList(await prepare(options), options.limit, options.all);
}

/** `belay history RUN`: every step of one run. */
export async function runHistory(run: string, options: BelayOptions = {}): Promise<RunHistory> {
  const { runHistoryOf } = await import('../runner/commands/history.js');
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
  const { newRevision: scaffold } = await import('../runner/commands/new-revision.js');
  return scaffold(config.migrationsDir, name, options.kind ?? 'sql');
}

/** `belay rollback --to REV`: the orchestrated run pointed down. */
export async function rollback(options: BelayOptions & RollbackOptions): Promise<RunResult> {
  const { runRollback } = await import('../runner/commands/rollback.js');
  return runRollback(await prepareChange(options), options);
}

/** `belay backup`: a verified snapshot now. */
export async function backup(options: BelayOptions = {}): Promise<RunResult> {
  const { runBackup } = await import('../runner/commands/backup-commands.js');
  return runBackup(await prepareChange(options));
}

/** `belay backups list` */
export async function listBackups(options: BelayOptions = {}): Promise<SnapshotListing> {
  const { runBackupsList } = await import('../runner/commands/backup-commands.js');
  return runBackupsList(await prepareOffline(options));
}

/** `belay backups verify ID`: sha256, size and pg_restore --list. */
export async function verifyBackup(id: string, options: BelayOptions = {}): Promise<{ snapshot: Manifest; ok: boolean; problems: string[] }> {
  const { runBackupsVerify } = await import('../runner/commands/backup-commands.js');
  return runBackupsVerify(await prepareOffline(options), id);
}

/** `belay backups prune --keep N`: under the target's run lock; `confirm` is asked before anything is deleted. */
export async function pruneBackups(keep: number, options: BelayOptions & { confirm?: (summary: string) => Promise<boolean> } = {}): Promise<PruneResult> {
  const { runBackupsPrune } = await import('../runner/commands/backup-commands.js');
  return runBackupsPrune(await prepareChange(options), keep, options.confirm);
}

/** `belay restore ID [--strategy swap|in-place] [--allow-other-database]` */
export async function restore(id: string, options: BelayOptions & { strategy?: RestoreStrategy; allowOtherDatabase?: boolean } = {}): Promise<RunResult> {
  const { runRestore } = await import('../runner/commands/backup-commands.js');
  return runRestore(await prepareChange(options), id, options.strategy ?? 'swap', options.allowOtherDatabase === true);
}

/** `belay verify`: health and integrity checks now. */
export async function verify(options: BelayOptions = {}): Promise<VerifyReport> {
  const { runVerify } = await import('../runner/commands/verify-now.js');
  return runVerify(await prepare(options));
}

/** `belay recover`: settle a run that was interrupted (crash, kill, lost connection). */
export async function recover(options: BelayOptions = {}): Promise<RunResult> {
  const { runRecover } = await import('../runner/commands/recover.js');
  return runRecover(await prepareChange(options));
}

/** `belay rehearse`: up, down and up again on a throwaway database, with every check. */
export async function rehearse(options: BelayOptions & Omit<RehearseOptions, 'server'> = {}): Promise<RehearsalReport> {
  const { setup, server } = await prepareRehearsal(options);
  const { runRehearse } = await import('../runner/rehearse.js');
  return runRehearse(setup, { ...options, server });
}
