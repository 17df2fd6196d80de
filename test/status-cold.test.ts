import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BelayError, status } from '../src/index.js';
import { belay } from './support/cli.js';
import { freshDatabase, type TestDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

/** The sessions named `belay status` still open on `db`, once those closing have gone (polled, within 10 s). */
async function statusSessions(db: TestDatabase): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const rows = await db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'belay status'");
    if (rows.length === 0 || Date.now() > deadline) return rows.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// status connects while it reads and hashes the revision files: what it reports when one of the two fails
describe('status opens its connection beside reading the revisions', () => {
  it('a revision file it cannot read is the error, and the session opened meanwhile is closed (library)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const file = join(project.migrations, '0004_tags.up.sql');
    await mkdir(file);
    const options = { cwd: project.dir, databaseUrl: db.url, migrations: project.migrations, backups: project.backups, env: {} };
    const error = await status(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BelayError);
    expect((error as BelayError).exitCode).toBe(2);
    expect((error as BelayError).message).toContain(`cannot read the revision file ${file}: EISDIR`);
    expect(await statusSessions(db)).toBe(0);
    // and with the folder sound again, the same process reads the database
    await rmdir(file);
    expect((await status(options)).pending).toEqual(['0001_accounts', '0002_profiles', '0003_accounts_name']);
  });

  it('a revision file it cannot read is the error even when the server cannot be reached (exit 2, the file named)', async () => {
    const project = await makeProject(GOOD_REVISIONS);
    const file = join(project.migrations, '0004_tags.up.sql');
    await mkdir(file);
    const run = await belay([...baseArgs(project, 'postgresql://belay@127.0.0.1:1/belay'), 'status']);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`cannot read the revision file ${file}: EISDIR`);
    expect(run.stderr).not.toContain('cannot connect');
  });

  it('a server it cannot reach is the error when the revisions are sound (exit 2, next: hint)', async () => {
    const project = await makeProject(GOOD_REVISIONS);
    const run = await belay([...baseArgs(project, 'postgresql://belay@127.0.0.1:1/belay'), 'status']);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain('cannot connect to');
    expect(run.stderr).toMatch(/next: .*server is running/);
  });
});
