#!/usr/bin/env zx
// npm run bench [-- --quick] [-- --only ID,ID]
// Measures belay against raw PostgreSQL tools and peer runners on a throwaway
// cluster of its own (removed at the end, on error and on SIGINT too). A full
// run writes docs/bench/latest.json and the results part of docs/performance.md;
// --quick (small sizes, a smoke run) writes docs/bench/quick.json; --only, or a
// run where a case failed, writes docs/bench/partial.json (both ignored by git).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { argv } from 'zx';
import { startBenchCluster } from './cluster.mjs';
import { execTimed, stopChildren } from './exec.mjs';
import { caseText, machine, resultsMarkdown, settingsText, targetsText } from './report.mjs';
import { ROOT, findTools, snapshotBelay } from './tools.mjs';
import runnerOverhead from './cases/runner-overhead.mjs';
import backupStep from './cases/backup.mjs';
import fingerprint from './cases/fingerprint.mjs';
import restore from './cases/restore.mjs';
import coldStart from './cases/cold-start.mjs';
import rehearse from './cases/rehearse.mjs';
import seedStory from './cases/seed-story.mjs';
import touchedBackup from './cases/touched-backup.mjs';

const MARK_START = '<!-- bench:results:start -->';
const MARK_END = '<!-- bench:results:end -->';
const CASES = [runnerOverhead, backupStep, touchedBackup, fingerprint, restore, coldStart, rehearse, seedStory];
const quick = argv.quick === true;
const only = argv.only ? String(argv.only).split(',') : null;
const unknown = (only ?? []).filter((id) => !CASES.some((c) => c.id === id));
if (unknown.length > 0) {
  console.error(`unknown case ${unknown.join(', ')}; cases: ${CASES.map((c) => c.id).join(', ')}`);
  process.exit(2);
}
const selected = CASES.filter((c) => !only || only.includes(c.id));

// timed rounds and untimed warm-up rounds per case. Quick mode, a smoke run, skips the warm-ups and times
// the two slow cases (a cluster or a health wait in every round) 3 times instead of 5.
const PLAN = quick
  ? { runner: { reps: 5, warmup: 0 }, backup: { reps: 5, warmup: 0 }, fingerprint: { reps: 5, warmup: 0 }, restore: { reps: 5, warmup: 0 }, coldStart: { reps: 10, warmup: 0 }, rehearse: { reps: 3, warmup: 0 }, story: { reps: 3, warmup: 0 } }
  : { runner: { reps: 5, warmup: 1 }, backup: { reps: 5, warmup: 1 }, fingerprint: { reps: 7, warmup: 1 }, restore: { reps: 5, warmup: 1 }, coldStart: { reps: 20, warmup: 2 }, rehearse: { reps: 5, warmup: 1 }, story: { reps: 5, warmup: 1 } };

const started = performance.now();
let cluster;
let belayCopy;
let removing;
const cleanUp = () => (removing ??= Promise.all([cluster?.remove(), belayCopy?.remove()]));
// the first signal stops the run at the next command and lets it clean up; a second one cleans up at once
const stop = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (stop.signal.aborted) {
      cleanUp().finally(() => process.exit(130));
      return;
    }
    console.error(`\n${signal}: stopping; the benchmark cluster and the copy of dist are removed next`);
    stop.abort(new Error(`stopped by ${signal}`));
    stopChildren();
  });
}

const report = {
  generatedAt: new Date().toISOString(),
  mode: quick ? 'quick' : 'full',
  command: ['npm run bench', ...(quick || only ? ['--'] : []), ...(quick ? ['--quick'] : []), ...(only ? ['--only', only.join(',')] : [])].join(' '),
  plan: PLAN,
  machine: { ...machine(), loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100) },
};
let failed = false;
let progressDots = false;
try {
  const tools = await findTools();
  if (tools.belay.missing) throw new Error(tools.belay.missing);
  belayCopy = await snapshotBelay();
  cluster = await startBenchCluster();
  const settings = await cluster.settings();
  report.machine.postgres = settings.server_version;
  report.postgres = {
    settings,
    note:
      'The throwaway cluster runs with fsync=off, synchronous_commit=off and full_page_writes=off (startTempCluster, as the tests): commits and checkpoints cost less than on a durable server, so absolute times, most of all per-commit ones, are lower than in production; the ratios compare tools on the same footing. ' +
      'The bench turns autovacuum off, so that vacuums of the freshly loaded and restored tables do not run during the timings.',
  };
  report.tools = await toolVersions(tools);
  console.log(settingsText(report.postgres));
  console.log(`\ntools: ${Object.entries(report.tools).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`load average at start: ${report.machine.loadAverageAtStart.join(', ')}${report.machine.loadAverageAtStart[0] > 0.5 ? ' (the machine is busy: expect noise)' : ''}`);
  console.log(`mode: ${report.mode}${only ? ` (only ${only.join(', ')})` : ''}`);
  console.log(`rounds (timed + warm-up): ${Object.entries(PLAN).map(([id, p]) => `${id} ${p.reps}+${p.warmup}`).join(', ')}`);
  if (quick) console.log('quick mode: smaller sizes, no warm-up rounds, rehearse and seed-story timed 3 times instead of 5');

  const ctx = {
    quick,
    cluster,
    tools,
    plan: PLAN,
    signal: stop.signal,
    log: (message) => {
      if (progressDots) process.stdout.write('\n');
      progressDots = false;
      console.log(message);
    },
    onSample: (s) => {
      progressDots = true;
      process.stdout.write(s.warmup ? '·' : '.');
    },
    belay: (args, { env, cwd = cluster.work, expect = 0, timeoutMs = 600_000 } = {}) =>
      execTimed(process.execPath, [belayCopy.cli, ...args], { env: env ?? cluster.env(), cwd, expect, timeoutMs }),
  };
  report.cases = [];
  for (const c of selected) {
    if (stop.signal.aborted) break;
    ctx.log(`\n${c.title}`);
    const caseStarted = performance.now();
    let result;
    try {
      result = { id: c.id, title: c.title, ...(await c.run(ctx)) };
    } catch (error) {
      failed = true;
      console.error(`\n${error.stack ?? error}`);
      result = { id: c.id, title: c.title, error: error.message, tables: [], targets: [] };
    }
    result.seconds = Math.round((performance.now() - caseStarted) / 100) / 10;
    report.cases.push(result);
    ctx.log(caseText(result));
  }
  report.targets = report.cases.flatMap((c) => c.targets ?? []);
  console.log(targetsText(report.targets));
} catch (error) {
  failed = true;
  console.error(`\nbench failed: ${error.stack ?? error}`);
} finally {
  await cleanUp();
}

report.durationSeconds = Math.round((performance.now() - started) / 100) / 10;
report.machine.loadAverageAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
if (report.cases && !stop.signal.aborted) await writeResults(report);
console.log(`\ntotal ${report.durationSeconds} s`);
process.exitCode = stop.signal.aborted ? 130 : failed ? 1 : 0;

async function toolVersions(tools) {
  const versions = { belay: JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')).version };
  // the commit dist/ was most likely built from; "+changes" when the work tree differs from it
  const git = (args) => execTimed('git', args, { cwd: ROOT, timeoutMs: 10_000, expect: null }).catch(() => null);
  const head = await git(['rev-parse', '--short', 'HEAD']);
  if (head?.code === 0) {
    const dirty = await git(['status', '--porcelain', '--', 'src']);
    versions.belay += ` (${head.stdout.trim()}${dirty?.stdout.trim() ? '+changes in src/' : ''})`;
  }
  const pkg = async (name) => JSON.parse(await readFile(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
  versions['node-pg-migrate'] = tools.nodePgMigrate.path ? await pkg('node-pg-migrate') : 'not installed';
  versions.dbmate = tools.dbmate.path ? (await execTimed(tools.dbmate.path, ['--version'], { timeoutMs: 10_000 })).stdout.trim().replace(/^dbmate version /, '') : 'not installed';
  versions.sqitch = tools.sqitch.path ? (await execTimed(tools.sqitch.path, ['--version'], { timeoutMs: 10_000 })).stdout.trim() : 'not installed';
  return versions;
}

async function writeResults(result) {
  const dir = path.join(ROOT, 'docs/bench');
  await mkdir(dir, { recursive: true });
  const complete = !quick && !only && !failed;
  const file = path.join(dir, complete ? 'latest.json' : quick ? 'quick.json' : 'partial.json');
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`results: ${path.relative(process.cwd(), file)}`);
  if (!complete) return;
  const doc = path.join(ROOT, 'docs/performance.md');
  const text = await readFile(doc, 'utf8');
  const start = text.indexOf(MARK_START);
  const end = text.indexOf(MARK_END);
  if (start < 0 || end < start) throw new Error(`${doc} lacks the ${MARK_START} … ${MARK_END} markers`);
  await writeFile(doc, `${text.slice(0, start + MARK_START.length)}\n${resultsMarkdown(result)}\n${text.slice(end)}`);
  console.log(`results: ${path.relative(process.cwd(), doc)}`);
}
