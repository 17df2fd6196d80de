import { execFileSync } from 'node:child_process';
import { access, cp, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { belay, cleanEnv } from './support/cli.js';
import { SAMPLE_MIGRATIONS } from './support/sample.js';

/** The sample project in a new folder of mode 0700 (mkdtemp's), and how to run belay there with no connection settings. */
async function privateProject(): Promise<{ cwd: string; options: { cwd: string; env: NodeJS.ProcessEnv } }> {
  const cwd = await mkdtemp(join(tmpdir(), 'belay-private-'));
  await cp(SAMPLE_MIGRATIONS, join(cwd, 'migrations'), { recursive: true });
  return { cwd, options: { cwd, env: cleanEnv({ HOME: cwd }) } };
}

/** Where .belay/cluster.json says the embedded cluster's files are. */
const layoutOf = async (cwd: string): Promise<{ dataDir: string; socketDir: string; logFile: string }> =>
  JSON.parse(await readFile(join(cwd, '.belay', 'cluster.json'), 'utf8')) as { dataDir: string; socketDir: string; logFile: string };

/**
 * A newcomer clones into root's home (0700) and runs belay as root: the server
 * runs as an unprivileged account, which cannot enter that folder.
 */
describe('the embedded cluster from a folder the server account cannot enter', () => {
  it.runIf(process.getuid?.() === 0)('works as root in a 0700 folder, leaves its permissions alone, and keeps its data across restarts', async () => {
    const { cwd, options } = await privateProject();
    expect((await stat(cwd)).mode & 0o777).toBe(0o700);
    let outside: string | undefined;
    try {
      const up = await belay(['--json', 'migrate', 'up', '--to', '0005'], options);
      expect(up.code, up.stderr).toBe(0);
      expect(JSON.parse(up.stdout).result.toRevision).toBe('0005_sessions');
      const layout = await layoutOf(cwd);
      outside = dirname(layout.dataDir);
      // the server's files are where it can reach them, recorded in .belay/, and the project folder stays private
      expect(layout.dataDir.startsWith(cwd)).toBe(false);
      expect((await stat(cwd)).mode & 0o777).toBe(0o700);
      const info = await belay(['--json', 'cluster', 'status'], options);
      expect(JSON.parse(info.stdout).result).toMatchObject({ running: true, initialised: true, dataDir: layout.dataDir, socketDir: layout.socketDir });
      // the journal is in the project, beside its backups
      expect((await readdir(join(cwd, 'backups', 'journal'))).filter((f) => f.endsWith('.jsonl'))).toHaveLength(1);

      expect((await belay(['cluster', 'stop'], options)).code).toBe(0);
      // a server that will not start (an edited postgresql.conf) is named, with its log, as an environment fault
      const conf = join(layout.dataDir, 'postgresql.conf');
      const original = await readFile(conf, 'utf8');
      await writeFile(conf, `${original}shared_buffers = 'plenty'\n`);
      const refused = await belay(['status'], options);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toMatch(/the PostgreSQL server did not start/);
      expect(refused.stderr).toMatch(/shared_buffers/);
      expect(refused.stderr).toMatch(/next: /);
      expect(refused.stderr).not.toMatch(/a bug in belay/);
      await writeFile(conf, original);
      // the next command starts the same cluster again, with the same data
      const status = await belay(['--json', 'status'], options);
      expect(status.code, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout).result).toMatchObject({ current: '0005_sessions', source: 'embedded cluster' });
    } finally {
      expect((await belay(['cluster', 'stop'], options)).code).toBe(0);
      if (outside) await rm(outside, { recursive: true, force: true });
      await rm(cwd, { recursive: true, force: true });
    }
  });

  it.runIf(process.getuid?.() === 0)('cluster remove: refused while a session uses it, asks for --yes off a terminal, then deletes what belay made for it and nothing else', async () => {
    const { cwd, options } = await privateProject();
    let outside: string | undefined;
    try {
      const up = await belay(['--json', 'migrate', 'up', '--to', '0002'], options);
      expect(up.code, up.stderr).toBe(0);
      const layout = await layoutOf(cwd);
      outside = dirname(layout.dataDir);
      await writeFile(join(cwd, '.belay', 'notes.txt'), 'mine\n');
      const session = new pg.Client({ host: layout.socketDir, port: 5432, user: 'postgres', database: 'belay', application_name: 'someone-else' });
      await session.connect();
      try {
        const inUse = await belay(['--yes', 'cluster', 'remove'], options);
        expect(inUse.code, inUse.stderr).toBe(4);
        expect(inUse.stderr).toMatch(/the embedded cluster is in use: someone-else on belay \(pid \d+\); nothing was removed/);
        expect(inUse.stderr).toMatch(/next: /);
        expect((await session.query('SELECT count(*)::int AS n FROM belay.migrations')).rows).toEqual([{ n: 2 }]);
      } finally {
        await session.end();
      }
      const unasked = await belay(['cluster', 'remove'], options);
      expect(unasked.code, unasked.stderr).toBe(2);
      expect(unasked.stderr).toMatch(/^belay: cluster remove deletes every database in the embedded cluster: pass --yes to say so$/m);
      await access(join(layout.dataDir, 'PG_VERSION'));

      // a file that cannot be deleted (immutable): the server is stopped, the file named, exit 12 with what to do
      const stuck = join(layout.dataDir, 'pg_stat', 'stuck');
      await writeFile(stuck, 'x');
      execFileSync('chattr', ['+i', stuck]);
      try {
        const blocked = await belay(['--yes', 'cluster', 'remove'], options);
        expect(blocked.code, blocked.stderr).toBe(12);
        expect(blocked.stderr).toMatch(/the embedded cluster is stopped, but \S+ could not be deleted: /);
        expect(blocked.stderr).toMatch(/next: Delete \S+ as a user who may, then run `belay cluster remove --yes` again/);
        // what marks it as the cluster is deleted last: the next removal still knows it for one
        expect(JSON.parse((await belay(['--json', 'cluster', 'status'], options)).stdout).result).toMatchObject({ running: false, initialised: true });
      } finally {
        execFileSync('chattr', ['-i', stuck]);
      }
      const removed = await belay(['--json', '--yes', 'cluster', 'remove'], options);
      expect(removed.code, removed.stderr).toBe(0);
      expect(JSON.parse(removed.stdout).result).toEqual({ removed: [layout.dataDir] });
      // what belay made is gone (the folder outside the project too); the project's own files stay
      await expect(access(outside)).rejects.toThrow();
      await expect(access(join(cwd, '.belay', 'cluster.json'))).rejects.toThrow();
      expect(await readFile(join(cwd, '.belay', 'notes.txt'), 'utf8')).toBe('mine\n');
      expect((await readdir(join(cwd, 'backups', 'journal'))).filter((f) => f.endsWith('.jsonl')).length).toBeGreaterThan(0);
      const again = await belay(['--json', '--yes', 'cluster', 'remove'], options);
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout).result).toEqual({ removed: [] });
    } finally {
      await belay(['cluster', 'stop'], options);
      if (outside) await rm(outside, { recursive: true, force: true });
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
