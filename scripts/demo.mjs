#!/usr/bin/env zx
// npm run demo: the pre-deployment checklist's story, told by belay on the embedded cluster.
//   1. registration already answers 500 → belay refuses to deploy (exit 4), nothing touched
//   2. 0023 ships and registration breaks → automatic rollback to 0022, data verified (exit 10)
//   3. a lossy 0023 whose down cannot give the data back → snapshot restored, damaged copy kept (exit 11)
//   4. the fixed application → 0023 deploys and stays (exit 0)
import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import pg from 'pg';

$.verbose = false;
const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'dist/cli/main.js');
const work = path.join(root, '.belay', 'demo');
const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

async function belay(args, { expect } = {}) {
  const result = await $({ nothrow: true, quiet: true, cwd: root })`node ${cli} --log-level silent ${args}`;
  if (expect !== undefined && result.exitCode !== expect) {
    console.error(result.stdout, result.stderr);
    throw new Error(`belay ${args.join(' ')} exited ${result.exitCode}, expected ${expect}`);
  }
  return result;
}

const apps = new Set();
process.on('exit', () => apps.forEach((child) => child.kill('SIGKILL')));

function startApp(databaseUrl, env = {}) {
  const child = spawn(process.execPath, [path.join(root, 'scripts/demo/app.mjs')], {
    env: { PATH: process.env.PATH, DATABASE_URL: databaseUrl, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  apps.add(child);
  child.once('exit', () => apps.delete(child));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the demo app did not start')), 10_000);
    child.stdout.once('data', (chunk) => {
      clearTimeout(timer);
      const port = Number(/listening (\d+)/.exec(String(chunk))[1]);
      resolve({ port, stop: () => new Promise((done) => (child.once('exit', done), child.kill('SIGTERM'))) });
    });
  });
}

async function writeConfig(port, extra = {}) {
  const file = path.join(work, 'belay.config.json');
  const config = {
    health: {
      http: [{ name: 'registration', url: `http://127.0.0.1:${port}/api/v1/onboarding/register/complete`, method: 'POST', body: { email: 'probe@example.com' }, expectStatus: 201 }],
      timeoutSeconds: 3,
      intervalSeconds: 1,
    },
    ...extra,
  };
  await writeFile(file, JSON.stringify(config, null, 2));
  return file;
}

async function timeline(common, runId) {
  const { stdout } = await belay([...common, 'history', runId]);
  console.log(stdout.split('\n').map((line) => `    ${line}`).join('\n'));
}

async function digest(client) {
  const { rows } = await client.query(
    `SELECT (SELECT count(*) FROM account.users) AS users, (SELECT md5(string_agg(email, ',' ORDER BY id)) FROM account.users) AS emails`,
  );
  return `${rows[0].users} users, emails md5 ${rows[0].emails.slice(0, 12)}…`;
}

console.log(bold('belay demo: the pre-deployment checklist, as a command\n'));
const { stdout: clusterUrl } = await belay(['cluster', 'url'], { expect: 0 });
const adminUrl = clusterUrl.trim();
const demoUrl = adminUrl.replace(/\/belay\?/, '/belay_demo?');
console.log(`embedded cluster: ${adminUrl}`);

const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
const { rows: stale } = await admin.query(`SELECT datname FROM pg_database WHERE datname LIKE 'belay_demo%'`);
for (const { datname } of stale) await admin.query(`DROP DATABASE ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
await admin.query('CREATE DATABASE belay_demo');
await admin.end();
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });
const backups = path.join(work, 'backups');
const common = ['--database-url', demoUrl, '--backups', backups];

await belay([...common, 'migrate', 'up', '--to', '0022'], { expect: 0 });
const db = new pg.Client({ connectionString: demoUrl });
// the swap restore of scenario 3 ends this session on purpose
db.on('error', () => {});
await db.connect();
await db.query(await readFile(path.join(root, 'scripts/demo/seed.sql'), 'utf8'));
console.log(`database belay_demo at 0022_active_users_view, seeded: ${await digest(db)}\n`);

// 1. the baseline gate
console.log(bold('1. registration already answers 500 before the deploy'));
let app = await startApp(demoUrl, { DEMO_BROKEN_BEFORE: '1' });
let config = await writeConfig(app.port);
let run = await belay([...common, '--config', config, 'migrate', 'up', '--with-backup'], { expect: 4 });
console.log(`   belay migrate up --with-backup → exit ${run.exitCode}`);
console.log(run.stderr.trim().split('\n').map((l) => `   ${l}`).join('\n'));
console.log(`   still at 0022, no snapshot taken: ${await digest(db)}\n`);
await app.stop();

// 2. the seed's incident, caught
console.log(bold('2. 0023_v2_mobile_schema_updates ships; registration starts answering 500'));
app = await startApp(demoUrl);
const hookLog = path.join(work, 'hooks.log');
config = await writeConfig(app.port, {
  hooks: {
    afterApply: { run: `curl -s -X POST http://127.0.0.1:${app.port}/admin/restart > /dev/null; echo "restarted the app after $BELAY_TO" >> ${hookLog}` },
    onRollback: { run: `echo "redeploy the previous code: $BELAY_FROM → $BELAY_TO" >> ${hookLog}` },
  },
});
const before = await digest(db);
run = await belay([...common, '--config', config, '--json', 'migrate', 'up', '--with-backup'], { expect: 10 });
let result = JSON.parse(run.stdout).result;
console.log(`   belay migrate up --with-backup → exit ${run.exitCode}: ${result.message}`);
console.log(`   hooks: ${(await readFile(hookLog, 'utf8')).trim().split('\n').join(' | ')}`);
console.log(`   data before ${before}\n   data after  ${await digest(db)}`);
await timeline(common, result.runId);
await app.stop();

// 3. a lossy change: the down cannot give the data back
console.log(bold('\n3. a lossy 0023 (it rewrites emails its down cannot restore)'));
const lossy = path.join(work, 'migrations-lossy');
await cp(path.join(root, 'migrations'), lossy, { recursive: true });
for (const suffix of ['up.sql', 'down.sql', 'verify.sql']) await rm(path.join(lossy, `0023_v2_mobile_schema_updates.${suffix}`), { force: true });
await cp(path.join(root, 'scripts/demo/lossy'), lossy, { recursive: true });
app = await startApp(demoUrl);
config = await writeConfig(app.port);
run = await belay([...common, '--config', config, '--migrations', lossy, '--json', 'migrate', 'up', '--with-backup'], { expect: 11 });
result = JSON.parse(run.stdout).result;
await db.end();
const restored = new pg.Client({ connectionString: demoUrl });
await restored.connect();
console.log(`   belay migrate up --with-backup → exit ${run.exitCode}: ${result.message}`);
console.log(`   data now   ${await digest(restored)} (as before the run)`);
console.log(`   quarantine database ${result.restore.quarantine} keeps the damaged copy`);
await timeline(common, result.runId);
await app.stop();

// 4. the fix
console.log(bold('\n4. the application is fixed; 0023 deploys'));
app = await startApp(demoUrl, { DEMO_FIXED: '1' });
config = await writeConfig(app.port);
run = await belay([...common, '--config', config, '--json', 'migrate', 'up', '--with-backup'], { expect: 0 });
result = JSON.parse(run.stdout).result;
console.log(`   belay migrate up --with-backup → exit ${run.exitCode}: ${result.message}`);
await timeline(common, result.runId);
await app.stop();
await restored.end();
console.log(bold('\nall four outcomes as expected (4, 10, 11, 0). Journal files: ') + path.join(backups, 'journal'));
console.log(`stop the embedded cluster with: node ${path.relative(process.cwd(), cli)} cluster stop (or delete it, and every database in it: cluster remove --yes)`);
