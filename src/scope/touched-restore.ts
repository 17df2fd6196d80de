import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import type { ClientBase } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { snapshotProblem } from '../backup/digest.js';
import type { Manifest, SnapshotScope } from '../backup/manifest.js';
import { childFailure, runLibpqChild, type BackupTools } from '../backup/pg-tools.js';
import { quoteIdent, quoteQualified } from '../db/ident.js';
import { BelayError, errorMessage } from '../errors.js';
import { fingerprintTables, hashingOf, type Fingerprint } from '../integrity/fingerprint.js';
import { splitSql } from '../migrations/split-sql.js';
import { ownWorkDir, WORK_DIRS } from '../temp-dirs.js';

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
  /**
   * What was cut between the quarantine and the live objects so that neither
   * constrains the other (foreign keys either way, triggers, rules, policies and
   * defaults that use live objects, live defaults on a quarantined sequence), each
   * "what (its definition)"; the rows are untouched.
   */
  severed: string[];
  /** Ties between the quarantine and live objects that could not be cut without changing the kept tables (a column of a live type, a view on a live table). */
  stillTied: string[];
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
  if (outcome.code !== 0) throw new Error(`pg_restore --section=${section} failed: ${childFailure(outcome)}`);
  // recent pg_restore brackets its script in \restrict/\unrestrict, which splitSql passes over
  return splitSql(outcome.stdout)
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
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
  }, options.timeoutMs ?? 6 * 3600_000);
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
    const [code, signal] = await exited;
    if (copy) {
      // pg_restore stopped inside a table's rows: fail the COPY (the transaction then rolls back)
      copy.stream.destroy(new Error('pg_restore stopped in the middle of a table'));
      await copy.done.catch(() => {});
    }
    if (code !== 0 || copy) throw new Error(`pg_restore --data-only failed: ${childFailure({ code, signal, stdout: '', stderrTail: stderr, timedOut })}`);
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
async function clearTheWay(client: ClientBase, scope: SnapshotScope, schema: string): Promise<{ moved: string[]; origins: Map<string, { schema: string; name: string }>; droppedForeignKeys: Array<{ schema: string; table: string; name: string; onto: string; definition: string }> }> {
  const moved: string[] = [];
  // kept name in the quarantine → where it came from, for a live default still on a moved sequence
  const origins = new Map<string, { schema: string; name: string }>();
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
    origins.set(kept, { schema: object.schema, name: object.name });
    moved.push(`${object.kind} ${object.schema}.${object.name} → ${schema}.${kept}`);
  }
  const tables = scope.tables.filter((t) => t.kind === 'table');
  const { rows: foreignKeys } = await client.query<{ schema: string; table: string; name: string; onto: string; definition: string }>(
    `WITH t AS (SELECT to_regclass(q) AS oid FROM unnest($1::text[]) AS q)
     SELECT n.nspname AS schema, c.relname AS table, con.conname AS name, con.confrelid::regclass::text AS onto, pg_get_constraintdef(con.oid) AS definition
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
    origins.set(kept, { schema: relation.schema, name: relation.name });
    moved.push(`${relation.schema}.${relation.name} → ${schema}.${kept}`);
  }
  return { moved, origins, droppedForeignKeys: foreignKeys };
}

/** One dependency between an object of the quarantine schema and a live one (either way), as pg_depend has it. */
interface Crossing {
  classid: string;
  objid: string;
  /** The namespace of the dependent object's owner is the quarantine schema. */
  dependentInQuarantine: boolean;
  dependent: string;
  referenced: string;
  refclassid: string;
  refobjid: string;
}

/**
 * The dependencies that cross the quarantine's border: an object in the
 * quarantine schema (a relation, or a constraint, trigger, default, rule or
 * policy of one, a routine, a type) on a user object outside it, or the
 * reverse. System objects (pg_catalog) are not user objects; the internal
 * dependencies (a foreign key's triggers on its own constraint) go with
 * their owner.
 */
const CROSSINGS = `
WITH owner(classid, objid, nsp) AS (
  SELECT 'pg_class'::regclass, c.oid, c.relnamespace FROM pg_class c
  UNION ALL SELECT 'pg_constraint'::regclass, con.oid, coalesce(c.relnamespace, con.connamespace) FROM pg_constraint con LEFT JOIN pg_class c ON c.oid = con.conrelid
  UNION ALL SELECT 'pg_trigger'::regclass, t.oid, c.relnamespace FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
  UNION ALL SELECT 'pg_attrdef'::regclass, d.oid, c.relnamespace FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid
  UNION ALL SELECT 'pg_rewrite'::regclass, r.oid, c.relnamespace FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
  UNION ALL SELECT 'pg_policy'::regclass, p.oid, c.relnamespace FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
  UNION ALL SELECT 'pg_proc'::regclass, p.oid, p.pronamespace FROM pg_proc p
  UNION ALL SELECT 'pg_type'::regclass, t.oid, t.typnamespace FROM pg_type t
), q AS (SELECT oid FROM pg_namespace WHERE nspname = $1),
sys AS (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema') OR nspname LIKE 'pg\\_toast%')
SELECT DISTINCT d.classid::regclass::text AS classid, d.objid::text AS objid, a.nsp = (SELECT oid FROM q) AS "dependentInQuarantine",
       pg_describe_object(d.classid, d.objid, d.objsubid) AS dependent, pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) AS referenced,
       d.refclassid::regclass::text AS refclassid, d.refobjid::text AS refobjid
  FROM pg_depend d
  JOIN owner a ON a.classid = d.classid AND a.objid = d.objid
  JOIN owner b ON b.classid = d.refclassid AND b.objid = d.refobjid
 WHERE d.deptype IN ('n', 'a')
   AND (a.nsp = (SELECT oid FROM q)) <> (b.nsp = (SELECT oid FROM q))
   AND a.nsp NOT IN (SELECT oid FROM sys) AND b.nsp NOT IN (SELECT oid FROM sys)
 ORDER BY 4, 5`;

/** The kinds of dependent object severQuarantine can cut (the rest are named as still tied). */
const CUT = new Set(['pg_constraint', 'pg_trigger', 'pg_rewrite', 'pg_policy', 'pg_attrdef']);

/**
 * Cut the quarantine loose from the live objects, after the snapshot's
 * tables are back: a quarantined table must neither constrain nor be
 * constrained by a live one (a foreign key onto a live table would refuse
 * deleting a live row, and a later down dropping that table), nor act on
 * live tables (a trigger, a rule), nor hold a live object in place (a
 * default calling a live function or sequence). Those are dropped, each
 * named with its definition; a live default left on a quarantined sequence
 * is pointed at the restored sequence of the same name. The rows are not
 * touched. What cannot be cut without changing the kept tables (a column of
 * a live type, a view on a live table) is reported, not hidden.
 */
async function severQuarantine(client: ClientBase, schema: string, origins: Map<string, { schema: string; name: string }>): Promise<{ severed: string[]; stillTied: string[] }> {
  const severed: string[] = [];
  const stillTied: string[] = [];
  const done = new Set<string>();
  const { rows } = await client.query<Crossing>(CROSSINGS, [schema]);
  for (const row of rows) {
    // an object cut once is cut for all it depended on; a tie left in place is named for each object it holds
    const key = CUT.has(row.classid) ? `${row.classid} ${row.objid}` : `${row.dependent} → ${row.referenced}`;
    if (done.has(key)) continue;
    done.add(key);
    if (row.classid === 'pg_constraint') {
      const { rows: [con] } = await client.query<{ rel: string | null; name: string; onto: string | null; definition: string; fk: boolean }>(
        `SELECT CASE WHEN conrelid <> 0 THEN conrelid::regclass::text END AS rel, conname AS name, CASE WHEN confrelid <> 0 THEN confrelid::regclass::text END AS onto,
                pg_get_constraintdef(oid) AS definition, contype = 'f' AS fk FROM pg_constraint WHERE oid = $1::oid`,
        [row.objid],
      );
      if (!con) continue;
      if (con.rel === null) {
        stillTied.push(`${row.dependent} uses ${row.referenced}`);
        continue;
      }
      await client.query(`ALTER TABLE ${con.rel} DROP CONSTRAINT ${quoteIdent(con.name)}`);
      severed.push(con.fk ? `foreign key ${con.name} of ${con.rel} onto ${con.onto} (${con.definition})` : `constraint ${con.name} of ${con.rel} (${con.definition})`);
    } else if (row.classid === 'pg_trigger') {
      const { rows: [trigger] } = await client.query<{ rel: string; name: string; definition: string }>(
        'SELECT tgrelid::regclass::text AS rel, tgname AS name, pg_get_triggerdef(oid) AS definition FROM pg_trigger WHERE oid = $1::oid',
        [row.objid],
      );
      if (!trigger) continue;
      await client.query(`DROP TRIGGER ${quoteIdent(trigger.name)} ON ${trigger.rel}`);
      severed.push(`trigger ${trigger.name} on ${trigger.rel} (${trigger.definition})`);
    } else if (row.classid === 'pg_rewrite' || row.classid === 'pg_policy') {
      const rule = row.classid === 'pg_rewrite';
      const { rows: [found] } = await client.query<{ rel: string; name: string; definition: string | null }>(
        rule
          ? "SELECT ev_class::regclass::text AS rel, rulename AS name, pg_get_ruledef(oid) AS definition FROM pg_rewrite WHERE oid = $1::oid AND rulename <> '_RETURN'"
          : 'SELECT polrelid::regclass::text AS rel, polname AS name, pg_get_expr(polqual, polrelid) AS definition FROM pg_policy WHERE oid = $1::oid',
        [row.objid],
      );
      if (!found) {
        stillTied.push(`${row.dependent} uses ${row.referenced}`);
        continue;
      }
      await client.query(`DROP ${rule ? 'RULE' : 'POLICY'} ${quoteIdent(found.name)} ON ${found.rel}`);
      severed.push(`${rule ? 'rule' : 'policy'} ${found.name} on ${found.rel} (${found.definition ?? 'no USING expression'})`);
    } else if (row.classid === 'pg_attrdef') {
      const { rows: [def] } = await client.query<{ rel: string; column: string; shown: string; expr: string; generated: boolean }>(
        `SELECT d.adrelid::regclass::text AS rel, a.attname AS column, quote_ident(a.attname) AS shown, pg_get_expr(d.adbin, d.adrelid) AS expr, a.attgenerated <> '' AS generated
           FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.oid = $1::oid`,
        [row.objid],
      );
      if (!def) continue;
      const column = `${def.rel}.${def.shown}`;
      if (row.dependentInQuarantine) {
        // the kept table's rows stay as they are; only what a new row would get is dropped
        await client.query(`ALTER TABLE ${def.rel} ALTER COLUMN ${quoteIdent(def.column)} ${def.generated ? 'DROP EXPRESSION' : 'DROP DEFAULT'}`);
        severed.push(`${def.generated ? 'generation expression' : 'default'} of ${column} (${def.expr})`);
        continue;
      }
      // a live column's default on a sequence that moved into the quarantine: onto the restored one of the same name, when there is one
      const quarantined =
        row.refclassid === 'pg_class'
          ? (
              await client.query<{ name: string; relname: string; kind: string; owner: string | null }>(
                `SELECT s.oid::regclass::text AS name, s.relname, s.relkind::text AS kind,
                        (SELECT t.relname FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS owner
                   FROM pg_class s WHERE s.oid = $1::oid`,
                [row.refobjid],
              )
            ).rows[0]
          : undefined;
      // a sequence a moved table owns went with it, under its own name
      const from = quarantined?.kind !== 'S' ? undefined : (origins.get(quarantined.relname) ?? (quarantined.owner === null ? undefined : { schema: origins.get(quarantined.owner)?.schema, name: quarantined.relname }));
      const origin = from?.schema === undefined ? undefined : quoteQualified(from.schema, from.name);
      const restored = origin === undefined ? undefined : (await client.query<{ name: string | null }>("SELECT to_regclass($1)::text AS name FROM pg_class WHERE oid = to_regclass($1) AND relkind = 'S'", [origin])).rows[0]?.name;
      const literal = `'${quarantined?.name.replace(/'/g, "''")}'::regclass`;
      if (!restored || !quarantined || !def.expr.includes(literal) || def.generated) {
        stillTied.push(`${row.dependent} uses ${row.referenced}`);
        continue;
      }
      await client.query(`ALTER TABLE ${def.rel} ALTER COLUMN ${quoteIdent(def.column)} SET DEFAULT ${def.expr.split(literal).join(`'${restored.replace(/'/g, "''")}'::regclass`)}`);
      severed.push(`default of ${column} pointed from ${quarantined.name} at the restored ${restored} (was ${def.expr})`);
    } else {
      stillTied.push(`${row.dependent} uses ${row.referenced}`);
    }
  }
  // what stays in the quarantine must not act on live tables if someone writes to it: its own triggers kept, but disabled
  const { rows: enabled } = await client.query<{ rel: string; name: string }>(
    `SELECT t.tgrelid::regclass::text AS rel, t.tgname AS name FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND NOT t.tgisinternal AND t.tgenabled <> 'D' ORDER BY 1, 2`,
    [schema],
  );
  for (const trigger of enabled) {
    await client.query(`ALTER TABLE ${trigger.rel} DISABLE TRIGGER ${quoteIdent(trigger.name)}`);
    severed.push(`trigger ${trigger.name} on ${trigger.rel} disabled (kept)`);
  }
  return { severed, stillTied };
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
  const problem = await snapshotProblem(manifest);
  if (problem) throw new BelayError('manual', `snapshot ${manifest.id} ${problem}`, { hint: 'Nothing was restored. Restore a full snapshot instead: `belay backups list`.' });
  const dir = await ownWorkDir(WORK_DIRS.touchedRestore);
  const quarantineSchema = `belay_quarantine_${stamp()}`;
  try {
    const listing = await runLibpqChild(options.tools.pgRestore, ['--list', manifest.path], { params: NO_SERVER, env: options.env, timeoutMs: 10 * 60_000, signal: undefined });
    if (listing.code !== 0) throw new Error(`pg_restore --list failed: ${childFailure(listing)}`);
    const listFile = join(dir, 'entries.list');
    await writeFile(listFile, `${selectEntries(listing.stdout, scope).join('\n')}\n`, { mode: 0o600 });
    const [pre, post] = [await sectionStatements(options, listFile, 'pre-data'), await sectionStatements(options, listFile, 'post-data')];
    await client.query('BEGIN');
    try {
      // the archive's statements qualify every name, as pg_restore runs them; the commit waits for the WAL to be
      // flushed even on a server whose commits do not, as a whole database's restore does
      await client.query("SET LOCAL search_path = ''; SET LOCAL synchronous_commit = on");
      await client.query('SET LOCAL check_function_bodies = false');
      await client.query(`CREATE SCHEMA ${quoteIdent(quarantineSchema)}`);
      const { moved: quarantined, origins, droppedForeignKeys } = await clearTheWay(client, scope, quarantineSchema);
      for (const statement of pre) await client.query(statement);
      await loadData(options, listFile);
      for (const statement of post) await client.query(statement);
      const severed: string[] = [];
      for (const fk of droppedForeignKeys) {
        const { rows } = await client.query<{ found: boolean }>('SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2) AS found', [quoteQualified(fk.schema, fk.table), fk.name]);
        const where = `${fk.schema}.${fk.table}`;
        severed.push(`foreign key ${fk.name} of ${where} onto ${fk.onto} (${rows[0]?.found ? 're-made onto the restored table' : `not in the snapshot, not re-made: ${fk.definition}`})`);
      }
      const cut = await severQuarantine(client, quarantineSchema, origins);
      severed.push(...cut.severed);
      const tables = scope.tables.filter((t) => t.kind === 'table').map((t) => ({ schema: t.schema, table: t.name }));
      const restored = await fingerprintTables(client, tables, { perColumn: false, inTransaction: true, hashing: hashingOf(baseline) });
      const differences = verify(restored, baseline);
      if (differences.length > 0) throw new Error(`the restored tables do not match the snapshot's fingerprint: ${differences.join('; ')}`);
      await client.query('COMMIT');
      return { quarantineSchema, quarantined, restored: scope.tables.map((t) => `${t.schema}.${t.name}`), severed, stillTied: cut.stillTied };
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
