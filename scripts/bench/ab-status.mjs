#!/usr/bin/env zx
// zx scripts/bench/ab-status.mjs --before DIR [--after DIR] [--n 200] [--rounds 20]: a cold
// `belay status` against a database with N revisions on disk, all applied,
// for two builds of belay in one run, interleaved (node -e 0, before, after,
// …) so that the VM's load falls on both alike. DIR is a copy of an earlier
// build's dist/ inside the repository (e.g. `cp -r dist
// node_modules/.cache/belay-before/`), so that its imports resolve; --after
// likewise (default: this dist/). Checks
// first that both builds print the same JSON (but for the run's timing).
import { argv } from 'zx';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startBenchCluster } from './cluster.mjs';
import { execTimed, onlyMs } from './exec.mjs';
import { formatMs } from './report.mjs';
import { writeRevisionSets } from './revisions.mjs';
import { median } from './stats.mjs';
import { BELAY_CLI } from './tools.mjs';

if (typeof argv.before !== 'string') {
  console.error('usage: zx scripts/bench/ab-status.mjs --before DIST_DIR [--n 200] [--rounds 20]');
  process.exit(2);
}
const N = Number(argv.n ?? 200);
const ROUNDS = Number(argv.rounds ?? 20);
const builds = { before: path.resolve(argv.before, 'cli/main.js'), after: typeof argv.after === 'string' ? path.resolve(argv.after, 'cli/main.js') : BELAY_CLI };
const DATABASE = 'ab_status';

const cluster = await startBenchCluster();
process.once('SIGINT', () => cluster.remove().finally(() => process.exit(130)));
try {
  const set = await writeRevisionSets(path.join(cluster.work, `revisions-status-${N}`), N);
  const backups = path.join(cluster.work, 'backups');
  await mkdir(backups, { recursive: true });
  const args = ['--database-url', cluster.url(DATABASE), '--migrations', set.paired, '--backups', backups, '--log-level', 'silent'];
  const env = cluster.env(DATABASE);
  const belay = (cli, more) => execTimed(process.execPath, [cli, ...args, ...more], { env, cwd: cluster.work, timeoutMs: 60_000 });
  await cluster.createDatabase(DATABASE);
  await belay(BELAY_CLI, ['migrate', 'up']);
  const shown = {};
  for (const [label, cli] of Object.entries(builds)) shown[label] = JSON.stringify(JSON.parse((await belay(cli, ['status', '--json'])).stdout));
  if (shown.before !== shown.after) console.log(`!! the two builds print different JSON:\n  before ${shown.before.slice(0, 400)}\n  after  ${shown.after.slice(0, 400)}`);
  const runs = [['node -e 0', () => execTimed(process.execPath, ['-e', '0'], { env, timeoutMs: 30_000 }).then(onlyMs)], ...Object.entries(builds).map(([label, cli]) => [`status ${label}`, () => belay(cli, ['status']).then(onlyMs)])];
  const samples = Object.fromEntries(runs.map(([label]) => [label, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // alternate which build goes first
    const order = round % 2 === 0 ? runs : [runs[0], ...runs.slice(1).reverse()];
    for (const [label, run] of order) samples[label].push((await run()).ms);
  }
  console.log(`== cold belay status, ${N} revisions applied: ${ROUNDS} interleaved rounds ==`);
  for (const [label, values] of Object.entries(samples)) {
    const sorted = [...values].sort((a, b) => a - b);
    console.log(`  ${label.padEnd(14)} median ${formatMs(median(values)).padStart(8)}  (q1 ${formatMs(sorted[Math.floor(sorted.length / 4)])}, q3 ${formatMs(sorted[Math.floor((3 * sorted.length) / 4)])})`);
  }
  const paired = samples['status after'].map((ms, i) => ms - samples['status before'][i]);
  console.log(`  after − before, median of the paired differences: ${formatMs(median(paired))}`);
} finally {
  await cluster.remove();
}
