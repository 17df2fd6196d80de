#!/usr/bin/env zx
// zx scripts/bench/profile.mjs: where belay's time goes, for the targets the
// benchmark reports missed. On a throwaway cluster of its own that logs every
// statement of the bench role, it prints
//   - migrate up at 200 revisions (trivial ones, then columns added to a table
//     many objects name) against one psql session, and where belay's
//     time per revision goes: a CPU profile by source area (idle = waiting on
//     the server or an fsync), the round trips a revision costs and what
//     sending a revision's statements in one round trip would save,
//   - the import cost of belay's heaviest dependencies and module graphs,
//   - `belay status` warm (the library call in this process) against cold,
//   - statements and connections per command, and per revision of migrate up,
//   - journal lines (a revision's synced in the background) and what an fdatasync costs here,
//   - the cost of finding pg_dump/pg_restore (resolveBackupTools).
import { mkdir, mkdtemp, open, readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { pgbenchDatabase } from './pgbench.mjs';
import { ROLE, startBenchCluster } from './cluster.mjs';
import { execTimed } from './exec.mjs';
import { formatMs } from './report.mjs';
import { shapeTitle, writeRevisionSets } from './revisions.mjs';
import { median } from './stats.mjs';
import { BELAY_CLI, ROOT } from './tools.mjs';
import { timeByArea } from './cpu-profile.mjs';
import { journalSteps } from './journal.mjs';

const REPS = 7;

async function medianOf(reps, fn) {
  const values = [];
  for (let i = 0; i < reps; i++) values.push(await fn());
  return median(values);
}

/** Import `specifier` in a new node process; the time the import itself took, measured inside. */
async function importMs(specifier) {
  const code = `const t = performance.now(); await import(${JSON.stringify(specifier)}); process.stdout.write(String(performance.now() - t));`;
  return medianOf(REPS, async () => Number((await execTimed(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, timeoutMs: 30_000 })).stdout));
}

/** A run's wall time split around its per-revision apply steps, from its journal. */
function applySplit(journal) {
  const steps = journal.steps.filter((step) => step.label === 'apply' && step.end !== null);
  const inSteps = steps.reduce((sum, step) => sum + step.ms, 0);
  const between = steps.slice(1).reduce((sum, step, i) => sum + (step.start - steps[i].end), 0);
  return { inSteps, between, lines: journal.lines, first: steps[0]?.start, last: steps[steps.length - 1]?.end };
}

/** ms of `work` against a new database made for it (made and dropped outside the timing). */
async function onFreshDatabase(cluster, name, work) {
  await cluster.createDatabase(name);
  try {
    const started = performance.now();
    const result = await work(name);
    return { ms: performance.now() - started, result };
  } finally {
    await cluster.dropDatabase(name);
  }
}

/**
 * The same 200 revisions through one client in this process, each in its own
 * transaction with a tracking row: one round trip per statement (BEGIN, the
 * file's statements, the row, COMMIT; what belay's engine sends), or the whole
 * revision as one simple-query string (one round trip; the server runs it as
 * the one transaction it spells out).
 */
async function roundTripsAgainstOne(cluster, set, n) {
  const files = await Promise.all(set.upFiles.map((file) => readFile(file, 'utf8')));
  const tracking = 'CREATE TABLE psql_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())';
  const ways = {
    'one round trip per statement': async (client) => {
      for (const [i, text] of files.entries()) {
        await client.query('BEGIN');
        await client.query(text);
        await client.query('INSERT INTO psql_migrations (name) VALUES ($1)', [set.names[i]]);
        await client.query('COMMIT');
      }
    },
    'one round trip per revision': async (client) => {
      for (const [i, text] of files.entries()) await client.query(`BEGIN;\n${text};\nINSERT INTO psql_migrations (name) VALUES ('${set.names[i]}');\nCOMMIT;`);
    },
  };
  const out = {};
  for (const [label, run] of Object.entries(ways)) {
    out[label] = await medianOf(3, async () => {
      const { ms } = await onFreshDatabase(cluster, `profile_rt_${n}`, async (database) => {
        const client = await cluster.connect(database);
        try {
          await client.query(tracking);
          await run(client);
        } finally {
          await client.end();
        }
      });
      return ms;
    });
  }
  const client = await cluster.connect('postgres');
  const rtt = await medianOf(REPS, async () => {
    const started = performance.now();
    for (let i = 0; i < 200; i++) await client.query('SELECT 1');
    return (performance.now() - started) / 200;
  });
  await client.end();
  return { ways: out, rtt };
}

/** Statements and connections the server logged for the bench role while `work` ran. */
async function statementsDuring(cluster, work) {
  const log = path.join(cluster.temp.root, 'server.log');
  const before = (await readFile(log)).length;
  await work();
  // the collector may lag a moment behind the last statement
  await new Promise((resolve) => setTimeout(resolve, 300));
  const text = (await readFile(log)).subarray(before).toString('utf8');
  const lines = text.split('\n').filter((line) => /LOG: {2}(statement|execute [^:]*):/.test(line));
  const pids = new Set(lines.map((line) => /\[(\d+)\]/.exec(line)?.[1]));
  const kinds = {};
  for (const line of lines) {
    const sql = line.replace(/^.*?LOG: {2}(statement|execute [^:]*): /, '').replace(/\s+/g, ' ').slice(0, 48).replace(/\d+/g, 'N');
    kinds[sql] = (kinds[sql] ?? 0) + 1;
  }
  return { statements: lines.length, connections: pids.size, kinds };
}

const cluster = await startBenchCluster();
const removeCluster = () => cluster.remove();
process.once('SIGINT', () => removeCluster().finally(() => process.exit(130)));
try {
  const backups = path.join(cluster.work, 'backups');
  const belay = (database, args, options = {}) =>
    execTimed(process.execPath, [...(options.nodeArgs ?? []), BELAY_CLI, '--database-url', cluster.url(database), '--backups', backups, '--log-level', 'silent', ...args], { env: cluster.env(database), cwd: cluster.work, timeoutMs: 600_000, ...options });

  const N = 200;
  /** migrate up of N revisions of `shape` against one psql session, and where belay's time per revision goes; the set. */
  async function wherePerRevisionGoes(shape, what) {
    console.log(`${shape === 'tables' ? '' : '\n'}== migrate up, ${N} ${what}: where belay's time per revision goes (medians of 3, fresh databases) ==`);
    const set = await writeRevisionSets(path.join(cluster.work, `revisions-profile-${shape}-${N}`), N, shape);
    const session = await medianOf(3, async () => (await onFreshDatabase(cluster, `profile_session_${N}`, (database) => execTimed(cluster.bin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', set.psqlSessionUp], { env: cluster.env(database), timeoutMs: 600_000 }))).ms);
    const runs = [];
    for (let i = 0; i < 3; i++) {
      const { ms, result } = await onFreshDatabase(cluster, `profile_belay_${N}`, (database) => belay(database, ['--migrations', set.paired, '--json', 'migrate', 'up']));
      const split = applySplit(await journalSteps(JSON.parse(result.stdout).journal));
      runs.push({ ms, ...split, outside: ms - (split.last - split.first) });
    }
    const belayUp = median(runs.map((r) => r.ms));
    const perRevision = (field) => formatMs(median(runs.map((r) => r[field])) / N);
    console.log(`  one psql session (BEGIN, \\i file, tracking row, COMMIT per revision): ${formatMs(session)}, ${formatMs(session / N)} per revision`);
    console.log(`  belay migrate up: ${formatMs(belayUp)}, ${formatMs(belayUp / N)} per revision (${(belayUp / session).toFixed(2)}× the session); from its journal, per revision:`);
    console.log(`    ${perRevision('inSteps')} inside the apply step (its journal start line, written, its row queued; then the revision's transaction: BEGIN with its first statement, its statements, its belay.migrations row, COMMIT; all but the first revision's BEGIN and statements were sent at the previous one's COMMIT, so part of that work ran on the server before the step began)`);
    console.log(`    ${perRevision('between')} between one apply step's end and the next one's start (its journal end line, written, its row queued; the engine's bookkeeping; the server meanwhile runs the next revision's statements)`);
    console.log(`    ${perRevision('outside')} before the first and after the last apply step (node start, connections, lock, preflight, health, exit), spread over ${N}`);
    console.log(`    ${(median(runs.map((r) => r.lines)) / N).toFixed(1)} journal lines (fdatasynced in the background, but before a no-transaction revision)`);
    const profileDir = await mkdtemp(path.join(cluster.work, 'cpu-profile-'));
    await onFreshDatabase(cluster, `profile_cpu_${N}`, (database) => belay(database, ['--migrations', set.paired, 'migrate', 'up'], { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir] }));
    const [profileFile] = (await readdir(profileDir)).filter((f) => f.endsWith('.cpuprofile'));
    const byArea = await timeByArea(path.join(profileDir, profileFile));
    console.log(`  one profiled run (node --cpu-prof, which slows it), ${formatMs(byArea.totalMs)} sampled; by what was on the CPU:`);
    for (const { area, ms } of byArea.areas.filter((a) => a.ms >= 1)) console.log(`    ${formatMs(ms).padStart(9)}  ${(ms / N).toFixed(2).padStart(6)} ms/rev  ${area}`);
    const rt = await roundTripsAgainstOne(cluster, set, N);
    console.log(`  a round trip (SELECT 1) costs ${formatMs(rt.rtt)} here; the same ${N} revisions from one client in this process, no journal:`);
    for (const [label, ms] of Object.entries(rt.ways)) console.log(`    ${label}: ${formatMs(ms)}, ${formatMs(ms / N)} per revision`);
    return set;
  }

  // the runner case's two shapes: trivial revisions (a CREATE TABLE each), then columns added to a table many objects name
  const set = await wherePerRevisionGoes('tables', 'trivial revisions');
  await wherePerRevisionGoes('columns', `revisions, ${shapeTitle('columns')}`);

  await cluster.admin.query(`ALTER ROLE ${ROLE} SET log_statement = 'all'`);

  console.log(`\n== import cost, median of ${REPS} fresh processes (measured inside the process) ==`);
  console.log(`  node -e 0, whole process: ${formatMs(await medianOf(REPS, async () => (await execTimed(process.execPath, ['-e', '0'], { timeoutMs: 30_000 })).ms))}`);
  for (const specifier of ['commander', 'pino', 'pg', './dist/runner/commands/status.js', './dist/api/commands.js', './dist/index.js']) {
    console.log(`  import ${specifier.padEnd(26)} ${formatMs(await importMs(specifier))}`);
  }
  console.log(`  (the library's modules as tsc emits them; the CLI is the esbuild bundle, which has pg without its undici-loading probe)`);
  console.log(`  belay --help, whole process: ${formatMs(await medianOf(REPS, async () => (await execTimed(process.execPath, [BELAY_CLI, '--help'], { timeoutMs: 30_000 })).ms))}`);

  console.log(`\n== belay status, ${N} revisions applied: cold process vs the same call warm in this process ==`);
  await cluster.createDatabase('profile_status');
  await belay('profile_status', ['--migrations', set.paired, 'migrate', 'up']);
  const statusArgs = ['--migrations', set.paired, 'status'];
  const cold = await medianOf(REPS, async () => (await belay('profile_status', statusArgs)).ms);
  const { status } = await import('../../dist/index.js');
  const options = { databaseUrl: cluster.url('profile_status'), migrations: set.paired, backups, env: cluster.env('profile_status'), cwd: cluster.work };
  await status(options);
  const warm = await medianOf(REPS, async () => {
    const started = performance.now();
    await status(options);
    return performance.now() - started;
  });
  const served = await statementsDuring(cluster, () => belay('profile_status', statusArgs));
  console.log(`  cold ${formatMs(cold)}; warm library call ${formatMs(warm)} (config, connection, ${served.statements} statements on ${served.connections} connection(s), revision files read and hashed)`);
  console.log(`  so about ${formatMs(cold - warm)} of a cold status is node start-up, module loading and exit`);
  const discoverCode = `const { discoverRevisions } = await import('./dist/migrations/discover.js'); const t = performance.now(); await discoverRevisions(${JSON.stringify(set.paired)}); process.stdout.write(String(performance.now() - t));`;
  const discoverMs = await medianOf(REPS, async () => Number((await execTimed(process.execPath, ['--input-type=module', '-e', discoverCode], { cwd: ROOT, timeoutMs: 30_000 })).stdout));
  console.log(`  of which finding, reading and hashing the ${2 * N} revision files, first call in a fresh process: ${formatMs(discoverMs)}`);

  console.log('\n== migrate up / rollback: statements per revision ==');
  for (const n of [50, 200]) {
    const set = await writeRevisionSets(path.join(cluster.work, `revisions-${n}`), n);
    const database = `profile_up_${n}`;
    await cluster.createDatabase(database);
    let run;
    const up = await statementsDuring(cluster, async () => {
      run = await belay(database, ['--migrations', set.paired, '--json', 'migrate', 'up']);
    });
    const { journalFile } = JSON.parse(run.stdout).result;
    const journalLines = (await readFile(journalFile, 'utf8')).split('\n').filter(Boolean).length;
    const down = await statementsDuring(cluster, () => belay(database, ['--migrations', set.paired, '--yes', 'rollback', '--to', set.names[0], '--no-backup']));
    console.log(`  ${n} revisions up: ${formatMs(run.ms)}, ${up.statements} statements (${(up.statements / n).toFixed(1)} per revision) on ${up.connections} connections, ${journalLines} journal lines (${(journalLines / n).toFixed(1)} per revision)`);
    console.log(`  ${n - 1} revisions down: ${down.statements} statements (${(down.statements / (n - 1)).toFixed(1)} per revision) on ${down.connections} connections`);
    if (n === 50) {
      for (const [label, run] of [['up', up], ['down', down]]) {
        console.log(`  statements of the ${label} run, by kind:`);
        for (const [sql, count] of Object.entries(run.kinds).sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`    ${String(count).padStart(5)}  ${sql}`);
      }
    }
  }
  const probe = path.join(cluster.work, 'datasync-probe');
  const handle = await open(probe, 'a');
  const syncMs = await medianOf(REPS, async () => {
    const started = performance.now();
    for (let i = 0; i < 50; i++) {
      await handle.appendFile('{"probe":true}\n');
      await handle.datasync();
    }
    return (performance.now() - started) / 50;
  });
  await handle.close();
  await rm(probe);
  console.log(`  a journal line (append + fdatasync) costs ${formatMs(syncMs)} on this disk (${cluster.work})`);

  console.log('\n== finding pg_dump and pg_restore (resolveBackupTools, run by backup, restore and rehearse) ==');
  const { resolveBackupTools } = await import('../../dist/backup/pg-tools.js');
  const resolveMs = await medianOf(REPS, async () => {
    const started = performance.now();
    await resolveBackupTools({ search: { pgBin: process.env.PG_BIN, path: process.env.PATH }, serverMajor: 15 });
    return performance.now() - started;
  });
  console.log(`  ${formatMs(resolveMs)} per call (it runs pg_config --bindir and \`--version\` of the candidates it tries)`);

  console.log('\n== belay backup and restore on pgbench -s 10: statements and connections ==');
  const db = await pgbenchDatabase({ cluster, log: (m) => console.log(m) }, 10);
  const emptyMigrations = path.join(cluster.work, 'no-migrations');
  await mkdir(emptyMigrations, { recursive: true });
  let taken;
  const backup = await statementsDuring(cluster, async () => {
    taken = await belay(db.name, ['--migrations', emptyMigrations, '--json', 'backup']);
  });
  console.log(`  belay backup: ${formatMs(taken.ms)}, ${backup.statements} statements (pg_dump's included) on ${backup.connections} connections`);
  const id = JSON.parse(taken.stdout).result.snapshot.id;
  let restored;
  const restore = await statementsDuring(cluster, async () => {
    restored = await belay(db.name, ['--migrations', emptyMigrations, '--json', '--yes', 'restore', id, '--strategy', 'swap']);
  });
  console.log(`  belay restore --strategy swap: ${formatMs(restored.ms)}, ${restore.statements} statements (pg_restore's included) on ${restore.connections} connections`);
} finally {
  await removeCluster();
}
