import { access, constants, open, readFile, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ClientBase } from 'pg';
import { findSnapshot } from '../backup/snapshot-store.js';
import { resolveBackupTools } from '../backup/pg-tools.js';
import { restoreSnapshotInto } from '../backup/restore-snapshot.js';
import { libpqChildEnv, type ConnectionParams } from '../db/connection.js';
import { ensureBelaySchema } from '../db/belay-schema.js';
import { openSession } from '../db/session.js';
import { BelayError, EXIT, errorMessage, usageError } from '../errors.js';
import { writeProblem } from '../unreadable.js';
import { applicationChecks, healthChecksFromConfig } from '../health/build-checks.js';
import type { HealthCheck } from '../health/check.js';
import { runHealthChecks } from '../health/run-health.js';
import { runShellCommand } from '../health/shell-command.js';
import { SchemaTracker, type SchemaDescription } from '../integrity/schema-digest.js';
import { captureStructure, type StructureBaseline } from '../integrity/structural.js';
import { discoverRevisions } from '../migrations/discover.js';
import { MigrationEngine } from '../migrations/engine.js';
import { resolveRevisionOrStart } from '../migrations/resolve-name.js';
import { RevisionFailedError } from '../migrations/revision-error.js';
import { isReversible, prepareStep } from '../migrations/run-revision.js';
import type { Revision } from '../migrations/revision.js';
import { copyHead, splitSql } from '../migrations/split-sql.js';
import { newRunId } from '../journal/run-id.js';
import { ClusterWatch, clusterChanges, type ClusterChange, type ClusterState } from '../rehearse/cluster-state.js';
import { DataTracker } from '../rehearse/data-tracker.js';
import { judgeDown, type StateSeen } from '../rehearse/judge-down.js';
import { LockSampler, type TableLock } from '../rehearse/lock-sampler.js';
import type { RehearsalCase, RehearsalReport } from '../rehearse/report.js';
import { toJunit, toMarkdown } from '../rehearse/report.js';
import { buildFault, interrupted, leftOnServer, noVerdictOnStep, notRemoved, rehearsalFault, removalCut, startFault } from '../rehearse/fault.js';
import { ephemeralCluster, throwawayDatabase, unnamedThrowaway, type Throwaway } from '../rehearse/throwaway.js';
import { Workspace } from '../rehearse/workspace.js';
import { prepareAhead } from '../rehearse/prepare-ahead.js';
import { readDatabaseState, type DatabaseState } from './session/database-state.js';
import { assertPreflight, checkDrift, checkMissing } from './steps/preflight.js';
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
  space: Workspace;
  watch: ClusterWatch;
}

/**
 * A start whose record of applied revisions does not match their files
 * (drift, or files missing) is refused as `migrate up` refuses it: the
 * throwaway would hold another schema than the database it stands for, and
 * a pass there would say nothing of the run that database would refuse.
 */
function assertStartMatchesDisk(state: DatabaseState, start: string): void {
  assertPreflight([checkDrift(state), checkMissing(state)], `${start} cannot be rehearsed from; nothing was rehearsed`);
}

/** Where the connected database stands: the default starting point. */
async function connectedRevision(setup: RunSetup, server: ConnectionParams, revisions: Revision[]): Promise<string | null> {
  const session = await openSession(server, sessionOptions(setup, 'belay rehearse probe'));
  try {
    const state = await readDatabaseState(session.client, revisions);
    assertStartMatchesDisk(state, 'the connected database');
    return state.currentOnDisk;
  } finally {
    await session.close();
  }
}

/** Whether the step runs in one transaction; one that cannot even be prepared fails in the engine, which says why. */
const inTransaction = (revision: Revision, direction: 'up' | 'down'): Promise<boolean> =>
  prepareStep(revision, direction).then(
    (step) => step.transactional,
    () => false,
  );

type SqlStatements = ReturnType<typeof splitSql>['statements'];

/** An .sql seed's statements, read and checked before anything is started: a seed that cannot be loaded costs no throwaway. */
async function readSqlSeed(file: string): Promise<SqlStatements> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw usageError(`cannot read the seed ${file}: ${error.code ?? error.message}`, { hint: 'Name a seed file this user can read (--seed FILE), or leave --seed out.', cause: error });
  });
  const { statements, metaCommands, copyData } = splitSql(text);
  const meta = metaCommands[0];
  const copy = copyData[0];
  if (meta || copy) {
    const what =
      copy && (!meta || copy.line < meta.line)
        ? `line ${copy.line}: \`${copyHead(copy)}\` is followed by data that only psql can send`
        : `line ${meta!.line}: psql command \`${meta!.text.slice(0, 40)}\` is not SQL`;
    throw usageError(`seed ${file} ${what}`, {
      hint: 'Make the seed a script that runs psql (it gets the throwaway database in PG* variables), or use --from-backup with a pg_dump snapshot.',
    });
  }
  return statements;
}

/** A script seed, checked before anything is started: a seed that cannot be run costs no throwaway. */
async function assertRunnableSeed(file: string): Promise<void> {
  await access(file, constants.X_OK).catch((error: NodeJS.ErrnoException) => {
    throw usageError(`cannot run the seed script ${file}: ${error.code ?? error.message}`, {
      hint: 'Name a script this user can run (chmod +x, with a #! line), or an .sql file (--seed FILE), or leave --seed out.',
      cause: error,
    });
  });
}

async function loadSeed(ctx: Context, file: string, statements: SqlStatements | undefined): Promise<void> {
  if (statements) {
    for (const statement of statements) {
      await ctx.space.work.client.query(statement.text).catch((error: unknown) => {
        throw usageError(`seed ${file} line ${statement.line}: ${errorMessage(error)}`, {
          hint: 'Fix the seed (it runs after the revisions --from names are applied, against the throwaway database); nothing real was touched.',
          cause: error,
        });
      });
    }
    return;
  }
  // a script: it reaches the throwaway database through PG* variables and a private passfile
  const { env, extraFds, cleanup } = await libpqChildEnv(ctx.space.params, ctx.setup.env, 'belay rehearse seed');
  try {
    // the file itself, run as a program: its path is one word, whatever it holds (a space), and found from the working folder
    const outcome = await runShellCommand('exec "$0"', env, ctx.setup.secrets, 3600, ctx.setup.signal, extraFds, [resolve(file)]);
    if (outcome.exitCode !== 0) {
      throw usageError(`seed script ${file} failed (exit ${outcome.exitCode}): ${outcome.outputTail}`, { hint: 'Run the seed script by hand against a scratch database and fix it; nothing real was touched.' });
    }
  } finally {
    await cleanup();
  }
}

/** Both at once (each on its own connection); both settled before the first error is thrown, so neither still runs. */
async function settled<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [x, y] = await Promise.allSettled([a, b]);
  if (x.status === 'rejected') throw x.reason;
  if (y.status === 'rejected') throw y.reason;
  return [x.value, y.value];
}

/** The checks `migrate up` runs before and after a change that look at the database: the structure, the SQL checks, the invariants. */
function databaseChecks(setup: RunSetup, structure?: StructureBaseline): HealthCheck[] {
  const { health, integrity } = setup.config;
  return healthChecksFromConfig(health, setup.secrets, { structure, scope: 'database', invariants: integrity.mode === 'off' ? [] : integrity.invariants });
}

/**
 * The checks that already fail on the database the first up runs on, before
 * any revision: held against none (each up that still fails them names them
 * in its warnings), so that a failure is blamed on the up that causes it. A
 * rehearsal does not refuse there as `migrate up` does: from scratch, a check
 * on a table a revision makes fails until that revision, and the seed is
 * not what is rehearsed. Structure is judged against the state before each
 * up anyway.
 */
async function healthBaseline(setup: RunSetup, client: ClientBase): Promise<Set<string>> {
  const { health } = setup.config;
  const report = await runHealthChecks(databaseChecks(setup), { client, env: setup.env, signal: setup.signal }, { timeoutSeconds: 0, intervalSeconds: health.intervalSeconds, attemptSeconds: health.timeoutSeconds });
  return new Set(report.results.filter((r) => !r.ok && r.kind !== 'structural').map((r) => r.name));
}

interface StepRun {
  durationMs: number;
  locks: TableLock[];
  /** The server's roles, slots, … before and after the step, and what the step changed of them. */
  cluster: { before: ClusterState; after: ClusterState; changed: ReadonlySet<string> };
  error?: string;
  /** The failure happened outside a transaction: what it did before failing stays. */
  halfway?: boolean;
}

/**
 * The cycle, one revision at a time, each judged alone:
 *
 *   up       on the state its predecessors left, then the same checks
 *            `migrate up` runs after a change (structure against the state
 *            right before the up, the configured SQL checks, the invariants);
 *   down     right after its own up, judged against the schema and data
 *            from right before the up;
 *   reapply  the up again right after its own down (a down that does not
 *            undo what its up needs makes it fail).
 *
 * A bad down (or a failed reapply) leaves the database dirty: it is then
 * rebuilt to the state right after the revision's up, so that nothing it
 * left behind is met, or blamed, by a later revision. A down that errors is
 * recorded and the cycle goes on. Only a failed up (or one its checks
 * reject) stops it: every later revision builds on it, and is reported
 * skipped.
 */
class Cycle {
  readonly cases: RehearsalCase[] = [];
  private readonly data = new DataTracker();
  private readonly schema = new SchemaTracker();
  /** The sampler of the step running now. */
  private sampler: LockSampler | undefined;
  private engine: MigrationEngine;

  constructor(
    private readonly ctx: Context,
    private readonly pending: Revision[],
    /** The checks failing before the first revision: not held against any revision. */
    private readonly tolerated: ReadonlySet<string>,
  ) {
    this.engine = this.newEngine();
  }

  private newEngine(): MigrationEngine {
    return new MigrationEngine(
      this.pending,
      this.ctx.space.work.client,
      newRunId(),
      { log: () => {} },
      async (client) => {
        if (this.sampler) this.data.noteLocks(await this.sampler.lookFromInside(client));
        await this.ctx.watch.lookInside(client);
      },
      { trackDowns: true },
    );
  }

  /**
   * The schema now: as the engine described it inside the last step's
   * transaction (an up's or a down's, before it committed), else described
   * from the observer's connection.
   */
  private async schemaNow(): Promise<SchemaDescription> {
    return this.engine.describedSchema() ?? (await this.schema.describe(this.ctx.space.observer.client));
  }

  private get client(): ClientBase {
    return this.ctx.space.work.client;
  }

  /** Run one revision in one direction, sampling its locks; the error, if any, is returned. */
  private async step(revision: Revision, direction: 'up' | 'down'): Promise<StepRun> {
    // runRehearse reports a signal, once the throwaway is removed
    this.ctx.setup.signal?.throwIfAborted();
    const { result, ...cluster } = await this.ctx.watch.around(await inTransaction(revision, direction), () => this.sampledStep(revision, direction));
    return { ...result, cluster };
  }

  private async sampledStep(revision: Revision, direction: 'up' | 'down'): Promise<Omit<StepRun, 'cluster'>> {
    const lockSampler = new LockSampler(this.ctx.space.observer.client, this.ctx.space.work.backendPid);
    this.sampler = lockSampler;
    lockSampler.start();
    const started = performance.now();
    let error: string | undefined;
    let halfway = false;
    try {
      await (direction === 'up' ? this.engine.up(revision.name) : this.engine.down(revision.name));
    } catch (caught) {
      // a statement cancelled by a signal, or failed by its server, is no verdict on the revision
      if (noVerdictOnStep(caught) || this.ctx.setup.signal?.aborted) {
        await lockSampler.stop().catch(() => {});
        throw caught;
      }
      error = errorMessage(caught);
      halfway = caught instanceof RevisionFailedError && !caught.failure.transactional;
      if (halfway) this.data.forgetAll();
    }
    const durationMs = Math.round(performance.now() - started);
    const locks = await lockSampler.stop();
    this.sampler = undefined;
    return error === undefined ? { durationMs, locks } : { durationMs, locks, error, halfway };
  }

  /**
   * The state now: the schema described on the observer's connection (idle
   * between steps) while the work connection fingerprints the data. Nothing
   * changes the database meanwhile: both see the last step's commit.
   */
  private async seen(): Promise<StateSeen> {
    const [schema, data] = await settled(this.schemaNow(), this.data.fingerprint(this.client));
    return { schema, data };
  }

  /** The state before an up, and its structure baseline (read on the work connection after the data), all at once as in seen(). */
  private async seenBeforeUp(): Promise<{ before: StateSeen; structure: StructureBaseline }> {
    const [schema, [data, structure]] = await settled(
      this.schemaNow(),
      (async () => [await this.data.fingerprint(this.client), await captureStructure(this.client)] as const)(),
    );
    return { before: { schema, data }, structure };
  }

  /** The checks `migrate up` runs after a change, those that look at the database, once (nothing here changes by waiting). */
  private async health(structure: StructureBaseline): Promise<{ failure?: string; warnings: string[] }> {
    const { health } = this.ctx.setup.config;
    const checks = databaseChecks(this.ctx.setup, structure);
    const report = await runHealthChecks(checks, { client: this.client, env: this.ctx.setup.env, signal: this.ctx.setup.signal }, { timeoutSeconds: 0, intervalSeconds: health.intervalSeconds, attemptSeconds: health.timeoutSeconds, tolerate: this.tolerated });
    // a configured query is the user's SQL, which may change the schema where the next step's transaction cannot see it
    if (checks.some((check) => check.kind === 'sql')) this.engine.forgetSchema();
    const failing = report.results.filter((r) => !r.ok);
    const held = failing.filter((r) => !this.tolerated.has(r.name));
    const warnings = failing.filter((r) => this.tolerated.has(r.name)).map((r) => `${r.name} fails, as before the first revision: ${r.evidence}`);
    if (report.healthy) return { warnings };
    return { failure: `health failed after the up: ${held.map((r) => `${r.name}: ${r.evidence}`).join('; ')}`, warnings };
  }

  private record(revision: Revision, direction: RehearsalCase['direction'], started: number, run: StepRun | undefined, outcome: { failure?: string; skipped?: string; warnings?: string[]; diff?: string }): RehearsalCase {
    const status = outcome.failure !== undefined ? 'failed' : outcome.skipped !== undefined ? 'skipped' : 'passed';
    const message = outcome.failure ?? outcome.skipped;
    const entry: RehearsalCase = {
      revision: revision.name,
      direction,
      status,
      ok: status !== 'failed',
      durationMs: run?.durationMs ?? 0,
      wallMs: Math.round(performance.now() - started),
      warnings: outcome.warnings ?? [],
      locks: run?.locks ?? [],
      ...(message !== undefined ? { message } : {}),
      ...(outcome.diff !== undefined ? { diff: outcome.diff } : {}),
    };
    this.cases.push(entry);
    return entry;
  }

  private skip(revision: Revision, directions: RehearsalCase['direction'][], why: string): void {
    for (const direction of directions) this.record(revision, direction, performance.now(), undefined, { skipped: why });
  }

  /** Back to the state right after `index`'s up, on a fresh copy. */
  private async rebuildAfter(index: number): Promise<void> {
    this.ctx.watch.forget();
    await this.ctx.space.rebuildAfter(this.pending, index);
    this.engine = this.newEngine();
    this.data.forgetAll();
  }

  async run(): Promise<void> {
    let stop: string | undefined;
    for (const [index, revision] of this.pending.entries()) {
      if (stop !== undefined) {
        this.skip(revision, ['up', 'down', 'reapply'], stop);
        continue;
      }
      stop = await this.revision(index, revision);
    }
  }

  /** A case as a step shown while it runs (`+ 0003_x .. ok`, `- 0003_x .. failed`): its verdict is the step's outcome. */
  private shown<T extends { entry: RehearsalCase }>(step: 'apply' | 'down', revision: Revision, work: () => Promise<T>, subject?: string): Promise<T> {
    return this.ctx.setup.events.judged({ step, revision: revision.name, ...(subject ? { subject } : {}) }, work, ({ entry }) => ({ ok: entry.ok }));
  }

  /** One revision's up, down and reapply; answers why the rest cannot be tried, when it cannot. */
  private async revision(index: number, revision: Revision): Promise<string | undefined> {
    const upStarted = performance.now();
    const { before, structure } = await this.seenBeforeUp();
    const upFailed = `not tried: the up of ${revision.name} failed, and every later revision builds on it`;
    const up = await this.shown('apply', revision, async () => {
      const run = await this.step(revision, 'up');
      if (run.error !== undefined) return { run, stops: true, entry: this.record(revision, 'up', upStarted, run, { failure: run.error }) };
      const checked = await this.health(structure);
      return { run, stops: checked.failure !== undefined, entry: this.record(revision, 'up', upStarted, run, checked) };
    });
    if (up.run.error !== undefined) {
      this.skip(revision, ['down', 'reapply'], 'its up failed');
      return upFailed;
    }
    // migrate up stops at an up its checks reject, taking it down: its down is judged, no later revision is
    const stop = up.stops ? upFailed : undefined;

    const downStarted = performance.now();
    if (!(await isReversible(revision))) {
      this.record(revision, 'down', downStarted, undefined, { failure: 'it has no down: it cannot be rolled back' });
      this.skip(revision, ['reapply'], 'it has no down');
      return stop;
    }
    const down = await this.shown('down', revision, async () => {
      const run = await this.step(revision, 'down');
      if (run.error !== undefined) return { run, entry: this.record(revision, 'down', downStarted, run, { failure: run.error }) };
      const verdict = judgeDown(before, await this.seen());
      // what only a drop of the whole server would remove: the throwaway's removal leaves it on the real one
      const left = clusterChanges(up.run.cluster.before, run.cluster.after, new Set([...up.run.cluster.changed, ...run.cluster.changed]));
      if (left.length > 0) verdict.failures.push(`the down left ${left.map((change) => change.said).join(', ')} on the server`);
      const entry = this.record(revision, 'down', downStarted, run, {
        ...(verdict.failures.length > 0 ? { failure: verdict.failures.join('; ') } : {}),
        warnings: verdict.warnings,
        ...(verdict.diff !== undefined ? { diff: verdict.diff } : {}),
      });
      return { run, entry };
    });
    if (down.run.error !== undefined) {
      this.skip(revision, ['reapply'], 'its down failed, so its up cannot be tried again');
      // a transaction rolled back leaves the state right after the up; a failure halfway does not
      if (down.run.halfway && stop === undefined) return await this.rebuildOrStop(index, revision);
      return stop;
    }

    const reapplyStarted = performance.now();
    const reapply = await this.shown(
      'apply',
      revision,
      async () => {
        const run = await this.step(revision, 'up');
        return { run, entry: this.record(revision, 'reapply', reapplyStarted, run, run.error === undefined ? {} : { failure: `the up fails after its own down: ${run.error}` }) };
      },
      'reapply',
    );
    if (stop !== undefined || (down.entry.ok && reapply.run.error === undefined)) return stop;
    const rebuilt = await this.rebuildOrStop(index, revision);
    reapply.entry.wallMs = Math.round(performance.now() - reapplyStarted);
    return rebuilt;
  }

  private async rebuildOrStop(index: number, revision: Revision): Promise<string | undefined> {
    try {
      await this.rebuildAfter(index);
      return undefined;
    } catch (error) {
      return `not tried: the state right after ${revision.name} could not be rebuilt to go on (${errorMessage(error)})`;
    }
  }
}

interface Plan {
  revisions: Revision[];
  backup: Awaited<ReturnType<typeof findSnapshot>> | undefined;
  /** The revision the cycle starts after (null: from an empty database), and its index (-1). */
  from: string | null;
  fromIndex: number;
}

async function plan(setup: RunSetup, options: RehearseOptions): Promise<Plan> {
  const revisions = await discoverRevisions(setup.config.migrationsDir);
  const names = revisions.map((r) => r.name);
  const backup = options.fromBackup === undefined ? undefined : await findSnapshot(setup.config.backupsDir, options.fromBackup);
  let from: string | null;
  if (backup) {
    from = backup.revision;
    // the snapshot brings its own revision: a --from that names another one would be silently ignored
    if (options.from !== undefined && resolveRevisionOrStart(options.from, names, '--from') !== from) {
      throw usageError(`--from ${options.from} is not where --from-backup ${options.fromBackup} starts: snapshot ${backup.id} is at ${from ?? 'no revision'}`, {
        hint: 'Leave --from out (or name the snapshot\'s own revision), or leave --from-backup out to build to --from. Nothing was rehearsed.',
      });
    }
  } else if (options.from !== undefined) from = resolveRevisionOrStart(options.from, names, '--from');
  else from = options.server ? await connectedRevision(setup, options.server, revisions) : null;
  const fromIndex = from === null ? -1 : names.indexOf(from);
  // the files are read and the modules loaded beside what follows (starting the throwaway, the build)
  void prepareAhead(backup ? [] : revisions.slice(0, fromIndex + 1), revisions.slice(fromIndex + 1));
  return { revisions, backup, from, fromIndex };
}

/**
 * The plan, and the throwaway to rehearse it on. An ephemeral cluster takes
 * a second to start, most of it in initdb and pg_ctl: it starts first, and
 * the revisions are read and loaded meanwhile; it is removed again when they
 * cannot be. A throwaway database on the connected server is made once the
 * plan stands (its starting revision may come from that server).
 */
async function planAndStart(setup: RunSetup, options: RehearseOptions, teardown: Teardown): Promise<{ plan: Plan; throwaway: Throwaway; setupStarted: number }> {
  const { server } = options;
  if (server) {
    const planned = await plan(setup, options);
    const setupStarted = performance.now();
    return { plan: planned, throwaway: await teardown.make(() => throwawayDatabase(server, options.template)), setupStarted };
  }
  const setupStarted = performance.now();
  const starting = teardown.make(() => ephemeralCluster(setup.pgSearch.pgBin, setup.pgSearch.path));
  // handled at once: it may fail while the plan is still being read
  starting.catch(() => {});
  let planned: Plan;
  try {
    planned = await plan(setup, options);
  } catch (error) {
    // the plan's own error is what the user needs; a cluster that could not be removed as well is named with it
    const throwaway = await starting.catch(() => undefined);
    const leftBehind = await throwaway?.dispose().then(
      () => undefined,
      (removal: unknown) => ({ error: removal }),
    );
    throw throwaway && leftBehind ? rehearsalFault(error, throwaway, leftBehind) : error;
  }
  return { plan: planned, throwaway: await starting, setupStarted };
}

const reportHint = (flag: string): string => `Point ${flag} at a file in a folder the user running belay can write.`;

/** A report that could not be written is found out before the rehearsal, not after it. */
async function assertWritable(flag: string, file: string): Promise<void> {
  try {
    // opened for appending, as the report will be (a permission check alone passes where root may not create the
    // file: /proc, a read-only mount); one that was not there is removed again
    const existed = await access(file).then(() => true, () => false);
    await (await open(file, 'a')).close();
    if (!existed) await rm(file, { force: true });
  } catch (error) {
    throw usageError(`cannot write the ${flag} report ${file}: ${writeProblem(error)}; nothing was rehearsed`, { hint: reportHint(flag), cause: error });
  }
}

async function writeReport(flag: string, file: string, text: string): Promise<void> {
  try {
    await writeFile(file, text);
  } catch (error) {
    throw usageError(`the rehearsal ran, but its ${flag} report ${file} could not be written: ${writeProblem(error)}`, { hint: reportHint(flag), cause: error });
  }
}

/**
 * What the rehearsal's steps left on the real server beside the throwaway
 * (a role, a slot, a role's setting: its removal would not remove them), once
 * the downs of the revisions applied there (`ranHere`: those whose ups it ran)
 * are run, newest first, up to one that fails. Only what its own steps
 * changed is counted: other clients of the server change it meanwhile.
 */
async function revertOnServer(ctx: Context, ranHere: Revision[], start: ClusterState): Promise<ClusterChange[]> {
  const { watch } = ctx;
  if (clusterChanges(start, await watch.read(), watch.touched).length === 0) return [];
  const { client } = ctx.space.work;
  const applied = new Set((await readDatabaseState(client, ranHere)).applied.map((row) => row.name));
  const engine = new MigrationEngine(ranHere, client, newRunId(), { log: () => {} }, (session) => watch.lookInside(session));
  for (const revision of ranHere.filter((r) => applied.has(r.name)).reverse()) {
    ctx.setup.signal?.throwIfAborted();
    if (!(await isReversible(revision))) break;
    const { result: reverted, after } = await watch.around(await inTransaction(revision, 'down'), () => engine.down(revision.name).then(() => true, () => false));
    if (!reverted || clusterChanges(start, after, watch.touched).length === 0) break;
  }
  return clusterChanges(start, await watch.read(), watch.touched);
}

/** The rehearsal itself, on a throwaway that was made: build, data, the cycle. */
async function rehearseOn(setup: RunSetup, options: RehearseOptions, { revisions, backup, from, fromIndex }: Plan, seedSql: SqlStatements | undefined, throwaway: Throwaway, space: Workspace, setupStarted: number): Promise<RehearsalReport> {
  setup.signal?.throwIfAborted();
  await space.connect();
  const ctx: Context = { setup, space, watch: new ClusterWatch(() => space.observer.client, options.server !== undefined) };
  const start = await ctx.watch.read();
  const setupMs = Math.round(performance.now() - setupStarted);
  const seedStarted = performance.now();
  if (backup) {
    const tools = await resolveBackupTools({ search: setup.pgSearch, serverMajor: Math.floor(space.work.serverVersionNum / 10000) });
    await setup.events.step({ step: 'restore', subject: backup.id }, () => restoreSnapshotInto(backup, throwaway.params, { tools, env: setup.env, jobs: 1, clean: false, privileges: false, signal: setup.signal }));
  }
  await ensureBelaySchema(space.work.client);
  if (backup) assertStartMatchesDisk(await readDatabaseState(space.work.client, revisions), `snapshot ${backup.id}`);
  else if (options.template !== undefined) assertStartMatchesDisk(await readDatabaseState(space.work.client, revisions), `template ${options.template}`);
  const buildStarted = performance.now();
  if (!backup && fromIndex >= 0) {
    const build = new MigrationEngine(revisions.slice(0, fromIndex + 1), space.work.client, newRunId(), { log: () => {} }, (session) => ctx.watch.lookInside(session));
    for (const revision of revisions.slice(0, fromIndex + 1)) {
      const transactional = await inTransaction(revision, 'up');
      await setup.events.step({ step: 'apply', revision: revision.name, subject: 'build' }, () => ctx.watch.around(transactional, () => build.up(revision.name))).catch((error: unknown) => {
        throw buildFault(error, revisions[fromIndex]!.name);
      });
    }
  }
  const buildMs = backup ? 0 : Math.round(performance.now() - buildStarted);
  const { seed } = options;
  if (seed) await ctx.watch.around(false, () => loadSeed(ctx, seed, seedSql));
  const seedMs = Math.round(performance.now() - seedStarted);
  const cycleStarted = performance.now();
  const pending = revisions.slice(fromIndex + 1);
  const tolerated = pending.length > 0 ? await healthBaseline(setup, space.work.client) : new Set<string>();
  // a start with nothing in it (no template, build or data) is made again if ever needed; any other is copied now
  if (pending.length > 0 && !options.template && !backup && fromIndex < 0 && !options.seed) space.startsFresh();
  else if (pending.length > 0) await space.keepStart();
  const cycle = new Cycle(ctx, pending, tolerated);
  await cycle.run();
  // an ephemeral cluster goes with everything on it
  const left = options.server ? await revertOnServer(ctx, backup ? pending : revisions, start) : [];
  const ok = cycle.cases.every((c) => c.ok);
  return {
    ok,
    exitCode: ok ? EXIT.ok : EXIT.rolledBack,
    where: throwaway.where,
    from,
    data: backup ? `snapshot ${backup.id}` : options.seed ? `seed ${options.seed}` : 'no data',
    revisions: pending.map((r) => r.name),
    cases: cycle.cases,
    checksNotRun: applicationChecks(setup.config.health),
    orphans: throwaway.orphans,
    leftOnServer: left,
    timings: { setupMs, seedMs, buildMs, dataMs: seedMs - buildMs, cycleMs: Math.round(performance.now() - cycleStarted), teardownMs: 0 },
  };
}

/** The throwaway from when it is being made: what a second signal removes at once, while the rehearsal still runs on it. */
class Teardown {
  private making: Promise<Throwaway | undefined> | undefined;
  private made: Throwaway | undefined;
  private stopping: Promise<BelayError> | undefined;
  /** What the removal at once reported, once it ended. */
  private stopped: BelayError | undefined;

  /** `unnamed`: the throwaway as a fault names it before it is made. */
  constructor(private readonly unnamed: Pick<Throwaway, 'where' | 'left' | 'removeByHand'>) {}

  make(start: () => Promise<Throwaway>): Promise<Throwaway> {
    if (this.stopping) return Promise.reject(new Error('the rehearsal is being stopped'));
    const starting = start();
    // one that could not be made removed itself
    this.making = starting.then(
      (throwaway) => (this.made = throwaway),
      () => undefined,
    );
    return starting;
  }

  /** Remove the throwaway now (its sessions ended, or its cluster stopped), waiting for it to be made if it is being made: what to report. */
  removeAtOnce(by: string): Promise<BelayError> {
    this.stopping ??= (async () => {
      const throwaway = await this.making;
      const leftBehind = await throwaway?.dispose().then(
        () => undefined,
        (error: unknown) => ({ error }),
      );
      return (this.stopped = interrupted(by, throwaway, leftBehind));
    })();
    return this.stopping;
  }

  /** What to report when the removal at once is not waited for: what it reported, once it ended, else what it may leave. */
  leftAsIs(by: string): BelayError {
    return this.stopped ?? removalCut(by, this.made ?? this.unnamed, this.made !== undefined);
  }
}

/** `belay rehearse`: the whole cycle on a throwaway database, never the real one. */
export async function runRehearse(setup: RunSetup, options: RehearseOptions): Promise<RehearsalReport> {
  if (options.seed && options.fromBackup) throw usageError('--seed and --from-backup exclude each other', { hint: 'Load either a seed or a snapshot.' });
  if (options.template !== undefined && !options.server) {
    throw usageError(`--template ${options.template} copies a database of the connected server, and there is none: with no connection settings (or --embedded) the rehearsal makes an ephemeral cluster of its own, which holds no such database; nothing was rehearsed`, {
      hint: 'Point belay at the server that holds the template (--database-url, DATABASE_URL or the PG* variables), or leave --template out.',
    });
  }
  for (const [flag, file] of [['--junit', options.junit], ['--markdown', options.markdown]] as const) if (file) await assertWritable(flag, file);
  const seedSql = options.seed?.endsWith('.sql') ? await readSqlSeed(options.seed) : undefined;
  if (options.seed && !seedSql) await assertRunnableSeed(options.seed);
  const teardown = new Teardown(unnamedThrowaway(options.server));
  setup.onRun?.({ abandon: (reason) => ({ state: 'removing', outcome: teardown.removeAtOnce(reason), leftAsIs: (by) => teardown.leftAsIs(by) }) });
  const { plan: planned, throwaway, setupStarted } = await planAndStart(setup, options, teardown).catch((error: unknown) => {
    throw startFault(error);
  });
  const space = new Workspace(throwaway, throwaway.params, (params, name) => openSession(params, sessionOptions(setup, name)));
  // nothing real runs there: a signal cancels what runs now instead of waiting for it
  const cancel = (): void => void throwaway.cancel().catch(() => {});
  setup.signal?.addEventListener('abort', cancel, { once: true });
  const rehearsed = await rehearseOn(setup, options, planned, seedSql, throwaway, space, setupStarted).then(
    (report) => ({ report }),
    (error: unknown) => ({ error }),
  );
  setup.signal?.removeEventListener('abort', cancel);
  await space.close().catch(() => {});
  const teardownStarted = performance.now();
  const leftBehind = await throwaway.dispose().then(
    () => undefined,
    (error: unknown) => ({ error }),
  );
  const teardownMs = Math.round(performance.now() - teardownStarted);
  // what a cancelled statement made fail is no verdict
  if (setup.signal?.aborted) throw interrupted('a signal', throwaway, leftBehind);
  if ('error' in rehearsed) throw rehearsalFault(rehearsed.error, throwaway, leftBehind);
  const { report } = rehearsed;
  report.timings.teardownMs = teardownMs;
  // a verdict was reached: CI gets its reports even when the throwaway stays behind (exit 12 then)
  const unwritten = await writeReports(options, report);
  if (report.leftOnServer.length > 0) throw leftOnServer(report, throwaway, leftBehind, unwritten);
  if (leftBehind) throw notRemoved(report, throwaway, leftBehind.error, unwritten);
  if (unwritten[0]) throw unwritten[0];
  return report;
}

/** Each report asked for, the one that cannot be written not keeping the other from it: the failures. */
async function writeReports(options: RehearseOptions, report: RehearsalReport): Promise<unknown[]> {
  const reports = [
    ['--junit', options.junit, toJunit],
    ['--markdown', options.markdown, toMarkdown],
  ] as const;
  const failures: unknown[] = [];
  for (const [flag, file, render] of reports) {
    if (file) await writeReport(flag, file, render(report)).catch((error: unknown) => failures.push(error));
  }
  return failures;
}
