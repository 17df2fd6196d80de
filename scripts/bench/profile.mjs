#!/usr/bin/env zx
// zx scripts/bench/profile.mjs: where belay's time goes, for the targets the
// benchmark reports missed. On a throwaway cluster of its own that logs every
// statement of the bench role, it prints
//   - the import cost of belay's heaviest dependencies and module graphs,
//   - `belay status` warm (the library call in this process) against cold,
//   - statements and connections per command, and per revision of migrate up,
//   - journal lines (one fdatasync each) and what an fdatasync costs here,
//   - the cost of finding pg_dump/pg_restore (resolveBackupTools).
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { pgbenchDatabase } from './pgbench.mjs';
import { ROLE, startBenchCluster } from './cluster.mjs';
import { execTimed } from './exec.mjs';
import { formatMs } from './report.mjs';
import { writeRevisionSets } from './revisions.mjs';
import { median } from './stats.mjs';
import { BELAY_CLI, ROOT } from './tools.mjs';

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
  await cluster.admin.query(`ALTER ROLE ${ROLE} SET log_statement = 'all'`);
  const backups = path.join(cluster.work, 'backups');
  const belay = (database, args, options = {}) =>
    execTimed(process.execPath, [BELAY_CLI, '--database-url', cluster.url(database), '--backups', backups, '--log-level', 'silent', ...args], { env: cluster.env(database), cwd: cluster.work, timeoutMs: 600_000, ...options });

  console.log(`== import cost, median of ${REPS} fresh processes (measured inside the process) ==`);
  console.log(`  node -e 0, whole process: ${formatMs(await medianOf(REPS, async () => (await execTimed(process.execPath, ['-e', '0'], { timeoutMs: 30_000 })).ms))}`);
  for (const specifier of ['commander', 'pino', 'pg', './dist/cli/logger.js', './dist/cli/format.js', './dist/runner/commands/status.js', './dist/api/commands.js']) {
    console.log(`  import ${specifier.padEnd(26)} ${formatMs(await importMs(specifier))}`);
  }

  console.log('\n== belay status: cold process vs the same call warm in this process ==');
  await cluster.createDatabase('profile_status');
  await belay('profile_status', ['--migrations', path.join(ROOT, 'migrations'), 'migrate', 'up']);
  const statusArgs = ['--migrations', path.join(ROOT, 'migrations'), 'status'];
  const cold = await medianOf(REPS, async () => (await belay('profile_status', statusArgs)).ms);
  const { status } = await import('../../dist/index.js');
  const options = { databaseUrl: cluster.url('profile_status'), migrations: path.join(ROOT, 'migrations'), backups, env: cluster.env('profile_status'), cwd: cluster.work };
  await status(options);
  const warm = await medianOf(REPS, async () => {
    const started = performance.now();
    await status(options);
    return performance.now() - started;
  });
  const served = await statementsDuring(cluster, () => belay('profile_status', statusArgs));
  console.log(`  cold ${formatMs(cold)}; warm library call ${formatMs(warm)} (config, connection, ${served.statements} statements on ${served.connections} connection(s), revision files read and hashed)`);
  console.log(`  so about ${formatMs(cold - warm)} of a cold status is node start-up, module loading and exit`);

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
