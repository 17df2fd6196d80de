import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prepareChange } from '../src/api/prepare.js';
import { resolveBackupTools } from '../src/backup/pg-tools.js';
import { BelayError, EXIT } from '../src/errors.js';
import { assertPreflight } from '../src/runner/steps/preflight.js';
import { openTargetSession } from '../src/runner/session/setup.js';
import { backupPreflight, runBackupTools } from '../src/runner/steps/snapshot-step.js';
import { freshDatabase } from './support/pg.js';
import { makeProject } from './support/project.js';

describe('finding pg_dump and pg_restore beside the lock', () => {
  it('asks each copy its version once per process, however often the tools are asked for', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'belay-counted-bin-'));
    const calls = join(bin, 'calls');
    await writeFile(calls, '');
    for (const name of ['pg_dump', 'pg_restore']) {
      await writeFile(join(bin, name), `#!/bin/sh\necho "${name} $*" >> '${calls}'\necho "${name} (PostgreSQL) 99.1"\n`);
      await chmod(join(bin, name), 0o755);
    }
    const search = { pgBin: bin, path: process.env.PATH };
    const [first, second] = await Promise.all([resolveBackupTools({ search, serverMajor: 15 }), resolveBackupTools({ search, serverMajor: 99 })]);
    const third = await resolveBackupTools({ search, serverMajor: 15 });
    for (const tools of [first, second, third]) expect(tools.pgDump).toEqual({ path: join(bin, 'pg_dump'), major: 99, version: '99.1' });
    expect((await readFile(calls, 'utf8')).split('\n').filter(Boolean).sort()).toEqual(['pg_dump --version', 'pg_restore --version']);
  });

  it('a search that fails while the run locks is the preflight refusal (exit 4 and what to install), not a crash', async () => {
    const db = await freshDatabase('tools');
    const project = await makeProject({});
    const setup = await prepareChange({ databaseUrl: db.url, migrations: project.migrations, backups: project.backups, env: { PATH: process.env.PATH } });
    const session = await openTargetSession(setup, 'belay test tools');
    try {
      // a server newer than any pg_dump here: what a machine with an old client meets
      const newer = { ...session, serverVersionNum: 990000 };
      void runBackupTools(setup, newer);
      const checks = await backupPreflight(setup, newer);
      expect(checks.map((check) => [check.name, check.ok])).toEqual([['pg_dump', false], ['backups-dir', true], ['disk', true]]);
      const refusal = (() => {
        try {
          assertPreflight(checks);
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      expect(refusal).toBeInstanceOf(BelayError);
      expect((refusal as BelayError).exitCode).toBe(EXIT.preflight);
      expect((refusal as BelayError).message).toMatch(/no pg_dump\/pg_restore of version 99 or newer/);
      expect((refusal as BelayError).hint).toMatch(/apt-get install postgresql-client-99/);
      // the run asks once: the snapshot step gets the answer the preflight got, without a second search
      const answer = await runBackupTools(setup, newer).catch((error: unknown) => error);
      expect(answer).toBeInstanceOf(BelayError);
      expect(await runBackupTools(setup, session).catch((error: unknown) => error)).toBe(answer);
    } finally {
      await session.close();
    }
  });
});
