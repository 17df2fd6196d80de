// Run as `unshare -n node --import tsx frozen-namespace.ts PROJECT_DIR MIGRATIONS BACKUPS`, in a network namespace of its own:
// starts a cluster there, runs `belay migrate up` against it over TCP, and once the revision's statement has run
// `holdMs`, takes the namespace's loopback down, so that the path between them passes nothing and closes nothing.
// Prints on stdout, as JSON, how belay ended (`hung` if it had not within `boundMs` after that and was killed).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { startTempCluster } from '../../src/cluster/temp-cluster.js';
import { quoteIdent } from '../../src/db/ident.js';
import { cleanEnv, startBelay } from './cli.js';
import { TEST_APP_PASSWORD, TEST_APP_ROLE } from './constants.js';

const run = promisify(execFile);
const [projectDir, migrations, backups, holdMs, boundMs] = process.argv.slice(2);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

await run('ip', ['link', 'set', 'lo', 'up']);
const server = await startTempCluster({ prefix: 'belay-frozen-', superuser: 'postgres', tcp: true, pgBin: process.env.PG_BIN, path: process.env.PATH });
try {
  const admin = new pg.Client({ host: server.spec.socketDir, port: server.spec.port, user: 'postgres', database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE ROLE ${quoteIdent(TEST_APP_ROLE)} LOGIN PASSWORD '${TEST_APP_PASSWORD}'`);
  await admin.query(`CREATE DATABASE app OWNER ${quoteIdent(TEST_APP_ROLE)}`);
  const url = `postgresql://${TEST_APP_ROLE}:${encodeURIComponent(TEST_APP_PASSWORD)}@127.0.0.1:${server.spec.port}/app`;
  const belay = startBelay(['--database-url', url, '--migrations', migrations!, '--backups', backups!, '--json', 'migrate', 'up'], { cwd: projectDir, env: cleanEnv(), timeoutMs: 600_000 });
  let startedAt: number | undefined;
  while (startedAt === undefined) {
    const early = await Promise.race([belay.done, sleep(50).then(() => undefined)]);
    if (early) throw new Error(`belay ended (exit ${early.code}) before its revision ran: ${early.stdout}\n${early.stderr}`);
    const rows = await admin.query<{ ms: number }>("SELECT extract(epoch FROM now() - query_start) * 1000 AS ms FROM pg_stat_activity WHERE datname = 'app' AND state = 'active' AND query LIKE '%pg_sleep%'");
    if (rows.rows.length > 0) startedAt = performance.now() - Number(rows.rows[0]!.ms);
  }
  await sleep(Math.max(0, startedAt + Number(holdMs) - performance.now()));
  // the control: the statement still runs after the connection sat idle past keepalive's first probe
  const stillRunning = (await admin.query("SELECT 1 FROM pg_stat_activity WHERE datname = 'app' AND state = 'active' AND query LIKE '%pg_sleep%'")).rows.length === 1;
  await run('ip', ['link', 'set', 'lo', 'down']);
  const frozenAt = performance.now();
  const bound = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), Number(boundMs)).unref());
  const ended = await Promise.race([belay.done, bound]);
  if (ended === 'hung') belay.child.kill('SIGKILL');
  const seconds = (performance.now() - frozenAt) / 1000;
  await admin.end();
  process.stdout.write(JSON.stringify({ stillRunning, seconds, ...(ended === 'hung' ? { hung: true } : ended) }));
} finally {
  await server.remove();
}
