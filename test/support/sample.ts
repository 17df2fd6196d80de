import { cp, mkdtemp, readFile, rm, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { belay } from './cli.js';
import type { TestDatabase } from './pg.js';

export const SAMPLE_MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));
export const DEMO_DIR = fileURLToPath(new URL('../../scripts/demo', import.meta.url));

export interface SampleProject {
  dir: string;
  migrations: string;
  backups: string;
  args: string[];
}

/** A project with the sample revisions (optionally with 0023 replaced), and the database seeded at 0022. */
export async function sampleAt0022(db: TestDatabase, replace0023From?: string): Promise<SampleProject> {
  const dir = await mkdtemp(join(tmpdir(), 'belay-sample-'));
  await chmod(dir, 0o755);
  const migrations = join(dir, 'migrations');
  await cp(SAMPLE_MIGRATIONS, migrations, { recursive: true });
  if (replace0023From) {
    for (const suffix of ['up.sql', 'down.sql', 'verify.sql']) await rm(join(migrations, `0023_v2_mobile_schema_updates.${suffix}`), { force: true });
    await cp(replace0023From, migrations, { recursive: true });
  }
  const backups = join(dir, 'backups');
  const args = ['--database-url', db.url, '--migrations', migrations, '--backups', backups];
  const up = await belay([...args, 'migrate', 'up', '--to', '0022'], { cwd: dir });
  if (up.code !== 0) throw new Error(`could not build the sample at 0022: ${up.stderr}`);
  await db.query(await readFile(join(DEMO_DIR, 'seed.sql'), 'utf8'));
  return { dir, migrations, backups, args };
}

/** An independent digest of the sample's data: counts and md5 of every table's rows, in SQL only. */
export async function dataDigest(db: { query: (sql: string) => Promise<Record<string, unknown>[]> }): Promise<Record<string, unknown>> {
  const tables = ['users', 'profiles', 'devices', 'sessions', 'onboarding_registrations', 'audit_log'];
  const digest: Record<string, unknown> = {};
  for (const table of tables) {
    const [row] = await db.query(`SELECT count(*)::int AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h FROM account.${table} t`);
    digest[table] = row;
  }
  return digest;
}
