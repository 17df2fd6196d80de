import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prepareChange } from '../src/api/prepare.js';
import { resolveBackupTools } from '../src/backup/pg-tools.js';
import { BelayError, EXIT } from '../src/errors.js';
import { assertPreflight } from '../src/runner/steps/preflight.js';
import { openTargetSession } from '../src/runner/session/setup.js';
import { backupPreflight, runBackupTools } from '../src/runner/steps/snapshot-step.js';
import { belay, CLI, cleanEnv, type CliRun } from './support/cli.js';
import { adminQuery, cluster, freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

// a private mount namespace (root, util-linux) hides the PostgreSQL programs from one process and no other
const canHide = spawnSync('unshare', ['--mount', '--propagation', 'private', 'true'], { stdio: 'ignore', timeout: 10_000 }).status === 0;

/** Every folder a search for pg_dump finds the server's own copy in: the test cluster's and Debian's versioned ones. */
function clientBinDirs(): string[] {
  const versioned = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').map((version) => join('/usr/lib/postgresql', version, 'bin')) : [];
  return [...new Set([cluster().binDir, ...versioned])].filter((dir) => existsSync(dir));
}

/** The built CLI in a mount namespace of its own where `hidden` are empty folders. */
async function belayHiding(hidden: string[], args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  const empty = await mkdtemp(join(tmpdir(), 'belay-empty-'));
  const script = 'empty=$1; shift; while [ "$1" != -- ]; do mount --bind "$empty" "$1" || exit 97; shift; done; shift; exec "$@"';
  const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', empty, ...hidden, '--', process.execPath, CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe('finding pg_dump and pg_restore beside the lock', () => {
  it('asks each copy its version once per process, however often the tools are asked for', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'belay-counted-bin-'));
    const calls = join(bin, 'calls');
    await writeFile(calls, '');
    for (const name of ['pg_dump', 'pg_restore']) {
      await writeFile(join(bin, name), `#!/bin/sh\necho "${name} $*" >> '${calls}'\necho "${name} (PostgreSQL) 99.1"\n`);
      await chmod(join(bin, name), 0o755);
    }
    const search = { pgBin: bin, path: process.env.PATH };
    const [first, second] = await Promise.all([resolveBackupTools({ search, serverMajor: 15 }), resolveBackupTools({ search, serverMajor: 99 })]);
    const third = await resolveBackupTools({ search, serverMajor: 15 });
    for (const tools of [first, second, third]) expect(tools.pgDump).toEqual({ path: join(bin, 'pg_dump'), major: 99, version: '99.1' });
    expect((await readFile(calls, 'utf8')).split('\n').filter(Boolean).sort()).toEqual(['pg_dump --version', 'pg_restore --version']);
  });

  it('a search that fails while the run locks is the preflight refusal (exit 4 and what to install), not a crash', async () => {
    const db = await freshDatabase('tools');
    const project = await makeProject({});
    const setup = await prepareChange({ databaseUrl: db.url, migrations: project.migrations, backups: project.backups, env: { PATH: process.env.PATH } });
    const session = await openTargetSession(setup, 'belay test tools');
    try {
      // a server newer than any pg_dump here: what a machine with an old client meets
      const newer = { ...session, serverVersionNum: 990000 };
      void runBackupTools(setup, newer);
      const checks = await backupPreflight(setup, newer);
      expect(checks.map((check) => [check.name, check.ok])).toEqual([['pg_dump', false], ['backups-dir', true], ['disk', true]]);
      const refusal = (() => {
        try {
          assertPreflight(checks);
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      expect(refusal).toBeInstanceOf(BelayError);
      expect((refusal as BelayError).exitCode).toBe(EXIT.preflight);
      expect((refusal as BelayError).message).toMatch(/no pg_dump\/pg_restore of version 99 or newer/);
      expect((refusal as BelayError).hint).toMatch(/apt-get install postgresql-client-99/);
      // the run asks once: the snapshot step gets the answer the preflight got, without a second search
      const answer = await runBackupTools(setup, newer).catch((error: unknown) => error);
      expect(answer).toBeInstanceOf(BelayError);
      expect(await runBackupTools(setup, session).catch((error: unknown) => error)).toBe(answer);
    } finally {
      await session.close();
    }
  });

  it('a PG_BIN whose pg_dump is older than the server is passed over for a new enough one, and the run says so (it said nothing)', async () => {
    const db = await freshDatabase('tools');
    const project = await makeProject({ '0001_t.up.sql': 'CREATE TABLE t (id int PRIMARY KEY);', '0001_t.down.sql': 'DROP TABLE t;' });
    const major = Math.floor(Number((await db.query<{ n: string }>('SELECT current_setting($1) AS n', ['server_version_num']))[0]!.n) / 10000);
    const old = await mkdtemp(join(tmpdir(), 'belay-old-bin-'));
    for (const name of ['pg_dump', 'pg_restore']) {
      await writeFile(join(old, name), `#!/bin/sh\necho "${name} (PostgreSQL) 9.6.24"\n`);
      await chmod(join(old, name), 0o755);
    }
    const run = await belay([...baseArgs(project, db.url), 'backup'], { env: cleanEnv({ PG_BIN: old }) });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(`preflight: PG_BIN's pg_dump 9.6 (${join(old, 'pg_dump')}) is older than server ${major}: pg_dump ${major}.`);
    expect(run.stderr).toMatch(/is older than server \d+: pg_dump [\d.]+ \(\/\S+\/pg_dump\) is used instead\n/);
  });

  it('a PG_BIN without pg_dump is refused before anything is touched, not passed over for the pg_dump found elsewhere', async () => {
    const db = await freshDatabase('tools');
    const project = await makeProject({ '0001_t.up.sql': 'CREATE TABLE t (id int PRIMARY KEY);', '0001_t.down.sql': 'DROP TABLE t;' });
    const args = baseArgs(project, db.url);
    const taken = await belay([...args, '--json', 'backup']);
    expect(taken.code, taken.stderr).toBe(0);
    const id = (JSON.parse(taken.stdout).result as { snapshot: { id: string } }).snapshot.id;
    const dumps = (await readdir(project.backups)).filter((file) => file.endsWith('.dump'));
    const empty = await mkdtemp(join(tmpdir(), 'belay-empty-bin-'));
    for (const pgBin of [empty, join(empty, 'missing')]) {
      const env = cleanEnv({ PG_BIN: pgBin });
      // pg_dump and pg_restore are looked for together: either may be the one named
      const said = (program: string): string => `PG_BIN is ${pgBin}, which ${pgBin === empty ? `holds no ${program} that runs and says its version` : 'does not exist'}`;
      // runs: the preflight refuses (exit 4) with the lock taken and the journal open; a lone look is a usage error (exit 2)
      for (const [words, code] of [[['migrate', 'up', '--with-backup'], 4], [['backup'], 4], [['backups', 'verify', id], 2]] as const) {
        const refused = await belay([...args, ...words], { env });
        expect(refused.code, `${words.join(' ')}: ${refused.stderr}`).toBe(code);
        expect(['pg_dump', 'pg_restore'].some((program) => refused.stderr.includes(said(program))), refused.stderr).toBe(true);
        expect(refused.stderr).toContain('next: Point PG_BIN at the bin folder of a PostgreSQL installation');
      }
      expect(await db.query("SELECT to_regclass('t') AS t")).toEqual([{ t: null }]);
      expect((await readdir(project.backups)).filter((file) => file.endsWith('.dump'))).toEqual(dumps);
    }
  });

  it.runIf(canHide)('belay restore ID with no pg_restore as new as the server refuses before anything is touched (exit 4, what to install), journaled as refused', async () => {
    const db = await freshDatabase('tools');
    const project = await makeProject({ '0001_t.up.sql': 'CREATE TABLE t (id int PRIMARY KEY, v text);\nINSERT INTO t VALUES (1, \'kept\');', '0001_t.down.sql': 'DROP TABLE t;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const taken = await belay([...args, '--json', 'backup']);
    const id = (JSON.parse(taken.stdout).result as { snapshot: { id: string } }).snapshot.id;
    await db.query("UPDATE t SET v = 'changed since'");
    const major = Math.floor(Number((await db.query<{ n: string }>('SELECT current_setting($1) AS n', ['server_version_num']))[0]!.n) / 10000);
    // the only copies left are older than the server, as on a machine with an old client installed
    const old = await mkdtemp(join(tmpdir(), 'belay-old-bin-'));
    for (const name of ['pg_dump', 'pg_restore']) {
      await writeFile(join(old, name), `#!/bin/sh\necho "${name} (PostgreSQL) 14.9"\n`);
      await chmod(join(old, name), 0o755);
    }
    const journals = new Set(await readdir(join(project.backups, 'journal')));
    for (const strategy of ['swap', 'in-place']) {
      const refused = await belayHiding(clientBinDirs(), [...args, 'restore', id, '--strategy', strategy], cleanEnv({ PG_BIN: old }));
      expect(refused.code, refused.stderr).toBe(4);
      expect(refused.stderr).toContain(`no pg_dump/pg_restore of version ${major} or newer for this PostgreSQL ${major} server (found: ${join(old, 'pg_dump')} (14.9), ${join(old, 'pg_restore')} (14.9)`);
      expect(refused.stderr).toContain(`next: Install the client of that version (Debian/Ubuntu: apt-get install postgresql-client-${major}) or set PG_BIN to its bin folder. Nothing was changed.`);
      expect(refused.stderr).not.toMatch(/manual-action-needed|partly restored/);
    }
    expect(await db.query('SELECT v FROM t')).toEqual([{ v: 'changed since' }]);
    expect(await adminQuery('postgres', "SELECT datname FROM pg_database WHERE datname LIKE $1", [`${db.name}%belay%`])).toEqual([]);
    expect((await readdir(project.backups)).filter((file) => file.endsWith('.dump'))).toEqual([`${id}.dump`]);
    // each run's journal has its preflight and no restore step
    const fresh = (await readdir(join(project.backups, 'journal'))).filter((file) => !journals.has(file));
    expect(fresh).toHaveLength(2);
    for (const file of fresh) {
      const steps = (await readFile(join(project.backups, 'journal', file), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { step?: string });
      expect(steps.some((line) => line.step === 'preflight')).toBe(true);
      expect(steps.some((line) => line.step === 'restore')).toBe(false);
    }
    const history = JSON.parse((await belay([...args, '--json', 'history'])).stdout).result as Array<{ command: string; status: string; exitCode: number }>;
    expect(history.slice(0, 2).map((r) => `${r.command}:${r.status}:${r.exitCode}`)).toEqual(['restore:refused:4', 'restore:refused:4']);
  });
});
