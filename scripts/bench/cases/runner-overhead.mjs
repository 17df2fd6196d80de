// Case 1: what the runner itself costs. N trivial revisions up, then down to
// the first one (belay cannot roll back below its first revision, so every
// tool stops there), each tool from a cold process on an empty database.
// The baseline is one psql session running a generated script: per revision
// BEGIN, the file, a tracking row, COMMIT; the least a runner has to do.
import path from 'node:path';
import { execTimed, onlyMs } from '../exec.mjs';
import { shapeTitle, writeRevisionSets } from '../revisions.mjs';
import { formatMs } from '../report.mjs';
import { fitLine, interleaved, tableOf } from '../stats.mjs';

const PSQL_FLAGS = ['-X', '-q', '-v', 'ON_ERROR_STOP=1'];
// dbmate rolls back one revision per process (~40 ms each): 799 of them per
// repetition at 800 would add minutes and say nothing the smaller sizes do not
const DBMATE_ROLLBACK_MAX = 200;
const SESSION = 'psql session';
const PER_FILE = 'psql per file';
const PEERS = ['node-pg-migrate', 'dbmate'];

/** One psql process for the whole generated script. */
function psqlSession(ctx, database, script) {
  return execTimed(ctx.cluster.bin('psql'), [...PSQL_FLAGS, '-f', script], { env: ctx.cluster.env(database), timeoutMs: 600_000 }).then(onlyMs);
}

/** psql, one process and one transaction per file: a process start and a scram login per revision. */
async function psqlPerFile(ctx, database, files) {
  const started = performance.now();
  for (const file of files) await execTimed(ctx.cluster.bin('psql'), [...PSQL_FLAGS, '-1', '-f', file], { env: ctx.cluster.env(database), timeoutMs: 60_000 });
  return { ms: performance.now() - started, processes: files.length };
}

function toolCommands(ctx, set, n, shape) {
  const { cluster, tools } = ctx;
  const first = set.names[0];
  const db = (tool, round) => `rb_${tool}_${shape}_${n}_${round}`;
  const fresh = (tool) => async (round) => cluster.createDatabase(db(tool, round));
  const drop = (tool) => async (round) => cluster.dropDatabase(db(tool, round));
  const belayArgs = (round) => ['--database-url', cluster.url(db('belay', round)), '--migrations', set.paired, '--backups', path.join(set.dir, 'backups'), '--yes', '--log-level', 'silent'];
  const dbmateEnv = (round) => cluster.env(db('dbmate', round), { DATABASE_URL: `${cluster.url(db('dbmate', round))}?sslmode=disable` });
  const dbmateArgs = ['--no-dump-schema', '--migrations-dir', set.dbmate];
  const npmArgs = ['--migrations-dir', set.nodePgMigrate, '--no-single-transaction'];

  const commands = [
    {
      tool: SESSION,
      up: { does: `psql -X -q -v ON_ERROR_STOP=1 -f SCRIPT, one process: per revision BEGIN; \\i FILE; INSERT tracking row; COMMIT (${n})`, prepare: fresh('session'), run: (round) => psqlSession(ctx, db('session', round), set.psqlSessionUp) },
      down: { does: `the same for the down files, newest first, DELETE of the tracking row (${n - 1})`, run: (round) => psqlSession(ctx, db('session', round), set.psqlSessionDown), cleanup: drop('session') },
    },
    {
      tool: PER_FILE,
      up: { does: `psql -X -q -v ON_ERROR_STOP=1 -1 -f FILE, one process (start + scram login) per file, no tracking (${n})`, prepare: fresh('psql'), run: (round) => psqlPerFile(ctx, db('psql', round), set.upFiles) },
      down: { does: `the same for the down files, newest first (${n - 1})`, run: (round) => psqlPerFile(ctx, db('psql', round), set.downFiles.slice(1).reverse()), cleanup: drop('psql') },
    },
    {
      tool: 'belay',
      up: { does: 'belay migrate up', prepare: fresh('belay'), run: (round) => ctx.belay([...belayArgs(round), 'migrate', 'up']).then(onlyMs) },
      down: { does: `belay rollback --to ${first} --no-backup`, run: (round) => ctx.belay([...belayArgs(round), 'rollback', '--to', first, '--no-backup']).then(onlyMs), cleanup: drop('belay') },
    },
  ];
  if (tools.nodePgMigrate.path) {
    commands.push({
      tool: 'node-pg-migrate',
      up: { does: 'node-pg-migrate up --no-single-transaction', prepare: fresh('npm'), run: (round) => execTimed(process.execPath, [tools.nodePgMigrate.path, 'up', ...npmArgs], { env: cluster.env(db('npm', round)), cwd: set.dir, timeoutMs: 600_000 }).then(onlyMs) },
      down: { does: `node-pg-migrate down ${n - 1} --no-single-transaction`, run: (round) => execTimed(process.execPath, [tools.nodePgMigrate.path, 'down', String(n - 1), ...npmArgs], { env: cluster.env(db('npm', round)), cwd: set.dir, timeoutMs: 600_000 }).then(onlyMs), cleanup: drop('npm') },
    });
  }
  if (tools.dbmate.path) {
    const rollbackEach = n <= DBMATE_ROLLBACK_MAX;
    commands.push({
      tool: 'dbmate',
      up: { does: 'dbmate migrate', prepare: fresh('dbmate'), run: (round) => execTimed(tools.dbmate.path, [...dbmateArgs, 'migrate'], { env: dbmateEnv(round), cwd: set.dir, timeoutMs: 600_000 }).then(onlyMs), ...(rollbackEach ? {} : { cleanup: drop('dbmate') }) },
      down: rollbackEach
        ? {
            does: `dbmate rollback, one process per revision (${n - 1}): it has no "rollback to"`,
            run: async (round) => {
              const started = performance.now();
              for (let i = 1; i < n; i++) await execTimed(tools.dbmate.path, [...dbmateArgs, 'rollback'], { env: dbmateEnv(round), cwd: set.dir, timeoutMs: 60_000 });
              return { ms: performance.now() - started, processes: n - 1 };
            },
            cleanup: drop('dbmate'),
          }
        : null,
    });
  }
  return commands;
}

async function measureSize(ctx, n, { reps, warmup }, shape = 'tables') {
  const set = await writeRevisionSets(path.join(ctx.cluster.work, `revisions-${shape}-${n}`), n, shape);
  const tools = toolCommands(ctx, set, n, shape);
  const commands = [];
  for (const t of tools) {
    commands.push({ name: `${t.tool} up`, ...t.up });
    if (t.down) commands.push({ name: `${t.tool} down`, ...t.down });
  }
  ctx.log(`  ${n} revisions (${shape}): ${commands.map((c) => c.name).join(', ')}`);
  const measured = await interleaved({ commands, reps, warmup, signal: ctx.signal, onSample: ctx.onSample });
  // the tables of the trivial revisions keep their names (the targets find them by it)
  const of = shape === 'tables' ? '' : `, ${shapeTitle(shape)}`;
  const ups = commands.filter((c) => c.name.endsWith(' up'));
  const downs = commands.filter((c) => c.name.endsWith(' down'));
  const skippedDowns = tools.filter((t) => !t.down).map((t) => `${t.tool} down: not measured at ${n} (one dbmate process per revision; see the smaller sizes)`);
  return [
    tableOf({ name: `up, ${n} revisions${of}`, baseline: `${SESSION} up`, commands: ups, measured, items: n, itemName: 'revision' }),
    tableOf({ name: `down to the first, ${n - 1} revisions${of}`, baseline: `${SESSION} down`, commands: downs, measured, items: n - 1, itemName: 'revision', ...(skippedDowns.length ? { note: skippedDowns.join('; ') } : {}) }),
  ];
}

/** Whether the cost grows linearly: the marginal per-revision cost of the larger step against the smaller one. */
function linearity(tables, command) {
  const points = tables.map((t) => ({ x: t.items, y: t.rows.find((r) => r.command === command)?.median })).filter((p) => p.y !== undefined);
  if (points.length < 3) return null;
  const fit = fitLine(points);
  const marginal = points.slice(1).map((p, i) => ({ from: points[i].x, to: p.x, msPerRevision: Math.round(((p.y - points[i].y) / (p.x - points[i].x)) * 1000) / 1000 }));
  const growth = marginal[marginal.length - 1].msPerRevision / marginal[0].msPerRevision;
  return { command, fixedMs: Math.round(fit.intercept), msPerRevision: Math.round(fit.slope * 1000) / 1000, r2: Math.round(fit.r2 * 10000) / 10000, marginal, growth: Math.round(growth * 100) / 100 };
}

const tableAt = (tables, direction, n) => tables.find((t) => t.name === (direction === 'up' ? `up, ${n} revisions` : `down to the first, ${n - 1} revisions`));
const notMeasured = 'not measured (quick mode runs 50 revisions only)';

/** belay against the one-session psql floor, 200 revisions up. */
function sessionTargets(tables, quick) {
  const name = 'runner overhead: 200 revisions up vs one psql session';
  const goal = '≤ 2× psql session (per revision: BEGIN, file, tracking row, COMMIT)';
  const at200 = tableAt(tables, 'up', 200);
  const belay = at200?.rows.find((r) => r.command === 'belay up');
  if (!belay) return [{ name, goal, value: quick ? notMeasured : 'not measured', met: null }];
  return [{ name, goal, value: `${belay.ratio}× (${formatMs(belay.median)} vs ${formatMs(at200.rows.find((r) => r.command === `${SESSION} up`).median)})`, met: belay.ratio <= 2 }];
}

/** belay faster than each peer, up and down, at 200 and 800 revisions. */
function peerTargets(tables, quick) {
  const targets = [];
  for (const n of [200, 800]) {
    for (const direction of ['up', 'down']) {
      const table = tableAt(tables, direction, n);
      const belay = table?.rows.find((r) => r.command === `belay ${direction}`);
      for (const peer of PEERS) {
        const name = `runner overhead: ${n} revisions ${direction} vs ${peer}`;
        const goal = `faster than ${peer}`;
        const other = table?.rows.find((r) => r.command === `${peer} ${direction}`);
        if (!table) targets.push({ name, goal, value: quick ? notMeasured : 'not measured', met: null });
        else if (!other) targets.push({ name, goal, value: table.note ?? `${peer} not measured`, met: null });
        else targets.push({ name, goal, value: `${formatMs(belay.median)} vs ${formatMs(other.median)} (${formatMs(belay.perItem)} vs ${formatMs(other.perItem)} per revision)`, met: belay.median < other.median });
      }
    }
  }
  return targets;
}

export default {
  id: 'runner-overhead',
  title: 'Runner overhead: revisions up, then down to the first (trivial ones; and columns added to a table many objects name)',
  async run(ctx) {
    const sizes = ctx.quick ? [50] : [50, 200, 800];
    const tables = [];
    // warm-up at the smallest size only: the larger sizes run the same programs with the caches warm
    for (const [index, n] of sizes.entries()) tables.push(...(await measureSize(ctx, n, { ...ctx.plan.runner, warmup: index === 0 ? ctx.plan.runner.warmup : 0 })));
    // what a real set mostly does: no target of its own, the same tools and ratios on other revisions
    if (!ctx.quick) tables.push(...(await measureSize(ctx, 200, { ...ctx.plan.runner, warmup: 0 }, 'columns')));
    const notes = [
      'Every repetition starts from a new empty database (CREATE DATABASE … TEMPLATE template0, outside the timing); every tool is a cold process over TCP with a scram password from a passfile. The warm-up round runs at the smallest size only.',
      'The baseline, psql session, is one psql process running a generated script: per revision BEGIN, the file (\\i), a row in a tracking table (INSERT up, DELETE down), COMMIT; the table is created in the timing, as a runner creates its own. psql per file starts one psql (a process and a scram login) per file, with no tracking: it is what a shell loop over psql costs, not a floor.',
      'belay cannot roll back below its first revision (rollback --to needs an applied revision), so every tool rolls back to the first revision: N-1 downs.',
      'belay rollback runs with --no-backup: the default also takes a pg_dump snapshot first, which no peer does. It still fingerprints every table before the downs (integrity mode strict).',
      'node-pg-migrate runs with --no-single-transaction, so that like belay and the psql baseline each revision is its own transaction (its default wraps the whole run in one).',
      'dbmate runs as its Go binary (not the npm shim that starts node first); it rolls back one revision per process, since it has no "rollback to".',
      ...(ctx.quick ? [] : [`The last two tables, at 200 revisions, are ${shapeTitle('columns')}: every revision changes a table that many objects name, where belay's record of what it changed is the most work; no target of their own.`]),
    ];
    const skipped = [];
    if (ctx.tools.sqitch.missing) skipped.push({ name: 'sqitch', reason: `skipped: ${ctx.tools.sqitch.missing}` });
    for (const peer of ['nodePgMigrate', 'dbmate']) if (ctx.tools[peer].missing) skipped.push({ name: peer, reason: `skipped: ${ctx.tools[peer].missing}` });
    const trivial = tables.filter((t) => /^(up|down to the first), \d+ revisions$/.test(t.name));
    const growth = {
      up: linearity(trivial.filter((t) => t.name.startsWith('up')), 'belay up'),
      down: linearity(trivial.filter((t) => t.name.startsWith('down')), 'belay down'),
    };
    const targets = [...sessionTargets(tables, ctx.quick), ...peerTargets(tables, ctx.quick)];
    targets.push(
      growth.up
        ? { name: 'runner overhead: cost linear in revisions', goal: 'per-revision cost of 200→800 within 1.25× that of 50→200', value: `${growth.up.marginal.map((m) => `${m.from}→${m.to}: ${m.msPerRevision} ms/rev`).join(', ')} (${growth.up.growth}×)`, met: growth.up.growth <= 1.25 }
        : { name: 'runner overhead: cost linear in revisions', goal: 'per-revision cost of 200→800 within 1.25× that of 50→200', value: 'not measured (quick mode runs one size)', met: null },
    );
    return { tables, notes, skipped, targets, extra: { growth } };
  },
};
