// Case 6: `belay rehearse` on an ephemeral cluster (no connection in the
// environment, so belay starts its own): the sample revisions, and a
// generated set of 200 (the size of the real sets it was measured on), split
// with the report's own timings; against starting and removing a bare temp
// cluster.
import { mkdir, mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { startTempCluster } from '../../../dist/cluster/temp-cluster.js';
import { cleanEnv } from '../exec.mjs';
import { formatMs } from '../report.mjs';
import { writeRevisionSets } from '../revisions.mjs';
import { ROOT } from '../tools.mjs';
import { interleaved, partsTable, tableOf } from '../stats.mjs';

const SEED = path.join(ROOT, 'scripts/demo/seed.sql');
const GENERATED = 200;
const GENERATED_NAME = `belay rehearse (${GENERATED} generated revisions, from scratch)`;
const GOAL_MS = 30_000;
const SCRATCH_NAME = 'belay rehearse (from scratch)';
const BARE_NAME = 'temp cluster start + remove';
/** Issue 15: the sample set rehearsed from scratch, against the bare cluster it runs on. */
const SCRATCH_GOAL_RATIO = 2.5;

export default {
  id: 'rehearse',
  title: 'Rehearsal: belay rehearse on an ephemeral cluster',
  async run(ctx) {
    const project = await mkdtemp(path.join(ctx.cluster.work, 'rehearse-'));
    await mkdir(path.join(project, 'backups'));
    // no PG* or DATABASE_URL: belay rehearses on an ephemeral cluster it starts and removes itself
    const env = cleanEnv();
    const common = ['--migrations', path.join(ROOT, 'migrations'), '--backups', path.join(project, 'backups'), '--log-level', 'silent', '--json', 'rehearse'];
    const set = await writeRevisionSets(path.join(project, 'generated'), GENERATED);
    const rehearse = (name, does, extra, migrations = path.join(ROOT, 'migrations')) => ({
      name,
      does,
      run: async () => {
        const args = ['--migrations', migrations, ...common.slice(2)];
        const result = await ctx.belay([...args, ...extra], { env, cwd: project, timeoutMs: 600_000 });
        const report = JSON.parse(result.stdout).result;
        if (!report.ok || !report.where.startsWith('an ephemeral cluster')) throw new Error(`rehearse did not pass on an ephemeral cluster: ${report.where}, ok=${report.ok}`);
        const { setupMs, seedMs, buildMs, dataMs, cycleMs, teardownMs } = report.timings;
        const revisionsMs = report.cases.reduce((sum, c) => sum + c.durationMs, 0);
        return {
          ms: result.ms,
          setupMs,
          buildMs,
          dataMs,
          cycleMs,
          revisionsMs,
          teardownMs,
          cases: report.cases.length,
          outsideMs: Math.round(result.ms - setupMs - seedMs - cycleMs - teardownMs),
        };
      },
    });
    const commands = [
      {
        name: BARE_NAME,
        does: 'startTempCluster (initdb, pg_ctl start) and remove, in the bench process',
        run: async () => {
          const started = performance.now();
          const cluster = await startTempCluster({ prefix: 'belay-bench-bare-', superuser: 'postgres', tcp: false, pgBin: process.env.PG_BIN, path: process.env.PATH });
          const upMs = performance.now() - started;
          await cluster.remove();
          return { ms: performance.now() - started, startMs: Math.round(upMs) };
        },
      },
      rehearse('belay rehearse --from 0022 --seed', 'build to 0022, load scripts/demo/seed.sql, then 0023 up, down, up', ['--from', '0022', '--seed', SEED]),
    ];
    // the from-scratch cycles are the slow ones: full runs only
    if (!ctx.quick) {
      commands.push(
        rehearse(SCRATCH_NAME, 'every sample revision up, down, up; no data', []),
        rehearse(GENERATED_NAME, `${GENERATED} revisions (a table each), each up, down (schema and data checked), up`, [], set.paired),
      );
    }
    const measured = await interleaved({ commands, ...ctx.plan.rehearse, signal: ctx.signal, onSample: ctx.onSample });
    const parts = (command) =>
      partsTable({
        name: `split of ${command} (report timings; "outside" is the rest of the process)`,
        measured,
        command,
        parts: [
          ['setup: ephemeral cluster start + sessions', (s) => s.detail.setupMs],
          ['build: revisions up to --from', (s) => s.detail.buildMs],
          ['data: load the seed', (s) => s.detail.dataMs],
          ['cycle: up / down / up with checks', (s) => s.detail.cycleMs],
          ['  of which the revisions themselves', (s) => s.detail.revisionsMs],
          ['teardown: remove the ephemeral cluster', (s) => s.detail.teardownMs],
          ['outside: node start, config, output', (s) => s.detail.outsideMs],
          ['total', (s) => s.ms],
        ],
      });
    const generated = measured.summary[GENERATED_NAME];
    const scratch = measured.summary[SCRATCH_NAME];
    const bare = measured.summary[BARE_NAME];
    const ratio = scratch && bare ? scratch.median / bare.median : undefined;
    return {
      tables: [tableOf({ name: 'rehearsals', baseline: commands[0].name, commands, measured }), ...commands.slice(1).map((c) => parts(c.name))],
      ...(ctx.quick
        ? { skipped: [SCRATCH_NAME, GENERATED_NAME].map((name) => ({ name, reason: 'skipped in quick mode: full runs only' })) }
        : {}),
      notes: [
        'The seed (scripts/demo/seed.sql) fills the account schema as of 0022, so it applies with --from 0022 only; from scratch runs without data.',
        'The split comes from the rehearse --json report (timings: setupMs, buildMs, dataMs, cycleMs, teardownMs); the revisions\' own durations are its cases[].durationMs, which include the schema the runner describes and records inside every up\'s transaction (before and after it); the rest of the cycle is the rehearsal\'s checks (schema descriptions, fingerprints of the tables a step wrote, structural and SQL checks, lock sampling).',
      ],
      targets: [
        {
          name: 'rehearse: the sample set from scratch',
          goal: `≤ ${SCRATCH_GOAL_RATIO}× ${BARE_NAME}`,
          value: ratio === undefined ? 'not measured' : `${ratio.toFixed(2)}× (${formatMs(scratch.median)} against ${formatMs(bare.median)})`,
          met: ratio === undefined ? null : ratio <= SCRATCH_GOAL_RATIO,
        },
        {
          name: `rehearse: ${GENERATED} revisions from scratch`,
          goal: `≤ ${formatMs(GOAL_MS)} (the 209-revision set that took 140 s with a pg_dump per step)`,
          value: generated ? formatMs(generated.median) : 'not measured',
          met: generated ? generated.median <= GOAL_MS : null,
        },
      ],
    };
  },
};
