import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { access, chown, mkdir, mkdtemp, chmod, cp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lookupUser } from '../src/cluster/os-user.js';
import { belay, cleanEnv, cliRunnableBy, jsonResult, type CliOptions } from './support/cli.js';
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
    const up = await belay(['migrate', 'up', '--to', '0005'], options);
    expect(up.code, up.stderr).toBe(0);
    // the first and the last line say it was the embedded cluster, and why
    expect(up.stderr.split('\n')[0]).toMatch(/^belay migrate up on postgres@\[.*\.belay.*\]:\d+\/belay \(embedded cluster: no connection settings given\)$/);
    expect(up.stdout.trim().split('\n').at(-1)).toMatch(/^target postgres@.*, the project-local embedded cluster under \.belay\/, because no connection settings were given/);
    // the next command reuses the running cluster and sees the same database
    const status = await belay(['--json', 'status'], options);
    expect(status.code, status.stderr).toBe(0);
    expect(jsonResult(status)).toMatchObject({ current: '0005_sessions', source: 'embedded cluster' });
    const url = await belay(['cluster', 'url'], options);
    expect(url.stdout.trim()).toMatch(/^postgresql:\/\/postgres@\/belay\?host=.*\.belay/);
    const clusterStatus = await belay(['--json', 'cluster', 'status'], options);
    expect(jsonResult(clusterStatus)).toMatchObject({ running: true, initialised: true });
  } finally {
    const stop = await belay(['cluster', 'stop'], options);
    expect(stop.code, stop.stderr).toBe(0);
  }
  const after = await belay(['--json', 'cluster', 'status'], options);
  expect(jsonResult(after)).toMatchObject({ running: false, initialised: true });
}

describe('the embedded cluster (no connection settings at all)', () => {
  it('works for the user running the tests (root runs the server as an unprivileged account)', async () => {
    const cwd = await projectFor();
    await migrateOnEmbedded({ cwd, env: cleanEnv({ HOME: cwd }) });
  });

  it('under CI=true a changing command refuses it (exit 2, nothing started) unless --embedded asks for it', async () => {
    const cwd = await projectFor();
    const options = { cwd, env: cleanEnv({ HOME: cwd, CI: 'true' }) };
    for (const words of [['migrate', 'up'], ['--yes', 'rollback', '--to', '0001'], ['backup'], ['restore', 'any'], ['recover']]) {
      const refused = await belay(words, options);
      expect(refused.code, `${words.join(' ')}: ${refused.stderr}`).toBe(2);
      expect(refused.stderr).toMatch(/no database given, and under CI belay does not change the project-local embedded cluster/);
      expect(refused.stderr).toMatch(/next: Point at the server with DATABASE_URL .* or pass --embedded/);
    }
    const json = await belay(['--json', 'migrate', 'up'], options);
    expect(JSON.parse(json.stdout)).toMatchObject({ command: 'migrate up', exitCode: 2, outcome: 'usage-error', target: null, result: { error: 'usage', details: { ci: true } } });
    await expect(access(join(cwd, '.belay'))).rejects.toThrow();
    try {
      const up = await belay(['--embedded', '--json', 'migrate', 'up', '--to', '0001'], options);
      expect(up.code, up.stderr).toBe(0);
      expect(JSON.parse(up.stdout)).toMatchObject({ exitCode: 0, target: { source: '--embedded', embedded: true } });
      expect(up.stderr.split('\n')[0]).toMatch(/^belay migrate up on postgres@.* \(embedded cluster, --embedded\)$/);
      const clash = await belay(['--embedded', '--database-url', 'postgresql://x@localhost/y', 'status'], options);
      expect(clash.code).toBe(2);
      expect(clash.stderr).toContain('--embedded and --database-url name two different databases');
    } finally {
      await belay(['cluster', 'stop'], options);
    }
  });

  it('cluster status, stop and remove on a project without a cluster create nothing, inside it or outside', async () => {
    // 0700, as mktemp makes it: the server account could not reach it, so a start would put the cluster outside
    const cwd = await mkdtemp(join(tmpdir(), 'belay-embedded-none-'));
    const options = { cwd, env: cleanEnv({ HOME: cwd }) };
    // the folder a start would make outside it (other tests' clusters come and go there meanwhile)
    const name = `belay-${createHash('sha256').update(join(cwd, '.belay')).digest('hex').slice(0, 12)}`;
    const outside = async (): Promise<string[]> => {
      const found: string[] = [];
      for (const root of ['/var/lib/belay', tmpdir()]) if ((await readdir(root).catch((): string[] => [])).includes(name)) found.push(join(root, name));
      return found;
    };
    const status = await belay(['--json', 'cluster', 'status'], options);
    expect(status.code, status.stderr).toBe(0);
    expect(jsonResult(status)).toMatchObject({ initialised: false, running: false });
    // where a start would put it: outside the project, which the server account cannot enter
    const { dataDir } = jsonResult(status) as { dataDir: string };
    expect(dataDir.startsWith(cwd)).toBe(process.getuid?.() !== 0);
    const nothingMade = async (): Promise<void> => {
      expect(await readdir(cwd)).toEqual([]);
      expect(await outside()).toEqual([]);
    };
    await nothingMade();
    const stop = await belay(['cluster', 'stop'], options);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toContain('was not running');
    await nothingMade();
    const remove = await belay(['cluster', 'remove', '--yes'], options);
    expect(remove.code, remove.stderr).toBe(0);
    await nothingMade();
  });

  it('a .belay that is a regular file holds no cluster: remove says so (exit 0, as status), and leaves the file', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'belay-embedded-file-'));
    await writeFile(join(cwd, '.belay'), 'not belay\'s\n');
    const options = { cwd, env: cleanEnv({ HOME: cwd }) };
    const status = await belay(['cluster', 'status'], options);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^cluster {3}not created yet/);
    const remove = await belay(['cluster', 'remove', '--yes'], options);
    expect(remove.code, remove.stderr).toBe(0);
    expect(remove.stdout.trim()).toBe('there was no embedded cluster to remove');
    const json = await belay(['--json', 'cluster', 'remove', '--yes'], options);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ exitCode: 0, message: 'there was no embedded cluster to remove', result: { removed: [] } });
    expect(await readFile(join(cwd, '.belay'), 'utf8')).toBe('not belay\'s\n');
  });

  it('a .belay/cluster.json naming folders not this project\'s is refused (exit 2): remove deletes none of them', async () => {
    const root = await mkdtemp(join(tmpdir(), 'belay-embedded-foreign-'));
    const victim = join(root, 'victim');
    await mkdir(join(victim, 'sub'), { recursive: true });
    await writeFile(join(victim, 'file.txt'), 'important\n');
    const cwd = join(root, 'evil');
    await mkdir(join(cwd, '.belay'), { recursive: true });
    await writeFile(
      join(cwd, '.belay', 'cluster.json'),
      JSON.stringify({ home: join(cwd, '.belay'), dataDir: victim, socketDir: join(victim, 'sub'), logFile: join(victim, 'file.txt') }),
    );
    const options = { cwd, env: cleanEnv({ HOME: cwd }) };
    for (const words of [['cluster', 'remove', '--yes'], ['cluster', 'stop'], ['cluster', 'status'], ['--embedded', 'status']]) {
      const refused = await belay(words, options);
      expect(refused.code, `${words.join(' ')}: ${refused.stderr}`).toBe(2);
      expect(refused.stderr).toContain(`.belay/cluster.json names ${victim}`);
      expect(refused.stderr).toMatch(/next: Delete \.belay\/cluster\.json/);
    }
    expect(await readFile(join(victim, 'file.txt'), 'utf8')).toBe('important\n');
    expect((await readdir(victim)).sort()).toEqual(['file.txt', 'sub']);
    expect(await readdir(join(cwd, '.belay'))).toEqual(['cluster.json']);
  });

  it('a copied project does not use, stop or remove the original\'s cluster; its copy of that cluster is refused, not adopted', async () => {
    const original = await projectFor();
    const copy = `${original}-copy`;
    const options = { cwd: original, env: cleanEnv({ HOME: original }) };
    const copyOptions = { cwd: copy, env: cleanEnv({ HOME: copy }) };
    const current = async (): Promise<unknown> => {
      const status = await belay(['--json', 'status'], options);
      expect(status.code, status.stderr).toBe(0);
      return (jsonResult(status) as { current: unknown }).current;
    };
    try {
      const up = await belay(['migrate', 'up', '--to', '0001'], options);
      expect(up.code, up.stderr).toBe(0);
      // cp -a of a project whose cluster runs: its layout, its data (postmaster.pid names the original's server)
      execFileSync('cp', ['-a', original, copy]);
      const otherProject = `this .belay/ was copied from ${original}`;
      for (const words of [['cluster', 'status'], ['--embedded', 'migrate', 'up'], ['cluster', 'stop'], ['cluster', 'remove', '--yes']]) {
        const refused = await belay(words, copyOptions);
        expect(refused.code, `${words.join(' ')}: ${refused.stderr}`).toBe(2);
        expect(refused.stderr).toContain(otherProject);
        expect(refused.stderr).toMatch(/next: Delete \.belay\/cluster\.json \(and \.belay\/cluster and \.belay\/run, if they are copies\)/);
      }
      expect(await current()).toBe('0001_create_account_schema');
      // the layout file gone, the copied data is still the original's: its postgresql.conf names the original's socket folder
      await rm(join(copy, '.belay', 'cluster.json'));
      for (const words of [['cluster', 'status'], ['--embedded', 'migrate', 'up'], ['cluster', 'stop'], ['cluster', 'remove', '--yes']]) {
        const refused = await belay(words, copyOptions);
        expect(refused.code, `${words.join(' ')}: ${refused.stderr}`).toBe(2);
        expect(refused.stderr).toContain(`${join(copy, '.belay', 'cluster')} is a copy of the cluster of ${original}`);
        expect(refused.stderr).toContain(`next: Delete ${join(copy, '.belay', 'cluster')} and ${join(copy, '.belay', 'run')}`);
        // refused before the layout file is written again
        expect(await readdir(join(copy, '.belay')), words.join(' ')).not.toContain('cluster.json');
      }
      expect(await readdir(join(copy, '.belay'))).toContain('cluster');
      expect(await current()).toBe('0001_create_account_schema');
      // those gone (the copied socket folder holds the original server's lock file), the copy gets a cluster of its own
      for (const copied of ['cluster', 'run']) await rm(join(copy, '.belay', copied), { recursive: true });
      const own = await belay(['migrate', 'up', '--to', '0005'], copyOptions);
      expect(own.code, own.stderr).toBe(0);
      expect(own.stderr.split('\n')[0]).toContain(join(copy, '.belay'));
      const removed = await belay(['cluster', 'remove', '--yes'], copyOptions);
      expect(removed.code, removed.stderr).toBe(0);
      expect(removed.stdout).toContain(`removed ${join(copy, '.belay', 'cluster')}`);
      expect(await current()).toBe('0001_create_account_schema');
    } finally {
      await belay(['cluster', 'remove', '--yes'], copyOptions);
      const remove = await belay(['cluster', 'remove', '--yes'], options);
      expect(remove.code, remove.stderr).toBe(0);
    }
  });

  it('a PG_BIN without initdb is refused (exit 2) before anything is made, not passed over for other binaries', async () => {
    const cwd = await projectFor();
    const empty = await mkdtemp(join(tmpdir(), 'belay-empty-bin-'));
    for (const pgBin of [empty, join(empty, 'missing')]) {
      const options = { cwd, env: cleanEnv({ HOME: cwd, PG_BIN: pgBin }) };
      for (const words of [['cluster', 'start'], ['--embedded', 'migrate', 'up'], ['migrate', 'up']]) {
        const refused = await belay(words, options);
        expect(refused.code, `${words.join(' ')}: ${refused.stderr}`).toBe(2);
        expect(refused.stderr).toContain(`PG_BIN is ${pgBin}, which ${pgBin === empty ? 'holds no initdb that runs and says its version' : 'does not exist'}`);
        expect(refused.stderr).toContain('next: Point PG_BIN at the bin folder of a PostgreSQL installation');
        expect(await readdir(cwd)).toEqual(['migrations']);
      }
    }
  });

  it.runIf(process.getuid?.() === 0)('a symbolic link planted where the cluster\'s folder outside the project goes is refused (exit 2) before anything is made', async () => {
    // 0700: the server account cannot enter it, so the cluster goes to /var/lib/belay
    const cwd = await mkdtemp(join(tmpdir(), 'belay-embedded-link-'));
    const planted = join('/var/lib/belay', `belay-${createHash('sha256').update(join(cwd, '.belay')).digest('hex').slice(0, 12)}`);
    const victim = await mkdtemp(join(tmpdir(), 'belay-link-victim-'));
    await mkdir('/var/lib/belay', { recursive: true });
    await symlink(victim, planted);
    try {
      const refused = await belay(['cluster', 'start'], { cwd, env: cleanEnv({ HOME: cwd }) });
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toContain(`${planted} is a symbolic link to ${victim}`);
      expect(refused.stderr).toContain(`next: Delete the link ${planted}`);
      expect(await readdir(cwd)).toEqual([]);
      expect(await readdir(victim)).toEqual([]);
      expect((await stat(victim)).uid).toBe(0);
    } finally {
      await rm(planted);
    }
  });

  const nobody = lookupUser('nobody');
  it.runIf(process.getuid?.() === 0 && nobody !== undefined && cliRunnableBy(nobody))('works for an ordinary user', async () => {
    const cwd = await projectFor(nobody);
    await migrateOnEmbedded({ cwd, uid: nobody!.uid, gid: nobody!.gid, env: cleanEnv({ HOME: cwd, USER: 'nobody' }) });
  });
});
