import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveBackupTools } from '../src/backup/pg-tools.js';
import { BelayError, EXIT } from '../src/errors.js';

describe('choosing pg_dump and pg_restore', () => {
  it('passes over an older pg_dump in PG_BIN for one as new as the server', async () => {
    const old = await mkdtemp(join(tmpdir(), 'belay-old-bin-'));
    for (const name of ['pg_dump', 'pg_restore']) {
      await writeFile(join(old, name), `#!/bin/sh\necho "${name} (PostgreSQL) 9.6.24"\n`);
      await chmod(join(old, name), 0o755);
    }
    const tools = await resolveBackupTools({ search: { pgBin: old, path: process.env.PATH }, serverMajor: 15 });
    expect(tools.pgDump.major).toBeGreaterThanOrEqual(15);
    expect(tools.pgDump.path.startsWith(old)).toBe(false);
  });

  it('refuses (exit 4) when no pg_dump is as new as the server, saying what to install', async () => {
    const refusal = await resolveBackupTools({ search: { path: process.env.PATH }, serverMajor: 99 }).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(BelayError);
    expect((refusal as BelayError).exitCode).toBe(EXIT.preflight);
    expect((refusal as BelayError).message).toMatch(/no pg_dump\/pg_restore of version 99 or newer/);
    expect((refusal as BelayError).hint).toMatch(/apt-get install postgresql-client-99/);
  });
});
