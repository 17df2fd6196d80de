import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

const ACCOUNTS: Record<string, string> = {
  '0001_accounts.up.sql': 'CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, balance int NOT NULL);\nINSERT INTO accounts SELECT g, \'a\' || g, 100 FROM generate_series(1, 10) g;',
  '0001_accounts.down.sql': 'DROP TABLE accounts;',
};

interface Envelope {
  exitCode: number;
  outcome: string;
  message: string;
  next: string | null;
}

describe('what a run calls verified', () => {
  it('an integrity.tables.include that selects no table (a typo): the rolled-back run says the data was not compared, never "verified intact"', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...ACCOUNTS,
      // its down forgets the balances the up zeroed
      '0002_zero.up.sql': 'UPDATE accounts SET balance = 0;\nCREATE TABLE ledger (id int);',
      '0002_zero.down.sql': 'DROP TABLE ledger;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const config = {
      integrity: { tables: { include: ['acounts'] } },
      health: { sql: [{ name: 'no ledger', query: "SELECT 1 FROM pg_tables WHERE tablename = 'ledger'", expect: 'no-rows' }], timeoutSeconds: 0 },
    };
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(config));

    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup'], { cwd: project.dir });
    const envelope = JSON.parse(run.stdout) as Envelope & { result: { runId: string } };
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect(envelope.message).toMatch(/^change rejected \(health failed after the change: no ledger: 1 row\(s\): .*\); rolled back to 0001_accounts, data not compared: integrity\.tables \(include \["acounts"\], exclude \[\]\) selects none of the 1 table\(s\) there are: public\.accounts$/);
    expect(envelope.message).not.toContain('verified');
    expect(envelope.next).toMatch(/belay history/);
    // what the comparison would have caught is there: the balances stay zeroed
    expect(await db.query('SELECT count(*)::int AS n FROM accounts WHERE balance = 0')).toEqual([{ n: 10 }]);
    expect(await db.query("SELECT name FROM belay.migrations ORDER BY name")).toEqual([{ name: '0001_accounts' }]);
    const history = jsonResult(await belay([...args, '--json', 'history', envelope.result.runId], { cwd: project.dir })) as { steps: Array<{ step: string; outcome: string; detail: Record<string, unknown> }> };
    expect(history.steps.filter((s) => s.step === 'integrity').at(-1)?.detail).toMatchObject({ intact: true, noTableSelected: expect.stringContaining('public.accounts') });
  }, 60_000);

  it('an invariant a revision breaks sends the run back (exit 10), one broken before refuses it (exit 4) unless --allow-unhealthy, and verify names it (a broken invariant was "healthy", exit 0)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...ACCOUNTS,
      '0002_neg.up.sql': "INSERT INTO accounts VALUES (9999, 'neg', -5);",
      '0002_neg.down.sql': 'DELETE FROM accounts WHERE id = 9999;',
    });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'], { cwd: project.dir })).code).toBe(0);
    const config = { integrity: { mode: 'invariants', invariants: [{ name: 'no negative', query: 'SELECT id FROM accounts WHERE balance < 0' }] } };
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify(config));

    const run = await belay([...args, '--json', 'migrate', 'up'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(10);
    expect((JSON.parse(run.stdout) as Envelope).message).toMatch(/^change rejected \(health failed after the change: invariant no negative: 1 row\(s\): \[\{"id":9999\}\]\); rolled back to 0001_accounts/);
    expect(await db.query('SELECT count(*)::int AS n FROM accounts WHERE balance < 0')).toEqual([{ n: 0 }]);

    await db.query("INSERT INTO accounts VALUES (-1, 'before', -1)");
    const verify = JSON.parse((await belay([...args, '--json', 'verify'], { cwd: project.dir })).stdout) as Envelope;
    expect(verify.message).toBe('UNHEALTHY: integrity FAIL: invariant no negative');
    expect(verify.next).toMatch(/Fix what fails/);
    const refused = await belay([...args, '--json', 'migrate', 'up'], { cwd: project.dir });
    expect(refused.code, refused.stdout).toBe(4);
    expect((JSON.parse(refused.stdout) as Envelope).message).toMatch(/unhealthy before any change: invariant no negative/);
    // broken before the change, the operator let it start: held against nothing, said so
    const allowed = await belay([...args, '--json', 'migrate', 'up', '--allow-unhealthy'], { cwd: project.dir });
    expect(allowed.code, allowed.stdout).toBe(0);
    expect((JSON.parse(allowed.stdout) as Envelope).message).toMatch(/not healthy: invariant no negative still fails \(failing before the change too, allowed by --allow-unhealthy\)/);
  }, 60_000);
});
