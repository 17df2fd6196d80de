import type { ClientBase } from 'pg';
import { preflightError } from '../errors.js';
import { quoteIdent } from './ident.js';

/**
 * Refuse (exit 4) a session whose transactions cannot write: a hot standby,
 * or default_transaction_read_only on for the database or the role. Checked
 * before belay writes anything: otherwise its first write (belay's schema,
 * a restore's CREATE DATABASE) fails, or a rollback's down fails and the
 * untouched database is restored.
 */
export async function assertWritable(client: ClientBase, database: string): Promise<void> {
  const { rows } = await client.query<{ recovery: boolean; read_only: string; role: string }>(
    "SELECT pg_catalog.pg_is_in_recovery() AS recovery, pg_catalog.current_setting('transaction_read_only') AS read_only, current_user AS role",
  );
  const row = rows[0]!;
  if (row.recovery) {
    throw preflightError(`${database} is a hot standby (in recovery): belay cannot write to it`, {
      hint: 'Run belay against the primary. Nothing was changed.',
    });
  }
  if (row.read_only !== 'on') return;
  throw preflightError(`${database} is read-only for role ${row.role} (default_transaction_read_only = on, set on the database or the role)`, {
    hint: `ALTER DATABASE ${quoteIdent(database)} SET default_transaction_read_only = off (or ALTER ROLE ${quoteIdent(row.role)} SET default_transaction_read_only = off), or connect as a role without it; then run again. Nothing was changed.`,
  });
}
