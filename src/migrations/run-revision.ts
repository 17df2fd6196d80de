import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { DatabaseError, type Client, type ClientBase, type QueryResult, type QueryResultRow } from 'pg';
import { simpleQueryResults } from '../db/simple-query.js';
import { preflightError } from '../errors.js';
import { lineIn, loadRevisionModule } from './load-module.js';
import { runModuleStep } from './module-step.js';
import type { Revision } from './revision.js';
import type { RevisionContext, RevisionModule } from './revision-context.js';
import { failureFromError, messageWithCauses, RevisionFailedError } from './revision-error.js';
import { revisionFileBytes } from './revision-bytes.js';
import { readSqlScript, type SqlScript } from './sql-script.js';
import { NO_TRANSACTION_MARKER, type SqlStatement } from './split-sql.js';

export type Direction = 'up' | 'down';

/** What a module's step is given besides the client: the engine's, unused by an SQL step. */
export interface StepHooks {
  log(message: string): void;
  /** The run's stop: a module's step pending when it fires is given up, failed. */
  signal?: AbortSignal;
  /** An error the module raised where nothing could catch it, after its step ended: known to be its, or most likely. */
  late(error: unknown, known: boolean): void;
}

/** A step of a revision, loaded and ready: whether it wants a transaction, and how to run it. */
export interface PreparedStep {
  file: string;
  transactional: boolean;
  /**
   * `opening` (e.g. BEGIN) runs first: an SQL step sends it in one round trip
   * with its first statements, a module step on its own. `closing` runs last,
   * in the round trip of an SQL step's last statements: its last statement's
   * result is the answer.
   */
  run(client: ClientBase, hooks: StepHooks, opening?: string, closing?: string): Promise<QueryResult<QueryResultRow> | undefined>;
}

export class IrreversibleRevisionError extends Error {
  override readonly name = 'IrreversibleRevisionError';
  constructor(readonly revision: string) {
    super(`revision ${revision} has no down; it cannot be reverted`);
  }
}

const modules = new Map<string, Promise<RevisionModule>>();

function moduleOf(revision: Revision): Promise<RevisionModule> {
  let loaded = modules.get(revision.files.up);
  if (!loaded) {
    loaded = loadRevisionModule(revision.files.up, revision.name);
    modules.set(revision.files.up, loaded);
  }
  return loaded;
}

/**
 * Each SQL file read and parsed once: preflight checks it, then the engine
 * runs it. Keyed by content too (the sha256 discovery took), so a library
 * caller that edits a file between runs (and discovers again) gets the new text.
 */
const scripts = new Map<string, Promise<SqlScript>>();

function scriptOf(revision: Revision, file: string): Promise<SqlScript> {
  const sha256 = revision.fileChecksums[basename(file)];
  const key = `${file}\0${sha256 ?? ''}`;
  let script = scripts.get(key);
  if (!script) {
    // the bytes discovery hashed: read once, and run exactly what the checksum recorded says
    script = revisionFileBytes(revision, file, { take: true }).then(readSqlScript);
    scripts.set(key, script);
  }
  return script;
}

async function prepareSql(revision: Revision, file: string, direction: 'up' | 'down' | 'verify'): Promise<PreparedStep> {
  const { statements, transactional, problems } = await scriptOf(revision, file);
  const where = { revision: revision.name, direction, file: basename(file), transactional };
  return {
    file,
    transactional,
    async run(client, _hooks, opening, closing) {
      if (problems.length > 0) throw new RevisionFailedError({ ...where, message: `cannot run as written: ${problems.join('; ')}` });
      if (statements.length === 0) {
        const sent = [opening, closing].filter((part) => part !== undefined).join('; ');
        const answer = sent === '' ? undefined : (await simpleQueryResults(client, sent)).at(-1);
        return closing === undefined ? undefined : answer;
      }
      let lastResult: QueryResult<QueryResultRow> | undefined;
      const batches = batchesOf(statements, transactional);
      for (const [b, batch] of batches.entries()) {
        const head = b === 0 ? opening : undefined;
        const tail = b === batches.length - 1 ? closing : undefined;
        const { text, starts } = batchQuery(head, batch, tail);
        // each statement that ran answers CommandComplete before an error: how far the query got
        let completed = 0;
        const count = (): void => {
          completed += 1;
        };
        const { connection } = client as Client;
        connection.on('commandComplete', count);
        try {
          lastResult = (await simpleQueryResults(client, text)).at(-1);
        } catch (error) {
          let index = failedStatement(error, starts, completed - (head === undefined ? 0 : 1), batch.length);
          if (index === undefined) {
            if (await endedItsTransaction(client)) {
              // every statement and the transaction block ran: the COMMIT failed (a deferred constraint, a serialization failure)
              throw new RevisionFailedError(failureFromError(error, { ...where, statement: 'COMMIT' }), { cause: error });
            }
            // belay's own statements after the last one (the schema call, the record): the revision's failure, told at its last statement
            index = batch.length - 1;
          }
          const statement = batch[index]!;
          const line = statement.line + lineWithin(statement.text, error, starts[index]!);
          throw new RevisionFailedError(failureFromError(error, { ...where, line, statement: statement.text }), { cause: error });
        } finally {
          connection.off('commandComplete', count);
        }
      }
      if (direction === 'verify') assertVerifyResult(revision, file, lastResult);
      return closing === undefined ? undefined : lastResult;
    },
  };
}

/** At most this many statements, and about this many characters, in one simple query: a file of many INSERTs is not answered whole into node. */
const BATCH_STATEMENTS = 100;
const BATCH_CHARS = 1 << 20;

/**
 * The statements as the simple queries that send them: a transactional
 * file's in as few as fit (most files: one round trip), a no-transaction
 * file's one each (the implicit transaction block of a query of several
 * would refuse what such a file is for, e.g. CREATE INDEX CONCURRENTLY).
 */
function batchesOf(statements: readonly SqlStatement[], transactional: boolean): SqlStatement[][] {
  if (!transactional) return statements.map((statement) => [statement]);
  const batches: SqlStatement[][] = [];
  let batch: SqlStatement[] = [];
  let chars = 0;
  for (const statement of statements) {
    if (batch.length > 0 && (batch.length >= BATCH_STATEMENTS || chars + statement.text.length > BATCH_CHARS)) {
      batches.push(batch);
      batch = [];
      chars = 0;
    }
    batch.push(statement);
    chars += statement.text.length;
  }
  batches.push(batch);
  return batches;
}

/** One simple query: `head`, the statements, `tail`; and where each statement starts in it (an error's position counts from the query's start). */
function batchQuery(head: string | undefined, batch: readonly SqlStatement[], tail: string | undefined): { text: string; starts: number[] } {
  let text = head === undefined ? '' : `${head}; `;
  const starts: number[] = [];
  for (const [i, statement] of batch.entries()) {
    // a newline before each separator: a statement may end in a -- comment
    if (i > 0) text += '\n;\n';
    starts.push(text.length);
    text += statement.text;
  }
  if (tail !== undefined) text += `\n;\n${tail}`;
  return { text, starts };
}

/**
 * Which statement of a batch failed: the one the error's position falls in (a
 * syntax error stops the whole query before any of it runs), else the one
 * after those that completed. Undefined: every statement completed, and what
 * was sent after them failed.
 */
function failedStatement(error: unknown, starts: readonly number[], completed: number, count: number): number | undefined {
  if (error instanceof DatabaseError && error.position) {
    const at = Number(error.position) - 1;
    let index = 0;
    while (index + 1 < starts.length && starts[index + 1]! <= at) index += 1;
    return index;
  }
  return completed < count ? Math.max(0, completed) : undefined;
}

/**
 * After a failed round trip that opened or continued a transaction block:
 * whether that block is over (its COMMIT failed), rather than waiting for a
 * ROLLBACK (a statement in it failed). Only an aborted block refuses a query.
 */
async function endedItsTransaction(client: ClientBase): Promise<boolean> {
  return client.query('SELECT 1').then(
    () => true,
    () => false,
  );
}

/** What keeps a revision's SQL files for `direction` from running as belay runs them (see parseSqlScript). */
export async function scriptProblems(revision: Revision, direction: Direction): Promise<string[]> {
  if (revision.kind === 'module') return [];
  const files = direction === 'up' ? [revision.files.up, revision.files.verify] : [revision.files.down];
  const problems: string[] = [];
  for (const file of files) {
    if (file === undefined) continue;
    for (const problem of (await scriptOf(revision, file)).problems) problems.push(`${basename(file)} ${problem}`);
  }
  return problems;
}

/** A verify fails when it raises, or when its last statement answers a single false. */
function assertVerifyResult(revision: Revision, file: string, result: QueryResult<QueryResultRow> | undefined): void {
  const rows = result?.rows;
  const first = rows?.[0];
  if (rows?.length === 1 && first && Object.keys(first).length === 1 && Object.values(first)[0] === false) {
    throw new RevisionFailedError({
      revision: revision.name,
      direction: 'verify',
      file: basename(file),
      message: 'the verify query returned false',
      transactional: true,
    });
  }
}

/** The line of an error's character position inside the statement (0 when unknown), sent after `offset` characters of opening. */
function lineWithin(text: string, error: unknown, offset: number): number {
  if (!(error instanceof DatabaseError) || !error.position) return 0;
  const position = Number(error.position) - offset;
  return text.slice(0, Math.max(0, position - 1)).split('\n').length - 1;
}

async function prepareModule(revision: Revision, direction: 'up' | 'down' | 'verify'): Promise<PreparedStep | undefined> {
  const mod = await moduleOf(revision);
  const fn = mod[direction];
  if (!fn) return undefined;
  const firstLine = (await readFile(revision.files.up, 'utf8')).split('\n', 1)[0] ?? '';
  const transactional = !NO_TRANSACTION_MARKER.test(firstLine);
  return {
    file: revision.files.up,
    transactional,
    async run(client, { log, signal, late }, opening, closing) {
      const where = { revision: revision.name, direction, file: basename(revision.files.up) };
      // the transaction belay runs it in, known by its id (assigned now, as its record would): still open after the module
      const sent = [...(opening === undefined ? [] : [opening]), ...(transactional ? ['SELECT txid_current()::text AS xid'] : [])];
      const began = sent.length === 0 ? undefined : (await simpleQueryResults<{ xid: string }>(client, sent.join('; '))).at(-1);
      const xid = transactional ? began?.rows[0]?.xid : undefined;
      // a step given up (or ended) no longer reaches belay's session: what the module sends after it is refused
      let ended = false;
      const query = (...args: unknown[]): unknown => {
        if (ended) throw new Error(`revision ${revision.name}: its ${direction} has ended; it may no longer send statements on belay's session`);
        return Reflect.apply(client.query, client, args) as unknown;
      };
      const stepClient = new Proxy(client, {
        get: (target, property) => {
          if (property === 'query') return query;
          const value: unknown = Reflect.get(target, property, target);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      const ctx: RevisionContext = {
        sql: async (text, params) => stepClient.query(text, params),
        client: stepClient,
        revision: revision.name,
        direction,
        log,
      };
      // the session idle between two of its statements: belay's transaction ended, whatever the module opened after
      let idle = false;
      const sawIdle = ({ status }: { status?: string }): void => {
        if (status === 'I') idle = true;
      };
      const { connection } = client as Client;
      connection.on('readyForQuery', sawIdle);
      let failed: { error: unknown } | undefined;
      try {
        const result = await runModuleStep(() => fn.call(mod, ctx), { revision: revision.name, signal, late });
        if (direction === 'verify' && result === false) throw new Error('verify(ctx) returned false');
      } catch (error) {
        failed = { error };
      } finally {
        ended = true;
        connection.off('readyForQuery', sawIdle);
      }
      if (xid !== undefined && (idle || (await endedTransaction(client, xid)))) {
        const then = failed ? `; then it failed: ${messageWithCauses(failed.error)}` : '';
        throw new RevisionFailedError(
          {
            ...where,
            message: `it ended belay's transaction (a COMMIT or ROLLBACK of its own): what it did may be partly committed${then}`,
            transactional: false,
            next: `If ${basename(revision.files.up)} manages its own transactions, make its first line \`// belay:no-transaction\`; otherwise take its COMMIT, ROLLBACK and BEGIN out.`,
          },
          failed ? { cause: failed.error } : undefined,
        );
      }
      if (failed) {
        const { error } = failed;
        throw new RevisionFailedError(failureFromError(error, { ...where, line: lineIn(error, revision.files.up), transactional }), { cause: error });
      }
      return closing === undefined ? undefined : (await simpleQueryResults(client, closing)).at(-1);
    },
  };
}

/**
 * Whether the transaction `xid` that belay opened for a module is over: the
 * module sent a COMMIT or ROLLBACK (BEGIN … COMMIT of its own among them),
 * and what it ran after it ran outside belay's transaction. A block left
 * aborted refuses the question: rolled back first, it is asked whether `xid`
 * committed (a COMMIT and BEGIN of the module's own before the statement that
 * failed). Not seen: its ROLLBACK and BEGIN sent in one query with what failed.
 */
async function endedTransaction(client: ClientBase, xid: string): Promise<boolean> {
  const ended = async (question: string): Promise<boolean> => (await client.query<{ ended: boolean }>(question, [xid])).rows[0]?.ended === true;
  try {
    return await ended('SELECT txid_current_if_assigned() IS DISTINCT FROM $1::bigint AS ended');
  } catch {
    return client
      .query('ROLLBACK')
      .then(() => ended("SELECT txid_status($1::bigint) = 'committed' AS ended"))
      .catch(() => false);
  }
}

/** A revision with a file that is not text cannot be planned, let alone run: refused wherever it is first read. */
async function assertText(revision: Revision): Promise<void> {
  for (const file of [revision.files.up, revision.files.down, revision.files.verify]) {
    if (file === undefined) continue;
    const { notText } = await scriptOf(revision, file);
    if (notText) {
      throw preflightError(`revision ${revision.name}: ${basename(file)}:${notText.line}: invalid byte sequence for encoding "UTF8": ${notText.bytes}`, {
        hint: `Save ${basename(file)} as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8), and remove any NUL byte. Nothing was changed.`,
        details: { file, line: notText.line, bytes: notText.bytes },
      });
    }
  }
}

/** The step that applies (`up`) or reverts (`down`) a revision. */
export async function prepareStep(revision: Revision, direction: Direction): Promise<PreparedStep> {
  if (revision.kind === 'module') {
    const step = await prepareModule(revision, direction);
    if (!step) throw new IrreversibleRevisionError(revision.name);
    return step;
  }
  await assertText(revision);
  const file = direction === 'up' ? revision.files.up : revision.files.down;
  if (!file) throw new IrreversibleRevisionError(revision.name);
  return prepareSql(revision, file, direction);
}

export async function prepareVerify(revision: Revision): Promise<PreparedStep | undefined> {
  if (revision.kind === 'module') return prepareModule(revision, 'verify');
  return revision.files.verify ? prepareSql(revision, revision.files.verify, 'verify') : undefined;
}

/** Whether the module exports a down; SQL revisions answer from their files. */
export async function isReversible(revision: Revision): Promise<boolean> {
  if (revision.kind === 'sql') return revision.files.down !== undefined;
  return typeof (await moduleOf(revision)).down === 'function';
}
