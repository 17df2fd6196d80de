import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { markScopeCopy } from '../src/scope/scope-copies.js';
import { belay, jsonResult, startBelay } from './support/cli.js';
import { pollUntil } from './support/kill.js';
import { adminQuery, cluster, freshDatabase, TEST_APP_ROLE } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

// docs/snapshots.md: a run killed while learning the backup scope leaves its `<db>_belay_scope_<hex>` copy;
// status lists it, recover drops it: only a copy belay can prove it made (its marker) and no live run uses
const databases = async (pattern: string): Promise<string[]> =>
  (await adminQuery<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY datname', [pattern])).map((r) => r.datname);

describe('the scope copies a killed run leaves', () => {
  it('kill -9 while learning: status lists the copy, recover drops it; a database only named like one, and one a live run uses, stay', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...GOOD_REVISIONS,
      '0004_slow.up.sql': 'SELECT pg_sleep(120);\nCREATE TABLE slow (id int);',
      '0004_slow.down.sql': 'DROP TABLE slow;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0003'])).code).toBe(0);

    // the learner is on its copy, inside 0004's up: kill it there
    const { child, done } = startBelay([...args, 'plan', '--scope']);
    let copy = '';
    await pollUntil(async () => {
      const rows = await adminQuery<{ datname: string }>('postgres', "SELECT datname FROM pg_stat_activity WHERE datname LIKE $1 AND query LIKE '%pg_sleep%'", [`${db.name}_belay_scope_%`]);
      copy = rows[0]?.datname ?? '';
      return copy !== '';
    }, 'the learner runs 0004 on its copy');
    child.kill('SIGKILL');
    await done;
    await pollUntil(async () => (await adminQuery('postgres', 'SELECT 1 FROM pg_stat_activity WHERE datname = $1', [copy])).length === 0, 'the copy has no session left');
    expect(await databases(`${db.name}_belay_scope_%`)).toEqual([copy]);

    // decoys: a user's database named like a copy (no marker, or a marker of its own), and a marked copy whose session lives
    const userCopy = `${db.name}_belay_scope_0badcafe`;
    const otherComment = `${db.name}_belay_scope_0badbeef`;
    const liveCopy = `${db.name}_belay_scope_11ee1234`;
    await adminQuery('postgres', `CREATE DATABASE ${quoteIdent(userCopy)}`);
    await adminQuery('postgres', `CREATE DATABASE ${quoteIdent(otherComment)}`);
    await adminQuery('postgres', `COMMENT ON DATABASE ${quoteIdent(otherComment)} IS 'belay scope copy, says a user'`);
    const c = cluster();
    const live = new pg.Client({ host: c.socketDir, port: c.port, user: c.superuser, database: 'postgres' });
    await live.connect();
    const livePid = (await live.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    try {
      await live.query(`CREATE DATABASE ${quoteIdent(liveCopy)} OWNER ${quoteIdent(TEST_APP_ROLE)}`);
      await markScopeCopy(live, liveCopy, db.name);

      const status = await belay([...args, '--json', 'status']);
      expect(status.code, status.stderr).toBe(0);
      expect(jsonResult<{ leftovers: unknown[] }>(status).leftovers).toEqual([{ name: copy, kind: 'scope-copy', drop: `DROP DATABASE "${copy}";` }]);
      const text = await belay([...args, 'status']);
      expect(text.stdout).toContain(`LEFT      ${copy}: the schema-only copy (no rows) a run killed while learning the backup scope left; \`belay recover\` drops it`);

      const recover = await belay([...args, '--json', 'recover']);
      expect(recover.code, recover.stderr).toBe(0);
      expect(JSON.parse(recover.stdout).message).toBe(`no interrupted run: nothing to recover; dropped the schema-only scope copy a killed run left: ${copy}`);
      expect(await databases(`${db.name}_belay_scope_%`)).toEqual([otherComment, userCopy, liveCopy].sort());
    } finally {
      await live.end();
    }
    // its session gone, the marked copy is a leftover too; the user's two never are
    await pollUntil(async () => (await adminQuery('postgres', 'SELECT 1 FROM pg_stat_activity WHERE pid = $1', [livePid])).length === 0, 'the live session ended');
    const again = await belay([...args, '--json', 'recover']);
    expect(again.code, again.stderr).toBe(0);
    expect(await databases(`${db.name}_belay_scope_%`)).toEqual([otherComment, userCopy].sort());
    const after = await belay([...args, '--json', 'status']);
    expect(jsonResult<{ leftovers: unknown[] }>(after).leftovers).toEqual([]);
    for (const name of [userCopy, otherComment]) await adminQuery('postgres', `DROP DATABASE ${quoteIdent(name)}`);
  });

  // the copy's CREATE DATABASE waits on a lock held here, so that belay can be stopped or killed during it
  async function duringCreate(args: string[], database: string, then: (child: ChildProcess, copy: string, release: () => Promise<void>) => Promise<void>): Promise<string> {
    const c = cluster();
    const blocker = new pg.Client({ host: c.socketDir, port: c.port, user: c.superuser, database: 'postgres' });
    await blocker.connect();
    let released = false;
    const release = async (): Promise<void> => {
      if (!released) await blocker.query('ROLLBACK');
      released = true;
    };
    let copy = '';
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE pg_catalog.pg_database IN EXCLUSIVE MODE');
      const { child, done } = startBelay([...args, 'migrate', 'up', '--with-backup', '--backup-scope', 'touched']);
      await pollUntil(async () => {
        const rows = await adminQuery<{ query: string }>('postgres', "SELECT query FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE %' AND query LIKE $1 AND wait_event_type = 'Lock'", [`%${database}_belay_scope_%`]);
        copy = /"([^"]+)"/.exec(rows[0]?.query ?? '')?.[1] ?? '';
        return copy !== '';
      }, "the copy's CREATE DATABASE waits");
      await then(child, copy, release);
      await done;
    } finally {
      await release();
      await blocker.end();
    }
    await pollUntil(async () => (await adminQuery('postgres', "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'CREATE DATABASE %' AND query LIKE $1 AND state = 'active'", [`%${copy}%`])).length === 0, 'the CREATE DATABASE ended');
    return copy;
  }

  it('killed once the server made the copy and before belay marked it: the journal names it, status lists it, recover drops it', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...GOOD_REVISIONS, '0004_bio.up.sql': "UPDATE profiles SET bio = 'x';", '0004_bio.down.sql': 'UPDATE profiles SET bio = NULL;' });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0003'])).code).toBe(0);
    // stopped (its connection open), the CREATE DATABASE let through and answered, then killed: the answer never read
    const copy = await duringCreate(args, db.name, async (child, made, release) => {
      child.kill('SIGSTOP');
      await release();
      await pollUntil(async () => (await adminQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [made])).length === 1, 'the copy made');
      child.kill('SIGKILL');
    });
    expect(await adminQuery('postgres', "SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1", [copy])).toEqual([{ comment: null }]);

    const status = await belay([...args, '--json', 'status']);
    expect(status.code, status.stderr).toBe(0);
    expect(jsonResult<{ leftovers: unknown[] }>(status).leftovers).toEqual([{ name: copy, kind: 'scope-copy', drop: `DROP DATABASE "${copy}";` }]);
    const recover = await belay([...args, '--json', 'recover']);
    expect(recover.code, recover.stderr).toBe(0);
    expect(JSON.parse(recover.stdout).message).toMatch(new RegExp(`ended before it changed anything: recorded as interrupted; dropped the schema-only scope copy a killed run left: ${copy}$`));
    expect(await databases(`${db.name}_belay_scope_%`)).toEqual([]);
    expect(await db.query('SELECT max(name) AS at FROM belay.migrations')).toEqual([{ at: '0003_accounts_name' }]);
  });
});
