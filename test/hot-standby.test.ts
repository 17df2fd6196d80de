import { execFile } from 'node:child_process';
import { appendFile, chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, prepareLogFile, startCluster, stopCluster, type LocalClusterSpec } from '../src/cluster/local-cluster.js';
import { serverUser } from '../src/cluster/os-user.js';
import { startTempCluster, type TempCluster } from '../src/cluster/temp-cluster.js';
import { belay, jsonResult } from './support/cli.js';
import { GOOD_REVISIONS, makeProject, type TestProject } from './support/project.js';

const run = promisify(execFile);

/** A URL to database `app` as the superuser over the Unix socket of `spec`. */
const urlOf = (spec: LocalClusterSpec): string => `postgresql://postgres@/app?host=${encodeURIComponent(spec.socketDir)}&port=${spec.port}`;

async function query<T extends pg.QueryResultRow>(spec: LocalClusterSpec, sql: string): Promise<T[]> {
  const client = new pg.Client({ host: spec.socketDir, port: spec.port, user: 'postgres', database: 'app' });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('a hot standby (pg_basebackup -R)', () => {
  let primary: TempCluster;
  let standby: LocalClusterSpec;
  let project: TestProject;
  let snapshot: string;
  const args = (spec: LocalClusterSpec): string[] => ['--database-url', urlOf(spec), '--migrations', project.migrations, '--backups', project.backups];

  beforeAll(async () => {
    primary = await startTempCluster({ prefix: 'belay-standby-test-', superuser: 'postgres', tcp: false, pgBin: process.env.PG_BIN, path: process.env.PATH });
    const admin = new pg.Client({ host: primary.spec.socketDir, port: primary.spec.port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query('CREATE DATABASE app');
    await admin.end();
    project = await makeProject(GOOD_REVISIONS);
    const up = await belay([...args(primary.spec), 'migrate', 'up', '--to', '0002']);
    expect(up.code, up.stderr).toBe(0);
    const backup = await belay([...args(primary.spec), '--json', 'backup']);
    expect(backup.code, backup.stderr).toBe(0);
    snapshot = jsonResult<{ snapshot: { id: string } }>(backup).snapshot.id;
    const root = join(primary.root, 'standby');
    standby = { ...primary.spec, dataDir: join(root, 'data'), socketDir: join(root, 'run'), port: await freePort() };
    const user = serverUser();
    await mkdir(root);
    if (user) await chown(root, user.uid, user.gid);
    const asServer = user ? { uid: user.uid, gid: user.gid } : {};
    await run(join(primary.spec.binDir, 'pg_basebackup'), ['-h', primary.spec.socketDir, '-p', String(primary.spec.port), '-U', 'postgres', '-D', standby.dataDir, '-R', '-X', 'stream', '--no-sync', '--checkpoint=fast'], asServer);
    await appendFile(join(standby.dataDir, 'postgresql.conf'), `port = ${standby.port}\nunix_socket_directories = '${standby.socketDir}'\n`);
    const log = join(root, 'server.log');
    await prepareLogFile(log);
    await startCluster(standby, log);
  }, 120_000);

  afterAll(async () => {
    if (standby) await stopCluster(standby, 'immediate').catch(() => {});
    await primary?.remove();
  });

  it('every changing command, and rehearse on it, refuse it before touching anything (exit 4), naming the standby', async () => {
    expect(await query(standby, 'SELECT pg_is_in_recovery() AS recovery')).toEqual([{ recovery: true }]);
    const commands = [['migrate', 'up', '--with-backup'], ['backup'], ['rollback', '--to', '0001', '--yes'], ['restore', snapshot, '--yes']];
    for (const command of commands) {
      const result = await belay([...args(standby), ...command]);
      expect(result.code, `${command.join(' ')}: ${result.stderr}`).toBe(4);
      expect(result.stderr).toContain('app is a hot standby (in recovery)');
      expect(result.stderr).toContain('Run belay against the primary. Nothing was changed.');
    }
    const rehearse = await belay([...args(standby), 'rehearse']);
    expect(rehearse.code, rehearse.stderr).toBe(4);
    expect(rehearse.stderr).toContain('postgres is a hot standby (in recovery)');
    const databases = await query<{ datname: string }>(primary.spec, "SELECT datname FROM pg_database WHERE datname LIKE 'app\\_%'");
    expect(databases).toEqual([]);
    expect(await query(standby, 'SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_accounts' }, { name: '0002_profiles' }]);
  });
});
