// Case 4: belay's swap restore (sha256 check, CREATE DATABASE, pg_restore,
// verify against the manifest's fingerprint, renames) against createdb +
// raw pg_restore into a new database, both with 2 jobs.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fingerprintTables } from '../../../dist/integrity/fingerprint.js';
import { selectProtectedTables } from '../../../dist/integrity/table-selection.js';
import { execTimed } from '../exec.mjs';
import { journalSteps, stepTotals } from '../journal.mjs';
import { pgbenchDatabase } from '../pgbench.mjs';
import { formatMs } from '../report.mjs';
import { detailMedian, detailMedians, interleaved, tableOf } from '../stats.mjs';

export default {
  id: 'restore',
  title: 'Restore: belay restore --strategy swap vs createdb + raw pg_restore',
  async run(ctx) {
    const { cluster } = ctx;
    const source = await pgbenchDatabase(ctx, ctx.quick ? 2 : 50);
    const dir = path.join(cluster.work, 'restore-case');
    const backups = path.join(dir, 'backups');
    const emptyMigrations = path.join(dir, 'no-migrations');
    await mkdir(emptyMigrations, { recursive: true });
    const config = path.join(dir, 'jobs-2.json');
    await writeFile(config, JSON.stringify({ backup: { jobs: 2 } }));
    const belayArgs = ['--database-url', cluster.url(source.name), '--migrations', emptyMigrations, '--backups', backups, '--config', config, '--log-level', 'silent', '--json', '--yes'];
    const taken = JSON.parse((await ctx.belay([...belayArgs, 'backup'], { timeoutMs: 3600_000 })).stdout).result;
    const snapshot = taken.snapshot;
    ctx.log(`  snapshot ${snapshot.id}: ${Math.round(snapshot.sizeBytes / 2 ** 20)} MiB`);
    const target = 'restore_raw';

    const commands = [
      {
        name: 'createdb + pg_restore -j2',
        does: 'createdb NEW, then pg_restore --jobs=2 --no-owner --exit-on-error -d NEW SNAPSHOT',
        run: async () => {
          const created = await execTimed(cluster.bin('createdb'), [target], { env: cluster.env(), timeoutMs: 60_000 });
          const restored = await execTimed(cluster.bin('pg_restore'), ['--jobs=2', '--no-owner', '--exit-on-error', `--dbname=${target}`, snapshot.path], { env: cluster.env(), timeoutMs: 3600_000 });
          return { ms: created.ms + restored.ms, createdbMs: Math.round(created.ms) };
        },
        cleanup: () => cluster.dropDatabase(target),
      },
      {
        name: 'belay restore --strategy swap',
        does: 'belay restore ID --strategy swap --yes, config backup.jobs 2 (pg_restore --jobs=2)',
        run: async () => {
          const result = await ctx.belay([...belayArgs, 'restore', snapshot.id, '--strategy', 'swap'], { timeoutMs: 3600_000 });
          const outcome = JSON.parse(result.stdout).result;
          const { steps, coveredMs } = await journalSteps(outcome.journalFile);
          return { ms: result.ms, steps: stepTotals(steps), outsideMs: result.ms - coveredMs, quarantine: outcome.restore?.quarantine ?? null };
        },
        cleanup: async () => {
          // the swap leaves the replaced database as <db>_quarantine_<time>: belay never drops it, the bench does
          for (const name of await cluster.databasesLike(`${source.name}_quarantine_`)) await cluster.dropDatabase(name);
        },
      },
    ];
    const measured = await interleaved({ commands, ...ctx.plan.restore, signal: ctx.signal, onSample: ctx.onSample });
    const table = tableOf({ name: `pgbench -s ${source.scale}, custom-format snapshot of ${Math.round(snapshot.sizeBytes / 2 ** 20)} MiB`, baseline: commands[0].name, commands, measured });

    const sha256Started = performance.now();
    await pipeline(createReadStream(snapshot.path), createHash('sha256'));
    const sha256Ms = performance.now() - sha256Started;
    const client = await cluster.connect(source.name);
    let verifyMs;
    try {
      const started = performance.now();
      // what the verify recomputes: whole rows are compared by the row hash alone
      await fingerprintTables(client, await selectProtectedTables(client, { include: ['*.*'], exclude: [] }), { perColumn: false });
      verifyMs = performance.now() - started;
    } finally {
      await client.end();
    }
    const steps = detailMedians(measured.samples, commands[1].name, 'steps');
    const belay = measured.summary[commands[1].name].median;
    const raw = measured.summary[commands[0].name].median;
    const summaryLines = [
      `belay restore, median ${formatMs(belay)}: ${Object.entries(steps).map(([k, v]) => `${k} ${formatMs(v)}`).join(', ')}; outside any step ${formatMs(detailMedian(measured.samples, commands[1].name, 'outsideMs'))}.`,
      `Measured apart: the snapshot's sha256 ${formatMs(sha256Ms)}; the fingerprint of the restored database (every table, row hash, what the verify recomputes) ${formatMs(verifyMs)}; createdb + pg_restore -j2 median ${formatMs(raw)}. belay − raw = ${formatMs(belay - raw)}.`,
    ];
    const ratio = table.rows[1].ratio;
    return {
      tables: [table],
      summaryLines,
      notes: [
        'Like with like: belay\'s swap restore passes --jobs from the config\'s backup.jobs (default 1, here 2) to pg_restore, as the raw side uses -j2. An in-place restore (--clean --single-transaction) always runs with one job.',
        'Timed on the raw side: the createdb process and the pg_restore process. On belay\'s: the whole command, which also checks the snapshot\'s sha256, creates the database by SQL, verifies the restored copy against the fingerprint in the manifest, ends sessions and renames twice.',
        'Each belay swap leaves the replaced database as <db>_quarantine_<time>; the bench drops it outside the timing (belay never does).',
      ],
      targets: [{ name: 'swap restore ≤ 1.1× raw pg_restore', goal: '≤ 1.1× createdb + pg_restore, same jobs', value: `${ratio}×`, met: ratio <= 1.1 }],
      extra: { snapshot: { id: snapshot.id, sizeBytes: snapshot.sizeBytes }, sha256Ms: Math.round(sha256Ms), verifyFingerprintMs: Math.round(verifyMs) },
    };
  },
};
