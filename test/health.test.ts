import { createServer, type Server } from 'node:http';
import { writeFile } from 'node:fs/promises';
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
import { baseArgs, makeProject } from './support/project.js';

let db: TestDatabase;
let client: pg.Client;
let server: Server;
let port: number;
let failuresLeft = 0;
const seen: Array<{ method?: string; body: string; header?: string }> = [];

beforeAll(async () => {
  db = await freshDatabase();
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
  await client.query("CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')");
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method, body, header: req.headers['x-probe'] as string | undefined });
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
    expect(seen[0]).toEqual({ method: 'POST', body: '{"a":1}', header: 'yes' });
    failuresLeft = 1;
    expect(await http('/ok').run(ctx())).toMatchObject({ ok: false, evidence: expect.stringContaining('→ 500 (expected 201) boom') });
    expect((await http('/slow').run(ctx())).ok).toBe(false);
    const refused = httpCheck({ name: 'gone', url: `http://127.0.0.1:${await freePort()}/`, method: 'GET', headers: {}, expectStatus: 200, timeoutSeconds: 1 });
    expect(await refused.run(ctx())).toMatchObject({ ok: false, evidence: expect.stringContaining('ECONNREFUSED') });
  });

  it('command: exit 0 is healthy; a failure shows its output; a timeout kills it', async () => {
    expect((await commandCheck({ name: 'c', run: 'true', timeoutSeconds: 5 }, []).run(ctx())).ok).toBe(true);
    expect(await commandCheck({ name: 'c', run: 'echo broken >&2; exit 3', timeoutSeconds: 5 }, []).run(ctx())).toMatchObject({ ok: false, evidence: 'exit 3: broken' });
    const started = Date.now();
    expect(await commandCheck({ name: 'c', run: 'sleep 30', timeoutSeconds: 0.5 }, []).run(ctx())).toMatchObject({ ok: false, evidence: expect.stringContaining('timed out') });
    expect(Date.now() - started).toBeLessThan(10_000);
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
    const started = Date.now();
    const failed = await runHealthChecks([http('/ok')], ctx(), { timeoutSeconds: 0.5, intervalSeconds: 0.1 });
    expect(failed.healthy).toBe(false);
    expect(Date.now() - started).toBeLessThan(3000);
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
