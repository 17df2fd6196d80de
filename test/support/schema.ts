import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { cluster } from './pg.js';

/**
 * `pg_dump --schema-only` of a database, without belay's own schema, comments,
 * SET lines and the random \restrict / \unrestrict lines of recent pg_dump.
 */
export function schemaDump(database: string): string {
  const c = cluster();
  const text = execFileSync(
    join(c.binDir, 'pg_dump'),
    ['-h', c.socketDir, '-p', String(c.port), '-U', c.superuser, '--schema-only', '--no-owner', '--no-privileges', '--exclude-schema=belay', database],
    { encoding: 'utf8' },
  );
  return text
    .split('\n')
    .filter((line) => !line.startsWith('--') && !/^SET /.test(line) && !/^\\(un)?restrict /.test(line) && !/^SELECT pg_catalog.set_config/.test(line))
    .filter((line) => line.trim() !== '')
    .join('\n');
}
