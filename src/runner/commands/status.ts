import type { ClientBase } from 'pg';
import { describeTarget } from '../../db/connection.js';
import { derivedName } from '../../db/databases.js';
import { quoteIdent } from '../../db/ident.js';
import { readRuns, type RunSummary } from '../../journal/run-store.js';
import { discoverRevisions } from '../../migrations/discover.js';
import { readDatabaseState, type DriftedRevision } from '../session/database-state.js';
import { describeLockHolder, type LockHolderInfo } from '../session/run-lock.js';
import { findUnsettled, planRecovery, type RecoveryPlan } from '../recovery/recovery-plan.js';
import { openTargetSession, type RunSetup } from '../session/setup.js';
import type { Session } from '../../db/session.js';
import type { Revision } from '../../migrations/revision.js';

export interface StatusReport {
  target: string;
  source: string;
  serverVersion: string;
  initialised: boolean;
  current: string | null;
  applied: Array<{ name: string; appliedAt: string; durationMs: number; drifted: boolean }>;
  pending: string[];
  drift: DriftedRevision[];
  missing: string[];
  outOfOrder: string[];
  lock: LockHolderInfo | null;
  lastRun: RunSummary | null;
  /** A run that was killed or lost its connection, and what `belay recover` will do about it. */
  interrupted: Omit<RecoveryPlan, 'fingerprint'> | null;
  /** Databases belay's restores left beside this one: for the operator to check, then drop. */
  leftovers: LeftoverDatabase[];
}

export interface LeftoverDatabase {
  name: string;
  /** quarantine: the damaged database a swap restore set aside; restore-copy: a stopped restore's half-made copy. */
  kind: 'quarantine' | 'restore-copy';
  /** What to run once it has been checked. */
  drop: string;
}

/** Length of a restore's time stamp (20261201t235228282z), which ends every such name. */
const STAMP_LENGTH = 19;

/** `<db>_quarantine_<time>` and `<db>_belay_restore_<time>`, as restore-step names them (the base cut to fit 63 bytes). */
async function findLeftovers(client: ClientBase, database: string): Promise<LeftoverDatabase[]> {
  const prefix = (kind: string): string => derivedName(database, `${kind}_${'0'.repeat(STAMP_LENGTH)}`).slice(0, -STAMP_LENGTH);
  const kinds = { quarantine: prefix('quarantine'), 'restore-copy': prefix('belay_restore') } as const;
  const { rows } = await client.query<{ datname: string }>(
    `SELECT datname FROM pg_catalog.pg_database
      WHERE (starts_with(datname, $1) AND length(datname) = length($1) + $3) OR (starts_with(datname, $2) AND length(datname) = length($2) + $3)
      ORDER BY datname`,
    [kinds.quarantine, kinds['restore-copy'], STAMP_LENGTH],
  );
  return rows.map(({ datname }) => ({
    name: datname,
    kind: datname.startsWith(kinds.quarantine) ? 'quarantine' : 'restore-copy',
    drop: `DROP DATABASE ${quoteIdent(datname)};`,
  }));
}

/**
 * The revisions on disk and a session, the connection (mostly waiting on the
 * server) opened while the files are read and hashed. A revisions folder that
 * cannot be read is the error reported, as when the two ran one after the other;
 * the session opened beside it is closed first.
 */
async function discoverWhileConnecting(setup: RunSetup): Promise<{ revisions: Revision[]; session: Session }> {
  const opening = openTargetSession(setup, 'belay status').then(
    (session) => ({ session }),
    (error: unknown) => ({ error }),
  );
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
  return { revisions, session: opened.session };
}

/** Where the database stands; reads only, takes no lock. */
export async function runStatus(setup: RunSetup): Promise<StatusReport> {
  const { revisions, session } = await discoverWhileConnecting(setup);
  try {
    const client = session.client;
    const state = await readDatabaseState(client, revisions);
    const drifted = new Set(state.drift.map((d) => d.name));
    const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    const [lastRun] = await readRuns(client, 1);
    const lock = (await describeLockHolder(client)) ?? null;
    // a run marked running is interrupted unless it is the one holding the lock right now
    const { run: interruptedRun, others } = await findUnsettled(client, lock?.run?.runId);
    let interrupted: StatusReport['interrupted'] = null;
    if (interruptedRun) {
      const { fingerprint: _fingerprint, ...plan } = await planRecovery(client, setup.config.backupsDir, interruptedRun, others, revisions);
      interrupted = plan;
    }
    return {
      target: describeTarget(setup.target),
      source: setup.target.source,
      serverVersion: rows[0]?.v ?? 'unknown',
      initialised: state.initialised,
      current: state.current,
      applied: state.applied.map((row) => ({ name: row.name, appliedAt: row.appliedAt, durationMs: row.durationMs, drifted: drifted.has(row.name) })),
      pending: state.pending.map((revision) => revision.name),
      drift: state.drift,
      missing: state.missing,
      outOfOrder: state.outOfOrder,
      lock,
      lastRun: lastRun ?? null,
      interrupted,
      leftovers: await findLeftovers(client, setup.target.database),
    };
  } finally {
    await session.close();
  }
}
