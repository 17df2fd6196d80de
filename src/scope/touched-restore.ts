import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import type { ClientBase } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { digestSnapshot } from '../backup/digest.js';
import type { Manifest, SnapshotScope } from '../backup/manifest.js';
import { runLibpqChild, type BackupTools } from '../backup/pg-tools.js';
import { quoteIdent, quoteQualified } from '../db/ident.js';
import { BelayError, errorMessage } from '../errors.js';
import { fingerprintTables, type Fingerprint } from '../integrity/fingerprint.js';
import { splitSql } from '../migrations/split-sql.js';

export interface TouchedRestoreOptions {
  /** A session on the target, outside any transaction: the restore is one transaction on it. */
  client: ClientBase;
  manifest: Manifest;
  tools: BackupTools;
  env: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export interface TouchedRestoreOutcome {
  /** The schema that now holds the damaged tables and what the run created; kept, never dropped by belay. */
  quarantineSchema: string;
  /** "schema.table → quarantine.table" for each damaged table kept, and each object of the run moved aside. */
  quarantined: string[];
  /** The tables (and sequences) put back from the snapshot, verified against its fingerprint. */
  restored: string[];
}

// no connection: pg_restore only reads the archive
const NO_SERVER = { host: '/nonexistent', port: 5432, user: 'none', database: 'none', source: 'none' };

const stamp = (): string => new Date().toISOString().replace(/[-:]/g, '').replace(/\.(\d+)Z$/, '$1').toLowerCase();

/** The archive's TOC lines of the scope: by catalog id where the archive has one, else by name (ACL, COMMENT, sequence ownership and value). */
function selectEntries(listing: string, scope: SnapshotScope): string[] {
  const ids = new Set(scope.objects.map(([classid, objid]) => `${classid} ${objid}`));
  const prefixes = scope.tables.flatMap(({ schema, name, kind }) =>
    kind === 'table'
      ? [`ACL ${schema} TABLE ${name} `, `ACL ${schema} COLUMN ${name}.`, `COMMENT ${schema} TABLE ${name} `, `COMMENT ${schema} COLUMN ${name}.`]
      : [`ACL ${schema} SEQUENCE ${name} `, `COMMENT ${schema} SEQUENCE ${name} `, `SEQUENCE OWNED BY ${schema} ${name} `, `SEQUENCE SET ${schema} ${name} `],
  );
  return listing.split('\n').filter((line) => {
    const match = /^\d+; (\d+) (\d+) (.*)$/.exec(line);
    if (!match) return false;
    const [, classid, objid, rest] = match;
    if (ids.has(`${classid} ${objid}`)) return true;
    return classid === '0' && objid === '0' && prefixes.some((prefix) => rest!.startsWith(prefix));
  });
}

/** pg_restore's script of one section for the selected entries, as statements (its SET lines dropped: the transaction sets its own). */
async function sectionStatements(options: TouchedRestoreOptions, listFile: string, section: 'pre-data' | 'post-data'): Promise<string[]> {
  const outcome = await runLibpqChild(options.tools.pgRestore, [`--section=${section}`, '--no-owner', `--use-list=${listFile}`, '--file=-', options.manifest.path], {
    params: NO_SERVER,
    env: options.env,
    timeoutMs: options.timeoutMs ?? 30 * 60_000,
    signal: undefined,
  });
  if (outcome.code !== 0) throw new Error(`pg_restore --section=${section} failed: ${outcome.stderrTail.trim()}`);
  // recent pg_restore brackets its script in \restrict/\unrestrict psql commands: not SQL
  const script = outcome.stdout.split('\n').filter((line) => !/^\\(un)?restrict /.test(line)).join('\n');
  return splitSql(script)
    .statements.map((statement) => statement.text)
    .filter((text) => !/^SET\s/i.test(text) && !/^SELECT pg_catalog\.set_config\(/i.test(text));
}

/**
 * Stream the data section (COPY blocks and sequence values) from pg_restore
 * into the open transaction: rows go through COPY FROM STDIN, never into memory whole.
 */
async function loadData(options: TouchedRestoreOptions, listFile: string): Promise<void> {
  const child = spawn(options.tools.pgRestore.path, ['--section=data', '--data-only', `--use-list=${listFile}`, '--file=-', options.manifest.path], {
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = once(child, 'close') as Promise<[number | null]>;
  const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs ?? 6 * 3600_000);
  try {
    let copy: { stream: ReturnType<typeof copyFrom>; done: Promise<void> } | undefined;
    for await (const line of createInterface({ input: child.stdout, crlfDelay: Infinity })) {
      if (copy) {
        if (line === '\\.') {
          copy.stream.end();
          await copy.done;
          copy = undefined;
        } else if (!copy.stream.write(`${line}\n`)) {
          await Promise.race([once(copy.stream, 'drain'), copy.done]);
        }
      } else if (/^COPY .* FROM stdin;$/.test(line)) {
        const stream = options.client.query(copyFrom(line.slice(0, -1)));
        // listening from the start: a COPY the server refuses must reject here, not crash the process
        const done = finished(stream);
        done.catch(() => {});
        copy = { stream, done };
      } else if (/^SELECT pg_catalog\.setval\(/.test(line)) {
        await options.client.query(line);
      }
    }
    const [code] = await exited;
    if (copy) {
      // pg_restore stopped inside a table's rows: fail the COPY (the transaction then rolls back)
      copy.stream.destroy(new Error('pg_restore stopped in the middle of a table'));
      await copy.done.catch(() => {});
    }
    if (code !== 0 || copy) throw new Error(`pg_restore --data-only failed: ${stderr.trim() || `exit ${code}`}`);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null) child.kill('SIGTERM');
  }
}

async function exists(client: ClientBase, fn: 'to_regclass' | 'to_regtype' | 'to_regprocedure', name: string): Promise<boolean> {
  const { rows } = await client.query<{ found: boolean }>(`SELECT ${fn}($1) IS NOT NULL AS found`, [name]);
  return rows[0]?.found === true;
}

async function ownedSequence(client: ClientBase, qualified: string): Promise<boolean> {
  const { rows } = await client.query<{ owned: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_depend WHERE classid = 'pg_class'::regclass AND objid = to_regclass($1) AND refclassid = 'pg_class'::regclass AND deptype IN ('a', 'i')) AS owned`,
    [qualified],
  );
  return rows[0]?.owned === true;
}

const ALTER_KEYWORD: Record<string, string> = {
  table: 'TABLE',
  'partitioned table': 'TABLE',
  view: 'VIEW',
  'materialized view': 'MATERIALIZED VIEW',
  sequence: 'SEQUENCE',
  'foreign table': 'FOREIGN TABLE',
  type: 'TYPE',
  function: 'ROUTINE',
};

/** Move a relation, type or routine into the quarantine schema, renamed first when that name is taken there. */
async function quarantine(client: ClientBase, keyword: string, object: { schema: string; name: string; args?: string }, schema: string, taken: Set<string>): Promise<string> {
  const ref = (name: string): string => `${quoteQualified(object.schema, name)}${object.args === undefined ? '' : `(${object.args})`}`;
  let kept = object.name;
  for (let n = 2; taken.has(kept); n++) kept = `${object.name.slice(0, 55)}_${n}`;
  taken.add(kept);
  if (kept !== object.name) await client.query(`ALTER ${keyword} ${ref(object.name)} RENAME TO ${quoteIdent(kept)}`);
  await client.query(`ALTER ${keyword} ${ref(kept)} SET SCHEMA ${quoteIdent(schema)}`);
  return kept;
}

/**
 * The run's objects and the damaged tables out of the way, into the
 * quarantine schema; the foreign keys that other tables hold onto a damaged
 * table are dropped (the snapshot's are re-made onto the restored one).
 */
async function clearTheWay(client: ClientBase, scope: SnapshotScope, schema: string): Promise<string[]> {
  const moved: string[] = [];
  const taken = new Set<string>();
  for (const object of scope.created) {
    const keyword = ALTER_KEYWORD[object.kind];
    if (!keyword) continue;
    const qualified = quoteQualified(object.schema, object.name);
    const fn = object.kind === 'type' ? 'to_regtype' : object.kind === 'function' ? 'to_regprocedure' : 'to_regclass';
    if (!(await exists(client, fn, object.kind === 'function' ? `${qualified}(${object.args ?? ''})` : qualified))) continue;
    // a sequence a column owns moves with its table (and cannot move alone)
    if (object.kind === 'sequence' && (await ownedSequence(client, qualified))) continue;
    const kept = await quarantine(client, keyword, object, schema, taken);
    moved.push(`${object.kind} ${object.schema}.${object.name} → ${schema}.${kept}`);
  }
  const tables = scope.tables.filter((t) => t.kind === 'table');
  const { rows: foreignKeys } = await client.query<{ schema: string; table: string; name: string }>(
    `WITH t AS (SELECT to_regclass(q) AS oid FROM unnest($1::text[]) AS q)
     SELECT n.nspname AS schema, c.relname AS table, con.conname AS name
       FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE con.contype = 'f' AND con.confrelid IN (SELECT oid FROM t)
        AND con.conrelid NOT IN (SELECT oid FROM t WHERE oid IS NOT NULL) AND n.nspname <> $2`,
    [tables.map((t) => quoteQualified(t.schema, t.name)), schema],
  );
  for (const fk of foreignKeys) await client.query(`ALTER TABLE ${quoteQualified(fk.schema, fk.table)} DROP CONSTRAINT ${quoteIdent(fk.name)}`);
  // tables first: their owned sequences go with them
  for (const relation of [...tables, ...scope.tables.filter((t) => t.kind === 'sequence')]) {
    if (!(await exists(client, 'to_regclass', quoteQualified(relation.schema, relation.name)))) continue;
    const kept = await quarantine(client, relation.kind === 'table' ? 'TABLE' : 'SEQUENCE', relation, schema, taken);
    moved.push(`${relation.schema}.${relation.name} → ${schema}.${kept}`);
  }
  return moved;
}

function verify(restored: Fingerprint, baseline: Fingerprint): string[] {
  const differences: string[] = [];
  for (const [table, expected] of Object.entries(baseline.tables)) {
    const got = restored.tables[table];
    if (!got) differences.push(`${table} is missing`);
    else if (got.rowCount !== expected.rowCount || got.rowHash !== expected.rowHash) {
      differences.push(`${table}: ${got.rowCount} rows (hash ${got.rowHash}), the snapshot had ${expected.rowCount} (hash ${expected.rowHash})`);
    }
  }
  return differences;
}

/**
 * Put a touched snapshot's tables back, in place, in one transaction: the
 * damaged tables and what the run created move into a new quarantine schema
 * (kept), the snapshot's tables are re-created with their indexes,
 * constraints, triggers, grants and sequences, their rows loaded, and the
 * result checked against the snapshot's fingerprint before it commits. No
 * other table is rewritten (only the foreign keys of other tables that
 * reference a restored one are re-made, which reads them).
 */
export async function restoreTouched(options: TouchedRestoreOptions): Promise<TouchedRestoreOutcome> {
  const { client, manifest } = options;
  const scope = manifest.scope;
  if (!scope) throw new BelayError('usage', `snapshot ${manifest.id} is a full snapshot, not a touched one`, { hint: 'Restore it with `belay restore ID`.' });
  const baseline = manifest.fingerprint as Fingerprint | null;
  if (!baseline) throw new BelayError('manual', `touched snapshot ${manifest.id} has no fingerprint to verify a restore against`, { hint: 'Restore a full snapshot instead: `belay backups list`.' });
  let digest: { sha256: string };
  try {
    digest = await digestSnapshot(manifest.path);
  } catch {
    throw new BelayError('manual', `snapshot ${manifest.id} is missing: ${manifest.path}`, { hint: 'Nothing was restored. Restore a full snapshot instead: `belay backups list`.' });
  }
  if (digest.sha256 !== manifest.sha256) {
    throw new BelayError('manual', `snapshot ${manifest.id} does not match its manifest (sha256 ${digest.sha256}): it was changed or damaged`, {
      hint: 'Nothing was restored. Restore a full snapshot instead: `belay backups list`.',
    });
  }
  const dir = await mkdtemp(join(tmpdir(), 'belay-touched-restore-'));
  const quarantineSchema = `belay_quarantine_${stamp()}`;
  try {
    const listing = await runLibpqChild(options.tools.pgRestore, ['--list', manifest.path], { params: NO_SERVER, env: options.env, timeoutMs: 10 * 60_000, signal: undefined });
    if (listing.code !== 0) throw new Error(`pg_restore --list failed: ${listing.stderrTail.trim()}`);
    const listFile = join(dir, 'entries.list');
    await writeFile(listFile, `${selectEntries(listing.stdout, scope).join('\n')}\n`, { mode: 0o600 });
    const [pre, post] = [await sectionStatements(options, listFile, 'pre-data'), await sectionStatements(options, listFile, 'post-data')];
    await client.query('BEGIN');
    try {
      // the archive's statements qualify every name, as pg_restore runs them
      await client.query("SET LOCAL search_path = ''");
      await client.query('SET LOCAL check_function_bodies = false');
      await client.query(`CREATE SCHEMA ${quoteIdent(quarantineSchema)}`);
      const quarantined = await clearTheWay(client, scope, quarantineSchema);
      for (const statement of pre) await client.query(statement);
      await loadData(options, listFile);
      for (const statement of post) await client.query(statement);
      const tables = scope.tables.filter((t) => t.kind === 'table').map((t) => ({ schema: t.schema, table: t.name }));
      const restored = await fingerprintTables(client, tables, { perColumn: false, inTransaction: true });
      const differences = verify(restored, baseline);
      if (differences.length > 0) throw new Error(`the restored tables do not match the snapshot's fingerprint: ${differences.join('; ')}`);
      await client.query('COMMIT');
      return { quarantineSchema, quarantined, restored: scope.tables.map((t) => `${t.schema}.${t.name}`) };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    }
  } catch (error) {
    if (error instanceof BelayError) throw error;
    throw new BelayError('manual', `the targeted restore of snapshot ${manifest.id} failed and was rolled back, so the database is as it was before it: ${errorMessage(error)}`, {
      hint: `Restore the full database instead, or fix what the message names and run the restore again (the snapshot is ${manifest.path}).`,
      cause: error,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
