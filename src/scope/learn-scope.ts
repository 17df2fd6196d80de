import { randomBytes, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClientBase } from 'pg';
import { childFailure, runLibpqChild, type BackupTools, type ChildOutcome } from '../backup/pg-tools.js';
import { ensureBelaySchema } from '../db/belay-schema.js';
import { dbnameArgument, describeTarget, withDatabase, type ConnectionParams, type SessionOptions } from '../db/connection.js';
import { createDatabase, dropDatabase } from '../db/databases.js';
import { quoteIdent } from '../db/ident.js';
import { openSession } from '../db/session.js';
import { BelayError, errorMessage } from '../errors.js';
import { MigrationEngine } from '../migrations/engine.js';
import type { Revision } from '../migrations/revision.js';
import { isReversible, prepareStep } from '../migrations/run-revision.js';
import {
  isRelation,
  needOf,
  objectLabel,
  ownRelationLocks,
  readCatalog,
  type CatalogEntry,
  type CatalogObject,
  type LearnedScope,
  type RevisionScope,
  type TouchedRelation,
} from './scope.js';
import { unrestorableTies, tiesReason } from './restore-ties.js';
import { markScopeCopy, scopeCopyName } from './scope-copies.js';
import { ownWorkDir, WORK_DIRS } from '../temp-dirs.js';

export interface LearnScopeOptions {
  /** The target: the copy is made on the same server, from its schema. */
  params: ConnectionParams;
  session: SessionOptions;
  tools: BackupTools;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal | undefined;
  /** In the order they will run: pending revisions (up), or the revisions to revert newest first (down). */
  revisions: Revision[];
  direction: 'up' | 'down';
  /** How long pg_dump waits for its table locks. */
  lockTimeoutMs: number;
  /**
   * Told the copy's name before it is created. A run journals it: killed
   * during the CREATE DATABASE, which the server finishes without it, it
   * leaves a copy it never marked, and `recover` knows it by the journal.
   */
  beforeCopy?: (copy: string) => Promise<void>;
}

const CHILD_TIMEOUT_MS = 30 * 60_000;

const toObject = (entry: CatalogEntry): CatalogObject => ({
  kind: entry.kind,
  schema: entry.schema,
  name: entry.name,
  ...(entry.args === undefined ? {} : { args: entry.args }),
  ...(entry.owned ? { owned: true as const } : {}),
});

function learnFailure(what: string, outcome: ChildOutcome): BelayError {
  return new BelayError('preflight', `cannot learn what the revisions touch: ${what} failed: ${childFailure(outcome)}`, {
    hint: 'Nothing was changed. Run with --backup-scope full, or fix what the message names.',
  });
}

/**
 * Learn what each revision touches by running it on a throwaway copy of the
 * target's schema (a new database on the same server, restored from
 * `pg_dump --schema-only`, no rows), looking, inside each revision's
 * transaction just before it commits, at the relation locks its backend holds
 * and at the catalog. The copy is dropped afterwards, whatever happened.
 *
 * For an up, the downs are run after the ups, newest first, as a failed run's
 * safety net would: what they write must be in the snapshot too.
 *
 * A revision that runs outside a transaction, or that fails on the empty copy,
 * leaves the scope unknown (`unknown` says why). Throws BelayError (preflight)
 * when the copy cannot be made or dropped.
 */
export async function learnScope(options: LearnScopeOptions): Promise<LearnedScope> {
  const copyName = scopeCopyName(options.params.database, randomBytes(4).toString('hex'));
  const copy = withDatabase(options.params, copyName);
  const admin = await openSession(options.params, options.session);
  const dir = await ownWorkDir(WORK_DIRS.scope).catch(async (error: unknown) => {
    await admin.close();
    throw error;
  });
  let made = false;
  let failure: unknown;
  try {
    const file = join(dir, 'schema.dump');
    const child = { env: options.env, timeoutMs: CHILD_TIMEOUT_MS, signal: options.signal, applicationName: 'belay learn scope' };
    const dumped = await runLibpqChild(
      options.tools.pgDump,
      ['--schema-only', '--format=custom', `--file=${file}`, '--no-password', `--lock-wait-timeout=${options.lockTimeoutMs}ms`],
      { ...child, params: options.params },
    );
    if (dumped.code !== 0) throw learnFailure(`pg_dump --schema-only of ${describeTarget(options.params)}`, dumped);
    await options.beforeCopy?.(copyName);
    try {
      await createDatabase(admin.client, copyName, { template: 'template0' });
    } catch (error) {
      throw new BelayError('preflight', `cannot learn what the revisions touch: cannot create the throwaway copy ${copyName}: ${errorMessage(error)}`, {
        hint: 'Nothing was changed. Learning the scope needs a role that may create databases (CREATEDB); or run with --backup-scope full.',
        cause: error,
      });
    }
    made = true;
    // at once: a run killed from here on leaves a copy that `status` lists and `recover` drops, provably belay's
    await markScopeCopy(admin.client, copyName, options.params.database);
    const restored = await runLibpqChild(options.tools.pgRestore, ['--no-owner', '--no-privileges', '--exit-on-error', dbnameArgument(copyName), file], { ...child, params: copy });
    if (restored.code !== 0) throw learnFailure(`restoring the schema into the throwaway copy ${copyName}`, restored);
    const applied = await appliedRows(admin.client);
    const session = await openSession(copy, options.session);
    // a signal cancels the revision running on the copy: the run stops before it changed anything
    const cancel = (): void => void admin.client.query('SELECT pg_cancel_backend($1)', [session.backendPid]).catch(() => {});
    options.signal?.addEventListener('abort', cancel, { once: true });
    try {
      options.signal?.throwIfAborted();
      await ensureBelaySchema(session.client);
      for (const row of applied) {
        await session.client.query('INSERT INTO belay.migrations (name, checksum, files, applied_at, duration_ms, run_id) VALUES ($1, $2, $3, $4, $5, $6)', row);
      }
      const first = options.revisions[0]?.name ?? 'nothing';
      const last = options.revisions[options.revisions.length - 1]?.name ?? first;
      const learnedFrom = `${options.direction === 'up' ? 'up (then down)' : 'down'} of ${first === last ? first : `${first} … ${last}`} on a schema-only copy of ${options.params.database} (database ${copyName}, dropped)`;
      const learned = await watchRevisions(session.client, options.revisions, options.direction, learnedFrom);
      // read on the target, whose catalog a targeted restore would meet, not on the copy
      const ties = learned.unknown === null ? await unrestorableTies(admin.client, learned.dataTables.filter((t) => t.kind === 'table')) : [];
      return ties.length === 0 ? learned : { ...learned, unknown: tiesReason(ties) };
    } finally {
      options.signal?.removeEventListener('abort', cancel);
      await session.close();
    }
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    await rm(dir, { recursive: true, force: true });
    try {
      if (made) await dropDatabase(admin.client, copyName);
    } catch (error) {
      // the copy has no rows, but it is ours to remove: say so, with what went wrong before when something did
      const earlier = failure === undefined ? '' : ` (after: ${errorMessage(failure)})`;
      throw new BelayError('preflight', `could not drop the throwaway copy ${copyName}${earlier}: ${errorMessage(error)}`, {
        hint: `Nothing on ${options.params.database} was changed. Drop the copy: DROP DATABASE ${quoteIdent(copyName)} WITH (FORCE);`,
        cause: error,
      });
    } finally {
      await admin.close();
    }
  }
}

/**
 * Why a touched snapshot would not do on the target: it has large objects,
 * which a revision may change outside any table and which a targeted restore
 * does not put back. Null when it has none. (A sequence a revision may change
 * is in the learned scope, restored with it.)
 */
export async function largeObjectsReason(client: ClientBase): Promise<string | null> {
  const count = await largeObjectCount(client);
  return count === 0 ? null : `the database has ${count} large ${count === 1 ? 'object' : 'objects'}, which a touched snapshot does not hold (it restores tables and sequences only)`;
}

async function largeObjectCount(client: ClientBase): Promise<number> {
  const { rows } = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM pg_largeobject_metadata');
  return Number(rows[0]!.n);
}

/** belay.migrations of the target, so that the copy knows what is applied (the downs need it). */
async function appliedRows(client: ClientBase): Promise<unknown[][]> {
  const { rows: exists } = await client.query<{ ok: boolean }>("SELECT to_regclass('belay.migrations') IS NOT NULL AS ok");
  if (exists[0]?.ok !== true) return [];
  const { rows } = await client.query<{ name: string; checksum: string; files: string; applied_at: Date; duration_ms: number; run_id: string | null }>(
    'SELECT name, checksum, files::text AS files, applied_at, duration_ms, run_id FROM belay.migrations ORDER BY name',
  );
  return rows.map((row) => [row.name, row.checksum, row.files, row.applied_at, row.duration_ms, row.run_id]);
}

/** Something writing a relation sets off, in words; `referencing`: the table a foreign key's action writes. */
interface SetOff {
  what: string;
  referencing: number | null;
}

interface Seen {
  locks: Map<number, string[]>;
  after: Map<string, CatalogEntry>;
}

/**
 * What writing the relations $1 sets off beyond the statements themselves:
 * their user triggers (a partition's parents' too), their rules, and the
 * foreign keys onto them whose action writes the referencing table. On the
 * empty copy none of it runs for a row, so what it writes is not learned.
 */
const SET_OFF = `
WITH RECURSIVE w AS (SELECT unnest($1::oid[]) AS oid),
up(oid) AS (SELECT oid FROM w
            UNION SELECT i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.oid JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relispartition)
SELECT format('trigger %I on %I.%I', t.tgname, n.nspname, c.relname) AS what, NULL::int8 AS referencing
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE t.tgrelid IN (SELECT oid FROM up) AND NOT t.tgisinternal
UNION ALL
SELECT format('rule %I on %I.%I', r.rulename, n.nspname, c.relname), NULL
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE r.ev_class IN (SELECT oid FROM w) AND r.rulename <> '_RETURN'
UNION ALL
SELECT format('foreign key %I of %I.%I onto %I.%I (%s)', con.conname, n.nspname, c.relname, fn.nspname, f.relname,
              concat_ws(', ', 'ON DELETE ' || CASE con.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END,
                              'ON UPDATE ' || CASE con.confupdtype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END)),
       con.conrelid::int8
  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class f ON f.oid = con.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace
 WHERE con.contype = 'f' AND con.confrelid IN (SELECT oid FROM w) AND (con.confdeltype IN ('c', 'n', 'd') OR con.confupdtype IN ('c', 'n', 'd'))
 ORDER BY 1`;

async function setOffBy(client: ClientBase, locks: Map<number, string[]>): Promise<SetOff[]> {
  const written = [...locks].filter(([, modes]) => needOf(modes) === 'data').map(([oid]) => oid);
  const { rows } = await client.query<{ what: string; referencing: string | null }>(SET_OFF, [written]);
  return rows.map((row) => ({ what: row.what, referencing: row.referencing === null ? null : Number(row.referencing) }));
}

async function watchRevisions(client: ClientBase, revisions: Revision[], direction: 'up' | 'down', learnedFrom: string): Promise<LearnedScope> {
  const initial = await readCatalog(client);
  const largeObjects = await largeObjectCount(client);
  const initialRelations = new Map([...initial.values()].filter((entry) => isRelation(entry.kind)).map((entry) => [entry.oid, entry]));
  let seen: Seen | undefined;
  const setOff: SetOff[] = [];
  const engine = new MigrationEngine(revisions, client, randomUUID(), { log: () => {} }, async (inside) => {
    seen = { locks: await ownRelationLocks(inside), after: await readCatalog(inside) };
    // as the schema is when the revision commits: a trigger an earlier revision made fires in the real run too
    setOff.push(...(await setOffBy(inside, seen.locks)));
  });
  const scopes: RevisionScope[] = [];
  let unknown: string | null = null;
  const pass = async (list: Revision[], way: 'up' | 'down'): Promise<void> => {
    for (const revision of list) {
      const { transactional } = await prepareStep(revision, way);
      const before = await readCatalog(client);
      seen = undefined;
      try {
        await (way === 'up' ? engine.up(revision.name) : engine.down(revision.name));
      } catch (error) {
        unknown = `${revision.name} ${way} fails on a schema-only copy, so what it touches cannot be learned: ${errorMessage(error).split('\n')[0]}`;
        return;
      }
      if (!transactional || seen === undefined) {
        scopes.push({ revision: revision.name, direction: way, transactional: false, touches: [], creates: [], alters: [], drops: [] });
        unknown ??= `${revision.name} ${way} runs outside a transaction (-- belay:no-transaction): its locks end with each statement, so what it touches can be neither learned nor enforced`;
        continue;
      }
      scopes.push(revisionScope(revision.name, way, before, seen, initialRelations));
    }
  };
  await pass(revisions, direction);
  const reached = await readCatalog(client);
  const created = [...reached.values()].filter((entry) => !initial.has(entry.key)).map(toObject);
  if (direction === 'up' && unknown === null) {
    // a failed run's safety net reverts what it applied, newest first: those downs write under the same snapshot
    const reversible: Revision[] = [];
    for (const revision of revisions) if (await isReversible(revision)) reversible.push(revision);
    await pass(reversible.reverse(), 'down');
  }
  const leftObjects = await largeObjectCount(client);
  if (unknown === null && leftObjects !== largeObjects) {
    unknown = `the revisions change the large objects on the copy (${largeObjects} before, ${leftObjects} after): a touched snapshot holds none, so a restore could not put them back`;
  }
  const dataTables = new Map<string, { schema: string; name: string; kind: TouchedRelation['kind'] }>();
  for (const scope of scopes) {
    for (const touched of scope.touches) {
      if (touched.need === 'data') dataTables.set(objectLabel(touched), { schema: touched.schema, name: touched.name, kind: touched.kind });
    }
  }
  const unrestorable = [...dataTables.values()].find((t) => t.kind !== 'table' && t.kind !== 'sequence');
  if (unknown === null && unrestorable) {
    unknown = `${objectLabel(unrestorable)} is a ${unrestorable.kind} whose rows may change; a touched snapshot restores tables and sequences only`;
  }
  const dataOids = [...initialRelations.values()].filter((entry) => dataTables.has(objectLabel(entry))).map((entry) => entry.oid);
  const strayed = (await sequenceOwners(client, dataOids)).filter((pair) => !dataOids.includes(pair.owner) && initialRelations.has(pair.owner));
  if (unknown === null && strayed.length > 0) {
    const [first] = strayed;
    unknown = `sequence ${objectLabel(initialRelations.get(first!.sequence)!)} may change, and it belongs to ${objectLabel(initialRelations.get(first!.owner)!)}, whose rows stay out of a touched snapshot; a targeted restore cannot put the sequence back alone`;
  }
  // a foreign key's action writing a table whose rows are in the snapshot anyway, or one the run made, writes nothing it could lose
  const outside = (oid: number | null): boolean => {
    const referencing = oid === null ? undefined : initialRelations.get(oid);
    return oid === null || (referencing !== undefined && !dataTables.has(objectLabel(referencing)));
  };
  const setOffOutside = [...new Set(setOff.filter((s) => outside(s.referencing)).map((s) => s.what))];
  return { direction, learnedFrom, revisions: scopes, unknown, dataTables: [...dataTables.values()], setOff: setOffOutside, created };
}

/** The tables that own (serial, identity) those of the relations that are sequences. */
async function sequenceOwners(client: ClientBase, oids: number[]): Promise<Array<{ sequence: number; owner: number }>> {
  if (oids.length === 0) return [];
  const { rows } = await client.query<{ sequence: string; owner: string }>(
    `SELECT d.objid::int8::text AS sequence, d.refobjid::int8::text AS owner
       FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        AND s.relkind = 'S' AND d.objid = ANY($1::oid[])`,
    [oids],
  );
  return rows.map((row) => ({ sequence: Number(row.sequence), owner: Number(row.owner) }));
}

function revisionScope(revision: string, direction: 'up' | 'down', before: Map<string, CatalogEntry>, seen: Seen, initialRelations: Map<number, CatalogEntry>): RevisionScope {
  const touches: TouchedRelation[] = [];
  for (const [oid, modes] of seen.locks) {
    // what the run itself created needs no rows in the snapshot; indexes and system relations are not listed
    const relation = initialRelations.get(oid);
    if (!relation) continue;
    touches.push({ schema: relation.schema, name: relation.name, kind: relation.kind, modes, need: needOf(modes) });
  }
  touches.sort((a, b) => objectLabel(a).localeCompare(objectLabel(b)));
  const creates: CatalogObject[] = [];
  const alters: CatalogObject[] = [];
  for (const entry of seen.after.values()) {
    const previous = before.get(entry.key);
    if (!previous) creates.push(toObject(entry));
    else if (previous.version !== entry.version) alters.push(toObject(entry));
  }
  const drops = [...before.values()].filter((entry) => !seen.after.has(entry.key)).map(toObject);
  return { revision, direction, transactional: true, touches, creates, alters, drops };
}
