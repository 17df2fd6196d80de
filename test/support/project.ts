import { chmod, mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestProject {
  dir: string;
  migrations: string;
  backups: string;
}

/** A temp project folder with the given revision files (name → content) and an empty backups folder. */
export async function makeProject(files: Record<string, string>, config?: object): Promise<TestProject> {
  const dir = await mkdtemp(join(tmpdir(), 'belay-project-'));
  await chmod(dir, 0o755);
  const migrations = join(dir, 'migrations');
  const backups = join(dir, 'backups');
  await mkdir(migrations);
  for (const [name, text] of Object.entries(files)) await writeFile(join(migrations, name), text);
  if (config) await writeFile(join(dir, 'belay.config.json'), JSON.stringify(config, null, 2));
  return { dir, migrations, backups };
}

/** Three small, reversible revisions. */
export const GOOD_REVISIONS: Record<string, string> = {
  '0001_accounts.up.sql': 'CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);\nINSERT INTO accounts SELECT g, \'user\' || g || \'@example.com\' FROM generate_series(1, 500) g;',
  '0001_accounts.down.sql': 'DROP TABLE accounts;',
  '0002_profiles.up.sql': 'CREATE TABLE profiles (account_id bigint PRIMARY KEY REFERENCES accounts, bio text);',
  '0002_profiles.down.sql': 'DROP TABLE profiles;',
  '0003_accounts_name.up.sql': 'ALTER TABLE accounts ADD COLUMN display_name text;',
  '0003_accounts_name.down.sql': 'ALTER TABLE accounts DROP COLUMN display_name;',
};

export function baseArgs(project: TestProject, url: string): string[] {
  return ['--database-url', url, '--migrations', project.migrations, '--backups', project.backups];
}
