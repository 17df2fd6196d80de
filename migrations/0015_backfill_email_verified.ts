// A data migration: users who completed onboarding have verified their email.
interface Ctx {
  sql(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

export async function up(ctx: Ctx): Promise<void> {
  await ctx.sql(`CREATE TABLE account.email_verified_backfill (user_id bigint PRIMARY KEY)`);
  await ctx.sql(
    `WITH done AS (
       UPDATE account.users u SET email_verified = true
         FROM account.onboarding_registrations r
        WHERE r.user_id = u.id AND r.completed_at IS NOT NULL AND NOT u.email_verified
        RETURNING u.id)
     INSERT INTO account.email_verified_backfill SELECT id FROM done`,
  );
}

export async function down(ctx: Ctx): Promise<void> {
  await ctx.sql(
    `UPDATE account.users u SET email_verified = false
       FROM account.email_verified_backfill b WHERE b.user_id = u.id`,
  );
  await ctx.sql(`DROP TABLE account.email_verified_backfill`);
}

export async function verify(ctx: Ctx): Promise<void> {
  const { rows } = await ctx.sql(
    `SELECT count(*)::int AS n FROM account.users u JOIN account.onboarding_registrations r ON r.user_id = u.id
      WHERE r.completed_at IS NOT NULL AND NOT u.email_verified`,
  );
  const left = Number(rows[0]?.n ?? 0);
  if (left !== 0) throw new Error(`${left} users completed onboarding but are not email_verified`);
}
