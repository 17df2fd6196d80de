import type { ClientBase } from 'pg';
import { belaySchemaExists } from '../db/belay-schema.js';
import { REFUSALS, type JournalRecord, type RunHeader, type RunOutcome } from './record.js';

/**
 * belay's own bookkeeping SQL about runs, in one place: belay.runs,
 * belay.steps, and what belay.migrations says about a run. The engine's
 * record of applied revisions (written with each revision) stays with it.
 */

export interface RunSummary {
  runId: string;
  command: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  fromRevision: string | null;
  toRevision: string | null;
  exitCode: number | null;
  snapshotId: string | null;
  lastStep: string | null;
  runBy: string;
  /** The database the run changed: belay.runs holds only its own database's runs; a journal file names it. */
  database: string | null;
}

interface RunRow {
  id: string;
  command: string;
  status: string;
  started_at: Date;
  finished_at: Date | null;
  from_revision: string | null;
  to_revision: string | null;
  exit_code: number | null;
  snapshot_id: string | null;
  last_step: string | null;
  run_by: string;
  database: string;
}

const RUN_COLUMNS = 'id, command, status, started_at, finished_at, from_revision, to_revision, exit_code, snapshot_id, last_step, run_by, current_database() AS database';

function toRunSummary(row: RunRow): RunSummary {
  return {
    runId: row.id,
    command: row.command,
    status: row.status,
    startedAt: row.started_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
    fromRevision: row.from_revision,
    toRevision: row.to_revision,
    exitCode: row.exit_code,
    snapshotId: row.snapshot_id,
    lastStep: row.last_step,
    runBy: row.run_by,
    database: row.database,
  };
}

/** Every run, the newest first. */
export async function readRuns(client: ClientBase): Promise<RunSummary[]> {
  if (!(await belaySchemaExists(client))) return [];
  const { rows } = await client.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM belay.runs ORDER BY started_at DESC`);
  return rows.map(toRunSummary);
}

export async function readRun(client: ClientBase, runId: string): Promise<RunSummary | undefined> {
  const { rows } = await client.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM belay.runs WHERE id = $1`, [runId]);
  return rows[0] && toRunSummary(rows[0]);
}

/** Runs marked running, newest first, but `except` (the caller's own). */
export async function findUnfinishedRuns(client: ClientBase, except?: string): Promise<RunSummary[]> {
  if (!(await belaySchemaExists(client))) return [];
  const { rows } = await client.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM belay.runs WHERE status = 'running' AND id::text <> coalesce($1, '') ORDER BY started_at DESC`,
    [except ?? null],
  );
  return rows.map(toRunSummary);
}

/** The running run whose id ends with `suffix` (a lock holder's application_name carries it). */
export async function findRunningBySuffix(client: ClientBase, suffix: string): Promise<RunSummary | undefined> {
  if (!(await belaySchemaExists(client))) return undefined;
  const { rows } = await client.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM belay.runs WHERE status = 'running' AND right(id::text, 12) = $1 ORDER BY started_at DESC LIMIT 1`,
    [suffix],
  );
  return rows[0] && toRunSummary(rows[0]);
}

/**
 * The newest run and the runs marked running (newest first), in one
 * statement, for a database where belay.runs exists: what status shows.
 */
export async function readNewestAndRunning(client: ClientBase): Promise<{ newest: RunSummary | undefined; running: RunSummary[] }> {
  const { rows } = await client.query<RunRow & { newest: boolean }>(
    `WITH newest AS (SELECT id FROM belay.runs ORDER BY started_at DESC LIMIT 1)
     SELECT ${RUN_COLUMNS}, id IN (SELECT id FROM newest) AS newest FROM belay.runs
      WHERE status = 'running' OR id IN (SELECT id FROM newest)
      ORDER BY started_at DESC`,
  );
  const newest = rows.find((row) => row.newest);
  return { newest: newest && toRunSummary(newest), running: rows.filter((row) => row.status === 'running').map(toRunSummary) };
}

/** A run's steps in the database copy of its journal. */
export async function readRunSteps(client: ClientBase, runId: string): Promise<JournalRecord[]> {
  if (!(await belaySchemaExists(client))) return [];
  const { rows } = await client.query<{
    seq: number;
    at: Date;
    step: string;
    event: JournalRecord['event'];
    revision: string | null;
    subject: string | null;
    outcome: string | null;
    duration_ms: number | null;
    detail: Record<string, unknown> | null;
  }>('SELECT seq, at, step, event, revision, subject, outcome, duration_ms, detail FROM belay.steps WHERE run_id = $1 ORDER BY seq', [runId]);
  return rows.map((row) => {
    const record: JournalRecord = { runId, seq: row.seq, at: row.at.toISOString(), step: row.step, event: row.event };
    if (row.revision) record.revision = row.revision;
    if (row.subject) record.subject = row.subject;
    if (row.outcome) record.outcome = row.outcome;
    if (row.duration_ms !== null) record.durationMs = row.duration_ms;
    if (row.detail) record.detail = row.detail;
    return record;
  });
}

/** The revisions a run applied that are still applied. */
export async function revisionsAppliedBy(client: ClientBase, runId: string): Promise<Set<string>> {
  const { rows } = await client.query<{ name: string }>('SELECT name FROM belay.migrations WHERE run_id = $1', [runId]);
  return new Set(rows.map((row) => row.name));
}

export async function appliedRevisionNames(client: ClientBase): Promise<Set<string>> {
  const { rows } = await client.query<{ name: string }>('SELECT name FROM belay.migrations');
  return new Set(rows.map((row) => row.name));
}

/**
 * An interrupted run, settled by the run that verified its database. A run
 * whose journal file holds the outcome it printed (its server stopped before
 * the database copy took it) keeps that outcome; any other is "interrupted",
 * at `leftAt`, where it left the database, with `snapshotId`, the snapshot it took,
 * finished at `lastAt`, when it last journaled anything: the settling is the settling run's time, not this one's.
 */
export async function markRunSettled(
  client: ClientBase,
  runId: string,
  settledBy: string,
  outcome: string,
  recorded: RunOutcome | undefined,
  leftAt: string | null,
  snapshotId: string | null,
  lastAt: string,
): Promise<void> {
  const settled = { settledBy, settledOutcome: outcome };
  if (recorded) {
    await client.query(
      `UPDATE belay.runs SET status = $2, exit_code = $3, finished_at = $4, snapshot_id = coalesce($5, snapshot_id),
              to_revision = CASE WHEN $2 = ANY($9::text[]) THEN from_revision ELSE $6 END, summary = $7::jsonb || $8::jsonb
        WHERE id = $1 AND status IN ('running', 'in-snapshot')`,
      [runId, recorded.status, recorded.exitCode, recorded.finishedAt, recorded.snapshotId, recorded.toRevision, recorded.summary, settled, REFUSALS],
    );
    return;
  }
  await client.query(
    `UPDATE belay.runs SET status = 'interrupted', finished_at = coalesce(finished_at, $5), to_revision = $2,
            summary = coalesce(summary, '{}'::jsonb) || $3::jsonb, snapshot_id = coalesce(snapshot_id, $4)
      WHERE id = $1 AND status IN ('running', 'in-snapshot')`,
    [runId, leftAt, settled, snapshotId, lastAt],
  );
}

/** A run a snapshot caught mid-way whose outcome this copy cannot know. */
export async function markInSnapshot(client: ClientBase, runId: string, note: string): Promise<void> {
  await client.query(
    `UPDATE belay.runs SET status = 'in-snapshot', summary = coalesce(summary, '{}'::jsonb) || jsonb_build_object('note', $2::text) WHERE id = $1`,
    [runId, note],
  );
}

export async function insertRunHeader(client: ClientBase, header: RunHeader): Promise<void> {
  await client.query(
    `INSERT INTO belay.runs (id, command, status, started_at, from_revision, to_revision, run_by)
     VALUES ($1, $2, 'running', $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
    [header.runId, header.command, header.startedAt, header.fromRevision, header.toRevision, header.runBy],
  );
}

const INSERT_STEPS = `INSERT INTO belay.steps (run_id, seq, at, step, event, revision, subject, outcome, duration_ms, detail)
  SELECT $1::uuid, r.seq, r.at, r.step, r.event, r.revision, r.subject, r.outcome, r."durationMs", r.detail
    FROM jsonb_to_recordset($2::jsonb) AS r(seq integer, at timestamptz, step text, event text, revision text, subject text, outcome text, "durationMs" integer, detail jsonb)
  ON CONFLICT (run_id, seq) DO NOTHING`;

/** Journal records of one run in one statement; with `lastStep`, the run's last step too. */
export async function insertSteps(client: ClientBase, records: JournalRecord[], lastStep?: string): Promise<void> {
  const runId = records[0]?.runId;
  if (runId === undefined) return;
  const values = [runId, JSON.stringify(records)];
  if (lastStep === undefined) await client.query(INSERT_STEPS, values);
  else await client.query(`WITH step AS (${INSERT_STEPS}) UPDATE belay.runs SET last_step = $3 WHERE id = $1`, [...values, lastStep]);
}

export async function writeRunOutcome(client: ClientBase, runId: string, o: RunOutcome): Promise<void> {
  await client.query(
    // to_revision becomes where the run left the database (null: at the start, e.g. restored back to empty); a refused run left it where it was
    `UPDATE belay.runs SET status = $2, exit_code = $3, finished_at = $4, snapshot_id = $5,
            to_revision = CASE WHEN $2 = ANY($8::text[]) THEN from_revision ELSE $6 END, summary = $7 WHERE id = $1`,
    [runId, o.status, o.exitCode, o.finishedAt, o.snapshotId, o.toRevision, o.summary, REFUSALS],
  );
}
