import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopCluster } from '../src/cluster/local-cluster.js';
import { startTempCluster, type TempCluster } from '../src/cluster/temp-cluster.js';
import { belay, cleanEnv, startBelay } from './support/cli.js';
import { pollUntil } from './support/kill.js';
import { makeProject } from './support/project.js';

const execFileAsync = promisify(execFile);

// A server of its own: one test stops it in the middle of a rehearsal.
let server: TempCluster;
const urlOf = (user: string, database: string): string =>
  `postgresql://${user}@/${database}?host=${encodeURIComponent(server.spec.socketDir)}&port=${server.spec.port}`;

async function adminRows(sql: string): Promise<Array<Record<string, unknown>>> {
  const client = new pg.Client({ connectionString: urlOf('postgres', 'postgres') });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

const throwaways = async (): Promise<string[]> =>
  (await adminRows("SELECT datname FROM pg_database WHERE datname LIKE 'belay_rehearse%' ORDER BY 1")).map((r) => String(r.datname));

const SLOW = {
  '0001_people.up.sql': 'CREATE TABLE people (id int PRIMARY KEY);',
  '0001_people.down.sql': 'DROP TABLE people;',
  '0002_slow.up.sql': 'SELECT pg_sleep(30);\nCREATE TABLE slow (id int);',
  '0002_slow.down.sql': 'DROP TABLE slow;',
};
const SLEEPING = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname LIKE 'belay_rehearse%' AND query LIKE '%pg_sleep(30)%'";

/** Rehearse SLOW from 0001 on the test's server; `fault` runs once 0002's up sleeps on the throwaway. */
async function rehearseUntil(fault: () => Promise<void>) {
  const project = await makeProject(SLOW);
  const running = startBelay(['--database-url', urlOf('owner', 'app'), '--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse', '--from', '0001'], { cwd: project.dir });
  let ended: string | undefined;
  void running.done.then((run) => (ended = `exit ${run.code}: ${run.stdout}${run.stderr}`));
  await pollUntil(async () => {
    if (ended !== undefined) throw new Error(`the rehearsal ended first, ${ended}`);
    return Number((await adminRows(SLEEPING))[0]!.n) === 1;
  }, "0002's up sleeping on the throwaway");
  await fault();
  return running.done;
}

beforeAll(async () => {
  server = await startTempCluster({ prefix: 'belay-rehearse-faults-', superuser: 'postgres', tcp: false, pgBin: process.env.PG_BIN, path: process.env.PATH });
  await adminRows('CREATE ROLE owner LOGIN CREATEDB');
  await adminRows('CREATE DATABASE app OWNER owner');
}, 120_000);

afterAll(async () => {
  await server?.remove();
});

describe('a rehearsal whose server fails under it', () => {
  it('a session ended by an operator mid-revision is exit 12 with next:, not a verdict on the revision (it was exit 10, "Fix 0002_slow"); the throwaway is removed', async () => {
    const run = await rehearseUntil(async () => {
      await adminRows("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname LIKE 'belay_rehearse%'");
    });
    expect(run.code, run.stdout + run.stderr).toBe(12);
    const said = JSON.parse(run.stdout) as { outcome: string; message: string; next: string };
    expect(said.outcome).toBe('manual-action-needed');
    expect(said.message).toMatch(/^the rehearsal on database belay_rehearse_\w+ on the connected server could not finish: 0002_slow up failed .*terminating connection due to administrator command/);
    expect(said.next).toMatch(/^Nothing real was touched, and no verdict was reached\./);
    expect(said.next).not.toMatch(/Fix 0002_slow|by hand/);
    expect(run.stderr).not.toMatch(/this is a bug/);
    expect(await throwaways()).toEqual([]);
  }, 120_000);

  it('a server stopped mid-revision is exit 12, naming every throwaway database it could not drop (it was exit 10); they are there once the server is back', async () => {
    const run = await rehearseUntil(() => stopCluster(server.spec, 'immediate'));
    await startCluster(server.spec, join(server.root, 'server.log'));
    expect(run.code, run.stdout + run.stderr).toBe(12);
    const said = JSON.parse(run.stdout) as { message: string; next: string };
    const left = await throwaways();
    // the start kept as a copy, and the database the cycle ran in
    expect(left).toHaveLength(2);
    expect(said.message).toContain(`could not be removed either (${left.join(', ')} not dropped: `);
    expect(said.next).toMatch(/^Nothing real was touched, and no verdict was reached\./);
    expect(said.next).toContain(`Drop what is left of it by hand once its server answers: ${left.map((name) => `DROP DATABASE IF EXISTS "${name}";`).join(' ')} (belay made it`);
    for (const name of left.reverse()) await adminRows(`DROP DATABASE ${name}`);
  }, 120_000);

  // a full disk of its own: a small tmpfs as TMPDIR, where the ephemeral cluster is made (mounting it needs root)
  it.runIf(process.getuid?.() === 0)('a full disk under the ephemeral cluster mid-revision is exit 12 saying what to free, and writes no report (it was exit 10, "Fix 0001_base", both reports saying the revision failed)', async () => {
    const project = await makeProject({
      '0001_base.up.sql': "CREATE TABLE t (id int, pad text);\nINSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g;",
      '0001_base.down.sql': 'DROP TABLE t;',
    });
    const small = join(project.dir, 'small');
    await mkdir(small);
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', small]);
    try {
      const junit = join(project.dir, 'j.xml');
      const markdown = join(project.dir, 'm.md');
      const run = await belay(['--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse', '--junit', junit, '--markdown', markdown], { cwd: project.dir, env: cleanEnv({ TMPDIR: small }) });
      expect(run.code, run.stdout + run.stderr).toBe(12);
      const said = JSON.parse(run.stdout) as { message: string; next: string };
      expect(said.message).toMatch(/^the rehearsal on an ephemeral cluster in .* could not finish: 0001_base up failed .*No space left on device \[SQLSTATE 53100\]/);
      expect(said.next).toMatch(/^Nothing real was touched, and no verdict was reached\. Its server ran out of disk, memory or connections: free some \(an ephemeral cluster lives in the temp folder, TMPDIR/);
      expect(said.next).not.toMatch(/Fix 0001_base/);
      const written = await readdir(project.dir);
      expect(written).not.toContain('j.xml');
      expect(written).not.toContain('m.md');
      expect(await readdir(small)).toEqual([]);
    } finally {
      await execFileAsync('umount', [small]);
    }
  }, 120_000);
});

describe('a rehearsal that reached its verdict but could not remove its throwaway', () => {
  it('is exit 12 naming what is left, still writes its --junit report (it was not written), and names the --markdown report it then could not write', async () => {
    const project = await makeProject({
      // in a schema of its own: public belongs to the database's owner, which the test changes
      '0001_people.up.sql': 'CREATE SCHEMA app;\nCREATE TABLE app.people (id int PRIMARY KEY);',
      '0001_people.down.sql': 'DROP SCHEMA app CASCADE;',
      '0002_nap.up.sql': 'SELECT pg_sleep(2);\nCREATE TABLE app.nap (id int);',
      '0002_nap.down.sql': 'DROP TABLE app.nap;',
    });
    const junit = join(project.dir, 'rehearsal.xml');
    const reports = join(project.dir, 'reports');
    await mkdir(reports);
    const markdown = join(reports, 'rehearsal.md');
    const args = ['--database-url', urlOf('owner', 'app'), '--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse', '--from', '0001', '--junit', junit, '--markdown', markdown];
    const running = startBelay(args, { cwd: project.dir });
    let ended: string | undefined;
    void running.done.then((run) => (ended = `exit ${run.code}: ${run.stdout}${run.stderr}`));
    await pollUntil(async () => {
      if (ended !== undefined) throw new Error(`the rehearsal ended first, ${ended}`);
      return Number((await adminRows("SELECT count(*) AS n FROM pg_stat_activity WHERE datname LIKE 'belay_rehearse%' AND query LIKE '%pg_sleep(2)%'"))[0]!.n) === 1;
    }, "0002's up sleeping on the throwaway");
    // the throwaways now belong to another role: the rehearsal goes on in them, but its role may not drop them
    const made = await throwaways();
    for (const name of made) await adminRows(`ALTER DATABASE ${name} OWNER TO postgres`);
    // and the --markdown report's folder is now a file: that report cannot be written (root ignores permissions, not this)
    await rm(reports, { recursive: true });
    await writeFile(reports, 'not a folder');
    const run = await running.done;
    expect(run.code, run.stdout + run.stderr).toBe(12);
    const said = JSON.parse(run.stdout) as { message: string; next: string };
    expect(said.message).toMatch(/^the rehearsal passed, but database belay_rehearse_\w+ on the connected server could not be removed: .*must be owner of database/);
    expect(said.message).toContain(`; and the rehearsal ran, but its --markdown report ${markdown} could not be written`);
    expect(said.next).toMatch(/by hand.*--markdown/s);
    expect(run.stderr).not.toMatch(/this is a bug/);
    expect(await readFile(junit, 'utf8')).toMatch(/<testsuite[^>]* failures="0"/);
    const left = await throwaways();
    expect(left.length).toBeGreaterThan(0);
    for (const name of left) await adminRows(`DROP DATABASE ${name}`);
  }, 120_000);
});

describe('a rehearsal refused before it starts', () => {
  it.runIf(process.getuid?.() === 0)('a --from that names no revision stays exit 2 with its own words when the ephemeral cluster started beside the plan cannot be removed; then exit 12 names what is left (it was exit 4, "could not start", the --from error lost)', async () => {
    const project = await makeProject(SLOW);
    // the server account must reach it; append-only, so that entries are made in it but cannot be removed (root too)
    const tmp = join(project.dir, 'tmp');
    await mkdir(tmp);
    await chmod(tmp, 0o1777);
    await chmod(project.dir, 0o755);
    const rehearse = () => belay(['--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0099'], { cwd: project.dir, env: cleanEnv({ TMPDIR: tmp }) });
    const plain = await rehearse();
    expect(plain.code, plain.stderr).toBe(2);
    expect(plain.stderr).toMatch(/belay: --from 0099/);
    expect(await readdir(tmp)).toEqual([]);
    await execFileAsync('chattr', ['+a', tmp]);
    try {
      const stuck = await rehearse();
      expect(stuck.code, stuck.stderr).toBe(12);
      const left = await readdir(tmp);
      expect(left).toHaveLength(1);
      expect(stuck.stderr).toMatch(/belay: --from 0099.*; an ephemeral cluster in .*belay-rehearse-[\w-]+ could not be removed either \(EPERM/);
      expect(stuck.stderr).toMatch(new RegExp(`next: .*Delete ${join(tmp, left[0]!)} by hand once no server runs from it \\(its data folder is ${join(tmp, left[0]!, 'data')}\\)`, 's'));
      expect(stuck.stderr).not.toMatch(/once its server answers/);
      expect(stuck.stderr).not.toMatch(/this is a bug|could not start|Nothing was touched/);
    } finally {
      await execFileAsync('chattr', ['-a', tmp]);
      await rm(tmp, { recursive: true, force: true });
    }
  }, 120_000);

  it('a role without CREATEDB is refused with exit 4 and what to grant (it was exit 1, "permission denied to create database"), with nothing left behind', async () => {
    await adminRows('CREATE ROLE plain LOGIN');
    const project = await makeProject(SLOW);
    const run = await belay(['--database-url', urlOf('plain', 'app'), '--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0001'], { cwd: project.dir });
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toContain('plain may not create the throwaway database a rehearsal on the connected server runs in: permission denied to create database');
    expect(run.stderr).toMatch(/next: As a superuser: ALTER ROLE "plain" CREATEDB; or rehearse on a cluster belay starts/);
    expect(run.stderr).not.toMatch(/this is a bug/);
    expect(await throwaways()).toEqual([]);
  }, 120_000);

  it('a revision up to --from that fails on the throwaway (it needs a schema made by hand on the connected database) is exit 4 naming it, with next: (it was exit 1, next: null); the throwaway is removed', async () => {
    await adminRows('CREATE DATABASE byhand OWNER owner');
    const db = new pg.Client({ connectionString: urlOf('owner', 'byhand') });
    await db.connect();
    try {
      await db.query('CREATE SCHEMA pre');
    } finally {
      await db.end();
    }
    const project = await makeProject({
      '0001_a.up.sql': 'CREATE TABLE pre.a (id int);',
      '0001_a.down.sql': 'DROP TABLE pre.a;',
      '0002_b.up.sql': 'CREATE TABLE pre.b (id int);',
      '0002_b.down.sql': 'DROP TABLE pre.b;',
    });
    const base = ['--database-url', urlOf('owner', 'byhand'), '--migrations', project.migrations, '--backups', project.backups];
    const up = await belay([...base, 'migrate', 'up', '--to', '0001'], { cwd: project.dir });
    expect(up.code, up.stderr).toBe(0);
    const run = await belay([...base, '--json', 'rehearse'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(4);
    const said = JSON.parse(run.stdout) as { outcome: string; message: string; next: string | null };
    expect(said.message).toMatch(/^the rehearsal could not build its throwaway up to 0001_a: 0001_a up failed at .*0001_a\.up\.sql:1: schema "pre" does not exist/);
    expect(said.next).toMatch(/^Nothing real was touched, and nothing was rehearsed: the revisions up to 0001_a do not build .* --template NAME .* --from-backup ID\.$/);
    expect(run.stderr).not.toMatch(/this is a bug/);
    expect(await throwaways()).toEqual([]);
    const applied = new pg.Client({ connectionString: urlOf('owner', 'byhand') });
    await applied.connect();
    try {
      expect((await applied.query("SELECT to_regclass('pre.b') AS b")).rows[0].b).toBeNull();
    } finally {
      await applied.end();
    }
  }, 120_000);

  it('a --template that does not exist is exit 2, one with a session on it exit 4 naming how to end it, a server that does not answer exit 2 (each was exit 1)', async () => {
    const project = await makeProject(SLOW);
    const rehearse = (url: string, ...extra: string[]) =>
      belay(['--database-url', url, '--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0001', ...extra], { cwd: project.dir });
    const missing = await rehearse(urlOf('owner', 'app'), '--template', 'nosuch');
    expect(missing.code, missing.stderr).toBe(2);
    expect(missing.stderr).toContain('belay: --template nosuch: template database "nosuch" does not exist');
    expect(missing.stderr).toMatch(/next: Name a database of the connected server to copy/);

    await adminRows('CREATE DATABASE busy OWNER owner');
    const session = new pg.Client({ connectionString: urlOf('owner', 'busy') });
    await session.connect();
    try {
      const busy = await rehearse(urlOf('owner', 'app'), '--template', 'busy');
      expect(busy.code, busy.stderr).toBe(4);
      expect(busy.stderr).toContain('belay: --template busy: source database "busy" is being accessed by other users');
      expect(busy.stderr).toContain("next: CREATE DATABASE … TEMPLATE copies a database nobody is connected to: end the sessions on busy (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'busy')");
    } finally {
      await session.end();
    }

    const nobody = await rehearse(`postgresql://owner@/app?host=${encodeURIComponent(server.spec.socketDir)}&port=${server.spec.port + 1}`);
    expect(nobody.code, nobody.stderr).toBe(2);
    expect(nobody.stderr).toMatch(/belay: cannot connect to owner@.*\/postgres: connect ENOENT/);
    expect(nobody.stderr).toMatch(/next: Check that the server is running/);
    expect(`${missing.stderr}${nobody.stderr}`).not.toMatch(/this is a bug/);
    expect(await throwaways()).toEqual([]);
  }, 120_000);
});


describe('a rehearsal stopped by a signal', () => {
  // the brief's set: 0002's up sleeps in a statement; SLOW_JS's waits in the revision's own code, which no cancel reaches.
  // Both wait 10 minutes: a stop that waited them out would outlast the test, which no timing of its own decides
  const SLEEPS = {
    '0001_t.up.sql': 'CREATE TABLE t (id int);',
    '0001_t.down.sql': 'DROP TABLE t;',
    '0002_slow.up.sql': 'SELECT pg_sleep(600);\nALTER TABLE t ADD COLUMN x int;',
    '0002_slow.down.sql': 'ALTER TABLE t DROP COLUMN x;',
  };
  const SLOW_JS = {
    '0001_t.up.sql': 'CREATE TABLE t (id int);',
    '0001_t.down.sql': 'DROP TABLE t;',
    '0002_slow.mjs': "export async function up(ctx) {\n  await ctx.sql(\"SELECT 'belay-test slow js'\");\n  await new Promise((resolve) => setTimeout(resolve, 600000));\n  await ctx.sql('ALTER TABLE t ADD COLUMN x int');\n}\nexport async function down(ctx) {\n  await ctx.sql('ALTER TABLE t DROP COLUMN x');\n}\n",
  };
  const seen = async (query: (sql: string) => Promise<Array<Record<string, unknown>>>, marker: string, where: string): Promise<boolean> =>
    Number((await query(`SELECT count(*) AS n FROM pg_stat_activity WHERE ${where} AND strpos(query, '${marker}') > 0 AND pid <> pg_backend_pid()`))[0]!.n) === 1;

  /** Start a rehearsal (on the test's server, or with no connection), and wait until `ready` is true of real state. */
  async function startUntil(files: Record<string, string>, connection: string[], ready: () => Promise<boolean>, env = cleanEnv()) {
    const project = await makeProject(files);
    const running = startBelay([...connection, '--migrations', project.migrations, '--backups', project.backups, 'rehearse'], { cwd: project.dir, env });
    let ended: string | undefined;
    void running.done.then((run) => (ended = `exit ${run.code}: ${run.stdout}${run.stderr}`));
    let stderr = '';
    running.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await pollUntil(async () => {
      if (ended !== undefined) throw new Error(`the rehearsal ended first, ${ended}`);
      return ready();
    }, 'the rehearsal at its slow revision');
    /** Both signals: the second once the first is handled (it says so), while the revision still waits. */
    const twice = async (): Promise<void> => {
      running.child.kill('SIGINT');
      await pollUntil(async () => /SIGINT: stopping the rehearsal/.test(stderr), 'the first signal handled');
      running.child.kill('SIGINT');
    };
    return { ...running, twice };
  }

  it("the first SIGINT cancels the throwaway's running statement: exit 4 at once, the throwaway removed (it waited out the pg_sleep)", async () => {
    const running = await startUntil(SLEEPS, ['--database-url', urlOf('owner', 'app')], () => seen(adminRows, 'pg_sleep(600)', "datname LIKE 'belay_rehearse%'"));
    running.child.kill('SIGINT');
    const run = await running.done;
    expect(run.code, run.stdout + run.stderr).toBe(4);
    // it said it was rolling back what the run did: a rehearsal has nothing real to roll back
    expect(run.stderr).toContain('SIGINT: stopping the rehearsal: the statements running on its throwaway are cancelled, and the throwaway is removed once they end (nothing real was touched); send it again to remove it at once');
    expect(run.stderr).not.toMatch(/rolling back/);
    expect(run.stderr).toMatch(/belay: the rehearsal was stopped by a signal; database belay_rehearse_\w+ on the connected server is removed\n {2}next: Nothing real was touched, and no verdict was reached/);
    expect(await throwaways()).toEqual([]);
  }, 120_000);

  it('a second SIGINT removes the throwaway database at once (its sessions ended) and says so, exit 4; it left it behind, saying nothing was changed', async () => {
    const running = await startUntil(SLOW_JS, ['--database-url', urlOf('owner', 'app')], () => seen(adminRows, 'belay-test slow js', "datname LIKE 'belay_rehearse%'"));
    expect(await throwaways()).not.toEqual([]);
    await running.twice();
    const run = await running.done;
    expect(run.code, run.stdout + run.stderr).toBe(4);
    expect(run.stderr).toMatch(/belay: the rehearsal was stopped by a second SIGINT; database belay_rehearse_\w+ on the connected server is removed\n {2}next: Nothing real was touched, and no verdict was reached/);
    expect(run.stderr).not.toMatch(/Nothing was changed|this is a bug/);
    expect(await throwaways()).toEqual([]);
  }, 120_000);

  it('a third SIGINT while the second one waits to drop the throwaway exits at once, exit 12 naming it (it was ignored: belay waited out the drop)', async () => {
    const running = await startUntil(SLOW_JS, ['--database-url', urlOf('owner', 'app')], () => seen(adminRows, 'belay-test slow js', "datname LIKE 'belay_rehearse%'"));
    const [name] = await throwaways();
    // an operator's open transaction holds a lock on the database: its DROP DATABASE waits (up to belay's lock_timeout, 10 s)
    const holder = new pg.Client({ connectionString: urlOf('postgres', 'postgres') });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`COMMENT ON DATABASE ${name} IS 'held'`);
      await running.twice();
      await pollUntil(async () => Number((await adminRows(`SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DROP DATABASE%${name}%'`))[0]!.n) === 1, 'the DROP DATABASE waiting');
      // it does not wait for the DROP: that one ends only once the lock is free, after belay exited (below)
      running.child.kill('SIGINT');
      const run = await running.done;
      expect(run.code, run.stdout + run.stderr).toBe(12);
      expect(run.stderr).toContain(
        `belay: the rehearsal was stopped by a third SIGINT while database ${name} on the connected server was being removed: database ${name} on the connected server may be left behind\n  next: Nothing real was touched, and no verdict was reached. Drop what is left of it by hand once its server answers: DROP DATABASE IF EXISTS "${name}";`,
      );
      expect(await throwaways()).toEqual([name]);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    // the DROP the server was left running ends once the lock is free
    await pollUntil(async () => (await throwaways()).length === 0, 'the throwaway dropped');
  }, 120_000);

  it("a third SIGINT once the throwaway is dropped and its copy is not yet names the copy, and how to drop it (it named the throwaway, gone, and never the copy left)", async () => {
    const project = await makeProject(SLOW_JS);
    // --from 0001: the start of the cycle is kept as a copy, <throwaway>_c1
    const running = startBelay(['--database-url', urlOf('owner', 'app'), '--migrations', project.migrations, '--backups', project.backups, 'rehearse', '--from', '0001'], { cwd: project.dir });
    let stderr = '';
    running.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await pollUntil(() => seen(adminRows, 'belay-test slow js', "datname LIKE 'belay_rehearse%'"), 'the rehearsal at its slow revision');
    const [name, copy] = await throwaways();
    expect(copy).toBe(`${name}_c1`);
    // an operator's open transaction holds a lock on the copy: its DROP DATABASE waits, once the throwaway's own is done
    const holder = new pg.Client({ connectionString: urlOf('postgres', 'postgres') });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`COMMENT ON DATABASE ${copy} IS 'held'`);
      running.child.kill('SIGINT');
      await pollUntil(async () => /SIGINT: stopping the rehearsal/.test(stderr), 'the first signal handled');
      running.child.kill('SIGINT');
      await pollUntil(async () => Number((await adminRows(`SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DROP DATABASE%${copy}%'`))[0]!.n) === 1, 'the DROP DATABASE of the copy waiting');
      expect(await throwaways()).toEqual([copy]);
      running.child.kill('SIGINT');
      const run = await running.done;
      expect(run.code, run.stdout + run.stderr).toBe(12);
      expect(run.stderr).toContain(
        `belay: the rehearsal was stopped by a third SIGINT while database ${name} on the connected server was being removed: database ${copy} on the connected server may be left behind\n  next: Nothing real was touched, and no verdict was reached. Drop what is left of it by hand once its server answers: DROP DATABASE IF EXISTS "${copy}";`,
      );
      expect(run.stderr).not.toContain(`DROP DATABASE IF EXISTS "${name}"`);
      expect(await throwaways()).toEqual([copy]);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    await pollUntil(async () => (await throwaways()).length === 0, 'the copy dropped');
  }, 120_000);

  it('a third SIGINT while the throwaway is still being made exits at once, exit 12 saying what it may leave (it was ignored)', async () => {
    // CREATE DATABASE copies template1: an operator's open transaction holding a lock on it makes it wait
    const holder = new pg.Client({ connectionString: urlOf('postgres', 'postgres') });
    await holder.connect();
    const project = await makeProject(SLOW_JS);
    let stderr = '';
    let run: Awaited<ReturnType<typeof belay>>;
    try {
      await holder.query('BEGIN');
      await holder.query("COMMENT ON DATABASE template1 IS 'held'");
      const running = startBelay(['--database-url', urlOf('owner', 'app'), '--migrations', project.migrations, '--backups', project.backups, 'rehearse'], { cwd: project.dir });
      running.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      await pollUntil(async () => Number((await adminRows("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE DATABASE%belay_rehearse%'"))[0]!.n) === 1, 'the CREATE DATABASE waiting');
      running.child.kill('SIGINT');
      await pollUntil(async () => /SIGINT: stopping the rehearsal/.test(stderr), 'the first signal handled');
      running.child.kill('SIGINT');
      // nothing shows the second handled (it waits for the throwaway to be made); a signal sent before it is may merge into it
      await new Promise((r) => setTimeout(r, 200));
      // it does not wait for the CREATE: that one ends only once the lock is free, after belay exited (below)
      running.child.kill('SIGINT');
      run = await running.done;
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    expect(run.code, run.stdout + run.stderr).toBe(12);
    expect(run.stderr).toContain('belay: the rehearsal was stopped by a third SIGINT while it was making a database belay_rehearse_<random> on the connected server: it may be left behind\n  next: Nothing real was touched, and no verdict was reached. Drop that database by hand, if it was made');
    // the CREATE the server was left running ends once the lock is free: what the message warned of
    await pollUntil(async () => (await throwaways()).length === 1, 'the throwaway made after belay exited');
    for (const name of await throwaways()) await adminRows(`DROP DATABASE ${name}`);
  }, 120_000);

  it('a second SIGINT stops the ephemeral cluster and deletes its folder, exit 4; its postgres kept running and its folder stayed', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'rehearse-signal-'));
    // the server account makes the cluster's folder there when run as root
    await chmod(tmp, 0o1777);
    let cluster: { dir: string; pid: number } | undefined;
    const running = await startUntil(
      SLOW_JS,
      [],
      async () => {
        const dir = (await readdir(tmp)).find((name) => name.startsWith('belay-rehearse-'));
        if (!dir) return false;
        const pidFile = await readFile(join(tmp, dir, 'data', 'postmaster.pid'), 'utf8').catch(() => '');
        if (!pidFile) return false;
        cluster = { dir: join(tmp, dir), pid: Number(pidFile.split('\n')[0]) };
        const client = new pg.Client({ host: join(cluster.dir, 'run'), port: 5432, user: 'postgres', database: 'template1' });
        client.on('error', () => {});
        try {
          await client.connect();
          return await seen(async (sql) => (await client.query(sql)).rows, 'belay-test slow js', "datname = 'rehearsal'");
        } catch {
          return false;
        } finally {
          await client.end().catch(() => {});
        }
      },
      cleanEnv({ TMPDIR: tmp }),
    );
    await running.twice();
    const run = await running.done;
    expect(run.code, run.stdout + run.stderr).toBe(4);
    expect(run.stderr).toContain(`belay: the rehearsal was stopped by a second SIGINT; an ephemeral cluster in ${cluster!.dir} is removed`);
    expect(await readdir(tmp)).toEqual([]);
    // pg_ctl stop -w returns once the pid file is gone, a moment before the postmaster itself
    const gone = (): boolean => {
      try {
        process.kill(cluster!.pid, 0);
        return false;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'ESRCH';
      }
    };
    await pollUntil(async () => gone(), `the ephemeral cluster's postmaster ${cluster!.pid} gone`, 400);
    await rm(tmp, { recursive: true, force: true });
  }, 120_000);
});
