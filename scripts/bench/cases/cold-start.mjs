// Case 5: a cold belay process. `belay status` against an up-to-date database
// (the sample revisions applied) against `psql -c 'select 1'`; `belay --help`
// against a bare node start.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { execTimed, onlyMs } from '../exec.mjs';
import { ROOT } from '../tools.mjs';
import { interleaved, tableOf } from '../stats.mjs';

const DATABASE = 'cold_start';

export default {
  id: 'cold-start',
  title: 'Cold start: belay status and belay --help',
  async run(ctx) {
    const { cluster } = ctx;
    const backups = path.join(cluster.work, 'cold-start-backups');
    await mkdir(backups, { recursive: true });
    await cluster.createDatabase(DATABASE);
    const args = ['--database-url', cluster.url(DATABASE), '--migrations', path.join(ROOT, 'migrations'), '--backups', backups, '--log-level', 'silent'];
    await ctx.belay([...args, 'migrate', 'up'], { timeoutMs: 300_000 });
    const env = cluster.env(DATABASE);
    const commands = [
      { name: 'node -e 0', does: 'a bare node start, for reference', run: () => execTimed(process.execPath, ['-e', '0'], { env, timeoutMs: 30_000 }).then(onlyMs) },
      { name: "psql -X -c 'select 1'", does: 'connect, one query, exit', run: () => execTimed(cluster.bin('psql'), ['-X', '-c', 'select 1'], { env, timeoutMs: 30_000 }).then(onlyMs) },
      { name: 'belay --help', does: 'parse, print usage', run: () => ctx.belay(['--help'], { env, timeoutMs: 30_000 }).then(onlyMs) },
      { name: 'belay status', does: 'status of the up-to-date sample database', run: () => ctx.belay([...args, 'status'], { env, timeoutMs: 30_000 }).then(onlyMs) },
    ];
    const measured = await interleaved({ commands, ...ctx.plan.coldStart, signal: ctx.signal, onSample: ctx.onSample });
    const tables = [
      tableOf({ name: 'belay status against a database at the last sample revision', baseline: commands[1].name, commands: [commands[1], commands[3]], measured }),
      tableOf({ name: 'belay --help', baseline: commands[0].name, commands: [commands[0], commands[2]], measured }),
    ];
    const status = measured.summary['belay status'].median;
    const help = measured.summary['belay --help'].median;
    return {
      tables,
      notes: ['Each sample is a new process (spawn to exit), with the same environment; the database was brought to the last sample revision before the timing.'],
      targets: [
        { name: 'belay status cold', goal: '≤ 0.15 s', value: `${(status / 1000).toFixed(3)} s`, met: status <= 150 },
        { name: 'belay --help cold', goal: '≤ 0.1 s', value: `${(help / 1000).toFixed(3)} s`, met: help <= 100 },
      ],
    };
  },
};
