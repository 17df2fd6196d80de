import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { belay } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { schemaDump } from './support/schema.js';
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
    expect(JSON.parse(up.stdout).toRevision).toBe('0023_v2_mobile_schema_updates');
    const columns = await db.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = 'account' AND table_name = 'users' AND column_name IN ('passcode_hash', 'pin_hash', 'auth_version')");
    expect(columns[0]?.n).toBe(3);
    const down = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(down.code, down.stderr).toBe(0);
    expect(schemaDump(db.name)).toBe(atFirst);
    const applied = await db.query('SELECT name FROM belay.migrations');
    expect(applied.map((r) => r.name)).toEqual(['0001_create_account_schema']);
  });
});
