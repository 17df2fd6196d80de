// pgbench -i databases, made once per scale and shared by the cases that read
// them (backup, fingerprint, restore). Scale 1 is 100 000 pgbench_accounts rows.
import { execTimed } from './exec.mjs';

const made = new Map();

export function pgbenchDatabase(ctx, scale) {
  if (!made.has(scale)) {
    made.set(
      scale,
      (async () => {
        const name = `pgbench_s${scale}`;
        await ctx.cluster.createDatabase(name);
        const { ms } = await execTimed(ctx.cluster.bin('pgbench'), ['-i', '-q', '-s', String(scale), name], { env: ctx.cluster.env(name), timeoutMs: 30 * 60_000 });
        const client = await ctx.cluster.connect(name);
        try {
          await client.query('VACUUM ANALYZE');
          const { rows } = await client.query(`SELECT pg_database_size(current_database())::bigint AS bytes, (SELECT count(*) FROM pgbench_accounts)::bigint AS accounts`);
          ctx.log(`  pgbench -i -s ${scale}: ${Math.round(ms / 100) / 10} s, ${Math.round(Number(rows[0].bytes) / 2 ** 20)} MiB, ${rows[0].accounts} accounts`);
          return { name, scale, bytes: Number(rows[0].bytes), accounts: Number(rows[0].accounts), initMs: Math.round(ms) };
        } finally {
          await client.end();
        }
      })(),
    );
  }
  return made.get(scale);
}
