import { runLibpqChild, type BackupTools } from './pg-tools.js';

/** `pg_restore --list`: proves the archive is readable and counts its TABLE DATA entries. No connection needed. */
export async function listArchive(tools: BackupTools, path: string, env: NodeJS.ProcessEnv): Promise<{ ok: boolean; tableData: number; error: string }> {
  const outcome = await runLibpqChild(tools.pgRestore, ['--list', path], {
    params: { host: '/nonexistent', port: 5432, user: 'none', database: 'none', source: 'none' },
    env,
    timeoutMs: 10 * 60_000,
    signal: undefined,
  });
  const tableData = outcome.stdout.split('\n').filter((line) => / TABLE DATA /.test(line)).length;
  return { ok: outcome.code === 0, tableData, error: outcome.stderrTail.trim() };
}
