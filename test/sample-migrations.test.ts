import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { belay, jsonResult } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { schemaDump } from './support/schema.js';
import { sampleAt0022 } from './support/sample.js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const MIGRATIONS = fileURLToPath(new URL('../migrations', import.meta.url));

describe('the sample app (migrations/)', () => {
  it('applies up to 0023 and rolls back to 0001 leaving the schema it had at 0001', async () => {
    const db = await freshDatabase();
    const backups = await mkdtemp(join(tmpdir(), 'belay-backups-'));
    const args = ['--database-url', db.url, '--migrations', MIGRATIONS, '--backups', backups];
    const first = await belay([...args, 'migrate', 'up', '--to', '0001']);
    expect(first.code, first.stderr).toBe(0);
    const atFirst = schemaDump(db.name);
    const up = await belay([...args, '--json', 'migrate', 'up', '--with-backup']);
    expect(up.code, up.stderr).toBe(0);
    expect(jsonResult(up).toRevision).toBe('0023_v2_mobile_schema_updates');
    const columns = await db.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = 'account' AND table_name = 'users' AND column_name IN ('passcode_hash', 'pin_hash', 'auth_version')");
    expect(columns[0]?.n).toBe(3);
    const down = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(down.code, down.stderr).toBe(0);
    expect(schemaDump(db.name)).toBe(atFirst);
    const applied = await db.query('SELECT name FROM belay.migrations');
    expect(applied.map((r) => r.name)).toEqual(['0001_create_account_schema']);
  });
});

describe('plan --to, pointed down', () => {
  it('says how much data the downs would drop before anything runs', async () => {
    const db = await freshDatabase();
    const project = await sampleAt0022(db);
    expect((await belay([...project.args, 'migrate', 'up'], { cwd: project.dir })).code).toBe(0);
    await db.query("UPDATE account.users SET pin_hash = 'x' WHERE id <= 10");
    const plan = await belay([...project.args, '--json', 'plan', '--to', '0022'], { cwd: project.dir });
    expect(plan.code, plan.stderr).toBe(0);
    const result = jsonResult(plan) as { direction: string; dataAtRisk: Array<{ table: string; column?: string; rows: number; values: number }> };
    expect(result.direction).toBe('down');
    expect(result.dataAtRisk).toContainEqual({ revision: '0023_v2_mobile_schema_updates', table: 'account.users', column: 'pin_hash', rows: 2000, values: 10 });
    expect(result.dataAtRisk).toContainEqual({ revision: '0023_v2_mobile_schema_updates', table: 'account.users', column: 'auth_version', rows: 2000, values: 2000 });
    const human = await belay([...project.args, 'plan', '--to', '0022'], { cwd: project.dir });
    expect(human.stdout).toContain('account.users.pin_hash: 10 non-null value(s) in 2000 row(s)');
  });

  it('counts what a module revision\'s down drops, from what its up was recorded to make', async () => {
    const db = await freshDatabase();
    const project = await sampleAt0022(db);
    // 0018_devices_last_seen.ts adds account.devices.last_seen_at, which its down drops
    const [{ n }] = (await db.query('SELECT count(last_seen_at)::int AS n FROM account.devices')) as [{ n: number }];
    expect(n).toBeGreaterThan(0);
    const plan = await belay([...project.args, '--json', 'plan', '--to', '0017'], { cwd: project.dir });
    expect(plan.code, plan.stderr).toBe(0);
    const result = jsonResult(plan) as { dataAtRisk: unknown[] };
    expect(result.dataAtRisk).toContainEqual({ revision: '0018_devices_last_seen', table: 'account.devices', column: 'last_seen_at', rows: 1000, values: n });
  });
});
