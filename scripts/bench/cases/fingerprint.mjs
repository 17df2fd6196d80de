// Case 3: belay's integrity fingerprint of pgbench_accounts against count(*)
// and a plain in-database hash of every row, at two sizes, with memory: the
// hash is computed by PostgreSQL (an aggregate over one scan), so neither the
// backend nor node should grow with the rows.
import { readFile } from 'node:fs/promises';
import { fingerprintTables } from '../../../dist/integrity/fingerprint.js';
import { pgbenchDatabase } from '../pgbench.mjs';
import { formatMs } from '../report.mjs';
import { interleaved, median, tableOf } from '../stats.mjs';

const TABLE = { schema: 'public', table: 'pgbench_accounts' };
const ROW_HASH = 'belay fingerprint (row hash)';
const PER_COLUMN = 'belay fingerprint (row + per-column hashes)';
const mib = (kib) => `${(kib / 1024).toFixed(1)} MiB`;

/** Resident memory of a server process from /proc (the bench runs on the server's machine): peak total and current private. */
async function processMemoryKiB(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peak: field('VmHWM'), anon: field('RssAnon') };
}

/** Sample a backend's private memory (RssAnon) every 5 ms while `work` runs; its peak. */
async function peakPrivateKiB(pid, work) {
  let peak = (await processMemoryKiB(pid)).anon;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, (await processMemoryKiB(pid)).anon);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  try {
    await work();
  } finally {
    sampling = false;
    await sampler;
  }
  return Math.max(peak, (await processMemoryKiB(pid)).anon);
}

function queryCommand(ctx, database, name, does, query) {
  let client;
  return {
    name,
    does,
    // a new backend per sample, so its peak RSS is this query's
    prepare: async () => {
      client = await ctx.cluster.connect(database);
    },
    run: async () => {
      const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
      const rssBefore = process.memoryUsage().rss;
      let ms;
      const backendPrivatePeakKiB = await peakPrivateKiB(rows[0].pid, async () => {
        const started = performance.now();
        await query(client);
        ms = performance.now() - started;
      });
      const nodeRssGrowthKiB = Math.round((process.memoryUsage().rss - rssBefore) / 1024);
      return { ms, backendPrivatePeakKiB, backendHwmKiB: (await processMemoryKiB(rows[0].pid)).peak, nodeRssGrowthKiB };
    },
    cleanup: async () => {
      await client?.end();
      client = undefined;
    },
  };
}

/** The server's plan for `sql`: parallel workers planned, and whether it would JIT-compile. */
async function planOf(ctx, database, sql) {
  const client = await ctx.cluster.connect(database);
  try {
    const { rows } = await client.query(`EXPLAIN (FORMAT JSON) ${sql}`);
    const [top] = rows[0]['QUERY PLAN'];
    const workers = (plan) => plan['Workers Planned'] ?? (plan.Plans ?? []).map(workers).find((n) => n !== undefined);
    return { workers: workers(top.Plan) ?? 0, jit: top.JIT !== undefined };
  } finally {
    await client.end();
  }
}

/** The statements fingerprintTables sends, through a client that records them. */
async function fingerprintSql(ctx, database, perColumn) {
  const client = await ctx.cluster.connect(database);
  const sent = [];
  try {
    const recording = {
      query: (text, params) => {
        sent.push(text);
        return client.query(text, params);
      },
    };
    await fingerprintTables(recording, [TABLE], { perColumn });
  } finally {
    await client.end();
  }
  return sent.find((text) => text.includes('FROM ONLY'));
}

const COUNT_SQL = 'SELECT count(*) FROM pgbench_accounts';
const HASH_SQL = 'SELECT sum(hashtextextended(t::text, 0)) FROM pgbench_accounts t';

async function measureScale(ctx, scale) {
  const db = await pgbenchDatabase(ctx, scale);
  const rows = `${(db.accounts / 1e6).toLocaleString('en')} M rows`;
  const commands = [
    queryCommand(ctx, db.name, 'count(*)', COUNT_SQL, (c) => c.query(COUNT_SQL)),
    queryCommand(ctx, db.name, 'sum(hashtextextended(t::text, 0))', HASH_SQL, (c) => c.query(HASH_SQL)),
    queryCommand(ctx, db.name, ROW_HASH, 'fingerprintTables(…, { perColumn: false }): what migrate up and backup take', (c) => fingerprintTables(c, [TABLE], { perColumn: false })),
    queryCommand(ctx, db.name, PER_COLUMN, 'fingerprintTables(…, { perColumn: true }): what rollback takes of the tables whose columns its downs may drop', (c) => fingerprintTables(c, [TABLE], { perColumn: true })),
  ];
  const measured = await interleaved({ commands, ...ctx.plan.fingerprint, signal: ctx.signal, onSample: ctx.onSample });
  const memory = {};
  for (const command of commands) {
    const timed = measured.samples.filter((s) => !s.warmup && s.command === command.name);
    memory[command.name] = {
      backendPrivatePeakKiB: median(timed.map((s) => s.detail.backendPrivatePeakKiB)),
      backendHwmKiB: median(timed.map((s) => s.detail.backendHwmKiB)),
      nodeRssGrowthKiB: median(timed.map((s) => s.detail.nodeRssGrowthKiB)),
    };
  }
  const sql = {
    'count(*)': COUNT_SQL,
    'sum(hashtextextended(t::text, 0))': HASH_SQL,
    [ROW_HASH]: await fingerprintSql(ctx, db.name, false),
    [PER_COLUMN]: await fingerprintSql(ctx, db.name, true),
  };
  const plans = {};
  for (const [name, text] of Object.entries(sql)) plans[name] = { ...(await planOf(ctx, db.name, text)), sql: text };
  return { db, table: tableOf({ name: `pgbench_accounts, ${rows} (pgbench -s ${scale})`, baseline: 'count(*)', commands, measured, items: db.accounts / 1e6, itemName: 'M rows' }), memory, plans };
}

export default {
  id: 'fingerprint',
  title: 'Fingerprint: belay integrity fingerprint vs count(*) and an in-database row hash',
  async run(ctx) {
    const scales = ctx.quick ? [1, 2] : [10, 50];
    const results = [];
    for (const scale of scales) results.push(await measureScale(ctx, scale));
    const [small, large] = results;
    const summaryLines = [];
    const memoryTable = {
      name: 'memory per query, medians (backend: the leader process serving the query; node: this process)',
      columns: ['query', ...results.flatMap((r) => [`backend private peak, ${r.db.accounts / 1e6} M`, `backend VmHWM, ${r.db.accounts / 1e6} M`, `node RSS growth, ${r.db.accounts / 1e6} M`])],
      cells: Object.keys(small.memory).map((name) => [name, ...results.flatMap((r) => [mib(r.memory[name].backendPrivatePeakKiB), mib(r.memory[name].backendHwmKiB), `${r.memory[name].nodeRssGrowthKiB} KiB`])]),
    };
    for (const name of ['count(*)', ROW_HASH, PER_COLUMN]) {
      const a = small.table.rows.find((row) => row.command === name).median;
      const b = large.table.rows.find((row) => row.command === name).median;
      summaryLines.push(`${name}: ${formatMs(a)} → ${formatMs(b)} for ${(large.db.accounts / small.db.accounts).toFixed(1)}× the rows (${(b / a).toFixed(2)}× the time).`);
    }
    for (const r of results) {
      summaryLines.push(`plans at ${r.db.accounts / 1e6} M rows: ${Object.entries(r.plans).map(([name, p]) => `${name} ${p.workers} parallel workers${p.jit ? ', JIT' : ''}`).join('; ')} (the memory figures are the leader backend's).`);
    }
    const largeRow = (name) => large.table.rows.find((row) => row.command === name);
    // private memory over count(*)'s at the same size: the server's own per-scan memory (JIT code, once the
    // plan's cost passes jit_above_cost) grows for every query alike; what matters is that the fingerprint adds none
    const excessKiB = (r) => r.memory[PER_COLUMN].backendPrivatePeakKiB - r.memory['count(*)'].backendPrivatePeakKiB;
    const flat = results.every((r) => excessKiB(r) <= 4096 && Math.abs(r.memory[PER_COLUMN].nodeRssGrowthKiB) < 16 * 1024);
    const atLarge = `pgbench_accounts, ${large.db.accounts / 1e6} M rows`;
    const targets = [
      { name: `fingerprint, row hash (migrate up, backup) ≤ 2.5× count(*), ${atLarge}`, goal: '≤ 2.5× count(*)', value: `${largeRow(ROW_HASH).ratio}×`, met: largeRow(ROW_HASH).ratio <= 2.5 },
      { name: `fingerprint, row + per-column hashes (rollback) ≤ 2.5× count(*), ${atLarge}`, goal: '≤ 2.5× count(*)', value: `${largeRow(PER_COLUMN).ratio}×`, met: largeRow(PER_COLUMN).ratio <= 2.5 },
      {
        name: 'fingerprint memory flat as rows grow',
        goal: "backend private peak ≤ count(*)'s + 4 MiB at each size, node RSS growth < 16 MiB",
        value: `${results.map((r) => `${r.db.accounts / 1e6} M: ${mib(r.memory[PER_COLUMN].backendPrivatePeakKiB)} (count(*) ${mib(r.memory['count(*)'].backendPrivatePeakKiB)}), node ${r.memory[PER_COLUMN].nodeRssGrowthKiB} KiB`).join('; ')}`,
        met: flat,
      },
    ];
    const notes = [
      'belay\'s fingerprint is called as a library function (dist/integrity/fingerprint.js) on a connected client; the timing covers its catalog query and its one scanning query inside a REPEATABLE READ transaction, not the connection.',
      'The hash is computed in the server: one aggregate query per table (typed per-column hashes, combined per row, summed), so node receives one row whatever the table size. With per-column sums, each column\'s hash is computed once per row in a subquery that feeds both the row hash and the column\'s sum (the planner would otherwise evaluate it twice), and the scan stays parallel.',
      'Each sample uses a new connection (outside the timing), so the backend\'s figures are that query\'s. Its private memory (RssAnon) is sampled every 5 ms during the query: that is what would grow if rows were collected. VmHWM also counts the shared buffers the scan touched, which grows with the table up to the ring buffer a large sequential scan uses; it is reported, not judged. Parallel workers have their own processes and are not counted.',
    ];
    return { tables: [...results.map((r) => r.table), memoryTable], summaryLines, notes, targets, extra: { memory: Object.fromEntries(results.map((r) => [r.db.name, r.memory])), plans: Object.fromEntries(results.map((r) => [r.db.name, r.plans])) } };
  },
};
