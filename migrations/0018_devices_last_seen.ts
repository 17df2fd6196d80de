// devices.last_seen_at, backfilled from each user's latest session. The down drops
// the new column only: nothing that existed before 0018 is touched.
interface Ctx {
  sql(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

export async function up(ctx: Ctx): Promise<void> {
  await ctx.sql(`ALTER TABLE account.devices ADD COLUMN last_seen_at timestamptz`);
  await ctx.sql(
    `UPDATE account.devices d SET last_seen_at = s.latest
       FROM (SELECT user_id, max(created_at) AS latest FROM account.sessions GROUP BY user_id) s
      WHERE s.user_id = d.user_id`,
  );
}

export async function down(ctx: Ctx): Promise<void> {
  await ctx.sql(`ALTER TABLE account.devices DROP COLUMN last_seen_at`);
}

export async function verify(ctx: Ctx): Promise<void> {
  const { rows } = await ctx.sql(
    `SELECT count(*)::int AS n FROM account.devices d
      WHERE d.last_seen_at IS NULL AND EXISTS (SELECT 1 FROM account.sessions s WHERE s.user_id = d.user_id)`,
  );
  const missing = Number(rows[0]?.n ?? 0);
  if (missing !== 0) throw new Error(`${missing} devices with sessions have no last_seen_at`);
}
