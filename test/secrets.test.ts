import { chmod, chown, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lookupUser } from '../src/cluster/os-user.js';
import { belay, cleanEnv, cliRunnableBy, startBelay } from './support/cli.js';
import { childrenOf, pollUntil, processGone } from './support/kill.js';
import { adminQuery, cluster, freshDatabase, type TestDatabase } from './support/pg.js';
import { makeProject } from './support/project.js';

const asRoot = process.getuid?.() === 0;
const nobody = lookupUser('nobody');
const asNobody = asRoot && nobody !== undefined && cliRunnableBy(nobody);

// every character a URL must encode, and the passfile's own separators
const PASSWORD = 'p@ss:w/rd%20 x+y\\ü?#&=';

/** Every way the password may be written out. */
function spellings(secret: string): string[] {
  const encoded = encodeURIComponent(secret);
  return [secret, encoded, encoded.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()), encoded.replaceAll('%20', '+'), JSON.stringify(secret).slice(1, -1)];
}

function expectNoSecret(text: string, where: string): void {
  for (const spelling of spellings(PASSWORD)) expect(text.includes(spelling), `${where} holds the password as ${spelling}`).toBe(false);
}

async function roleWithHardPassword(): Promise<{ db: TestDatabase; url: string }> {
  const role = `secretive_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  await adminQuery('postgres', `CREATE ROLE ${role} LOGIN PASSWORD '${PASSWORD.replaceAll("'", "''")}'`);
  const db = await freshDatabase();
  await db.query(`ALTER DATABASE ${db.name} OWNER TO ${role}; ALTER SCHEMA public OWNER TO ${role}`);
  return { db, url: `postgresql://${role}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${cluster().port}/${db.name}` };
}

/** A role and its own database, the role's password `password`: its URL with the password, and without. */
async function roleWithPassword(password: string): Promise<{ db: TestDatabase; url: string; bare: string; role: string }> {
  const role = `secretive_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  await adminQuery('postgres', `CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
  const db = await freshDatabase();
  await db.query(`ALTER DATABASE ${db.name} OWNER TO ${role}; ALTER SCHEMA public OWNER TO ${role}`);
  const bare = `postgresql://${role}@127.0.0.1:${cluster().port}/${db.name}`;
  return { db, role, bare, url: bare.replace(`${role}@`, `${role}:${password}@`) };
}

/** Variables that carry the password in other spellings, as an application's own settings might. */
function leakyEnv(url: string): NodeJS.ProcessEnv {
  return {
    DATABASE_URL: url,
    APP_DSN: url.replace('postgresql://', 'postgres://'),
    APP_DSN_LOWER: url.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()),
    APP_FORM: `password=${encodeURIComponent(PASSWORD).replaceAll('%20', '+')}`,
    HARMLESS: 'stays',
  };
}

describe('secrets never rest on disk and never outlive the process', () => {
  it('pg_dump runs with a minimal environment and a passfile that has no name; after kill -9 nothing holds the password', async () => {
    const { db, url } = await roleWithHardPassword();
    await db.query(`SET ROLE ${new URL(url).username}; CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload FROM generate_series(1, 400000) g`);
    const project = await makeProject({});
    const tmp = join(project.dir, 'tmp');
    await mkdir(tmp);
    const run = startBelay(['--migrations', project.migrations, '--backups', project.backups, 'backup'], { env: cleanEnv({ ...leakyEnv(url), TMPDIR: tmp }) });
    let pgDump: number | undefined;
    await pollUntil(async () => {
      for (const pid of await childrenOf(run.child.pid!)) if ((await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes('pg_dump')) pgDump = pid;
      const partial = (await readdir(project.backups).catch(() => [] as string[])).find((f) => f.endsWith('.partial'));
      return pgDump !== undefined && partial !== undefined && (await stat(join(project.backups, partial)).catch(() => ({ size: 0 }))).size > 0;
    }, 'pg_dump writing');
    const environ = (await readFile(`/proc/${pgDump}/environ`, 'utf8')).split('\0');
    expectNoSecret(environ.join('\n'), 'pg_dump environment');
    expect(environ.filter((v) => /^(DATABASE_URL|APP_DSN|APP_FORM|HARMLESS|PGPASSWORD)=/.test(v))).toEqual([]);
    expect(environ).toContain('PGPASSFILE=/proc/self/fd/3');
    // libpq reads it through the descriptor; on disk it has no name
    expect(await readFile(`/proc/${pgDump}/fd/3`, 'utf8')).toMatch(/^\*:\*:\*:\*:/);
    expect((await stat(`/proc/${pgDump}/fd/3`)).mode & 0o777).toBe(0o600);
    expect((await stat(`/proc/${pgDump}/fd/3`)).nlink).toBe(0);
    run.child.kill('SIGKILL');
    process.kill(pgDump!, 'SIGKILL');
    await run.done;
    await pollUntil(() => processGone(pgDump!), 'pg_dump gone');
    expect(await readdir(tmp)).toEqual([]);
    for (const file of await readdir(project.backups, { recursive: true })) {
      const path = join(project.backups, String(file));
      if (!(await stat(path)).isFile()) continue;
      expect((await stat(path)).mode & 0o077, `${String(file)} is private`).toBe(0);
      expectNoSecret(await readFile(path, 'latin1'), String(file));
    }
  });

  it('hooks and command checks see no DATABASE_URL and no variable carrying the password in any spelling', async () => {
    const { url } = await roleWithHardPassword();
    const out = join((await makeProject({})).dir, 'env.txt');
    const project = await makeProject({}, { health: { command: [{ name: 'env', run: `env > ${out}` }] } });
    const run = await belay(['--migrations', project.migrations, '--backups', project.backups, 'verify'], { cwd: project.dir, env: cleanEnv(leakyEnv(url)) });
    expect(run.code, run.stderr).toBe(0);
    const env = await readFile(out, 'utf8');
    expectNoSecret(env, 'the command check environment');
    expect(env).not.toMatch(/^(DATABASE_URL|APP_DSN|APP_DSN_LOWER|APP_FORM)=/m);
    expect(env).toMatch(/^HARMLESS=stays$/m);
    expectNoSecret(run.stdout + run.stderr, 'output');
  });

  it('the password the connection resolved to (databaseUrl in the config, a passfile) is scrubbed from text and --json', async () => {
    const password = 'Cfg-Secr3t-Pw';
    const { url, bare, role } = await roleWithPassword(password);
    const health = { timeoutSeconds: 1, command: [{ name: 'smoke', run: `echo "app config: DB_PASS=${password}"; exit 1` }] };
    const passfile = join((await makeProject({})).dir, 'pgpass');
    await writeFile(passfile, `127.0.0.1:${cluster().port}:*:${role}:${password}\n`, { mode: 0o600 });
    const ways: Array<{ how: string; config: object; env: NodeJS.ProcessEnv }> = [
      { how: 'databaseUrl in the config', config: { databaseUrl: url, health }, env: {} },
      { how: 'a passfile', config: { health }, env: { DATABASE_URL: bare, PGPASSFILE: passfile } },
    ];
    for (const { how, config, env } of ways) {
      const project = await makeProject({}, config);
      for (const json of [['--json'], []]) {
        const run = await belay([...json, '--migrations', project.migrations, '--backups', project.backups, 'verify'], { cwd: project.dir, env: cleanEnv(env) });
        expect(run.code, `${how}: ${run.stdout}${run.stderr}`).toBe(4);
        expect(run.stdout + run.stderr, how).toContain('DB_PASS=***');
        expect(run.stdout + run.stderr, how).not.toContain(password);
      }
    }
  });

  it('the journal file and belay.runs/belay.steps are scrubbed of any credentials in a URL, known or not, as the output is', async () => {
    const db = await freshDatabase();
    const tokens = ['Redis-Tok3n', 'Api-Tok3n', 'HttpTok3n'];
    const health = {
      timeoutSeconds: 1,
      command: [{ name: 'smoke', run: 'echo "cache redis://:Redis-Tok3n@cache:6379 ci https://deploy:Api-Tok3n@ci.example"; exit 1' }],
      http: [{ name: 'probe', url: 'http://probe:HttpTok3n@127.0.0.1:1/' }],
    };
    const project = await makeProject({ '0001_t.up.sql': 'CREATE TABLE t (id int);', '0001_t.down.sql': 'DROP TABLE t;' }, { health });
    // unhealthy before and after: the run goes on, and belay.runs/belay.steps hold it
    const run = await belay(['--migrations', project.migrations, '--backups', project.backups, 'migrate', 'up', '--allow-unhealthy'], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: db.url }) });
    expect(run.code, run.stderr).toBe(0);
    const journal = join(project.backups, 'journal');
    const [file] = (await readdir(journal)).filter((f) => f.endsWith('.jsonl'));
    const text = await readFile(join(journal, file!), 'utf8');
    const rows = JSON.stringify([...(await db.query('SELECT * FROM belay.runs')), ...(await db.query('SELECT * FROM belay.steps'))]);
    for (const token of tokens) expect(run.stdout + run.stderr, token).not.toContain(token);
    for (const [where, said] of [['the journal file', text], ['belay.runs and belay.steps', rows]] as const) {
      for (const token of tokens) expect(said, `${where}: ${token}`).not.toContain(token);
      expect(said, where).toContain('redis://:***@cache:6379');
      expect(said, where).toContain('https://deploy:***@ci.example');
      expect(said, where).toContain('GET http://probe:***@127.0.0.1:1/');
    }
  });

  it("a hook's output is scrubbed of the password in any URL spelling and of a token standing alone before a URL's @; the target line keeps its user", async () => {
    const { url } = await roleWithHardPassword();
    const role = new URL(url).username;
    const encoded = encodeURIComponent(PASSWORD);
    // as a hand or another library writes it: only what must be encoded (ü raw), every byte encoded, hex in mixed case
    const byHand = PASSWORD.replace(/[@:/%#?&=+ \\]/g, (c) => encodeURIComponent(c));
    const everyByte = [...Buffer.from(PASSWORD)].map((byte, i) => `%${byte.toString(16).padStart(2, '0')[i % 2 ? 'toUpperCase' : 'toLowerCase']()}`).join('');
    const passwords = [encoded, encoded.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()), byHand, everyByte];
    const tokens = ['ghp_Zx81kQ0pLm3nB7vC2xR5tY9uW4sA6dE1fG3h', 'glpat-Xq7Rk2mLp9Vt4Bw8Ns3z', '4f7c2a9e1b8d3c6f0a5e9b2d7c4f1a8e3b6d0c9f'];
    const lines = [
      ...passwords.map((p) => `app postgres://${role}:${p}@db.internal:5432/app?sslmode=require and ${p} alone`),
      ...tokens.map((t) => `git clone https://${t}@github.com/acme/app.git`),
      'mirror ssh://git@github.com/acme/app.git',
    ];
    const said = join((await makeProject({})).dir, 'said.txt');
    await writeFile(said, `${lines.join('\n')}\n`);
    const project = await makeProject(
      { '0001_t.up.sql': 'CREATE TABLE t (id int);', '0001_t.down.sql': 'DROP TABLE t;' },
      { health: { timeoutSeconds: 1, command: [{ name: 'smoke', run: `cat ${said}; exit 1` }] }, hooks: { afterApply: { run: `cat ${said}` } } },
    );
    const args = ['--migrations', project.migrations, '--backups', project.backups];
    const expectScrubbed = (text: string, where: string): void => {
      for (const secret of [...passwords, ...tokens]) expect(text, `${where}: ${secret}`).not.toContain(secret);
      expectNoSecret(text, where);
      expect(text, where).toContain(`postgres://${role}:***@db.internal:5432/app?sslmode=require and *** alone`);
      expect(text, where).toContain('git clone https://***@github.com/acme/app.git');
      expect(text, where).toContain('mirror ssh://git@github.com/acme/app.git');
    };
    for (const json of [['--json'], []]) {
      const checked = await belay([...json, ...args, 'verify'], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: url }) });
      expect(checked.code, checked.stderr).toBe(4);
      expectScrubbed(checked.stdout + checked.stderr, `verify ${json.join('')}`);
    }
    const applied = await belay([...args, 'migrate', 'up', '--allow-unhealthy'], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: url }) });
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout + applied.stderr).toContain(`target ${role}@127.0.0.1:${cluster().port}/`);
    const journal = join(project.backups, 'journal');
    const [file] = (await readdir(journal)).filter((f) => f.endsWith('.jsonl'));
    expectScrubbed(await readFile(join(journal, file!), 'utf8'), 'the journal file');
  });

  it('a config value that may hold a secret is never echoed in full, and JSON- or quote-style passwords are masked', async () => {
    const objectUrl = await makeProject({}, { databaseUrl: { host: '127.0.0.1', user: 'app', password: 'ObjTok3n' } });
    for (const json of [['--json'], []]) {
      const run = await belay([...json, '--migrations', objectUrl.migrations, '--backups', objectUrl.backups, 'status'], { cwd: objectUrl.dir, env: cleanEnv() });
      expect(run.code, run.stdout + run.stderr).toBe(2);
      expect(run.stdout + run.stderr).toContain('databaseUrl must be a non-empty string (got {host, user, password})');
      expect(run.stdout + run.stderr).not.toContain('ObjTok3n');
    }
    const db = await freshDatabase();
    const said = `{"user":"app","password":"Json-Tok3n"} password: 'Quoted Tok3n'`;
    const project = await makeProject({}, { health: { timeoutSeconds: 1, command: [{ name: 'smoke', run: `echo ${JSON.stringify(said)}; exit 1` }] } });
    const run = await belay(['--json', '--migrations', project.migrations, '--backups', project.backups, 'verify'], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: db.url }) });
    expect(run.code, run.stderr).toBe(4);
    expect(run.stdout).toContain(`{\\"user\\":\\"app\\",\\"password\\":\\"***\\"} password: '***'`);
    expect(run.stdout + run.stderr).not.toContain('Tok3n');
  });

  it("a hook's or command check's output is scrubbed before its lines are cut: no part of a password straddling the cut is kept", async () => {
    const { url } = await roleWithPassword('Cut-Secr3t-Pw');
    // 600 characters, the password (written in two halves), 491 more: a line of 1104, its last 500 begin inside the password
    const print = "printf '%0600d' 0 | tr 0 x; printf 'Cut-Se'; printf 'cr3t-Pw'; printf '%0491d' 0 | tr 0 y; echo";
    const project = await makeProject(
      { '0001_t.up.sql': 'CREATE TABLE t (id int);', '0001_t.down.sql': 'DROP TABLE t;' },
      { health: { timeoutSeconds: 1, command: [{ name: 'smoke', run: `${print}; exit 1` }] }, hooks: { afterApply: { run: print } } },
    );
    const args = ['--migrations', project.migrations, '--backups', project.backups];
    const checked = await belay(['--json', ...args, 'verify'], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: url }) });
    expect(checked.code, checked.stderr).toBe(4);
    expect(checked.stdout).toContain('[…cut] xxxxxx***yyy');
    expect(checked.stdout + checked.stderr).not.toContain('Secr3t');
    const applied = await belay([...args, 'migrate', 'up', '--allow-unhealthy'], { cwd: project.dir, env: cleanEnv({ DATABASE_URL: url }) });
    expect(applied.code, applied.stderr).toBe(0);
    const journal = join(project.backups, 'journal');
    const [file] = (await readdir(journal)).filter((f) => f.endsWith('.jsonl'));
    const text = await readFile(join(journal, file!), 'utf8');
    expect(text).toContain('[…cut] xxxxxx***yyy');
    expect(/.{0,60}Secr3t.{0,20}/.exec(text)?.[0]).toBeUndefined();
  });

  it('no malformed URL is ever echoed with its password, in text or --json', async () => {
    const secret = 'Zq9-very-secret-Xy';
    const urls = [
      `postgresql:/user:${secret}@localhost/db`,
      `user:${secret}@localhost/db`,
      `postgresql://user:${secret}`,
      `postgresql://user:p@${secret}@localhost/db`,
      `postgresql://user:8841/${secret}@localhost:5432/db`,
      `postgresql://user:${secret}@localhost:notaport/db`,
      `postgresql://user:${secret}@host1,host2/db`,
      `postgresql://user:${secret}%zz@localhost/db`,
      `mysql://user:${secret}@localhost/db`,
      `postgresql://localhost/db?password=${secret}&port=x`,
    ];
    const project = await makeProject({});
    for (const url of urls) {
      for (const how of [['--database-url', url], []]) {
        for (const json of [['--json'], []]) {
          const run = await belay([...how, ...json, '--migrations', project.migrations, '--backups', project.backups, 'status'], { env: cleanEnv(how.length === 0 ? { DATABASE_URL: url } : {}) });
          expect(run.code, `${url} ${how.length ? 'flag' : 'env'} ${json.join('')}: ${run.stdout}${run.stderr}`).toBe(2);
          expect(run.stdout + run.stderr, url).not.toContain(secret);
          expect(run.stdout + run.stderr, url).not.toContain(secret.slice(0, 8));
          // belay's own example survives the scrubber
          expect(run.stdout + run.stderr, url).toContain('Use the form postgresql://USER:PASSWORD@HOST:5432/DATABASE (a reserved character in the user name or password percent-encoded, @ as %40, / as %2F)');
          if (url.includes('8841/')) expect(run.stdout + run.stderr).toMatch(/a \\?"\/\\?" in the user name or password must be written %2F/);
        }
      }
    }
  });

  it('an existing backups folder open to others is tightened to 0700, and the output says so', async () => {
    const db = await freshDatabase();
    const project = await makeProject({});
    await mkdir(project.backups);
    await chmod(project.backups, 0o755);
    const run = await belay(['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, 'backup']);
    expect(run.code, run.stderr).toBe(0);
    expect((await stat(project.backups)).mode & 0o777).toBe(0o700);
    expect(run.stderr).toMatch(/open to other users \(mode 0755\): tightened to 0700/);
  });

  it.runIf(asRoot)('a read-only backups folder is tightened by taking bits away only: 0555 becomes 0500, never writable by its owner', async () => {
    const db = await freshDatabase();
    const project = await makeProject({});
    await mkdir(project.backups);
    await chmod(project.backups, 0o555);
    // root may write in it whatever its mode: the snapshot is taken, the operator's missing write bit stays missing
    const run = await belay(['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups, 'backup']);
    expect(run.code, run.stderr).toBe(0);
    expect((await stat(project.backups)).mode & 0o777).toBe(0o500);
    expect(run.stderr).toMatch(/open to other users \(mode 0555\): tightened to 0500/);
  });

  it.runIf(asNobody)('a backups folder its user may not write: backup, migrate up --with-backup and restore --strategy in-place refuse (exit 4), the folder as it was, nothing touched', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ '0001_t.up.sql': "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);", '0001_t.down.sql': 'DROP TABLE t;' });
    const args = ['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups];
    const taken = await belay([...args, '--json', 'backup']);
    expect(taken.code, taken.stderr).toBe(0);
    const id = (JSON.parse(taken.stdout).result as { snapshot: { id: string } }).snapshot.id;
    // the user's own folder (its journal folder writable, as a folder belay used before leaves it), made read-only
    for (const name of ['', ...(await readdir(project.backups, { recursive: true }))]) await chown(join(project.backups, name), nobody!.uid, nobody!.gid);
    await chmod(project.backups, 0o555);
    const files = (await readdir(project.backups)).sort();
    const as = { uid: nobody!.uid, gid: nobody!.gid, env: cleanEnv({ HOME: project.dir }) };
    for (const command of [['backup'], ['migrate', 'up', '--with-backup'], ['restore', id, '--strategy', 'in-place']]) {
      const run = await belay([...args, ...command], as);
      expect(run.code, `${command.join(' ')}: ${run.stderr}`).toBe(4);
      expect(run.stderr).toContain(`the backups folder ${project.backups} is not writable (EACCES: permission denied)`);
      expect(run.stderr).toMatch(/next: Make \S+ writable by the user running belay .*, or choose another folder with --backups DIR\. Nothing was changed\./);
      expect(run.stderr).not.toContain('is writable');
      expect((await stat(project.backups)).mode & 0o777).toBe(0o555);
      expect((await readdir(project.backups)).sort()).toEqual(files);
    }
    expect(await db.query("SELECT to_regclass('t') AS t")).toEqual([{ t: null }]);
    const history = JSON.parse((await belay([...args, '--json', 'history'])).stdout).result as Array<{ command: string; status: string }>;
    expect(history.slice(0, 3).map((r) => `${r.command}:${r.status}`)).toEqual(['restore:refused', 'migrate-up:refused', 'backup:refused']);
  });

  it.runIf(asNobody)('rollback --restore-from --strategy in-place on a backups folder its user may not write is refused (exit 4) before anything changes (it restored into a database it could not keep a copy of: exit 12)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ '0001_t.up.sql': "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);", '0001_t.down.sql': 'DROP TABLE t;' });
    const args = ['--database-url', db.url, '--migrations', project.migrations, '--backups', project.backups];
    const taken = await belay([...args, '--json', 'backup']);
    expect(taken.code, taken.stderr).toBe(0);
    const id = (JSON.parse(taken.stdout).result as { snapshot: { id: string } }).snapshot.id;
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    for (const name of ['', ...(await readdir(project.backups, { recursive: true }))]) await chown(join(project.backups, name), nobody!.uid, nobody!.gid);
    await chmod(project.backups, 0o555);
    const files = (await readdir(project.backups)).sort();
    const run = await belay([...args, '--yes', 'rollback', '--to', '0', '--restore-from', id, '--strategy', 'in-place'], { uid: nobody!.uid, gid: nobody!.gid, env: cleanEnv({ HOME: project.dir }) });
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toContain(`the backups folder ${project.backups} is not writable (EACCES: permission denied)`);
    expect((await readdir(project.backups)).sort()).toEqual(files);
    expect(await db.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 1 }]);
  });
});
