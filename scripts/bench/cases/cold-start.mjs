// Case 5: a cold belay process. `belay status` against up-to-date databases
// (the sample revisions; 200 trivial revisions, all applied) against
// `psql -c 'select 1'`; `belay --help` against a bare node start.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { execTimed, onlyMs } from '../exec.mjs';
import { writeRevisionSets } from '../revisions.mjs';
import { ROOT } from '../tools.mjs';
import { interleaved, tableOf } from '../stats.mjs';

const SAMPLE_DATABASE = 'cold_start';
const MANY_DATABASE = 'cold_start_200';
const MANY = 200;
const STATUS_GOAL_MS = 120;
const HELP_GOAL_MS = 80;

export default {
  id: 'cold-start',
  title: 'Cold start: belay status and belay --help',
  async run(ctx) {
    const { cluster } = ctx;
    const backups = path.join(cluster.work, 'cold-start-backups');
    await mkdir(backups, { recursive: true });
    const many = await writeRevisionSets(path.join(cluster.work, `cold-start-${MANY}`), MANY);
    const argsFor = (database, migrations) => ['--database-url', cluster.url(database), '--migrations', migrations, '--backups', backups, '--log-level', 'silent'];
    const sampleArgs = argsFor(SAMPLE_DATABASE, path.join(ROOT, 'migrations'));
    const manyArgs = argsFor(MANY_DATABASE, many.paired);
    for (const [database, args] of [[SAMPLE_DATABASE, sampleArgs], [MANY_DATABASE, manyArgs]]) {
      await cluster.createDatabase(database);
      await ctx.belay([...args, 'migrate', 'up'], { timeoutMs: 300_000 });
    }
    const env = cluster.env(SAMPLE_DATABASE);
    const statusMany = `belay status, ${MANY} revisions`;
    const commands = [
      { name: 'node -e 0', does: 'a bare node start, for reference', run: () => execTimed(process.execPath, ['-e', '0'], { env, timeoutMs: 30_000 }).then(onlyMs) },
      { name: "psql -X -c 'select 1'", does: 'connect, one query, exit', run: () => execTimed(cluster.bin('psql'), ['-X', '-c', 'select 1'], { env, timeoutMs: 30_000 }).then(onlyMs) },
      { name: 'belay --help', does: 'parse, print usage', run: () => ctx.belay(['--help'], { env, timeoutMs: 30_000 }).then(onlyMs) },
      { name: 'belay status', does: 'status of the up-to-date sample database', run: () => ctx.belay([...sampleArgs, 'status'], { env, timeoutMs: 30_000 }).then(onlyMs) },
      { name: statusMany, does: `status of a database with ${MANY} revisions on disk (${2 * MANY} files), all applied`, run: () => ctx.belay([...manyArgs, 'status'], { env, timeoutMs: 30_000 }).then(onlyMs) },
    ];
    const byName = Object.fromEntries(commands.map((c) => [c.name, c]));
    const measured = await interleaved({ commands, ...ctx.plan.coldStart, signal: ctx.signal, onSample: ctx.onSample });
    const psql = byName["psql -X -c 'select 1'"];
    const tables = [
      tableOf({ name: 'belay status against a database at the last sample revision', baseline: psql.name, commands: [psql, byName['belay status']], measured }),
      tableOf({ name: `belay status against a database with ${MANY} revisions, all applied`, baseline: psql.name, commands: [psql, byName[statusMany]], measured }),
      tableOf({ name: 'belay --help', baseline: 'node -e 0', commands: [byName['node -e 0'], byName['belay --help']], measured }),
    ];
    const status = measured.summary[statusMany].median;
    const help = measured.summary['belay --help'].median;
    const node = measured.summary['node -e 0'].median;
    const seconds = (ms) => `${(ms / 1000).toFixed(3)} s`;
    return {
      tables,
      notes: [
        'Each sample is a new process (spawn to exit), with the same environment; the databases were brought to their last revision before the timing.',
        `belay runs as built by npm run build: dist/cli/main.js, which prints the help text the build took from the CLI for a bare --help to a pipe, and otherwise compiles the bundled CLI (dist/cli/belay.js) from the V8 code cache made at build time. The goals assume a bare node start of about 60 ms; this run's node -e 0 took ${seconds(node)}.`,
        `belay --help here writes to a pipe: at a terminal commander formats it for the terminal's width, through the bundle (measured apart in docs/performance.md, "Cold start").`,
      ],
      targets: [
        { name: `belay status cold, ${MANY} revisions applied`, goal: `≤ ${STATUS_GOAL_MS / 1000} s`, value: seconds(status), met: status <= STATUS_GOAL_MS },
        { name: 'belay --help cold', goal: `≤ ${HELP_GOAL_MS / 1000} s`, value: `${seconds(help)} (node -e 0: ${seconds(node)})`, met: help <= HELP_GOAL_MS },
      ],
    };
  },
};
