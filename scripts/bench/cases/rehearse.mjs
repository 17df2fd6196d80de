// Case 6: `belay rehearse` of the sample revisions on an ephemeral cluster
// (no connection in the environment, so belay starts its own), split with the
// report's own timings; against starting and removing a bare temp cluster.
import { mkdir, mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { startTempCluster } from '../../../dist/cluster/temp-cluster.js';
import { cleanEnv } from '../exec.mjs';
import { ROOT } from '../tools.mjs';
import { interleaved, partsTable, tableOf } from '../stats.mjs';

const SEED = path.join(ROOT, 'scripts/demo/seed.sql');

export default {
  id: 'rehearse',
  title: 'Rehearsal: belay rehearse on an ephemeral cluster',
  async run(ctx) {
    const project = await mkdtemp(path.join(ctx.cluster.work, 'rehearse-'));
    await mkdir(path.join(project, 'backups'));
    // no PG* or DATABASE_URL: belay rehearses on an ephemeral cluster it starts and removes itself
    const env = cleanEnv();
    const common = ['--migrations', path.join(ROOT, 'migrations'), '--backups', path.join(project, 'backups'), '--log-level', 'silent', '--json', 'rehearse'];
    const rehearse = (name, does, extra) => ({
      name,
      does,
      run: async () => {
        const result = await ctx.belay([...common, ...extra], { env, cwd: project, timeoutMs: 600_000 });
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
        name: 'temp cluster start + remove',
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
    // the from-scratch cycle (a schema dump before every up and after every down) is the slow one: full runs only
    if (!ctx.quick) commands.push(rehearse('belay rehearse (from scratch)', 'every sample revision up, down, up; no data', []));
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
    return {
      tables: [tableOf({ name: 'rehearsal of the sample revisions', baseline: commands[0].name, commands, measured }), ...commands.slice(1).map((c) => parts(c.name))],
      ...(ctx.quick ? { skipped: [{ name: 'belay rehearse (from scratch)', reason: 'skipped in quick mode: full runs only' }] } : {}),
      notes: [
        'The seed (scripts/demo/seed.sql) fills the account schema as of 0022, so it applies with --from 0022 only; from scratch runs without data.',
        'The split comes from the rehearse --json report (timings: setupMs, buildMs, dataMs, cycleMs, teardownMs); the revisions\' own durations are its cases[].durationMs, the rest of the cycle is its checks (schema dumps, fingerprints, lock sampling).',
      ],
      targets: [],
    };
  },
};
