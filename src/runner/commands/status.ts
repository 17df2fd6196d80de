import { basename } from 'node:path';
import type { ClientBase } from 'pg';
import { LOCK_HOLDER_ROWS, LOCK_KEYS, toLockHolder, type LockHolder, type LockHolderRow } from '../../db/advisory-lock.js';
import { describeTarget, withDatabase } from '../../db/connection.js';
import { BELAY_ACCESS_COLUMNS, BELAY_ACCESS_JOIN, belayRecordPresent, type BelayAccessRow } from '../../db/belay-schema.js';
import { derivedName } from '../../db/databases.js';
import { quoteIdent } from '../../db/ident.js';
import { isMissingDatabase, openSession, type Session } from '../../db/session.js';
import { journalFile, listJournalFiles, readJournalFile, unfinishedJournals } from '../../journal/file-journal.js';
import { readNewestAndRunning, type RunSummary } from '../../journal/run-store.js';
import { findStrayRuns } from '../../journal/settle-snapshot-runs.js';
import { nameUnended, openRestore, reconcileRun, stepsOfFile, summaryFromFile } from '../result/run-record.js';
import { discoverRevisions } from '../../migrations/discover.js';
import type { Revision } from '../../migrations/revision.js';
import { readApplied } from '../../migrations/storage.js';
import { compareWithDisk, type DriftedRevision } from '../session/database-state.js';
import { lockHolderAmong, type LockHolderInfo } from '../session/run-lock.js';
import { pickUnsettled, planRecovery, planUnrecorded, withoutEnded, type RecoveryPlan } from '../recovery/recovery-plan.js';
import { openTargetSession, sessionOptions, type RunSetup } from '../session/setup.js';
import { halfSwap, type HalfSwap } from '../steps/restore-step.js';
import { SCOPE_COPIES, scopeCopiesNamedIn } from '../../scope/scope-copies.js';
import { findLeftMarked } from '../../db/marked-databases.js';
import { REHEARSAL_DATABASES } from '../../rehearse/throwaway.js';

export interface StatusReport {
  target: string;
  source: string;
  serverVersion: string;
  initialised: boolean;
  /** The database's revision: its newest applied one, its files on disk or not. */
  current: string | null;
  /** The newest applied revision whose files are on disk: `current` unless those are missing; null when none is. */
  currentOnDisk: string | null;
  applied: Array<{ name: string; appliedAt: string; durationMs: number; drifted: boolean }>;
  pending: string[];
  drift: DriftedRevision[];
  missing: string[];
  outOfOrder: string[];
  lock: LockHolderInfo | null;
  lastRun: RunSummary | null;
  /** A run that was killed or lost its connection, and what `belay recover` will do about it. */
  interrupted: Omit<RecoveryPlan, 'fingerprint' | 'landing'> | null;
  /** Databases belay's restores left beside this one, and the quarantine schemas its targeted restores left in it: for the operator to check, then drop. */
  leftovers: LeftoverDatabase[];
}

export interface LeftoverDatabase {
  name: string;
  /**
   * quarantine: the damaged database a swap restore set aside; restore-copy: the copy a stopped restore made (complete or not);
   * quarantine-schema: the schema in this database where a touched snapshot's restore kept the damaged tables;
   * scope-copy: the schema-only copy (no rows) a run killed while learning the backup scope left, which `belay recover` drops;
   * rehearsal: a throwaway database a killed rehearse of this database left on its server, which `belay recover` drops.
   */
  kind: 'quarantine' | 'restore-copy' | 'quarantine-schema' | 'scope-copy' | 'rehearsal';
  /** What to run once it has been checked. */
  drop: string;
}

/** `belay_quarantine_<time>`, as src/scope/touched-restore.ts names the schema (time 20261201t235228282). */
const QUARANTINE_SCHEMA = '^belay_quarantine_[0-9]{8}t[0-9]{9}$';

/** Length of a restore's time stamp (20261201t235228282z), which ends every such name. */
const STAMP_LENGTH = 19;

/** `<db>_quarantine_<time>` and `<db>_belay_restore_<time>`, as restore-step names them (the base cut to fit 63 bytes). */
function leftoverPrefixes(database: string): { quarantine: string; 'restore-copy': string } {
  const prefix = (kind: string): string => derivedName(database, `${kind}_${'0'.repeat(STAMP_LENGTH)}`).slice(0, -STAMP_LENGTH);
  return { quarantine: prefix('quarantine'), 'restore-copy': prefix('belay_restore') };
}

interface FirstLook extends BelayAccessRow {
  server_version: string;
  leftovers: string[];
  schemas: string[];
  /** The lock holder's columns, all null when nobody holds the lock. */
  pid: number | null;
}

/**
 * What status reads that needs no belay table, in one statement: the server
 * version, whether belay's tables exist, the leftover databases and the lock
 * holder (the first, if several sessions held it).
 */
async function firstLook(client: ClientBase, database: string): Promise<{ serverVersion: string; initialised: boolean; leftovers: LeftoverDatabase[]; holder: LockHolder | undefined }> {
  const kinds = leftoverPrefixes(database);
  const { rows } = await client.query<FirstLook & Nullable<LockHolderRow>>(
    `SELECT current_setting('server_version') AS server_version,
            ${BELAY_ACCESS_COLUMNS},
            array(SELECT datname::text FROM pg_catalog.pg_database
                   WHERE (starts_with(datname, $3) AND length(datname) = length($3) + $5) OR (starts_with(datname, $4) AND length(datname) = length($4) + $5)
                   ORDER BY datname) AS leftovers,
            array(SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname ~ $6 ORDER BY nspname) AS schemas,
            holder.*
       FROM (SELECT) one ${BELAY_ACCESS_JOIN} LEFT JOIN LATERAL (${LOCK_HOLDER_ROWS} LIMIT 1) holder ON true`,
    [...LOCK_KEYS, kinds.quarantine, kinds['restore-copy'], STAMP_LENGTH, QUARANTINE_SCHEMA],
  );
  const row = rows[0]!;
  return {
    serverVersion: row.server_version,
    initialised: belayRecordPresent(row),
    leftovers: [
      ...row.leftovers.map((datname): LeftoverDatabase => ({
        name: datname,
        kind: datname.startsWith(kinds.quarantine) ? 'quarantine' : 'restore-copy',
        drop: `DROP DATABASE ${quoteIdent(datname)};`,
      })),
      ...row.schemas.map((nspname): LeftoverDatabase => ({ name: nspname, kind: 'quarantine-schema', drop: `DROP SCHEMA ${quoteIdent(nspname)} CASCADE;` })),
    ],
    holder: isHolder(row) ? toLockHolder(row) : undefined,
  };
}

type Nullable<T> = { [K in keyof T]: T[K] | null };

function isHolder(row: Nullable<LockHolderRow>): row is LockHolderRow {
  return row.pid !== null;
}

/**
 * The revisions on disk and a session, the connection (mostly waiting on the
 * server) opened while the files are read and hashed. A revisions folder that
 * cannot be read is the error reported, as when the two ran one after the other;
 * the session opened beside it is closed first.
 */
async function discoverWhileConnecting(setup: RunSetup): Promise<{ revisions: Revision[]; session: Session; swap?: HalfSwap }> {
  const opening = openTargetSession(setup, 'belay status').then(
    (session) => ({ session }),
    (error: unknown) => ({ error }),
  ).then(async (opened) => {
    if (!('error' in opened) || !isMissingDatabase(opened.error)) return opened;
    // a swap killed between its renames: the copy recover puts in place tells where the database will stand
    const swap = await halfSwap(setup);
    return swap ? { session: await openSession(withDatabase(setup.target, swap.copy), sessionOptions(setup, 'belay status')), swap } : opened;
  }).catch((error: unknown) => ({ error }));
  let revisions: Revision[];
  try {
    revisions = await discoverRevisions(setup.config.migrationsDir);
  } catch (error) {
    const opened = await opening;
    if ('session' in opened) await opened.session.close();
    throw error;
  }
  const opened = await opening;
  if ('error' in opened) throw opened.error;
  return { revisions, session: opened.session, ...('swap' in opened ? { swap: opened.swap } : {}) };
}

/**
 * The run history lists first: a later run of this database that only its
 * journal file tells of (one refused before it wrote in the database), else
 * the database's newest row made whole from its journal file. Run ids are
 * time-ordered (UUIDv7): only the files named after that row are read, newest first.
 */
async function lastRunOf(client: ClientBase, setup: RunSetup, newest: RunSummary | undefined): Promise<RunSummary | null> {
  const files = await listJournalFiles(setup.config.backupsDir);
  for (const file of files.reverse()) {
    if (newest && basename(file, '.jsonl') <= newest.runId) break;
    const lines = await readJournalFile(file).catch(() => undefined);
    if (lines && summaryFromFile(lines)?.database === setup.target.database) return (await reconcileRun(client, undefined, lines)) ?? null;
  }
  return newest ? wholeRun(client, setup, newest) : null;
}

/** A run's row made whole from its journal file, as history shows it: a run with no outcome, where its steps left the database. */
async function wholeRun(client: ClientBase, setup: RunSetup, row: RunSummary): Promise<RunSummary> {
  return (await reconcileRun(client, row, await readJournalFile(journalFile(setup.config.backupsDir, row.runId)).catch(() => undefined))) ?? row;
}

/** Where the database stands; reads only, takes no lock. */
export async function runStatus(setup: RunSetup): Promise<StatusReport> {
  const { revisions, session, swap } = await discoverWhileConnecting(setup);
  try {
    const client = session.client;
    const look = await firstLook(client, setup.target.database);
    // the journals of runs that never wrote their outcome, read once: the copies they named, the runs the database lacks
    const unfinished = await unfinishedJournals(setup.config.backupsDir, setup.target.database);
    const scopeCopies = await findLeftMarked(client, SCOPE_COPIES, setup.target.database, scopeCopiesNamedIn(unfinished));
    const rehearsals = await findLeftMarked(client, REHEARSAL_DATABASES, setup.target.database);
    const applied = look.initialised ? await readApplied(client) : [];
    const runs = look.initialised ? await readNewestAndRunning(client) : { newest: undefined, running: [] };
    const state = compareWithDisk(look.initialised, applied, revisions);
    const drifted = new Set(state.drift.map((d) => d.name));
    // runs only their journal file tells of: the one holding the lock is running, before it wrote to the database
    const strayJournals = await findStrayRuns(client, setup.config.backupsDir, setup.target.database, undefined, unfinished);
    const strays = strayJournals.flatMap(({ lines }) => summaryFromFile(lines) ?? []).map((run) => ({ ...run, status: 'running' }));
    const lock = look.holder ? lockHolderAmong(look.holder, [...runs.running, ...strays]) : null;
    const live = (runId: string): boolean => runId === lock?.run?.runId;
    // a run marked running is interrupted unless it is the one holding the lock right now
    const { run: interruptedRun, others } = pickUnsettled(await withoutEnded(runs.running.filter((run) => !live(run.runId)), setup.config.backupsDir));
    const unrecorded = strays.filter((run) => !live(run.runId)).reverse();
    // one killed once its restore had put the snapshot in place: the runs the database shows running are the snapshot's
    const replacing = unrecorded.find((run) => openRestore(stepsOfFile(strayJournals.find(({ header }) => header.runId === run.runId)?.lines ?? []), []));
    let interrupted: StatusReport['interrupted'] = null;
    if (replacing || interruptedRun || unrecorded[0]) {
      const { fingerprint: _fingerprint, landing: _landing, ...plan } = replacing
        ? await planRecovery(client, setup.config.backupsDir, replacing, [], revisions)
        : interruptedRun
          ? await planRecovery(client, setup.config.backupsDir, interruptedRun, others, revisions)
          : planUnrecorded([unrecorded[0]!, ...unrecorded.slice(1)]);
      const renaming = swap && plan.run.runId === swap.runId ? `${setup.target.database} does not exist: the run was killed between the renames of its swap restore (${setup.target.database} to ${swap.quarantine}, its verified copy ${swap.copy} to ${setup.target.database}); recover renames ${swap.copy} to ${setup.target.database} first, as the run would have (this status is read from ${swap.copy}); then ` : '';
      // its row's to_revision is where it was headed, its snapshot_id unset until it ended: shown as lastRun and history show it
      const run = !replacing && interruptedRun ? await wholeRun(client, setup, interruptedRun) : plan.run;
      interrupted = { ...plan, why: `${renaming}${plan.why}`, run: nameUnended(run, live) };
    }
    const lastRun = await lastRunOf(client, setup, runs.newest);
    return {
      target: describeTarget(setup.target),
      source: setup.target.source,
      serverVersion: look.serverVersion,
      initialised: state.initialised,
      current: state.current,
      currentOnDisk: state.currentOnDisk,
      applied: state.applied.map((row) => ({ name: row.name, appliedAt: row.appliedAt, durationMs: row.durationMs, drifted: drifted.has(row.name) })),
      pending: state.pending.map((revision) => revision.name),
      drift: state.drift,
      missing: state.missing,
      outOfOrder: state.outOfOrder,
      lock,
      lastRun: lastRun && nameUnended(lastRun, live),
      interrupted,
      leftovers: [
        ...look.leftovers.filter(({ name }) => name !== swap?.copy),
        ...scopeCopies.map((name): LeftoverDatabase => ({ name, kind: 'scope-copy', drop: `DROP DATABASE ${quoteIdent(name)};` })),
        ...rehearsals.map((name): LeftoverDatabase => ({ name, kind: 'rehearsal', drop: `DROP DATABASE ${quoteIdent(name)};` })),
      ],
    };
  } finally {
    session.release();
  }
}
