// Case: a touched snapshot (issue 16) against a full pg_dump of the same
// database, for a revision that writes one small table (pgbench_branches:
// one row per scale unit, far under 1% of the data), and the cost of learning
// that scope (pg_dump --schema-only, a throwaway database, the revision run
// there, the copy dropped).
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { resolveBackupTools } from '../../../dist/backup/pg-tools.js';
import { parseDatabaseUrl, toPgConfig, withLibpqFallbacks } from '../../../dist/db/connection.js';
import { discoverRevisions } from '../../../dist/migrations/discover.js';
import { learnScope } from '../../../dist/scope/learn-scope.js';
import { takeTouchedSnapshot } from '../../../dist/scope/touched-snapshot.js';
import pg from 'pg';
import { execTimed, onlyMs } from '../exec.mjs';
import { pgbenchDatabase } from '../pgbench.mjs';
import { formatMs } from '../report.mjs';
import { interleaved, tableOf } from '../stats.mjs';

const SESSION = { applicationName: 'belay bench', connectTimeoutMs: 10_000, statementTimeoutMs: 0, lockTimeoutMs: 10_000 };

export default {
  id: 'touched-backup',
  title: 'Touched snapshot vs full pg_dump, and the cost of learning the scope',
  async run(ctx) {
    const { cluster } = ctx;
    const source = await pgbenchDatabase(ctx, ctx.quick ? 2 : 50);
    const dir = path.join(cluster.work, 'touched-backup-case');
    const migrations = path.join(dir, 'migrations');
    await mkdir(migrations, { recursive: true });
    await writeFile(path.join(migrations, '0001_branch_balance.up.sql'), 'UPDATE pgbench_branches SET bbalance = bbalance + 1;\n');
    await writeFile(path.join(migrations, '0001_branch_balance.down.sql'), 'UPDATE pgbench_branches SET bbalance = bbalance - 1;\n');
    const revisions = await discoverRevisions(migrations);
    const env = cluster.env(source.name);
    const params = await withLibpqFallbacks(parseDatabaseUrl(cluster.url(source.name), 'bench'), env);
    const { rows } = await cluster.admin.query("SELECT current_setting('server_version_num')::int / 10000 AS major");
    const tools = await resolveBackupTools({ search: { pgBin: cluster.binDir, path: process.env.PATH }, serverMajor: rows[0].major });
    const learn = () => learnScope({ params, session: SESSION, tools, env, signal: ctx.signal, revisions, direction: 'up', lockTimeoutMs: 10_000 });
    const scope = await learn();
    if (scope.unknown !== null || scope.dataTables.length !== 1) throw new Error(`unexpected scope: ${JSON.stringify(scope)}`);
    const out = (name, round) => path.join(dir, `${name.replace(/[^a-z0-9]+/gi, '-')}${round}`);
    const commands = [
      {
        name: 'pg_dump -Fc',
        does: 'pg_dump -Fc -f OUT (the whole database)',
        run: (round) => execTimed(cluster.bin('pg_dump'), ['-Fc', '-f', out('full', round), source.name], { env, timeoutMs: 3600_000 }).then(onlyMs),
        cleanup: (round) => rm(out('full', round), { force: true }),
      },
      {
        name: 'touched snapshot',
        does: 'takeTouchedSnapshot: schema + pgbench_branches rows, fingerprint, sha256, pg_restore --list, manifest',
        prepare: (round) => mkdir(out('touched', round), { recursive: true }),
        run: async (round) => {
          const client = new pg.Client(toPgConfig(params, SESSION));
          await client.connect();
          try {
            const started = performance.now();
            const { manifest } = await takeTouchedSnapshot({
              params, backupsDir: out('touched', round), format: 'custom', jobs: 1, compress: undefined, revision: null, runId: null,
              tools, env, signal: ctx.signal, lockTimeoutMs: 10_000, client, scope, sums: { perColumn: false },
            });
            return { ms: performance.now() - started, bytes: manifest.sizeBytes };
          } finally {
            await client.end();
          }
        },
        cleanup: (round) => rm(out('touched', round), { recursive: true, force: true }),
      },
      {
        name: 'learn scope',
        does: 'learnScope: pg_dump --schema-only, CREATE DATABASE, pg_restore, the revision run there, DROP DATABASE',
        run: async () => {
          const started = performance.now();
          await learn();
          return { ms: performance.now() - started };
        },
      },
    ];
    const measured = await interleaved({ commands, ...ctx.plan.backup, signal: ctx.signal, onSample: ctx.onSample });
    const table = tableOf({ name: `pgbench -s ${source.scale} (${Math.round(source.bytes / 2 ** 20)} MiB), a revision writing pgbench_branches only`, baseline: 'pg_dump -Fc', commands, measured });
    const [full, touched, learning] = table.rows;
    return {
      tables: [table],
      summaryLines: [
        `touched snapshot median ${formatMs(touched.median)} (${touched.ratio}× pg_dump -Fc, median ${formatMs(full.median)}); learning the scope median ${formatMs(learning.median)} (${learning.ratio}×); both together ${Math.round((touched.ratio + learning.ratio) * 1000) / 1000}×.`,
      ],
      notes: [
        'The touched snapshot dumps the whole schema and the rows of the tables the revision may write (here pgbench_branches); every other table\'s rows are left out with --exclude-table-data. Learning is measured apart: a run pays it once, before the snapshot.',
      ],
      targets: [
        { name: 'touched snapshot ≤ 0.05× full pg_dump (touched tables ≤ 1% of the data)', goal: '≤ 0.05× pg_dump -Fc', value: `${touched.ratio}×`, met: touched.ratio <= 0.05 },
      ],
      extra: { database: source, scope: scope.dataTables },
    };
  },
};
