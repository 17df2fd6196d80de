import type { ClientBase } from 'pg';
import { exclusiveLockHolders, watchBlockers, type LockBlocker } from '../../db/lock-watchdog.js';
import { openSibling, sessionOrigin } from '../../db/session.js';
import { SQLSTATE, sqlstateOf, stoppedReadAdvice } from '../../db/sqlstate.js';
import { errorMessage, preflightError } from '../../errors.js';
import { checkIntegrity, type IntegrityReport } from '../../integrity/check-integrity.js';
import { fingerprintTables, type ColumnSums, type Fingerprint } from '../../integrity/fingerprint.js';
import type { StructureBaseline } from '../../integrity/structural.js';
import { selectProtectedTables } from '../../integrity/table-selection.js';
import { quoteIdent } from '../../db/ident.js';
import type { RunSession } from '../session/run-session.js';

/**
 * The pre-change fingerprint of every protected table; null when integrity.mode
 * is not strict. Per-column hashes only where the comparison will need them:
 * the tables whose columns the downs of a `rollback --to` may drop.
 */
export async function takeFingerprint(
  session: RunSession,
  sums: ColumnSums,
  { client = session.work.client, inTransaction = false, oneProcess = false }: { client?: ClientBase; inTransaction?: boolean; oneProcess?: boolean } = {},
): Promise<Fingerprint | null> {
  const { integrity } = session.setup.config;
  if (integrity.mode !== 'strict') return null;
  return session.setup.events.step(
    { step: 'fingerprint' },
    async () => {
      // who holds a lock the fingerprint waits for is seen while it waits: after a lock timeout the wait is gone
      const origin = sessionOrigin(client);
      const watch = origin && watchBlockers(() => openSibling(client, 'watch'), origin.backendPid, origin.lockTimeoutMs);
      try {
        return await fingerprintTables(client, await selectProtectedTables(client, integrity.tables), { ...sums, inTransaction, oneProcess, objects: true });
      } catch (error) {
        const { database } = session.setup.config;
        const { signal } = session.setup;
        throw preflightError(`cannot fingerprint the protected tables: ${errorMessage(error)}`, {
          hint: stoppedReadAdvice(error, {
            signal,
            lockTimeoutSeconds: database.lockTimeoutSeconds,
            statementTimeoutSeconds: database.statementTimeoutSeconds,
            blockers: sqlstateOf(error) === SQLSTATE.lockNotAvailable ? await lockBlockers(session, watch?.seen() ?? [], origin?.backendPid) : [],
            privilege: sqlstateOf(error) === SQLSTATE.insufficientPrivilege ? await privilegeAdvice(session) : '',
          }),
          details: { sqlstate: sqlstateOf(error) ?? null },
        });
      } finally {
        await watch?.stop();
      }
    },
    // journaled whole, so that `belay recover` can judge an interrupted run by it
    (fingerprint) => ({ tables: Object.keys(fingerprint.tables).length, fingerprint }),
  );
}

/**
 * What lets the role read every row of the protected tables: row-level
 * security, where it applies to the role, refuses the fingerprint (it reads
 * with row_security off, as pg_dump does) however the role is granted SELECT:
 * a table it does not own that has policies, or one under FORCE ROW LEVEL
 * SECURITY, which binds its owner too.
 */
async function privilegeAdvice(session: RunSession): Promise<string> {
  const client = session.control.client;
  const tables = await selectProtectedTables(client, session.setup.config.integrity.tables);
  const { rows } = await client.query<{ name: string; forced: boolean; owned: boolean; role: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relforcerowsecurity AS forced,
            pg_has_role(current_user, c.relowner, 'USAGE') AS owned, current_user AS role
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        AND c.relrowsecurity AND (c.relforcerowsecurity OR NOT pg_has_role(current_user, c.relowner, 'USAGE'))
        AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
      ORDER BY 1`,
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  if (rows.length === 0) return 'Grant the role SELECT on every protected table, or narrow integrity.tables (include/exclude) in the config.';
  const forced = rows.filter((row) => row.forced && row.owned).map((row) => row.name);
  const one = rows.length === 1;
  const bound = forced.length === rows.length ? `FORCE ROW LEVEL SECURITY, which binds ${one ? 'its' : 'their'} owner too` : 'row-level security';
  const noForce = forced.length === 0 ? '' : ` or, for the run, ${forced.map((name) => `ALTER TABLE ${name} NO FORCE ROW LEVEL SECURITY`).join('; ')} (FORCE again after it);`;
  return `${rows.map((row) => row.name).join(', ')} ${one ? 'is' : 'are'} under ${bound}, and a fingerprint reads every row, not those a policy shows ${rows[0]!.role}. Give the role BYPASSRLS (as a superuser: ALTER ROLE ${quoteIdent(rows[0]!.role)} BYPASSRLS);${noForce} or leave ${one ? 'it' : 'them'} out of the fingerprint: integrity.tables.exclude in the config.`;
}

/** The sessions that held the lock: as seen while waiting, else those holding an exclusive lock now (from the control session: the work one may be in a failed transaction). */
async function lockBlockers(session: RunSession, seen: LockBlocker[], ownPid: number | undefined): Promise<LockBlocker[]> {
  if (seen.length > 0) return seen;
  return exclusiveLockHolders(session.control.client, ownPid === undefined ? [] : [ownPid]).catch(() => []);
}

/**
 * Compare the database with the pre-change fingerprint. `same-schema` after
 * a forward run was undone; `common-columns` after `rollback --to`, where the
 * downs may drop what the ups added.
 */
export async function runIntegrityStep(
  session: RunSession,
  baseline: Fingerprint | null,
  compare: 'same-schema' | 'common-columns',
  client: ClientBase = session.work.client,
  structure?: StructureBaseline,
): Promise<IntegrityReport> {
  const { events, config } = session.setup;
  return events.judged(
    { step: 'integrity' },
    () => checkIntegrity(client, config.integrity, baseline, compare, structure),
    (report) => ({ ok: report.intact, detail: report }),
    { mode: config.integrity.mode, compare },
  );
}
