import { chown, mkdtemp, chmod, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lookupUser } from '../src/cluster/os-user.js';
import { belay, cleanEnv, type CliOptions } from './support/cli.js';
import { SAMPLE_MIGRATIONS } from './support/sample.js';

async function projectFor(owner?: { uid: number; gid: number }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'belay-embedded-'));
  await chmod(dir, 0o755);
  await cp(SAMPLE_MIGRATIONS, join(dir, 'migrations'), { recursive: true });
  if (owner) {
    await chown(dir, owner.uid, owner.gid);
    await chown(join(dir, 'migrations'), owner.uid, owner.gid);
  }
  return dir;
}

async function migrateOnEmbedded(options: CliOptions & { cwd: string }): Promise<void> {
  try {
    const up = await belay(['--json', 'migrate', 'up', '--to', '0005'], options);
    expect(up.code, up.stderr).toBe(0);
    expect(JSON.parse(up.stdout).toRevision).toBe('0005_sessions');
    // the next command reuses the running cluster and sees the same database
    const status = await belay(['--json', 'status'], options);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ current: '0005_sessions', source: 'embedded cluster' });
    const url = await belay(['cluster', 'url'], options);
    expect(url.stdout.trim()).toMatch(/^postgresql:\/\/postgres@\/belay\?host=.*\.belay/);
    const clusterStatus = await belay(['--json', 'cluster', 'status'], options);
    expect(JSON.parse(clusterStatus.stdout)).toMatchObject({ running: true, initialised: true });
  } finally {
    const stop = await belay(['cluster', 'stop'], options);
    expect(stop.code, stop.stderr).toBe(0);
  }
  const after = await belay(['--json', 'cluster', 'status'], options);
  expect(JSON.parse(after.stdout)).toMatchObject({ running: false, initialised: true });
}

describe('the embedded cluster (no connection settings at all)', () => {
  it('works for the user running the tests (root runs the server as an unprivileged account)', async () => {
    const cwd = await projectFor();
    await migrateOnEmbedded({ cwd, env: cleanEnv({ HOME: cwd }) });
  });

  const nobody = lookupUser('nobody');
  it.runIf(process.getuid?.() === 0 && nobody !== undefined)('works for an ordinary user', async () => {
    const cwd = await projectFor(nobody);
    await migrateOnEmbedded({ cwd, uid: nobody!.uid, gid: nobody!.gid, env: cleanEnv({ HOME: cwd, USER: 'nobody' }) });
  });
});
