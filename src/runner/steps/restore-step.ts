import type { ClientBase } from 'pg';
import { rowsOf, type Manifest } from '../../backup/manifest.js';
import { resolveBackupTools, type BackupTools } from '../../backup/pg-tools.js';
import { takeSnapshot } from '../../backup/take-snapshot.js';
import { checkSnapshotDigest, restoreSnapshotInto } from '../../backup/restore-snapshot.js';
import { ExactRestore } from '../../backup/exact-restore.js';
import { archiveCatalog, archiveExtensions, archiveOwners, type ArchiveContents } from '../../backup/archive-catalog.js';
import { withDatabase, type ConnectionParams } from '../../db/connection.js';
import {
  createDatabaseLike,
  databaseExists,
  databaseOwner,
  databaseGrants,
  databaseProperties,
  databaseSettings,
  derivedName,
  dropDatabase,
  MAINTENANCE_DATABASES,
  renameDatabase,
  setAllowConnections,
  setConnectionLimit,
  setDatabaseGrants,
  setDatabaseOwner,
  setDatabaseSettings,
  settingsRefused,
  swapObstacles,
  terminateSessions,
} from '../../db/databases.js';
import { quoteIdent } from '../../db/ident.js';
import { journalsOf, settledOutcome, type JournalLine } from '../../journal/file-journal.js';
import type { JournalRecord, RunHeader } from '../../journal/record.js';
import { watchLockWaits } from '../../db/lock-watchdog.js';
import { noteRestore, settleRunsCaughtBySnapshot } from '../../journal/settle-snapshot-runs.js';
import { stepsOfFile } from '../result/run-record.js';
import { openSession, type Session } from '../../db/session.js';
import { isConnectionLost } from '../../db/connection-lost.js';
import { runSuffix, runSuffixOf } from '../session/run-lock.js';
import { BelayError, errorMessage, usageError } from '../../errors.js';
import { errnoCode, writeFix } from '../../unreadable.js';
import type { RestoreReport, RestoreStrategy } from '../../events/run-events.js';
import { fingerprintTables, type Fingerprint } from '../../integrity/fingerprint.js';
import { compareFingerprints } from '../../integrity/compare.js';
import { checkIntegrity } from '../../integrity/check-integrity.js';
import { sessionOptions, type RunSetup } from '../session/setup.js';
import { tiedRefusal } from '../../scope/restore-ties.js';
import { restoreTouched } from '../../scope/touched-restore.js';
import { readApplied } from '../../migrations/storage.js';
import { readDatabaseRevision } from '../session/database-state.js';

type RestoreOutcome = RestoreReport;

export interface RestoreRequest {
  setup: RunSetup;
  /** The run doing the restore: it writes its own journal into the restored copy. */
  runId: string;
  manifest: Manifest;
  baseline: Fingerprint | null;
  strategy: RestoreStrategy;
  /** Sessions on the target to close before the swap (they would block the rename). */
  closeTargetSessions: () => Promise<void>;
  /** Journaled notes; `detail.restoreCopy` names a database belay created and must drop if the run stops. */
  progress: (message: string, detail?: Record<string, unknown>) => void | Promise<void>;
  /** Each table pg_restore starts loading, for progress output. */
  onTable?: (table: string) => void;
}

const TABLE_LINE = /processing data for table "([^"]+)"/;

// to the millisecond: two restores in one second must not pick the same names
const stamp = (): string => new Date().toISOString().replace(/[-:]/g, '').replace(/\.(\d+)Z$/, '$1z').toLowerCase();

/**
 * A session on the server's maintenance database (`postgres`, else
 * `template1`), from which the target can be renamed. Where the role may
 * connect to neither (CONNECT revoked from PUBLIC, a common hardening), a
 * session on the target itself, and why a swap cannot be done from it.
 */
async function openAdmin(setup: RunSetup, runId?: string): Promise<{ admin: Session; noSwap?: string }> {
  const refused: string[] = [];
  // named after the run, as its other sessions are: a recover tells from it that the run is alive
  const options = sessionOptions(setup, `belay restore admin${runId === undefined ? '' : ` ${runSuffix(runId)}`}`);
  for (const database of MAINTENANCE_DATABASES) {
    try {
      return { admin: await openSession(withDatabase(setup.target, database), options) };
    } catch (error) {
      refused.push(errorMessage(error));
    }
  }
  const admin = await openSession(setup.target, options);
  return { admin, noSwap: `the role can connect to no other database (${MAINTENANCE_DATABASES.join(', ')}) to rename ${setup.target.database} from: ${refused.join('; ')}` };
}

/** A snapshot's table of contents, as the restore's steps ask for it. */
type Contents = () => Promise<ArchiveContents>;

/** `manifest`'s table of contents, read (pg_restore --list) at the first asking only. */
export function contentsOf(manifest: Manifest, tools: BackupTools, env: NodeJS.ProcessEnv): Contents {
  let read: Promise<ArchiveContents> | undefined;
  return () => (read ??= archiveCatalog(tools, manifest.path, env));
}

/**
 * What keeps a swap from restoring `manifest` as this role: the new database
 * needs the snapshot's extensions created, and an untrusted one
 * (postgres_fdw, pg_stat_statements) only a superuser may create. An
 * in-place restore keeps the extensions the database has (see
 * withoutLiveExtensions), so it can when every such one is there already.
 */
export async function swapExtensionObstacle(target: ClientBase, manifest: Manifest, contents: Contents): Promise<{ obstacle: string; inPlace: boolean } | undefined> {
  // an archive pg_restore cannot list is the restore's to report, after its sha256 check says why
  const catalog = await contents().catch(() => undefined);
  if (!catalog) return undefined;
  const names = archiveExtensions(catalog.listing);
  const { rows } = await target.query<{ name: string; live: boolean }>(
    `SELECT a.name, EXISTS (SELECT 1 FROM pg_catalog.pg_extension x WHERE x.extname = a.name) AS live
       FROM pg_catalog.pg_available_extensions a JOIN pg_catalog.pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version
      WHERE a.name = ANY($1) AND NOT v.trusted AND NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
      ORDER BY a.name`,
    [names],
  );
  if (rows.length === 0) return undefined;
  return {
    obstacle: `snapshot ${manifest.id} has extension(s) ${rows.map((row) => row.name).join(', ')}, which only a superuser may create in the new database a swap restores into`,
    inPlace: rows.every((row) => row.live),
  };
}

/**
 * What keeps a swap from carrying the settings of `database` (ALTER DATABASE
 * … SET, ALTER ROLE … IN DATABASE … SET) over to its copy: the ones this role
 * may not set. An in-place restore keeps the database, and so its settings.
 */
export async function swapSettingsObstacle(client: ClientBase, database: string): Promise<string | undefined> {
  const refused = await settingsRefused(client, database, await databaseSettings(client, database));
  if (refused.length === 0) return undefined;
  return `the role may not give the new database a swap restores into the settings ${database} has: ${refused.join('; ')}`;
}

/** What the error itself says to do (without its full stop: a command follows it), else `otherwise`. */
const hintOf = (error: unknown, otherwise: string): string => (error instanceof BelayError && error.hint ? error.hint.replace(/\.$/, '') : otherwise);

/** What lets the copy of the database an in-place restore keeps first be written. */
const keepFix = (dir: string, error: unknown): string =>
  hintOf(error, `${errnoCode(error) === undefined ? `Free space in ${dir}` : writeFix(dir, error)} (or pass --backups DIR)`);

/** Whether `signal` aborted since this was called: one that came before a restore does not stop its pg_dump and pg_restore. */
function abortedFromNow(signal: AbortSignal | undefined): () => boolean {
  const before = signal?.aborted ?? false;
  return () => !before && (signal?.aborted ?? false);
}

/** A signal stopped the restore before it changed the database: it is to be run again. */
function stoppedUntouched(request: RestoreRequest, strategy: RestoreStrategy, kept?: string): Pick<RestoreOutcome, 'ok' | 'untouched' | 'message' | 'manualSteps'> {
  const { manifest } = request;
  const target = request.setup.target.database;
  return {
    ok: false,
    untouched: true,
    message: `the restore was interrupted by a signal; ${target} was not changed by it${kept ? `; the copy of it taken first is kept as snapshot ${kept}` : ''}`,
    manualSteps: [
      `restore it again when you are ready: belay restore ${manifest.id}${strategy === 'in-place' ? ' --strategy in-place' : ''}`,
      ...(kept ? [`snapshot ${kept} holds ${target} as it still is, so nothing needs it: \`belay backups prune --keep N\` deletes it once it is not among the newest N`] : []),
    ],
  };
}

interface Verification {
  problems: string[];
  /** Set when the data was not compared with the snapshot's fingerprint: what was done instead, in words. */
  unverified?: string;
}

/**
 * Whether the restored copy holds what the snapshot promised: the fingerprint
 * taken before the run. Then the runs the snapshot caught mid-way get their
 * journal, so that the copy does not take them for interrupted runs.
 */
async function verifyRestored(request: RestoreRequest, params: ConnectionParams): Promise<Verification> {
  const { setup, baseline, manifest } = request;
  const session = await openSession(params, sessionOptions(setup, 'belay restore verify'));
  try {
    await settleRunsCaughtBySnapshot(session.client, setup.config.backupsDir, request.runId, manifest.id);
    const report = await checkIntegrity(session.client, setup.config.integrity, baseline, 'same-schema');
    const problems = report.intact ? [] : [...report.differences.map((d) => d.message), ...report.violations.map((v) => `invariant ${v.name} violated`), ...report.structural];
    if (report.mode === 'off') return { problems, unverified: 'its data not checked: integrity.mode is off' };
    if (report.mode === 'invariants') return { problems, unverified: `its data not compared with the snapshot's fingerprint: integrity.mode is invariants (${report.checked} hold)` };
    if (report.noTableSelected) return { problems, unverified: `its data not compared: ${report.noTableSelected}` };
    if (report.largeObjectsNotCompared) return { problems, unverified: `its tables verified, its ${report.largeObjectsNotCompared}` };
    return baseline ? { problems } : { problems, unverified: `its data not compared: snapshot ${manifest.id} has no fingerprint (${report.checked} hold)` };
  } finally {
    await session.close();
  }
}

/** "and verified it", or what was done instead. */
const verifiedWords = (verification: Verification): string => (verification.unverified ? `(${verification.unverified})` : 'and verified it');

/**
 * The damaged database dumped before an in-place restore overwrites it, with
 * the revision its own record says it is at and the run that kept it. No
 * fingerprint: restoring it says its data was not compared.
 */
async function keepCopy(request: RestoreRequest, tools: BackupTools): Promise<Manifest> {
  const { setup } = request;
  const session = await openSession(setup.target, sessionOptions(setup, `belay restore keep ${runSuffix(request.runId)}`));
  try {
    return await takeSnapshot({
      params: setup.target,
      backupsDir: setup.config.backupsDir,
      format: 'custom',
      jobs: 1,
      compress: setup.config.backup.compress,
      revision: await readDatabaseRevision(session.client),
      runId: request.runId,
      fingerprint: null,
      tools,
      env: setup.env,
      signal: setup.signal,
      quarantine: true,
      lockTimeoutMs: setup.config.database.lockTimeoutSeconds * 1000,
      source: session.client,
    });
  } finally {
    await session.close();
  }
}

/**
 * pg_restore --clean into the damaged database itself. What it holds now is
 * dumped first, so that nothing is lost silently; when that dump cannot be
 * taken, the database is left as it is.
 */
async function restoreInPlace(request: RestoreRequest, admin: ClientBase, tools: BackupTools, onProgress: (line: string) => void, interrupted: () => boolean): Promise<RestoreOutcome> {
  const { setup, manifest } = request;
  const target = setup.target.database;
  const base = { strategy: 'in-place' as const, quarantine: null };
  let kept: Manifest;
  try {
    kept = await keepCopy(request, tools);
  } catch (error) {
    if (interrupted()) return { ...base, ...stoppedUntouched(request, 'in-place'), quarantineSnapshot: null };
    return {
      ...base,
      ok: false,
      untouched: true,
      quarantineSnapshot: null,
      message: `could not keep a copy of ${target} before restoring over it, so ${target} was not touched: ${errorMessage(error)}`,
      manualSteps: [`${keepFix(setup.config.backupsDir, error)}, then: belay restore ${manifest.id} --strategy in-place`],
    };
  }
  // durable before anything is dropped: prune keeps it while the run is unsettled
  await request.progress(`kept the damaged state of ${target} as snapshot ${kept.id}`, { quarantineSnapshot: kept.id });
  // the application's sessions may hold locks here: wait for them no longer than for any other lock
  const applicationName = `belay restore ${kept.id}`.slice(0, 63);
  const lockTimeoutSeconds = setup.config.database.lockTimeoutSeconds;
  const watchdog = lockTimeoutSeconds > 0 ? watchLockWaits(admin, target, applicationName, lockTimeoutSeconds * 1000) : undefined;
  const exact = new ExactRestore(manifest, setup.target, { tools, env: setup.env, lockTimeoutMs: lockTimeoutSeconds * 1000 });
  const owners = await restoresOwners(admin);
  let replaced = noneReplaced;
  // pg_restore ran: its transaction is rolled back when it fails, while the drops before it were committed
  let restoring = false;
  try {
    const beforeRestore = async (): Promise<string | undefined> => {
      if (!owners) replaced = await ownersReplaced(admin, () => exact.tableOfContents());
      const listing = await exact.dropNewerObjects();
      restoring = true;
      return listing;
    };
    await restoreSnapshotInto(manifest, setup.target, { tools, env: setup.env, jobs: 1, clean: true, privileges: true, owners, signal: setup.signal, onProgress, applicationName, beforeRestore });
  } catch (error) {
    const lockWait = await watchdog?.stop();
    if (interrupted()) {
      // its drops roll back with it when they were what the signal stopped; once committed, the database changed
      if (exact.dropped.length === 0) return { ...base, ...stoppedUntouched(request, 'in-place', kept.id), quarantineSnapshot: kept.id };
      return {
        ...base,
        ok: false,
        quarantineSnapshot: kept.id,
        message: `the restore was interrupted by a signal: nothing of ${manifest.id} was restored (pg_restore runs as one transaction), but ${target} was changed${exact.note(kept.id)}`,
        manualSteps: [`to finish the restore: belay restore ${manifest.id} --strategy in-place`, `or to put back what ${target} held before it: belay restore ${kept.id} --strategy in-place`],
      };
    }
    const dropped = exact.dropped.length === 0 ? '' : `, but the objects created after the snapshot had been dropped before it${exact.note(kept.id)}`;
    const state = `${target} is as it was before the restore${dropped}; its state then is kept as snapshot ${kept.id}`;
    const putBack = exact.dropped.length === 0 ? [] : [`to put back what ${target} held before the restore: belay restore ${kept.id} --strategy in-place`];
    // pg_restore's transaction rolled back: with nothing dropped before it, the database is as it was
    const untouched = exact.dropped.length === 0 ? { untouched: true as const } : {};
    if (lockWait) {
      return {
        ...base,
        ok: false,
        ...untouched,
        quarantineSnapshot: kept.id,
        message: `pg_restore waited longer than database.lockTimeoutSeconds (${lockTimeoutSeconds} s) for a lock another session holds in ${target}; nothing was restored (it runs as one transaction), ${state}`,
        manualSteps: [`end the sessions that hold locks in ${target} (pg_locks, pg_stat_activity), then: belay restore ${manifest.id} --strategy in-place`, ...putBack],
      };
    }
    const hint = hintOf(error, 'Fix what the message says, then restore again');
    return {
      ...base,
      ok: false,
      ...untouched,
      quarantineSnapshot: kept.id,
      message: `restoring ${manifest.id} in place failed: ${errorMessage(error)}; ${restoring ? 'nothing of it was restored (pg_restore runs as one transaction), ' : ''}${state}`,
      manualSteps: [
        `${hint}: belay restore ${manifest.id} --strategy in-place`,
        `or, as a role that may create databases, restore it into a new database and swap it in: belay restore ${manifest.id} --strategy swap`,
        ...putBack,
      ],
    };
  }
  await watchdog?.stop();
  // pg_restore committed: a kill from here leaves the snapshot in place, for recover to verify rather than restore again
  await request.progress(`restored ${manifest.id} over ${target}; verifying it`, { replaced: target, quarantineSnapshot: kept.id });
  const verification = await verifyRestored(request, setup.target);
  const problems = [...verification.problems, ...(await exact.differences())];
  const keptNote = `the damaged state is kept as snapshot ${kept.id} (belay restore ${kept.id} --strategy in-place brings it back)${exact.note(kept.id)}`;
  return problems.length === 0
    ? { ...base, ok: true, quarantineSnapshot: kept.id, ownersReplaced: replaced.ownersReplaced, message: `restored ${manifest.id} in place ${verifiedWords(verification)}${replaced.note}; ${keptNote}`, manualSteps: [] }
    : {
        ...base,
        ok: false,
        quarantineSnapshot: kept.id,
        message: `restored ${manifest.id} in place, but it does not match the snapshot: ${problems.join('; ')}; ${keptNote}`,
        // restoring the same snapshot in place again would end the same way: name what differs, and the ways that do not repeat it
        manualSteps: [
          `inspect database ${target}: what differs from the snapshot is listed above (its contents: pg_restore --list ${manifest.path})`,
          `as a role that may create databases, restore it into a new database and swap it in: belay restore ${manifest.id} --strategy swap`,
        ],
      };
}

/** Whether this role is a superuser, the one kind of role a restore can give every object its snapshot owner as. */
async function restoresOwners(client: ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
  return rows[0]?.rolsuper === true;
}

interface OwnersReplaced {
  ownersReplaced: string[];
  note: string;
}
const noneReplaced: OwnersReplaced = { ownersReplaced: [], note: '' };

/**
 * After a restore without owners: the snapshot's owners other than this
 * role, whose objects it now owns, and the words that say so. An archive
 * names no extension's owner: `extensions` are the ones another role owned
 * in the damaged database, which the restored copy made as this role.
 */
async function ownersReplaced(client: ClientBase, contents: Contents, extensions: readonly ExtensionOwner[] = []): Promise<OwnersReplaced> {
  const { rows } = await client.query<{ me: string }>('SELECT current_user AS me');
  const me = rows[0]?.me ?? '';
  const archived = archiveOwners((await contents()).listing).filter((owner) => owner !== me);
  const replaced = [...new Set([...archived, ...extensions.map((extension) => extension.owner)])].sort();
  if (replaced.length === 0) return noneReplaced;
  const taken = extensions.length === 0 ? '' : ` (extension(s) ${extensions.map((extension) => `${extension.name}, ${extension.owner}'s in the damaged database`).join('; ')})`;
  return {
    ownersReplaced: replaced,
    note: `; ownership was not restored: what ${replaced.join(', ')} owned in the snapshot now belongs to ${me}${taken} (only a superuser restores owners; to put them back: ALTER … OWNER TO, or restore again as a superuser)`,
  };
}

interface ExtensionOwner {
  name: string;
  owner: string;
}

/** The extensions of the snapshot that another role owns in the database: a restore without owners makes them as this role. */
async function othersExtensions(setup: RunSetup, contents: Contents): Promise<ExtensionOwner[]> {
  const names = archiveExtensions((await contents()).listing);
  const session = await openSession(setup.target, sessionOptions(setup, 'belay restore extensions'));
  try {
    const { rows } = await session.client.query<ExtensionOwner>(
      `SELECT extname AS name, pg_catalog.pg_get_userbyid(extowner) AS owner FROM pg_catalog.pg_extension
        WHERE extname = ANY($1) AND extowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) ORDER BY extname`,
      [names],
    );
    return rows;
  } finally {
    await session.close();
  }
}

/**
 * Drop the databases a stopped restore created (`<db>_belay_restore_*`,
 * named in its journal) that still exist; answers the ones dropped. Run
 * under the lock, so no restore of belay's is using them.
 */
export async function dropLeftoverCopies(setup: RunSetup, names: string[]): Promise<string[]> {
  const mine = names.filter((name) => name !== setup.target.database && name.includes('_belay_restore_'));
  if (mine.length === 0) return [];
  const { admin } = await openAdmin(setup);
  try {
    const dropped: string[] = [];
    for (const name of mine) {
      if (!(await databaseExists(admin.client, name))) continue;
      await terminateSessions(admin.client, name);
      await dropDatabase(admin.client, name);
      dropped.push(name);
    }
    return dropped;
  } finally {
    await admin.close();
  }
}

/** The runs whose sessions are still there: each session belay opens is named after its run. */
async function aliveRuns(client: ClientBase): Promise<Set<string>> {
  const { rows } = await client.query<{ name: string }>("SELECT application_name AS name FROM pg_catalog.pg_stat_activity WHERE starts_with(application_name, 'belay ')");
  return new Set(rows.flatMap(({ name }) => runSuffixOf(name) ?? []));
}

/**
 * A swap restore killed between its renames, or ended 12 there (its admin
 * session lost twice): the target renamed to `quarantine`, its verified
 * `copy` not yet renamed to the target.
 */
export interface HalfSwap {
  runId: string;
  snapshot: string;
  copy: string;
  quarantine: string;
  steps: JournalRecord[];
  /** It ended (12), rather than being killed. */
  ended: boolean;
}

/** How a half-done swap's run stopped between its renames, in words: "run … was killed". */
export const swapStopped = (swap: Pick<HalfSwap, 'runId' | 'ended'>): string => `run ${swap.runId} ${swap.ended ? 'ended 12' : 'was killed'}`;

/** The runs a recover may have a swap of to finish: no outcome in their journal file, or one of 12. */
const unsettledJournals = async (setup: RunSetup): Promise<Array<{ header: RunHeader; lines: JournalLine[] }>> =>
  (await journalsOf(setup.config.backupsDir, setup.target.database)).filter(({ lines }) => !settledOutcome(lines));

/**
 * The swap restore of this database left open before its renames were done:
 * the newest run that began one (an older one's was dealt with before that
 * run could begin), unless it settled; read from its journal file, the copy
 * its last `restoreCopy` note names, and the quarantine its `connectionsOff`
 * note names, journaled once that copy was verified (none before).
 */
async function lastOpenSwap(setup: RunSetup): Promise<(Omit<HalfSwap, 'quarantine'> & { quarantine?: string }) | undefined> {
  const journals = await journalsOf(setup.config.backupsDir, setup.target.database);
  const last = journals.findLast(({ lines }) => lines.some((line) => line.type === 'step' && typeof line.detail?.restoreCopy === 'string'));
  if (!last || settledOutcome(last.lines)) return undefined;
  const steps = stepsOfFile(last.lines);
  const snapshot = steps.findLast((s) => s.step === 'restore' && s.event === 'start' && s.subject)?.subject;
  let copy: string | undefined;
  let quarantine: string | undefined;
  for (const { detail } of steps) {
    if (typeof detail?.restoreCopy === 'string') [copy, quarantine] = [detail.restoreCopy, undefined];
    const off = detail?.connectionsOff;
    if (copy && Array.isArray(off) && typeof off[1] === 'string') quarantine = off[1];
    if (typeof detail?.replaced === 'string') copy = undefined;
  }
  const ended = last.lines.some((line) => line.type === 'outcome');
  return snapshot && copy ? { runId: last.header.runId, snapshot, copy, quarantine, steps, ended } : undefined;
}

/**
 * Where the target does not exist, the swap restore killed between its two
 * renames (`lastOpenSwap`). Undefined when the target exists or no run was
 * swapping; throws (manual) when the server does not hold what such a run
 * left, or its copy was not verified: then nothing is guessed.
 */
async function findHalfSwap(setup: RunSetup, client: ClientBase): Promise<HalfSwap | undefined> {
  const target = setup.target.database;
  const swap = await lastOpenSwap(setup);
  if (!swap || (await databaseExists(client, target))) return undefined;
  const recoverAgain = 'then `belay recover` (with the same --backups)';
  const { quarantine } = swap;
  if (!quarantine) {
    throw new BelayError('manual', `database ${target} does not exist, and run ${swap.runId} was restoring snapshot ${swap.snapshot} into the copy ${swap.copy}, which it had not verified yet: it renamed nothing, so where ${target} went is not known to belay`, {
      hint: `Rename the database that holds ${target}'s data back: ALTER DATABASE <its name> RENAME TO ${quoteIdent(target)}; ${recoverAgain}.`,
      details: { runId: swap.runId, restoreCopy: swap.copy },
    });
  }
  const { rows } = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = ANY($1)', [[swap.copy, quarantine]]);
  const there = new Set(rows.map(({ datname }) => datname));
  if (there.size < 2) {
    const missing = [swap.copy, quarantine].filter((name) => !there.has(name));
    const back = there.has(quarantine)
      ? `Put the damaged database back: ALTER DATABASE ${quoteIdent(quarantine)} RENAME TO ${quoteIdent(target)}; ${recoverAgain}, which restores snapshot ${swap.snapshot} again.`
      : there.has(swap.copy)
        ? `Once you have found where ${quarantine} went, put the verified copy in place: ALTER DATABASE ${quoteIdent(swap.copy)} RENAME TO ${quoteIdent(target)}; ${recoverAgain}.`
        : `Rename the database that holds ${target}'s data back: ALTER DATABASE <its name> RENAME TO ${quoteIdent(target)}; ${recoverAgain}.`;
    throw new BelayError('manual', `database ${target} does not exist: ${swapStopped(swap)} between the renames of its swap restore (${target} to ${quarantine}, its verified copy ${swap.copy} to ${target}), but ${missing.join(' and ')} ${missing.length === 1 ? 'does' : 'do'} not exist either`, {
      hint: back,
      details: { runId: swap.runId, restoreCopy: swap.copy, quarantine },
    });
  }
  return { ...swap, quarantine };
}

/** The half-done swap `belay recover` will finish (`finishHalfSwap`), for status to tell: read from a session on the maintenance database. */
export async function halfSwap(setup: RunSetup): Promise<HalfSwap | undefined> {
  const { admin } = await openAdmin(setup);
  try {
    return await findHalfSwap(setup, admin.client);
  } finally {
    await admin.close();
  }
}

/**
 * Finish a swap restore killed between its renames, before connecting to the
 * target it left missing: rename its verified copy to the target, note that
 * in the run's journal file (the swap done, as the run would have), and give
 * the target back to the owner of the database it replaced. recover then
 * verifies it against the snapshot's fingerprint, as after any swap killed
 * once done. Answers the swap finished, if any.
 */
export async function finishHalfSwap(setup: RunSetup): Promise<HalfSwap | undefined> {
  const target = setup.target.database;
  if (!(await lastOpenSwap(setup))) return undefined;
  const { admin } = await openAdmin(setup);
  try {
    const swap = await findHalfSwap(setup, admin.client);
    if (!swap) return undefined;
    if ((await aliveRuns(admin.client)).has(runSuffix(swap.runId))) {
      throw new BelayError('locked', `run ${swap.runId} is swapping a restored copy into ${target}, which does not exist meanwhile (a session of that run is still there)`, {
        hint: `Wait for it to end (\`belay history ${swap.runId}\`), then run \`belay recover\` again if it did not finish.`,
      });
    }
    await renameDatabase(admin.client, swap.copy, target).catch((error: unknown) => {
      throw new BelayError('manual', `${swapStopped(swap)} between the renames of its swap restore, and its verified copy ${swap.copy} could not be renamed to ${target}: ${errorMessage(error)}`, {
        hint: `Once nothing is connected to ${swap.copy}, as its owner or a superuser, connected to another database: ALTER DATABASE ${quoteIdent(swap.copy)} RENAME TO ${quoteIdent(target)}; then \`belay recover\`.`,
        cause: error,
      });
    });
    await noteRestore(setup.config.backupsDir, swap.runId, swap.steps, swap.snapshot, {
      message: `swapped the restored copy into ${target}; the damaged one is ${swap.quarantine} (the run ${swap.ended ? 'ended 12' : 'was killed'} between the renames: belay recover renamed ${swap.copy})`,
      replaced: target,
      quarantine: swap.quarantine,
    });
    // as the swap does: the restored copy belongs to whoever created it
    const owner = await databaseOwner(admin.client, swap.quarantine);
    if (owner) await setDatabaseOwner(admin.client, target, owner).catch(() => {});
    return swap;
  } finally {
    await admin.close();
  }
}

/**
 * Turn connections back on where a swap restore that did not finish turned
 * them off: the databases its `connectionsOff` note names (the target, or the
 * quarantine it was renamed to) that still refuse them. Read from the journal
 * files of this database's runs without an outcome, before connecting to the
 * target, which may be one of them; answers the ones turned back on.
 */
export async function allowConnectionsAgain(setup: RunSetup): Promise<string[]> {
  const byRun = new Map<string, string[]>();
  for (const { header, lines } of await unsettledJournals(setup)) {
    for (const line of lines) {
      const off = line.type === 'step' && line.event === 'note' ? line.detail?.connectionsOff : undefined;
      if (Array.isArray(off)) byRun.set(header.runId, [...(byRun.get(header.runId) ?? []), ...off.filter((name): name is string => typeof name === 'string')]);
    }
  }
  if (byRun.size === 0) return [];
  const { admin } = await openAdmin(setup);
  try {
    // a swap still going on (its admin session is there) is left alone: its renames need connections off
    const alive = await aliveRuns(admin.client);
    const { rows } = await admin.client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = ANY($1) AND NOT datallowconn ORDER BY datname', [[...byRun.values()].flat()]);
    const going = [...byRun].find(([runId, off]) => alive.has(runSuffix(runId)) && rows.some(({ datname }) => off.includes(datname)));
    if (going) {
      throw new BelayError('locked', `run ${going[0]} is swapping a restored copy into ${setup.target.database}, which refuses connections meanwhile (a session of that run is still there)`, {
        hint: `Wait for it to end (\`belay history ${going[0]}\`), then run \`belay recover\` again if it did not finish.`,
      });
    }
    for (const { datname } of rows) {
      await setAllowConnections(admin.client, datname, true).catch((error: unknown) => {
        throw usageError(`could not turn connections to ${datname} back on, which a swap restore that did not finish turned off: ${errorMessage(error)}`, {
          hint: `As the owner of ${datname} or a superuser, connected to another database: ALTER DATABASE ${quoteIdent(datname)} WITH ALLOW_CONNECTIONS true; then \`belay recover\`.`,
          cause: error,
        });
      });
    }
    return rows.map((row) => row.datname);
  } finally {
    await admin.close();
  }
}

/** The differences from the run's fingerprint in what no touched snapshot holds: large objects, sequences out of its scope. */
async function outsideTablesNotBack(client: ClientBase, baseline: Fingerprint): Promise<string[]> {
  const now = await fingerprintTables(client, [], { perColumn: false, objects: true });
  return compareFingerprints({ ...baseline, tables: {} }, now, 'same-schema').map((d) => d.message);
}

/**
 * A touched snapshot holds the rows of some tables only: it is never swapped
 * in nor restored over the database, only its tables are put back in place
 * (src/scope/touched-restore.ts), the damaged ones kept in a quarantine schema.
 */
async function restoreTouchedTables(request: RestoreRequest): Promise<RestoreOutcome> {
  const { setup, manifest } = request;
  const session = await openSession(setup.target, sessionOptions(setup, 'belay restore touched'));
  try {
    // its tables only: belay.migrations is not in it, so the database must already be at the snapshot's revision
    const applied = await readApplied(session.client);
    const current = applied[applied.length - 1]?.name ?? null;
    if (current !== manifest.revision) {
      return {
        ok: false,
        strategy: 'in-place',
        quarantine: null,
        quarantineSnapshot: null,
        message: `touched snapshot ${manifest.id} holds ${rowsOf(manifest.scope?.tables ?? [])} at ${manifest.revision ?? 'the start'}, but ${setup.target.database} is at ${current ?? 'the start'}; nothing was restored (a touched snapshot puts back tables, not the revision)`,
        manualSteps: [`bring ${setup.target.database} to ${manifest.revision ?? 'the start'} (belay status, belay rollback --to), then: belay restore ${manifest.id}`, 'or restore a full snapshot: belay backups list'],
      };
    }
    const refusal = await tiedRefusal(session.client, manifest, setup.config.backupsDir);
    if (refusal) return { ok: false, strategy: 'in-place', quarantine: null, quarantineSnapshot: null, message: refusal.message, manualSteps: refusal.next };
    const tools = await resolveBackupTools({ search: setup.pgSearch, serverMajor: Math.floor(session.serverVersionNum / 10000) });
    const outcome = await restoreTouched({ client: session.client, manifest, tools, env: setup.env });
    await request.progress(`kept in schema ${outcome.quarantineSchema}: ${outcome.quarantined.join(', ') || 'nothing'}`, {
      quarantineSchema: outcome.quarantineSchema,
      quarantined: outcome.quarantined,
      severed: outcome.severed,
      stillTied: outcome.stillTied,
    });
    const cut = outcome.severed.length === 0 ? '' : `; so that it neither constrains nor is constrained by the live tables, cut from them (the kept rows untouched): ${outcome.severed.join('; ')}`;
    const tied = outcome.stillTied.length === 0 ? '' : `; still tied to live objects (not cut, as that would change the kept tables): ${outcome.stillTied.join('; ')}`;
    const kept = `the damaged tables and what the run created are kept in schema ${outcome.quarantineSchema} (\`belay status\` lists it; drop it yourself when done: DROP SCHEMA ${quoteIdent(outcome.quarantineSchema)} CASCADE)${cut}${tied}`;
    const notBack = request.baseline ? await outsideTablesNotBack(session.client, request.baseline) : [];
    if (notBack.length > 0) {
      return {
        ok: false,
        strategy: 'in-place',
        quarantine: null,
        quarantineSnapshot: null,
        message: `restored ${outcome.restored.join(', ')} from touched snapshot ${manifest.id} in place, but it holds tables and sequences only, and what lies outside them is not back: ${notBack.join('; ')}; ${kept}`,
        manualSteps: [
          'bring them back from a full snapshot taken before the run, or your own backup (belay backups list, belay restore ID)',
          'run the change again with --backup-scope full (auto takes a full snapshot of a database that has large objects)',
        ],
      };
    }
    return {
      ok: true,
      strategy: 'in-place',
      quarantine: null,
      quarantineSnapshot: null,
      quarantineSchema: outcome.quarantineSchema,
      severed: outcome.severed,
      stillTied: outcome.stillTied,
      message: `restored ${outcome.restored.join(', ')} from touched snapshot ${manifest.id} in place and verified them against its fingerprint; no other table was rewritten; ${kept}`,
      manualSteps: [],
    };
  } catch (error) {
    // a preflight error (no pg_restore, no work folder in the temp dir) comes before the restore's transaction opens
    const before = error instanceof BelayError && error.code === 'preflight';
    return {
      ok: false,
      ...(before ? { untouched: true as const } : {}),
      strategy: 'in-place',
      quarantine: null,
      quarantineSnapshot: null,
      message: `restoring the tables of touched snapshot ${manifest.id} failed${before ? ' before it changed anything' : ''}: ${errorMessage(error)}`,
      manualSteps: before && error.hint ? [error.hint, `belay restore ${manifest.id}`] : [`belay backups verify ${manifest.id}`, `belay restore ${manifest.id}`],
    };
  } finally {
    await session.close();
  }
}

/**
 * Put the snapshot back. `swap`: restore into a new database, verify it,
 * rename the damaged one aside as a quarantine and the restored one into its
 * place. `in-place`: pg_restore --clean in one transaction into the same
 * database, for roles without CREATEDB. The damaged database is never dropped.
 */
export async function restoreDatabase(request: RestoreRequest): Promise<RestoreOutcome> {
  const { setup, manifest } = request;
  const target = setup.target.database;
  if (manifest.scope) return await restoreTouchedTables(request);
  const opened = await openAdmin(setup, request.runId);
  const { noSwap } = opened;
  let admin = opened.admin;
  /** `step` on the admin session, or where the server ended it (pg_terminate_backend), once more (`again`) on a new one: what the swap began is finished or undone from it. */
  const onAdmin = async <T>(step: (client: ClientBase, again: boolean) => Promise<T>): Promise<T> => {
    try {
      return await step(admin.client, false);
    } catch (error) {
      if (!isConnectionLost(error)) throw error;
      await admin.close();
      admin = (await openAdmin(setup, request.runId)).admin;
      return await step(admin.client, true);
    }
  };
  try {
    const serverMajor = Math.floor(admin.serverVersionNum / 10000);
    const tools = await resolveBackupTools({ search: setup.pgSearch, serverMajor });
    const onProgress = (line: string): void => {
      const table = TABLE_LINE.exec(line)?.[1];
      if (table) request.onTable?.(table);
    };
    // read once, by whichever of the steps below asks first
    const contents = contentsOf(manifest, tools, setup.env);
    let strategy = request.strategy;
    // the run's own sessions on the target close before the swap; only others can stand in its way
    const obstacles = strategy === 'swap' ? [...(noSwap ? [noSwap] : []), ...(await swapObstacles(admin.client, target))] : [];
    if (strategy === 'swap' && obstacles.length === 0) {
      const session = await openSession(setup.target, sessionOptions(setup, 'belay restore extensions'));
      const extensions = await swapExtensionObstacle(session.client, manifest, contents).finally(() => session.close());
      if (extensions?.inPlace) obstacles.push(extensions.obstacle);
      const settings = await swapSettingsObstacle(admin.client, target);
      if (settings) obstacles.push(settings);
    }
    if (obstacles.length > 0) {
      request.progress(`restoring in place instead of swapping: ${obstacles.join('; ')}`);
      strategy = 'in-place';
    }
    const interrupted = abortedFromNow(setup.signal);
    if (strategy === 'in-place') {
      const outcome = await restoreInPlace(request, admin.client, tools, onProgress, interrupted);
      return obstacles.length === 0 ? outcome : { ...outcome, message: `${outcome.message} (in place instead of swapping: ${obstacles.join('; ')})` };
    }
    const restoring = derivedName(target, `belay_restore_${stamp()}`);
    await request.progress(`restoring into a new database ${restoring}`, { restoreCopy: restoring });
    // the snapshot's sha256 is read while the server creates the database: neither waits for the other
    const checking = checkSnapshotDigest(manifest);
    checking.catch(() => {}); // awaited by the restore below, which reports a mismatch
    const properties = await databaseProperties(admin.client, target, admin.serverVersionNum);
    if (!properties) throw new BelayError('manual', `database ${target} is gone: there is nothing to swap the restored copy in for`, { hint: `Nothing was restored. To restore the snapshot as a new database: pg_restore --create --dbname=postgres ${manifest.path}` });
    const settings = await databaseSettings(admin.client, target);
    const grants = await databaseGrants(admin.client, target);
    // before the renames, a failure leaves the database as it was
    const notTouched = (message: string, manualSteps: string[]): RestoreOutcome => ({ ok: false, untouched: true, strategy, quarantine: null, quarantineSnapshot: null, message, manualSteps });
    try {
      // made as the database is (encoding, locales, tablespace, comment): the same bytes then sort, compare and verify as they did
      await createDatabaseLike(admin.client, restoring, properties);
    } catch (error) {
      return notTouched(`could not create the database ${restoring} to restore ${manifest.id} into; ${target} was not touched: ${errorMessage(error)}`, [
        `fix what the message says, then restore again: belay restore ${manifest.id}`,
        `or restore it in place: belay restore ${manifest.id} --strategy in-place`,
      ]);
    }
    const owners = await restoresOwners(admin.client);
    let replaced = noneReplaced;
    let verification: Verification;
    let owner: string | undefined;
    try {
      await restoreSnapshotInto(manifest, withDatabase(setup.target, restoring), { tools, env: setup.env, jobs: setup.config.backup.jobs, clean: false, privileges: true, owners, signal: setup.signal, onProgress, checking });
      verification = await verifyRestored(request, withDatabase(setup.target, restoring));
      if (verification.problems.length > 0) throw new Error(`the restored copy does not match the pre-run fingerprint: ${verification.problems.join('; ')}`);
      // not before: pg_restore and the verification would run under them (default_transaction_read_only, a statement_timeout)
      await setDatabaseSettings(admin.client, restoring, settings);
      // a REVOKE CONNECT … FROM PUBLIC, a GRANT to the application's role: kept, before the copy takes the name
      await setDatabaseGrants(admin.client, restoring, grants);
      if (!owners) replaced = await ownersReplaced(admin.client, contents, await othersExtensions(setup, contents));
      owner = await databaseOwner(admin.client, target);
      if (properties.connectionLimit !== -1) await setConnectionLimit(admin.client, restoring, properties.connectionLimit);
    } catch (error) {
      // from a new session when the admin one was ended: a copy left behind is named, with how to drop it
      const dropped = await onAdmin((client) => dropDatabase(client, restoring)).then(() => true, () => false);
      const left = dropped ? [] : [`drop the copy it was restoring into: DROP DATABASE ${quoteIdent(restoring)};`];
      const leftWords = dropped ? '' : `; the copy ${restoring} it was restoring into could not be dropped`;
      if (interrupted()) {
        const stopped = stoppedUntouched(request, strategy);
        return { strategy, quarantine: null, quarantineSnapshot: null, ...stopped, message: `${stopped.message}${leftWords}`, manualSteps: [...left, ...stopped.manualSteps] };
      }
      // the snapshot, or the restore's own session (ended by someone, a full disk): the verify tells which
      return notTouched(`restoring ${manifest.id} failed; ${target} was not touched${leftWords}: ${errorMessage(error)}`, [
        ...left,
        `belay backups verify ${manifest.id}`,
        `if it is sound, fix what the message says and restore it again: belay restore ${manifest.id}`,
        `if not, restore another: belay restore <another snapshot id> (list them: belay backups list)`,
      ]);
    }
    const quarantine = derivedName(target, `quarantine_${stamp()}`);
    // a kill from here to the end of the swap leaves the one it is done to refusing every session: recover turns them back on
    await request.progress(`turning connections to ${target} off to rename it ${quarantine} and ${restoring} into its place`, { connectionsOff: [target, quarantine] });
    await request.closeTargetSessions();
    try {
      await setAllowConnections(admin.client, target, false);
      await terminateSessions(admin.client, target);
      await renameDatabase(admin.client, target, quarantine);
    } catch (error) {
      const reopened = await onAdmin((client) => setAllowConnections(client, target, true)).then(() => true, () => false);
      const dropped = await onAdmin((client) => dropDatabase(client, restoring)).then(() => true, () => false);
      const why = `could not move ${target} aside (${errorMessage(error)})`;
      if (reopened && dropped) {
        return notTouched(`${why}; it is unchanged and the restored copy was dropped`, [
          `fix what the message says (sessions on it this role may not end, prepared transactions: SELECT * FROM pg_prepared_xacts), then restore again: belay restore ${manifest.id}`,
          `or restore it in place: belay restore ${manifest.id} --strategy in-place`,
        ]);
      }
      return {
        ok: false,
        strategy,
        quarantine: null,
        quarantineSnapshot: null,
        message: `${why}; its data is unchanged, but ${[...(reopened ? [] : ['it still refuses connections']), ...(dropped ? [] : [`the restored copy ${restoring} is left`])].join(' and ')}`,
        manualSteps: [
          ...(reopened ? [] : [`ALTER DATABASE ${quoteIdent(target)} WITH ALLOW_CONNECTIONS true;`]),
          ...(dropped ? [] : [`DROP DATABASE ${quoteIdent(restoring)};`]),
          `then restore again: belay restore ${manifest.id}`,
        ],
      };
    }
    try {
      await onAdmin(async (client, again) => {
        // the rename the ended session was sending may have committed: then the copy is the target already
        const done = again && (await databaseExists(client, target)) && !(await databaseExists(client, restoring));
        if (!done) await renameDatabase(client, restoring, target);
      });
    } catch (error) {
      return {
        ok: false,
        strategy,
        quarantine,
        quarantineSnapshot: null,
        message: `${target} was moved aside to ${quarantine}, but the restored copy ${restoring} could not take its name: ${errorMessage(error)}`,
        manualSteps: [
          `ALTER DATABASE ${quoteIdent(restoring)} RENAME TO ${quoteIdent(target)};`,
          `-- or put the damaged one back: ALTER DATABASE ${quoteIdent(quarantine)} RENAME TO ${quoteIdent(target)};`,
        ],
      };
    }
    await request.progress(`swapped the restored copy into ${target}; the damaged one is ${quarantine}`, { replaced: target, quarantine });
    await onAdmin((client) => setAllowConnections(client, quarantine, true)).catch(() => {});
    // the restored copy belongs to whoever created it; give it back to the original owner when allowed
    if (owner) await onAdmin((client) => setDatabaseOwner(client, target, owner)).catch(() => {});
    return {
      ok: true,
      strategy,
      quarantine,
      quarantineSnapshot: null,
      ownersReplaced: replaced.ownersReplaced,
      message: `restored ${manifest.id} into ${target} ${verifiedWords(verification)}${replaced.note}; the damaged copy is kept as database ${quarantine}`,
      manualSteps: [],
    };
  } finally {
    await admin.close();
  }
}
