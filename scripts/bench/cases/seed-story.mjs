// Case 7: the seed's story end to end. The sample app's database at 0022 with
// the demo data, the app's registration endpoint as the HTTP health check;
// `migrate up --with-backup` applies 0023, registration answers 500, belay
// rolls back and verifies the data (exit 10). Where the time goes, from the
// run's journal.
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execTimed } from '../exec.mjs';
import { journalSteps, stepTotals } from '../journal.mjs';
import { formatMs } from '../report.mjs';
import { detailMedian, detailMedians, interleaved, partsTable, tableOf } from '../stats.mjs';
import { ROOT } from '../tools.mjs';

const DATABASE = 'story';
const TEMPLATE = 'story_at_0022';
const HEALTH_TIMEOUT_SECONDS = 1;


/** scripts/demo/app.mjs on a free port; resolves once it listens. */
function startApp(cluster) {
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts/demo/app.mjs')], {
    env: { PATH: process.env.PATH, DATABASE_URL: cluster.url(DATABASE), PGPASSFILE: cluster.passfile, PORT: '0' },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const stop = () =>
    new Promise((resolve) => {
      process.removeListener('exit', kill);
      if (child.exitCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the demo app did not start within 10 s'));
    }, 10_000);
    child.once('exit', (code) => reject(new Error(`the demo app exited (${code})`)));
    child.stdout.once('data', (chunk) => {
      clearTimeout(timer);
      resolve({ port: Number(/listening (\d+)/.exec(String(chunk))?.[1]), stop });
    });
  });
}

export default {
  id: 'seed-story',
  title: 'The seed story: migrate up --with-backup, health fails, automatic rollback (exit 10)',
  async run(ctx) {
    const { cluster } = ctx;
    const dir = path.join(cluster.work, 'seed-story');
    await mkdir(dir, { recursive: true });
    const migrations = path.join(ROOT, 'migrations');
    await cluster.createDatabase(TEMPLATE);
    await ctx.belay(['--database-url', cluster.url(TEMPLATE), '--migrations', migrations, '--backups', path.join(dir, 'setup-backups'), '--log-level', 'silent', 'migrate', 'up', '--to', '0022'], { timeoutMs: 300_000 });
    await execTimed(cluster.bin('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-1', '-f', path.join(ROOT, 'scripts/demo/seed.sql')], { env: cluster.env(TEMPLATE), timeoutMs: 300_000 });

    const app = await startApp(cluster);
    try {
      const config = path.join(dir, 'belay.config.json');
      await writeFile(
        config,
        JSON.stringify({
          health: {
            http: [{ name: 'registration', url: `http://127.0.0.1:${app.port}/api/v1/onboarding/register/complete`, method: 'POST', body: { email: 'probe@example.com' }, expectStatus: 201, timeoutSeconds: 5 }],
            timeoutSeconds: HEALTH_TIMEOUT_SECONDS,
            intervalSeconds: 1,
          },
        }),
      );
      const backups = (round) => path.join(dir, `backups-${round}`);
      const command = {
        name: 'belay migrate up --with-backup',
        does: `0022 → 0023, health fails, rollback and integrity check; --health-timeout ${HEALTH_TIMEOUT_SECONDS}`,
        prepare: async () => {
          await cluster.dropDatabase(DATABASE);
          await cluster.createDatabase(DATABASE, { template: TEMPLATE });
        },
        run: async (round) => {
          const args = ['--database-url', cluster.url(DATABASE), '--migrations', migrations, '--backups', backups(round), '--config', config, '--log-level', 'silent', '--json'];
          const result = await ctx.belay([...args, 'migrate', 'up', '--with-backup', '--health-timeout', String(HEALTH_TIMEOUT_SECONDS)], { expect: 10, timeoutMs: 300_000 });
          const outcome = JSON.parse(result.stdout).result;
          const { steps, lines, coveredMs } = await journalSteps(outcome.journalFile);
          return { ms: result.ms, outcome: outcome.outcome, steps: stepTotals(steps), outsideMs: result.ms - coveredMs, journalLines: lines };
        },
        cleanup: (round) => rm(backups(round), { recursive: true, force: true }),
      };
      const measured = await interleaved({ commands: [command], ...ctx.plan.story, signal: ctx.signal, onSample: ctx.onSample });
      const total = measured.summary[command.name].median;
      const steps = detailMedians(measured.samples, command.name, 'steps');
      const topLevel = Object.entries(steps).filter(([label]) => !label.includes(' > '));
      const outside = detailMedian(measured.samples, command.name, 'outsideMs');
      const share = (ms) => `${formatMs(ms)} (${((ms / total) * 100).toFixed(0)}%)`;
      const timed = measured.samples.filter((s) => !s.warmup);
      return {
        tables: [
          tableOf({ name: 'sample app at 0022 with the demo data, registration health check', baseline: null, commands: [command], measured }),
          partsTable({
            name: 'where the time goes (journal step durations; "a > b" is b inside a)',
            measured,
            command: command.name,
            parts: [
              ...Object.keys(steps).map((label) => [label, (s) => s.detail.steps[label] ?? 0]),
              ['outside any step: node start, connections, journal writes between steps', (s) => s.detail.outsideMs],
              ['total', (s) => s.ms],
            ],
          }),
        ],
        summaryLines: [
          `median ${formatMs(total)}: ${topLevel.map(([label, ms]) => `${label} ${share(ms)}`).join(', ')}, outside any step ${share(outside)}.`,
          `outcomes: ${[...new Set(timed.map((s) => s.detail.outcome))].join(', ')}; journal lines per run: ${[...new Set(timed.map((s) => s.detail.journalLines))].join(', ')}.`,
        ],
        notes: [
          `The health check retries for --health-timeout ${HEALTH_TIMEOUT_SECONDS} s every 1 s, so about ${HEALTH_TIMEOUT_SECONDS} s of each run is the wait for a check that cannot pass.`,
          'Each repetition starts from a new copy of a template database at 0022 with the demo data (CREATE DATABASE … TEMPLATE, outside the timing).',
        ],
        targets: [],
      };
    } finally {
      await app.stop();
    }
  },
};
