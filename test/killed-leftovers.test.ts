import { chmod, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { belay, cleanEnv, jsonResult, startBelay } from './support/cli.js';
import { pollUntil, processGone } from './support/kill.js';
import { adminQuery, cluster, freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

// what a belay killed outright (kill -9: a CI timeout, the OOM killer) leaves, and who removes it
const SLOW = {
  ...GOOD_REVISIONS,
  '0004_slow.up.sql': 'SELECT pg_sleep(120);\nCREATE TABLE slow (id int);',
  '0004_slow.down.sql': 'DROP TABLE slow;',
};

const databases = async (pattern: string): Promise<string[]> =>
  (await adminQuery<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY datname', [pattern])).map((r) => r.datname);

/** A private temp dir for belay (TMPDIR), which the server account can reach. */
async function privateTmp(dir: string): Promise<string> {
  const tmp = join(dir, 'tmp');
  await mkdir(tmp);
  await chmod(dir, 0o755);
  await chmod(tmp, 0o1777);
  return tmp;
}

describe('what a belay killed with -9 leaves', () => {
  it('rehearse on a server: status lists its throwaway database, recover drops it; one a live rehearse uses, and one only named like it, stay', async () => {
    const db = await freshDatabase();
    const project = await makeProject(SLOW);
    const args = baseArgs(project, db.url);
    const before = new Set(await databases('belay_rehearse_%'));
    const { child, done } = startBelay([...args, 'rehearse', '--from', '0']);
    let made = '';
    await pollUntil(async () => {
      const rows = await adminQuery<{ datname: string }>('postgres', "SELECT datname FROM pg_stat_activity WHERE datname LIKE 'belay_rehearse_%' AND query LIKE '%pg_sleep(120)%'");
      made = rows.find((r) => !before.has(r.datname))?.datname ?? '';
      return made !== '';
    }, 'the rehearsal runs 0004 on its throwaway');
    child.kill('SIGKILL');
    await done;
    await pollUntil(async () => (await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE datname = $1 OR application_name = 'belay rehearse'", [made])).length === 0, 'the rehearsal has no session left');
    expect(await databases(made)).toEqual([made]);

    // decoys: a user's database named like one, and a marked one a live rehearsal (its keeper session) uses
    const userDb = 'belay_rehearse_00c0ffee00';
    const liveDb = 'belay_rehearse_11ee123400';
    await adminQuery('postgres', `CREATE DATABASE ${quoteIdent(userDb)}`);
    const c = cluster();
    const live = new pg.Client({ host: c.socketDir, port: c.port, user: c.superuser, database: 'postgres' });
    await live.connect();
    try {
      await live.query(`CREATE DATABASE ${quoteIdent(liveDb)}`);
      // the marker as a rehearsal writes it (docs/ci.md), naming this live session
      const me = (await live.query<{ pid: number; start: string }>('SELECT pid, backend_start::text AS start FROM pg_stat_activity WHERE pid = pg_backend_pid()')).rows[0]!;
      const marker = `belay rehearsal ${JSON.stringify({ of: db.name, pid: me.pid, backendStart: me.start })}`;
      await live.query(`COMMENT ON DATABASE ${quoteIdent(liveDb)} IS ${pg.escapeLiteral(marker)}`);

      const status = await belay([...args, '--json', 'status']);
      expect(status.code, status.stderr).toBe(0);
      expect(jsonResult<{ leftovers: unknown[] }>(status).leftovers).toEqual([{ name: made, kind: 'rehearsal', drop: `DROP DATABASE "${made}";` }]);
      const text = await belay([...args, 'status']);
      expect(text.stdout).toContain(`LEFT      ${made}: a throwaway database a killed rehearse left (with the snapshot's rows when it rehearsed --from-backup); \`belay recover\` drops it`);

      const recover = await belay([...args, '--json', 'recover']);
      expect(recover.code, recover.stderr).toBe(0);
      expect(JSON.parse(recover.stdout).message).toBe(`no interrupted run: nothing to recover; dropped the throwaway database a killed rehearse left: ${made}`);
      expect(await databases(made)).toEqual([]);
      expect(await databases('belay_rehearse_%0')).toEqual(expect.arrayContaining([userDb, liveDb]));
    } finally {
      await live.end();
      await adminQuery('postgres', `DROP DATABASE ${quoteIdent(liveDb)} WITH (FORCE)`);
      await adminQuery('postgres', `DROP DATABASE ${quoteIdent(userDb)}`);
    }
  });

  it('rehearse on an ephemeral cluster: the next rehearse stops its orphaned server and removes its folder, saying so', async () => {
    const project = await makeProject(SLOW);
    const tmp = await privateTmp(project.dir);
    const run = (extra: string[]) => startBelay(['--migrations', project.migrations, '--backups', project.backups, ...extra], { cwd: project.dir, env: cleanEnv({ TMPDIR: tmp }) });
    const { child, done } = run(['rehearse', '--from', '0003']);
    let root = '';
    let postmaster = 0;
    await pollUntil(async () => {
      const [name] = await readdir(tmp);
      if (!name) return false;
      root = join(tmp, name);
      postmaster = Number((await readFile(join(root, 'data', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
      return postmaster > 0 && name.startsWith('belay-rehearse-');
    }, 'the ephemeral cluster runs');
    child.kill('SIGKILL');
    await done;
    expect(await processGone(postmaster)).toBe(false);

    // a folder named for a live process is kept; the next rehearse runs revisions that end
    const alive = `belay-rehearse-${process.pid}-AbCdEf`;
    await mkdir(join(tmp, alive));
    const quick = await makeProject(GOOD_REVISIONS);
    const again = (extra: string[]) => belay(['--migrations', quick.migrations, '--backups', quick.backups, 'rehearse', '--from', '0001', ...extra], { cwd: quick.dir, env: cleanEnv({ TMPDIR: tmp }) });
    const next = await again(['--json']);
    expect(next.code, next.stderr).toBe(0);
    expect(jsonResult<{ orphans: string[] }>(next).orphans).toEqual([`removed the ephemeral cluster a killed rehearse left in ${root} (its server stopped)`]);
    expect(await processGone(postmaster)).toBe(true);
    expect(await readdir(tmp)).toEqual([alive]);
    const text = await again([]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).not.toContain('a killed rehearse left');
    expect(await readdir(tmp)).toEqual([alive]);
  });

  it('migrate up --with-backup killed while learning the scope: recover removes its work folder too', async () => {
    const db = await freshDatabase();
    const project = await makeProject(SLOW);
    const tmp = await privateTmp(project.dir);
    const args = baseArgs(project, db.url);
    const env = cleanEnv({ TMPDIR: tmp });
    expect((await belay([...args, 'migrate', 'up', '--to', '0003'], { env })).code).toBe(0);
    const { child, done } = startBelay([...args, 'migrate', 'up', '--with-backup'], { env });
    let folder = '';
    await pollUntil(async () => {
      const [name] = await readdir(tmp);
      folder = name ? join(tmp, name) : '';
      const rows = await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE datname LIKE $1 AND query LIKE '%pg_sleep%'", [`${db.name}_belay_scope_%`]);
      return folder !== '' && rows.length > 0;
    }, 'the learner runs 0004 on its copy');
    child.kill('SIGKILL');
    await done;
    expect(await readdir(folder)).toEqual(['schema.dump']);
    // a folder of a live process named like one is kept
    const alive = join(tmp, `belay-scope-${process.pid}-AbCdEf`);
    await mkdir(alive);

    const recover = await belay([...args, 'recover'], { env });
    expect(recover.code, recover.stderr).toBe(0);
    expect(recover.stderr).toContain(`removed the work folder killed runs left in the temp dir: ${folder}`);
    expect(await readdir(tmp)).toEqual([`belay-scope-${process.pid}-AbCdEf`]);
  });
});
