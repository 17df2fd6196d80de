// Case 2: belay's snapshot (`belay backup`: fingerprint, pg_dump, sha256,
// pg_restore --list, manifest, journal) against raw pg_dump of the same
// database in the same format.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execTimed, onlyMs } from '../exec.mjs';
import { journalSteps, stepTotals } from '../journal.mjs';
import { pgbenchDatabase } from '../pgbench.mjs';
import { formatMs } from '../report.mjs';
import { detailMedian, detailMedians, interleaved, tableOf } from '../stats.mjs';

async function sha256Ms(file) {
  const started = performance.now();
  const files = (await stat(file)).isDirectory() ? (await readdir(file)).map((name) => path.join(file, name)) : [file];
  for (const f of files) await pipeline(createReadStream(f), createHash('sha256'));
  return performance.now() - started;
}

export default {
  id: 'backup',
  title: 'Backup step: belay backup vs raw pg_dump',
  async run(ctx) {
    const { cluster } = ctx;
    const source = await pgbenchDatabase(ctx, ctx.quick ? 2 : 50);
    const dir = path.join(cluster.work, 'backup-case');
    await mkdir(dir, { recursive: true });
    const emptyMigrations = path.join(dir, 'no-migrations');
    await mkdir(emptyMigrations, { recursive: true });
    const directoryConfig = path.join(dir, 'directory-j2.json');
    await writeFile(directoryConfig, JSON.stringify({ backup: { format: 'directory', jobs: 2 } }));
    const env = cluster.env(source.name);
    const out = (name, round) => path.join(dir, `${name.replace(/[^a-z0-9]+/gi, '-')}${round}`);
    const removeOut = (name) => (round) => rm(out(name, round), { recursive: true, force: true });

    const rawDump = (name, format) => ({
      name,
      does: `pg_dump ${format.join(' ')} -f OUT`,
      run: (round) => execTimed(cluster.bin('pg_dump'), [...format, '-f', out(name, round), source.name], { env, timeoutMs: 3600_000 }).then(onlyMs),
      cleanup: removeOut(name),
    });
    const belayBackup = (name, config) => ({
      name,
      does: `belay backup${config ? ' with backup: { format: directory, jobs: 2 }' : ''}`,
      run: async (round) => {
        const args = ['--database-url', cluster.url(source.name), '--migrations', emptyMigrations, '--backups', out(name, round), '--log-level', 'silent', '--json'];
        if (config) args.push('--config', config);
        const result = await ctx.belay([...args, 'backup'], { timeoutMs: 3600_000 });
        const { snapshot, journalFile } = JSON.parse(result.stdout).result;
        const { steps, coveredMs } = await journalSteps(journalFile);
        const list = await execTimed(cluster.bin('pg_restore'), ['--list', snapshot.path], { timeoutMs: 600_000 });
        return { ms: result.ms, steps: stepTotals(steps), outsideMs: result.ms - coveredMs, inside: { sha256: Math.round(await sha256Ms(snapshot.path)), 'pg_restore --list': Math.round(list.ms) }, bytes: snapshot.sizeBytes };
      },
      cleanup: removeOut(name),
    });
    const commands = [
      rawDump('pg_dump -Fc', ['-Fc']),
      belayBackup('belay backup (custom)', null),
      rawDump('pg_dump -Fd -j2', ['-Fd', '-j2']),
      belayBackup('belay backup (directory, jobs 2)', directoryConfig),
    ];
    const measured = await interleaved({ commands, ...ctx.plan.backup, signal: ctx.signal, onSample: ctx.onSample });
    const tables = [
      tableOf({ name: `custom format, pgbench -s ${source.scale} (${Math.round(source.bytes / 2 ** 20)} MiB)`, baseline: 'pg_dump -Fc', commands: commands.slice(0, 2), measured }),
      tableOf({ name: `directory format, 2 jobs, pgbench -s ${source.scale}`, baseline: 'pg_dump -Fd -j2', commands: commands.slice(2), measured }),
    ];
    const summaryLines = [];
    for (const [belay, raw] of [[commands[1].name, commands[0].name], [commands[3].name, commands[2].name]]) {
      const steps = detailMedians(measured.samples, belay, 'steps');
      const inside = detailMedians(measured.samples, belay, 'inside');
      const total = measured.summary[belay].median;
      const outside = detailMedian(measured.samples, belay, 'outsideMs');
      summaryLines.push(
        `${belay}, median ${formatMs(total)}: ${Object.entries(steps).map(([k, v]) => `${k} ${formatMs(v)}`).join(', ')}; outside any step (node start, config, connections, journal) ${formatMs(outside)}; the fingerprint runs beside the dump. ` +
          `Within the backup step, measured apart on the same snapshot: sha256 ${formatMs(inside.sha256)}, pg_restore --list ${formatMs(inside['pg_restore --list'])}; raw ${raw} median ${formatMs(measured.summary[raw].median)}.`,
      );
    }
    const targets = tables.map((t) => {
      const belay = t.rows[1];
      return { name: `backup ≤ 1.15× raw pg_dump (${t.name.split(',')[0]})`, goal: '≤ 1.15× pg_dump, same format', value: `${belay.ratio}×`, met: belay.ratio <= 1.15 };
    });
    const notes = [
      'Outputs are deleted between repetitions, outside the timing. Both sides use pg_dump\'s default compression.',
      'belay backup fingerprints every table (strict integrity mode) in the snapshot pg_dump dumps, beside it, so that the snapshot\'s manifest can later prove a restore: the row hash only, which is what a restore verifies (per-column sums serve a rollback, for the tables whose columns its downs may drop). On 2 cores the fingerprint\'s CPU is the largest part of the difference.',
      'belay\'s first backup creates its schema (belay.runs, belay.steps) in the database; the warm-up round did that, so every timed dump, raw or belay, dumps the same tables.',
    ];
    return { tables, summaryLines, notes, targets, extra: { database: source } };
  },
};
