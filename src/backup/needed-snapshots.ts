import type { ClientBase } from 'pg';
import { belaySchemaExists } from '../db/belay-schema.js';
import { listJournalFiles, readJournalFile, type JournalLine } from '../journal/file-journal.js';
import type { JournalRecord } from '../journal/record.js';
import { keptByRun, runSteps, snapshotsOfRun, stepsOfFile } from '../runner/result/run-record.js';

/** Snapshot id → why a run may still need it. */
export type NeededSnapshots = Map<string, string>;

/** Runs that `belay recover` settled, by what the recover runs journaled (their plan step names the run). */
function settledByRecover(files: ReadonlyArray<readonly JournalLine[]>): Set<string> {
  const settled = new Set<string>();
  for (const lines of files) {
    const header = lines.find((line) => line.type === 'run');
    if (header?.command !== 'recover' || !lines.some((line) => line.type === 'outcome')) continue;
    for (const line of lines) {
      const run = (line as { detail?: { run?: { runId?: unknown } } }).detail?.run;
      if (line.type === 'step' && line.step === 'plan' && typeof run?.runId === 'string') settled.add(run.runId);
    }
  }
  return settled;
}

/**
 * The snapshots a run may still need: those of runs still running or killed
 * and not yet settled, as the database says (belay.runs, belay.steps) and as
 * the journal files beside the backups say (they cover every database that
 * writes its journal into this folder). A run the database knows as finished
 * is settled; a run it does not know is taken as unsettled. Each such run
 * keeps the snapshot it took and the one it was restoring, whichever
 * `belay recover` will put back (`snapshotsOfRun`, as recover reads it),
 * and the copy its in-place restore kept of what it replaced.
 * So does every run that ended 12 (manual action needed) since a snapshot was
 * last restored and verified, with the copy a failed in-place restore kept of
 * what it dropped.
 */
export async function snapshotsRunsNeed(client: ClientBase, backupsDir: string, database: string): Promise<NeededSnapshots> {
  const needed: NeededSnapshots = new Map();
  const keep = (steps: readonly JournalRecord[], why: string): void => {
    const { taken, restoring } = snapshotsOfRun(steps);
    // with what its in-place restores kept of the database before them: after a kill, the only copy of rows written since
    for (const id of [taken, restoring, ...keptByRun(steps).snapshots]) if (id && !needed.has(id)) needed.set(id, why);
  };
  const finished = new Set<string>();
  if (await belaySchemaExists(client)) {
    const { rows } = await client.query<{ id: string; command: string; status: string; exit_code: number | null }>(
      'SELECT id::text AS id, command, status, exit_code FROM belay.runs ORDER BY started_at DESC',
    );
    for (const row of rows) {
      if (row.status !== 'running') finished.add(row.id);
      else keep(await runSteps(client, backupsDir, row.id), `run ${row.id} (${row.command} on ${database}) is running or unsettled: \`belay recover\` may restore it`);
    }
    // a run that ended needing a hand names the snapshots that hand may use (the one it could not restore, the copy
    // of what an in-place restore dropped before it failed): kept until a later run put a snapshot back and verified it
    for (const row of rows) {
      if (row.status === 'restored' || (row.command === 'restore' && row.exit_code === 0)) break;
      if (row.exit_code !== 12) continue;
      const steps = await runSteps(client, backupsDir, row.id);
      const why = `run ${row.id} (${row.command} on ${database}) ended needing manual action, and no snapshot was restored since: its next steps may need it (\`belay history ${row.id}\`; delete the file yourself once they do not)`;
      keep(steps, why);
      const kept = steps.findLast((step) => step.step === 'restore' && step.event === 'end')?.detail?.quarantineSnapshot;
      if (typeof kept === 'string' && !needed.has(kept)) needed.set(kept, why);
    }
  }
  const files = await Promise.all((await listJournalFiles(backupsDir)).map((file) => readJournalFile(file).catch(() => [] as JournalLine[])));
  const settled = settledByRecover(files);
  for (const lines of files) {
    const header = lines.find((line) => line.type === 'run');
    const runId = typeof header?.runId === 'string' ? header.runId : undefined;
    if (!runId || lines.some((line) => line.type === 'outcome') || settled.has(runId)) continue;
    if (header?.database === database && finished.has(runId)) continue;
    keep(stepsOfFile(lines), `run ${runId} (${String(header?.command)} on ${String(header?.database)}) has no outcome in its journal: it is running or was killed, and \`belay recover\` may restore it`);
  }
  return needed;
}
