import { createServer, type Server } from 'node:http';
import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../src/cluster/local-cluster.js';
import { commandCheck } from '../src/health/command-check.js';
import { httpCheck } from '../src/health/http-check.js';
import { runHealthChecks } from '../src/health/run-health.js';
import { runHook } from '../src/health/run-hook.js';
import { sqlCheck } from '../src/health/sql-check.js';
import { structuralCheck } from '../src/health/structural-check.js';
import { belay } from './support/cli.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

let db: TestDatabase;
let client: pg.Client;
let server: Server;
let port: number;
let failuresLeft = 0;
const seen: Array<{ method?: string; body: string; header?: string; type?: string }> = [];

beforeAll(async () => {
  db = await freshDatabase();
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
  await client.query("CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')");
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method, body, header: req.headers['x-probe'] as string | undefined, type: req.headers['content-type'] });
      if (req.url === '/slow') return void setTimeout(() => res.end('late'), 3000);
      if (failuresLeft > 0) {
        failuresLeft--;
        res.statusCode = 500;
        return void res.end('boom');
      }
      res.statusCode = 201;
      res.end('created');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await client?.end();
  server?.closeAllConnections();
  server?.close();
});

const ctx = () => ({ client, env: { PATH: process.env.PATH }, signal: undefined });
const http = (path: string, extra: object = {}) =>
  httpCheck({ name: 'api', url: `http://127.0.0.1:${port}${path}`, method: 'POST', headers: { 'x-probe': 'yes' }, body: '{"a":1}', expectStatus: 201, timeoutSeconds: 1, ...extra });

describe('health checks', () => {
  it('sql: no-rows, some-rows and equals, and a failing query is unhealthy with its error', async () => {
    expect((await sqlCheck({ name: 'n', query: 'SELECT * FROM t WHERE id > 5', expect: 'no-rows' }).run(ctx())).ok).toBe(true);
    expect((await sqlCheck({ name: 'n', query: 'SELECT * FROM t', expect: 'no-rows' }).run(ctx()))).toMatchObject({ ok: false, evidence: expect.stringContaining('2 row(s)') });
    expect((await sqlCheck({ name: 's', query: 'SELECT * FROM t', expect: 'some-rows' }).run(ctx())).ok).toBe(true);
    expect((await sqlCheck({ name: 'e', query: 'SELECT count(*) FROM t', expect: { equals: 2 } }).run(ctx())).ok).toBe(true);
    expect((await sqlCheck({ name: 'e', query: "SELECT v FROM t WHERE id = 1", expect: { equals: 'b' } }).run(ctx())).ok).toBe(false);
    expect(await sqlCheck({ name: 'x', query: 'SELECT * FROM missing', expect: 'no-rows' }).run(ctx())).toMatchObject({ ok: false, evidence: expect.stringContaining('does not exist') });
  });

  it('http: status, method, headers and body; refused and timed-out requests are unhealthy', async () => {
    seen.length = 0;
    expect((await http('/ok').run(ctx())).ok).toBe(true);
    expect(seen[0]).toEqual({ method: 'POST', body: '{"a":1}', header: 'yes', type: 'text/plain;charset=UTF-8' });
    failuresLeft = 1;
    expect(await http('/ok').run(ctx())).toMatchObject({ ok: false, evidence: expect.stringContaining('→ 500 (expected 201) boom') });
    expect((await http('/slow').run(ctx())).ok).toBe(false);
    const refused = httpCheck({ name: 'gone', url: `http://127.0.0.1:${await freePort()}/`, method: 'GET', headers: {}, expectStatus: 200, timeoutSeconds: 1 });
    expect(await refused.run(ctx())).toMatchObject({ ok: false, evidence: expect.stringContaining('ECONNREFUSED') });
  });

  it('http: a body that is not a string is sent as JSON, as application/json unless the headers name a type', async () => {
    seen.length = 0;
    expect((await http('/ok', { body: { a: 1 } }).run(ctx())).ok).toBe(true);
    expect((await http('/ok', { body: [1], headers: { 'Content-Type': 'application/vnd.api+json' } }).run(ctx())).ok).toBe(true);
    expect(seen).toEqual([
      { method: 'POST', body: '{"a":1}', header: 'yes', type: 'application/json' },
      { method: 'POST', body: '[1]', type: 'application/vnd.api+json' },
    ]);
  });

  it('sql: a check runs read only and cannot change data', async () => {
    const outcome = await sqlCheck({ name: 'd', query: 'DELETE FROM t WHERE id = 2 RETURNING id', expect: 'no-rows' }).run(ctx());
    expect(outcome).toMatchObject({ ok: false, evidence: expect.stringContaining('read-only transaction') });
    // several statements are one the server refuses too: a COMMIT could not end the read-only transaction
    const escaped = await sqlCheck({ name: 'e', query: 'COMMIT; DELETE FROM t WHERE id = 2', expect: 'no-rows' }).run(ctx());
    expect(escaped).toMatchObject({ ok: false, evidence: expect.stringContaining('cannot insert multiple commands') });
    expect(await db.query('SELECT id FROM t ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
    expect((await client.query('SELECT 1')).rows).toEqual([{ '?column?': 1 }]);
  });

  it('sql: a query still running when the health timeout runs out is cancelled and fails', async () => {
    const slow = sqlCheck({ name: 'slow', query: 'SELECT pg_sleep(600)', expect: 'some-rows' });
    // cancelled by the statement timeout the health timeout set (a 10-minute sleep waited out would outlast the test)
    const retried = await runHealthChecks([slow], ctx(), { timeoutSeconds: 1.5, intervalSeconds: 0.5 });
    expect(retried).toMatchObject({ healthy: false, attempts: 1, results: [{ ok: false, evidence: expect.stringContaining('statement timeout') }] });
    // one attempt (a baseline, verify) has the configured health timeout
    const once = await runHealthChecks([slow], ctx(), { timeoutSeconds: 0, intervalSeconds: 1, attemptSeconds: 1.5 });
    expect(once.results[0]).toMatchObject({ ok: false, evidence: expect.stringContaining('statement timeout') });
    // the session's own statement_timeout, when shorter, still holds; and is what it was after the check
    await client.query("SET statement_timeout = '300ms'");
    expect(await runHealthChecks([slow], ctx(), { timeoutSeconds: 0, intervalSeconds: 1, attemptSeconds: 30 })).toMatchObject({ healthy: false, results: [{ evidence: expect.stringContaining('statement timeout') }] });
    expect((await client.query('SHOW statement_timeout')).rows).toEqual([{ statement_timeout: '300ms' }]);
    await client.query('RESET statement_timeout');
  });

  it('command: exit 0 is healthy; a failure shows its output; a timeout kills it', async () => {
    expect((await commandCheck({ name: 'c', run: 'true', timeoutSeconds: 5 }, []).run(ctx())).ok).toBe(true);
    expect(await commandCheck({ name: 'c', run: 'echo broken >&2; exit 3', timeoutSeconds: 5 }, []).run(ctx())).toMatchObject({ ok: false, evidence: 'exit 3: broken' });
    // killed, not waited for: the command never comes to its last word
    const marker = join(await mkdtemp(join(tmpdir(), 'belay-check-')), 'finished');
    expect(await commandCheck({ name: 'c', run: `sleep 600; touch ${marker}`, timeoutSeconds: 0.5 }, []).run(ctx())).toMatchObject({ ok: false, evidence: expect.stringContaining('timed out') });
    await expect(stat(marker)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('structural: finds an invalid index; a NOT VALID constraint is noted, not held as damage', async () => {
    expect((await structuralCheck().run(ctx())).ok).toBe(true);
    await client.query('INSERT INTO t VALUES (1, \'dup\')');
    await client.query('CREATE UNIQUE INDEX CONCURRENTLY t_id_key ON t (id)').catch(() => {});
    await client.query('ALTER TABLE t ADD CONSTRAINT v_short CHECK (length(v) < 2) NOT VALID');
    const outcome = await structuralCheck().run(ctx());
    expect(outcome.ok).toBe(false);
    expect(outcome.evidence).toContain('invalid index public.t_id_key');
    await client.query('DROP INDEX t_id_key');
    expect(await structuralCheck().run(ctx())).toMatchObject({ ok: true, evidence: expect.stringContaining('constraint v_short on public.t is NOT VALID (not yet validated; not damage)') });
    await client.query('CREATE UNIQUE INDEX CONCURRENTLY t_id_key ON t (id)').catch(() => {});
    await client.query('DROP INDEX t_id_key; ALTER TABLE t DROP CONSTRAINT v_short; DELETE FROM t WHERE v = \'dup\'');
  });

  it('retries a flaky check until it passes, and gives up at the timeout', async () => {
    failuresLeft = 2;
    const attempts: number[] = [];
    const report = await runHealthChecks([http('/ok')], ctx(), { timeoutSeconds: 5, intervalSeconds: 0.1, onAttempt: (n) => void attempts.push(n) });
    expect(report).toMatchObject({ healthy: true, attempts: 3 });
    expect(attempts).toEqual([1, 2, 3]);
    failuresLeft = 1000;
    const failed = await runHealthChecks([http('/ok')], ctx(), { timeoutSeconds: 0.5, intervalSeconds: 0.1 });
    expect(failed.healthy).toBe(false);
    expect(failed.attempts).toBeGreaterThan(1);
    failuresLeft = 0;
  });

  it('a hook sees the BELAY_* variables and no password', async () => {
    const result = await runHook('afterApply', { run: 'echo "$BELAY_FROM>$BELAY_TO ${PGPASSWORD:-nopw} ${DATABASE_URL:-nourl} ${SECRETISH:-gone}"', timeoutSeconds: 5 }, {
      env: { PATH: process.env.PATH, PGPASSWORD: 'hunter2', DATABASE_URL: 'postgresql://u:hunter2@h/d', SECRETISH: 'x-hunter2-y' },
      vars: { BELAY_FROM: '0022', BELAY_TO: '0023' },
      secrets: ['hunter2'],
      signal: undefined,
    });
    expect(result).toMatchObject({ ok: true, outputTail: '0022>0023 nopw nourl gone' });
  });

  it('migrate up: a check still running when the health timeout runs out fails the change, which is rolled back', async () => {
    const fresh = await freshDatabase();
    // a 10-minute sleep: waited out, it would outlast the test; the message says the statement timeout cancelled it
    const slow = 'select pg_sleep(case when to_regclass($$orders$$) is null then 0 else 600 end)';
    const project = await makeProject(
      { '0001_orders.up.sql': 'CREATE TABLE orders (id int);', '0001_orders.down.sql': 'DROP TABLE orders;' },
      { health: { sql: [{ name: 'slow', query: slow, expect: 'some-rows' }], timeoutSeconds: 3, intervalSeconds: 1 } },
    );
    const run = await belay([...baseArgs(project, fresh.url), 'migrate', 'up'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect(run.stdout + run.stderr).toMatch(/health failed after the change: slow: query failed: canceling statement due to statement timeout/);
    expect(await fresh.query("SELECT to_regclass('orders') AS orders")).toEqual([{ orders: null }]);
  });

  it('belay verify: a check that would change data fails, and changes nothing', async () => {
    await client.query("CREATE TABLE users (id int); INSERT INTO users VALUES (100)");
    const project = await makeProject({}, { health: { sql: [{ name: 'gone', query: 'delete from users where id = 100 returning id', expect: 'no-rows' }] } });
    const run = await belay([...baseArgs(project, db.url), 'verify'], { cwd: project.dir });
    expect(run.code).toBe(4);
    expect(run.stdout).toMatch(/sql gone.*cannot execute DELETE in a read-only transaction/);
    expect(await db.query('SELECT id FROM users')).toEqual([{ id: 100 }]);
  });

  it('migrate up --dry-run runs the health baseline as the run would, and refuses (exit 4) an unhealthy one', async () => {
    const fresh = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS, { health: { sql: [{ name: 'nothing yet', query: 'select 1 where false', expect: 'some-rows' }] } });
    const dry = await belay([...baseArgs(project, fresh.url), '--json', 'migrate', 'up', '--dry-run'], { cwd: project.dir });
    expect(dry.code, dry.stdout).toBe(4);
    const doc = JSON.parse(dry.stdout) as { outcome: string; message: string; next: string | null };
    expect(doc.outcome).toBe('refused');
    expect(doc.message).toBe('dry run: preflight would refuse: unhealthy before any change: nothing yet: no rows');
    expect(doc.next).toMatch(/^Fix what fails first.*--allow-unhealthy\. Nothing was changed\.$/);
    const allowed = await belay([...baseArgs(project, fresh.url), 'migrate', 'up', '--dry-run', '--allow-unhealthy'], { cwd: project.dir });
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stdout).toMatch(/would apply 3 revision/);
    expect(await fresh.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
    const real = await belay([...baseArgs(project, fresh.url), 'migrate', 'up'], { cwd: project.dir });
    expect(real.code).toBe(4);
  });

  it('belay verify runs them now: exit 0 when healthy, 4 with the failing check named', async () => {
    const project = await makeProject({}, { health: { sql: [{ name: 'has rows', query: 'SELECT * FROM t', expect: 'some-rows' }] }, integrity: { invariants: [{ name: 'no b', query: "SELECT * FROM t WHERE v = 'b'" }] } });
    const bad = await belay([...baseArgs(project, db.url), 'verify'], { cwd: project.dir });
    expect(bad.code).toBe(4);
    expect(bad.stdout).toMatch(/invariant no b: 1 row/);
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ health: { sql: [{ name: 'has rows', query: 'SELECT * FROM t', expect: 'some-rows' }] } }));
    const good = await belay([...baseArgs(project, db.url), 'verify'], { cwd: project.dir });
    expect(good.code, good.stdout).toBe(0);
    expect(good.stdout).toMatch(/ok {3}sql has rows/);
  });
});
