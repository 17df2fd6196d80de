#!/usr/bin/env zx
// zx scripts/bench/ab-runner.mjs --before DIR [--n 200] [--rounds 5] [--peers] [--shape columns]:
// the runner case for two builds of belay in one run, interleaved round by
// round (psql session, the two builds of belay in turn, with --peers node-pg-migrate
// and dbmate as the runner case runs them; up, then down to the first), so
// that the VM's load falls on both alike. DIR is a copy of an earlier build's
// dist/ (e.g. `cp -r dist node_modules/.cache/belay-before/` before a change:
// inside the repository, so that its imports resolve). Prints medians, per
// revision, and each median against the psql session's.
import { argv } from 'zx';
import path from 'node:path';
import { startBenchCluster } from './cluster.mjs';
import { execTimed, onlyMs } from './exec.mjs';
import { formatMs } from './report.mjs';
import { writeRevisionSets } from './revisions.mjs';
import { median } from './stats.mjs';
import { BELAY_CLI, findTools } from './tools.mjs';

if (typeof argv.before !== 'string') {
  console.error('usage: zx scripts/bench/ab-runner.mjs --before DIST_DIR [--n 200] [--rounds 5] [--peers] [--shape tables|columns]');
  process.exit(2);
}
const N = Number(argv.n ?? 200);
const ROUNDS = Number(argv.rounds ?? 5);
// the revisions (scripts/bench/revisions.mjs): trivial tables, or columns added to a table many objects name
const SHAPE = argv.shape ?? 'tables';
const builds = { before: path.resolve(argv.before, 'cli/main.js'), after: BELAY_CLI };
const PSQL_FLAGS = ['-X', '-q', '-v', 'ON_ERROR_STOP=1'];

const cluster = await startBenchCluster();
process.once('SIGINT', () => cluster.remove().finally(() => process.exit(130)));
try {
  const set = await writeRevisionSets(path.join(cluster.work, `revisions-ab-${N}`), N, SHAPE);
  const first = set.names[0];
  const tools = argv.peers ? await findTools() : {};
  const samples = {};
  const record = (label, ms) => (samples[label] ??= []).push(ms);
  const psql = (database, script) => execTimed(cluster.bin('psql'), [...PSQL_FLAGS, '-f', script], { env: cluster.env(database), timeoutMs: 600_000 }).then(onlyMs);
  const belay = (cli, database, args) =>
    execTimed(process.execPath, [cli, '--database-url', cluster.url(database), '--migrations', set.paired, '--backups', path.join(cluster.work, 'backups'), '--yes', '--log-level', 'silent', ...args], {
      env: cluster.env(database),
      cwd: cluster.work,
      timeoutMs: 600_000,
    }).then(onlyMs);
  console.log(`== ${N} revisions (${SHAPE}) up, then down to the first: ${ROUNDS} interleaved rounds ==`);
  for (let round = 0; round < ROUNDS; round++) {
    // the two builds swap places every round: what ran just before a run changes what it costs
    const ordered = round % 2 === 0 ? Object.entries(builds) : Object.entries(builds).reverse();
    const runs = [
      ['psql session', (db) => psql(db, set.psqlSessionUp), (db) => psql(db, set.psqlSessionDown)],
      ...ordered.map(([label, cli]) => [`belay ${label}`, (db) => belay(cli, db, ['migrate', 'up']), (db) => belay(cli, db, ['rollback', '--to', first, '--no-backup'])]),
    ];
    if (tools.nodePgMigrate?.path) {
      const run = (db, args) => execTimed(process.execPath, [tools.nodePgMigrate.path, ...args, '--migrations-dir', set.nodePgMigrate, '--no-single-transaction'], { env: cluster.env(db), cwd: set.dir, timeoutMs: 600_000 }).then(onlyMs);
      runs.push(['node-pg-migrate', (db) => run(db, ['up']), (db) => run(db, ['down', String(N - 1)])]);
    }
    if (tools.dbmate?.path) {
      const run = (db, command) =>
        execTimed(tools.dbmate.path, ['--no-dump-schema', '--migrations-dir', set.dbmate, command], { env: cluster.env(db, { DATABASE_URL: `${cluster.url(db)}?sslmode=disable` }), cwd: set.dir, timeoutMs: 600_000 });
      runs.push([
        'dbmate',
        (db) => run(db, 'migrate').then(onlyMs),
        async (db) => {
          // one process per revision: dbmate has no "rollback to"
          const started = performance.now();
          for (let i = 1; i < N; i++) await run(db, 'rollback');
          return { ms: performance.now() - started };
        },
      ]);
    }
    for (const [label, up, down] of runs) {
      const database = `ab_${label.replace(/\W+/g, '_')}_${round}`;
      await cluster.createDatabase(database);
      try {
        record(`${label} up`, (await up(database)).ms);
        record(`${label} down`, (await down(database)).ms);
      } finally {
        await cluster.dropDatabase(database);
      }
    }
  }
  for (const direction of ['up', 'down']) {
    const count = direction === 'up' ? N : N - 1;
    const base = median(samples[`psql session ${direction}`]);
    for (const label of ['psql session', ...Object.keys(builds).map((b) => `belay ${b}`), 'node-pg-migrate', 'dbmate']) {
      const values = samples[`${label} ${direction}`];
      if (!values) continue;
      const m = median(values);
      console.log(
        `  ${`${label} ${direction}`.padEnd(20)} median ${formatMs(m).padStart(8)}  ${formatMs(m / count).padStart(8)}/rev  ${(m / base).toFixed(2)}× session  (min ${formatMs(Math.min(...values))}, max ${formatMs(Math.max(...values))})`,
      );
    }
  }
} finally {
  await cluster.remove();
}
