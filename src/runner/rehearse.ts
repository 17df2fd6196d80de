import { readFile, writeFile } from 'node:fs/promises';
import type { ClientBase } from 'pg';
import { findSnapshot } from '../backup/snapshot-store.js';
import { resolveBackupTools, type BackupTools } from '../backup/pg-tools.js';
import { restoreSnapshotInto } from '../backup/restore-snapshot.js';
import { libpqChildEnv, type ConnectionParams } from '../db/connection.js';
import { ensureBelaySchema } from '../db/belay-schema.js';
import { openSession, type Session } from '../db/session.js';
import { BelayError, EXIT, errorMessage, usageError } from '../errors.js';
import { runShellCommand } from '../health/shell-command.js';
import { sqlCheck } from '../health/sql-check.js';
import { compareFingerprints } from '../integrity/compare.js';
import { fingerprintTables, type Fingerprint } from '../integrity/fingerprint.js';
import { selectProtectedTables } from '../integrity/table-selection.js';
import { discoverRevisions } from '../migrations/discover.js';
import { MigrationEngine } from '../migrations/engine.js';
import { resolveRevisionName } from '../migrations/resolve-name.js';
import { isReversible } from '../migrations/run-revision.js';
import type { Revision } from '../migrations/revision.js';
import { splitSql } from '../migrations/split-sql.js';
import { newRunId } from '../journal/run-id.js';
import { LockSampler, type TableLock } from '../rehearse/lock-sampler.js';
import type { RehearsalCase, RehearsalReport } from '../rehearse/report.js';
import { toJunit, toMarkdown } from '../rehearse/report.js';
import { diffLines, normalisedSchema, sameButColumnOrder } from '../rehearse/schema-dump.js';
import { ephemeralCluster, throwawayDatabase, type Throwaway } from '../rehearse/throwaway.js';
import { readDatabaseState } from './session/database-state.js';
import { sessionOptions, type RunSetup } from './session/setup.js';

export interface RehearseOptions {
  from?: string;
  seed?: string;
  fromBackup?: string;
  /** CREATE DATABASE … TEMPLATE this, on a connected server. */
  template?: string;
  junit?: string;
  markdown?: string;
  /** The connected server, or undefined for an ephemeral cluster. */
  server: ConnectionParams | undefined;
}

interface Context {
  setup: RunSetup;
  work: Session;
  observer: Session;
  tools: BackupTools;
  params: ConnectionParams;
  revisions: Revision[];
}

async function allTables(client: ClientBase): Promise<Fingerprint> {
  return fingerprintTables(client, await selectProtectedTables(client, { include: ['*.*'], exclude: [] }), { perColumn: true });
}

/** Where the connected database stands: the default starting point. */
async function connectedRevision(setup: RunSetup, server: ConnectionParams, revisions: Revision[]): Promise<string | null> {
  const session = await openSession(server, sessionOptions(setup, 'belay rehearse probe'));
  try {
    return (await readDatabaseState(session.client, revisions)).current;
  } finally {
    await session.close();
  }
}

async function loadSeed(ctx: Context, file: string): Promise<void> {
  if (file.endsWith('.sql')) {
    const { statements, metaCommands } = splitSql(await readFile(file, 'utf8'));
    const meta = metaCommands[0];
    if (meta) {
      throw usageError(`seed ${file} line ${meta.line}: psql command \`${meta.text.slice(0, 40)}\` is not SQL`, {
        hint: 'Make the seed a script that runs psql (it gets the throwaway database in PG* variables), or use --from-backup with a pg_dump snapshot.',
      });
    }
    for (const statement of statements) await ctx.work.client.query(statement.text);
    return;
  }
  // a script: it reaches the throwaway database through PG* variables and a private passfile
  const { env, extraFds, cleanup } = await libpqChildEnv(ctx.params, ctx.setup.env, 'belay rehearse seed');
  try {
    const outcome = await runShellCommand(file, env, 3600, undefined, extraFds);
    if (outcome.exitCode !== 0) throw new Error(`seed script ${file} failed (exit ${outcome.exitCode}): ${outcome.outputTail}`);
  } finally {
    await cleanup();
  }
}

/** Run one revision in one direction, sampling its locks; the error, if any, is returned. */
async function step(ctx: Context, engine: MigrationEngine, sampler: { current: LockSampler | undefined }, revision: Revision, direction: 'up' | 'down'): Promise<{ durationMs: number; locks: TableLock[]; error?: string }> {
  if (ctx.setup.signal?.aborted) {
    throw new BelayError('preflight', 'the rehearsal was interrupted by a signal; its throwaway database is removed', { hint: 'Nothing real was touched.' });
  }
  const lockSampler = new LockSampler(ctx.observer.client, ctx.work.backendPid);
  sampler.current = lockSampler;
  lockSampler.start();
  const started = performance.now();
  let error: string | undefined;
  try {
    await (direction === 'up' ? engine.up(revision.name) : engine.down(revision.name));
  } catch (caught) {
    error = errorMessage(caught);
  }
  const durationMs = Math.round(performance.now() - started);
  const locks = await lockSampler.stop();
  sampler.current = undefined;
  return error === undefined ? { durationMs, locks } : { durationMs, locks, error };
}

async function healthAfter(ctx: Context): Promise<string | undefined> {
  for (const spec of ctx.setup.config.health.sql) {
    const outcome = await sqlCheck(spec).run({ client: ctx.work.client, env: ctx.setup.env, signal: undefined });
    if (!outcome.ok) return `health check ${spec.name} failed: ${outcome.evidence}`;
  }
  return undefined;
}

/** The state around one down: the schema and data from before its up, and after its down. */
interface AfterDown {
  revision: string;
  schemaBefore: string;
  schema: string;
  dataBefore: Fingerprint;
  data: Fingerprint;
}

const lineSet = (text: string): Set<string> => new Set(text.split('\n'));
const linesOnlyIn = (a: string, b: string): string[] => {
  const other = lineSet(b);
  return a.split('\n').filter((line) => !other.has(line));
};
const within = (lines: string[], allowed: string[]): boolean => {
  const set = new Set(allowed);
  return lines.every((line) => set.has(line));
};

/**
 * Whether a down gave back the schema and data from before its up. What the
 * down of a later revision left behind (`later`) is still there when this
 * down runs: it is reported once, on the revision that caused it, and here
 * only as a warning when this revision neither made nor touched it.
 */
function judgeDown(verdict: RehearsalCase, now: AfterDown, later: AfterDown | undefined): void {
  const failures: string[] = [];
  if (now.schema !== now.schemaBefore) {
    const inherited =
      later !== undefined &&
      within(linesOnlyIn(now.schema, now.schemaBefore), linesOnlyIn(later.schema, later.schemaBefore)) &&
      within(linesOnlyIn(now.schemaBefore, now.schema), linesOnlyIn(later.schemaBefore, later.schema));
    if (sameButColumnOrder(now.schema, now.schemaBefore)) verdict.warnings.push('the schema differs only in column order (a re-added column goes last)');
    else if (inherited) verdict.warnings.push('the schema still carries what the down of a later revision left behind (reported there)');
    else {
      failures.push('the down does not give back the schema from before the up');
      verdict.diff = diffLines(now.schemaBefore, now.schema);
    }
  }
  const sameTable = (a: Fingerprint, b: Fingerprint, table: string): boolean => JSON.stringify(a.tables[table]) === JSON.stringify(b.tables[table]);
  const changed = compareFingerprints(now.dataBefore, now.data, 'same-schema');
  const own = changed.filter(
    (d) => !(later && sameTable(now.dataBefore, later.dataBefore, d.table) && sameTable(now.data, later.data, d.table)),
  );
  if (own.length > 0) failures.push(`the round trip changed data: ${own.map((d) => d.message).join('; ')}`);
  if (own.length < changed.length && later) verdict.warnings.push('the data still carries what the round trip of a later revision changed (reported there)');
  if (failures.length > 0) Object.assign(verdict, { ok: false, message: failures.join('; ') });
}

/**
 * The cycle on the throwaway: every pending revision up (with its verify and
 * the SQL health checks), then each down checked against the schema and the
 * data from before its up, then up again.
 */
async function cycle(ctx: Context, pending: Revision[]): Promise<RehearsalCase[]> {
  const cases: RehearsalCase[] = [];
  const sampler: { current: LockSampler | undefined } = { current: undefined };
  const engine = new MigrationEngine(pending, ctx.work.client, newRunId(), { log: () => {} }, async (client) => sampler.current?.lookFromInside(client));
  const schemaBefore: string[] = [];
  const dataBefore: Fingerprint[] = [];
  let applied = 0;
  for (const revision of pending) {
    schemaBefore.push(await normalisedSchema(ctx.tools.pgDump, ctx.params, ctx.setup.env));
    dataBefore.push(await allTables(ctx.work.client));
    const run = await step(ctx, engine, sampler, revision, 'up');
    const message = run.error ?? (await healthAfter(ctx));
    cases.push({ revision: revision.name, direction: 'up', ok: message === undefined, durationMs: run.durationMs, warnings: [], locks: run.locks, ...(message ? { message } : {}) });
    if (message !== undefined) return cases;
    applied++;
  }
  let later: AfterDown | undefined;
  for (let index = applied - 1; index >= 0; index--) {
    const revision = pending[index]!;
    if (!(await isReversible(revision))) {
      cases.push({ revision: revision.name, direction: 'down', ok: false, durationMs: 0, warnings: [], locks: [], message: 'it has no down: it cannot be rolled back' });
      return cases;
    }
    const run = await step(ctx, engine, sampler, revision, 'down');
    const verdict: RehearsalCase = { revision: revision.name, direction: 'down', ok: true, durationMs: run.durationMs, warnings: [], locks: run.locks };
    cases.push(verdict);
    if (run.error) {
      Object.assign(verdict, { ok: false, message: run.error });
      return cases;
    }
    const now: AfterDown = {
      revision: revision.name,
      schemaBefore: schemaBefore[index]!,
      schema: await normalisedSchema(ctx.tools.pgDump, ctx.params, ctx.setup.env),
      dataBefore: dataBefore[index]!,
      data: await allTables(ctx.work.client),
    };
    judgeDown(verdict, now, later);
    later = now;
  }
  for (const revision of pending.slice(0, applied)) {
    const run = await step(ctx, engine, sampler, revision, 'up');
    cases.push({ revision: revision.name, direction: 'reapply', ok: run.error === undefined, durationMs: run.durationMs, warnings: [], locks: run.locks, ...(run.error ? { message: run.error } : {}) });
    if (run.error) break;
  }
  return cases;
}

/** `belay rehearse`: the whole cycle on a throwaway database, never the real one. */
export async function runRehearse(setup: RunSetup, options: RehearseOptions): Promise<RehearsalReport> {
  if (options.seed && options.fromBackup) throw usageError('--seed and --from-backup exclude each other', { hint: 'Load either a seed or a snapshot.' });
  const revisions = await discoverRevisions(setup.config.migrationsDir);
  const names = revisions.map((r) => r.name);
  const backup = options.fromBackup === undefined ? undefined : await findSnapshot(setup.config.backupsDir, options.fromBackup);
  let from: string | null;
  if (backup) from = backup.revision;
  else if (options.from !== undefined) from = resolveRevisionName(options.from, names, '--from');
  else from = options.server ? await connectedRevision(setup, options.server, revisions) : null;
  const setupStarted = performance.now();
  const throwaway: Throwaway = options.server ? await throwawayDatabase(options.server, options.template) : await ephemeralCluster(setup.pgSearch.pgBin, setup.pgSearch.path);
  let work: Session | undefined;
  let observer: Session | undefined;
  let report: RehearsalReport;
  let teardownMs = 0;
  try {
    work = await openSession(throwaway.params, sessionOptions(setup, 'belay rehearse'));
    observer = await openSession(throwaway.params, sessionOptions(setup, 'belay rehearse locks'));
    const tools = await resolveBackupTools({ search: setup.pgSearch, serverMajor: Math.floor(work.serverVersionNum / 10000) });
    const ctx: Context = { setup, work, observer, tools, params: throwaway.params, revisions };
    const setupMs = Math.round(performance.now() - setupStarted);
    const seedStarted = performance.now();
    if (backup) {
      await restoreSnapshotInto(backup, throwaway.params, { tools, env: setup.env, jobs: 1, clean: false, privileges: false, signal: setup.signal });
    }
    await ensureBelaySchema(work.client);
    const fromIndex = from === null ? -1 : names.indexOf(from);
    const buildStarted = performance.now();
    if (!backup && fromIndex >= 0) {
      const build = new MigrationEngine(revisions.slice(0, fromIndex + 1), work.client, newRunId(), { log: () => {} });
      for (const revision of revisions.slice(0, fromIndex + 1)) await build.up(revision.name);
    }
    const buildMs = backup ? 0 : Math.round(performance.now() - buildStarted);
    if (options.seed) await loadSeed(ctx, options.seed);
    const seedMs = Math.round(performance.now() - seedStarted);
    const cycleStarted = performance.now();
    const cases = await cycle(ctx, revisions.slice(fromIndex + 1));
    const ok = cases.every((c) => c.ok);
    report = {
      ok,
      exitCode: ok ? EXIT.ok : EXIT.rolledBack,
      where: throwaway.where,
      from,
      data: backup ? `snapshot ${backup.id}` : options.seed ? `seed ${options.seed}` : 'no data',
      revisions: revisions.slice(fromIndex + 1).map((r) => r.name),
      cases,
      timings: { setupMs, seedMs, buildMs, dataMs: seedMs - buildMs, cycleMs: Math.round(performance.now() - cycleStarted), teardownMs: 0 },
    };
  } finally {
    await work?.close();
    await observer?.close();
    const teardownStarted = performance.now();
    await throwaway.dispose();
    teardownMs = Math.round(performance.now() - teardownStarted);
  }
  report.timings.teardownMs = teardownMs;
  if (options.junit) await writeFile(options.junit, toJunit(report));
  if (options.markdown) await writeFile(options.markdown, toMarkdown(report));
  return report;
}
