import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quoteIdent } from '../src/db/ident.js';
import { stoppedReadAdvice } from '../src/db/sqlstate.js';
import { belay, startBelay } from './support/cli.js';
import { adminQuery, freshDatabase, TEST_APP_ROLE, type TestDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

type JournalLine = Record<string, unknown>;

async function journalOf(backups: string, runId: string): Promise<JournalLine[]> {
  const text = await readFile(join(backups, 'journal', `${runId}.jsonl`), 'utf8');
  return text.trim().split('\n').map((line) => JSON.parse(line) as JournalLine);
}

const endedSteps = (lines: JournalLine[]): string[] =>
  lines.filter((l) => l.type === 'step' && l.event === 'end').map((l) => `${[l.step, l.revision].filter(Boolean).join(' ')} ${String(l.outcome)}`);

/** Every string in a JSON document, to read what it says whatever its shape. */
const stringsIn = (value: unknown): string[] =>
  typeof value === 'string' ? [value] : value !== null && typeof value === 'object' ? Object.values(value).flatMap(stringsIn) : [];

const appliedNames = async (db: TestDatabase): Promise<string[]> =>
  (await db.query<{ name: string }>('SELECT name FROM belay.migrations ORDER BY name')).map((row) => row.name);

/** What a revision sees of its session, recorded in public.probes from inside it. */
const PROBE = `INSERT INTO public.probes SELECT $$AT$$, current_setting('search_path'), current_user, session_user,
  current_setting('lock_timeout'), current_setting('statement_timeout'), current_setting('application_name'),
  current_setting('client_connection_check_interval'), current_setting('default_transaction_read_only'),
  (SELECT count(*) FROM pg_prepared_statements)::int,
  (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::int,
  (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())::int;`;
const probe = (at: string): string => PROBE.replace('$$AT$$', `'${at}'`);

const otherRole = `belay_fx_${randomBytes(4).toString('hex')}`;

/** Revision 0003 does `change` to its session, in its up and in its down; 0002 and 0004 around it must not see it. */
function sessionRevisions(change: string): Record<string, string> {
  return {
    '0001_probes.up.sql': `CREATE SCHEMA other;
CREATE TABLE public.probes (at text, search_path text, current_role_name text, session_role text, lock_timeout text, statement_timeout text,
  application_name text, check_interval text, read_only text, prepared int, advisory_locks int, temp_tables int);
GRANT INSERT ON public.probes TO PUBLIC;
GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC;`,
    '0001_probes.down.sql': 'DROP TABLE public.probes;\nDROP SCHEMA other;',
    '0002_widgets.up.sql': `${probe('0002 up')}\nCREATE TABLE widgets (id int);\nINSERT INTO widgets VALUES (1);`,
    '0002_widgets.down.sql': `${probe('0002 down')}\nDROP TABLE widgets;`,
    '0003_session.up.sql': change,
    '0003_session.down.sql': change,
    '0004_gadgets.up.sql': `${probe('0004 up')}\nCREATE TABLE gadgets (id int);\nINSERT INTO gadgets VALUES (1);`,
    '0004_gadgets.down.sql': `${probe('0004 down')}\nDROP TABLE gadgets;`,
  };
}

const SESSION_CHANGES: Array<{ name: string; change: string; superuser?: boolean }> = [
  { name: 'SET search_path', change: 'SET search_path = other;' },
  { name: 'set_config(search_path, …, false)', change: "SELECT set_config('search_path', 'other', false);" },
  { name: 'SET ROLE', change: `SET ROLE ${otherRole};` },
  { name: 'SET SESSION AUTHORIZATION', change: `SET SESSION AUTHORIZATION ${TEST_APP_ROLE};`, superuser: true },
  { name: 'a temporary table named like the next revision’s', change: 'CREATE TEMP TABLE gadgets (id int);\nCREATE TEMP TABLE widgets (id int);' },
  { name: 'a prepared statement', change: 'PREPARE leftover AS SELECT 1;' },
  { name: 'a session advisory lock', change: 'SELECT pg_advisory_lock(4242);' },
  { name: 'SET lock_timeout and statement_timeout', change: 'SET lock_timeout = 0;\nSET statement_timeout = 0;' },
  { name: 'SET application_name', change: "SET application_name = 'someone else';" },
  { name: 'SET client_connection_check_interval', change: 'SET client_connection_check_interval = 0;' },
  { name: 'SET default_transaction_read_only', change: 'SET default_transaction_read_only = on;' },
];

describe('each revision starts from the session belay opened', () => {
  beforeAll(async () => {
    await adminQuery('postgres', `CREATE ROLE ${quoteIdent(otherRole)} NOLOGIN`);
    await adminQuery('postgres', `GRANT ${quoteIdent(otherRole)} TO ${quoteIdent(TEST_APP_ROLE)}`);
  });
  afterAll(async () => {
    await adminQuery('postgres', `DROP ROLE IF EXISTS ${quoteIdent(otherRole)}`);
  });

  it.each(SESSION_CHANGES)('$name in one revision reaches neither the next revision nor the next down', async ({ change, superuser }) => {
    const db = await freshDatabase();
    // a statement_timeout that differs from the server's default, so that a revision changing it shows
    const project = await makeProject(sessionRevisions(change), { database: { statementTimeoutSeconds: 600 }, integrity: { tables: { exclude: ['public.probes'] } } });
    const args = [...baseArgs(project, superuser ? db.adminUrl : db.url), '--config', join(project.dir, 'belay.config.json')];

    const up = await belay([...args, '--json', 'migrate', 'up']);
    expect(up.code, up.stderr).toBe(0);
    expect(await appliedNames(db)).toEqual(['0001_probes', '0002_widgets', '0003_session', '0004_gadgets']);
    // the objects of the revision after the change are where and whose they would be without it
    const placed = await db.query(
      `SELECT c.relname, n.nspname, pg_get_userbyid(c.relowner) AS owner, c.relpersistence FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname IN ('widgets', 'gadgets') ORDER BY c.relname`,
    );
    const owner = superuser ? (await db.query<{ u: string }>('SELECT current_user AS u'))[0]!.u : TEST_APP_ROLE;
    expect(placed).toEqual([
      { relname: 'gadgets', nspname: 'public', owner, relpersistence: 'p' },
      { relname: 'widgets', nspname: 'public', owner, relpersistence: 'p' },
    ]);
    expect(await db.query('SELECT (SELECT count(*) FROM public.widgets)::int AS w, (SELECT count(*) FROM public.gadgets)::int AS g')).toEqual([{ w: 1, g: 1 }]);
    const upJournal = endedSteps(await journalOf(project.backups, (JSON.parse(up.stdout).result as { runId: string }).runId));
    expect(upJournal).toContain('apply 0004_gadgets ok');

    // the downs run in one session too: 0003's down changes it, 0002's down must not see that
    const down = await belay([...args, '--json', '--yes', 'rollback', '--to', '0001']);
    expect(down.code, down.stderr).toBe(0);
    expect(await appliedNames(db)).toEqual(['0001_probes']);
    expect(await db.query("SELECT relname FROM pg_class WHERE relname IN ('widgets', 'gadgets')")).toEqual([]);
    const downJournal = endedSteps(await journalOf(project.backups, (JSON.parse(down.stdout).result as { runId: string }).runId));
    expect(downJournal).toEqual(expect.arrayContaining(['down 0004_gadgets ok', 'down 0003_session ok', 'down 0002_widgets ok']));

    // every probe saw the same session, whether it came first in its run or right after the change
    const probes = await db.query<Record<string, unknown>>('SELECT * FROM public.probes ORDER BY at');
    expect(probes.map((p) => p.at)).toEqual(['0002 down', '0002 up', '0004 down', '0004 up']);
    const first = probes.find((p) => p.at === '0002 up')!;
    const { at: _at, application_name: _app, ...session } = first;
    expect(session).toMatchObject({ search_path: '"$user", public', prepared: 0, advisory_locks: 0, temp_tables: 0, read_only: 'off' });
    expect(session).toMatchObject({ lock_timeout: '10s', statement_timeout: '10min', check_interval: '2s' });
    for (const p of probes) {
      const { at, application_name, ...rest } = p;
      expect(rest, String(at)).toEqual(session);
      expect(application_name, String(at)).toMatch(/^belay (migrate-up|rollback) \S+ work$/);
    }
  });
});

const OK_0001 = { '0001_notes.up.sql': 'CREATE TABLE notes (id int, body text);', '0001_notes.down.sql': 'DROP TABLE notes;' };

const UNREADABLE: Array<{ name: string; files: Record<string, string | Buffer>; where: string; says: RegExp; packageJson?: object }> = [
  {
    name: 'Latin-1 bytes in an .up.sql',
    files: {
      '0002_cafe.up.sql': Buffer.concat([Buffer.from("CREATE TABLE cafe (id int);\n-- the menu\nINSERT INTO notes VALUES (1, 'caf"), Buffer.from([0xe9]), Buffer.from("');\n")]),
      '0002_cafe.down.sql': 'DROP TABLE cafe;\nDELETE FROM notes;',
    },
    where: '0002_cafe.up.sql:3',
    says: /invalid byte sequence for encoding "UTF8": 0xe9/,
  },
  {
    name: 'a NUL byte in a .down.sql',
    files: { '0002_cafe.up.sql': 'CREATE TABLE cafe (id int);', '0002_cafe.down.sql': Buffer.from('DROP TABLE cafe;\n\0DROP TABLE notes;\n') },
    where: '0002_cafe.down.sql:2',
    says: /invalid byte sequence for encoding "UTF8": 0x00/,
  },
  {
    name: 'an overlong UTF-8 form in a .verify.sql',
    files: {
      '0002_cafe.up.sql': 'CREATE TABLE cafe (id int);',
      '0002_cafe.down.sql': 'DROP TABLE cafe;',
      '0002_cafe.verify.sql': Buffer.concat([Buffer.from("SELECT '"), Buffer.from([0xc0, 0xaf]), Buffer.from("' IS NOT NULL;")]),
    },
    where: '0002_cafe.verify.sql:1',
    says: /invalid byte sequence for encoding "UTF8": 0xc0 0xaf/,
  },
  {
    name: 'a syntax error in an .mjs',
    files: { '0002_cafe.mjs': "export async function up(ctx) {\n  await ctx.sql('CREATE TABLE cafe (id int)');\n  const x = = 1;\n}\nexport async function down(ctx) {}\n" },
    where: '0002_cafe.mjs:3',
    says: /a syntax error at 0002_cafe\.mjs:3: Unexpected token/,
  },
  {
    name: 'a top-level throw in a .js',
    files: { '0002_cafe.js': "const url = undefined;\nif (!url) throw new Error('CAFE_URL is not set');\nexport async function up(ctx) {}\nexport async function down(ctx) {}\n" },
    packageJson: { type: 'module' },
    where: '0002_cafe.js:2',
    says: /an error thrown while loading it at 0002_cafe\.js:2: CAFE_URL is not set/,
  },
  {
    name: 'a syntax error in a .ts',
    files: { '0002_cafe.ts': "import type { RevisionContext } from 'pg-belay';\n\nexport async function up(ctx: RevisionContext) {\n  const x: number = = 1;\n}\nexport async function down() {}\n" },
    where: '0002_cafe.ts:4',
    says: /a syntax error at 0002_cafe\.ts:4: Unexpected "="/,
  },
  {
    name: 'a top-level throw in a .ts of a CommonJS project',
    files: { '0002_cafe.ts': "interface Menu { items: string[] }\nconst menu: Menu = { items: [] };\nif (menu.items.length === 0) throw new Error('empty menu');\nexport async function up() {}\nexport async function down() {}\n" },
    where: '0002_cafe.ts:3',
    says: /an error thrown while loading it at 0002_cafe\.ts:3: empty menu/,
  },
  {
    name: 'a top-level throw in a .ts of an ES module project',
    files: { '0002_cafe.ts': "interface Menu { items: string[] }\nconst menu: Menu = { items: [] };\nif (menu.items.length === 0) throw new Error('empty menu');\nexport async function up() {}\nexport async function down() {}\n" },
    packageJson: { type: 'module' },
    where: '0002_cafe.ts:3',
    says: /an error thrown while loading it at 0002_cafe\.ts:3: empty menu/,
  },
];

describe('a revision belay cannot read or load is refused before anything changes (exit 4, file:line)', () => {
  it.each(UNREADABLE)('$name', async ({ files, where, says, packageJson }) => {
    const db = await freshDatabase();
    const project = await makeProject({ ...OK_0001 });
    if (packageJson) await writeFile(join(project.dir, 'package.json'), JSON.stringify(packageJson));
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    for (const [name, content] of Object.entries(files)) await writeFile(join(project.migrations, name), content);

    const plan = await belay([...args, 'plan']);
    expect(plan.code, plan.stderr).toBe(4);
    expect(plan.stderr).toContain(where);
    expect(plan.stderr).toMatch(says);
    expect(plan.stderr).toMatch(/next: /);

    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(4);
    // --json: one document naming the file and line, and what to do
    const said = stringsIn(JSON.parse(run.stdout)).join('\n');
    const [file, line] = where.split(':');
    expect(said).toMatch(new RegExp(`${file!.replaceAll('.', '\\.')}(:| line )${line}\\b`));
    expect(said).toMatch(says);
    expect(said).toMatch(/Nothing was changed/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    // nothing ran: no table, no record, no U+FFFD anywhere
    expect(await appliedNames(db)).toEqual(['0001_notes']);
    expect(await db.query("SELECT to_regclass('cafe') AS t, (SELECT count(*) FROM notes)::int AS n")).toEqual([{ t: null, n: 0 }]);
    // the journal file of the refused run says where and why
    const journals = (await readdir(join(project.backups, 'journal'))).sort();
    const lines = await journalOf(project.backups, journals[journals.length - 1]!.replace(/\.jsonl$/, ''));
    expect(lines[0]).toMatchObject({ type: 'run', command: 'migrate-up' });
    expect(lines[lines.length - 1]).toMatchObject({ type: 'outcome', status: 'refused', exitCode: 4 });
    expect(endedSteps(lines)).toEqual(['lock ok', 'plan ok', 'preflight failed']);
    expect(stringsIn(lines).join('\n')).toMatch(says);
  });
});

describe('a module revision without the functions it must export is refused with what to write (exit 2, nothing changed)', () => {
  it.each([
    { name: 'no up()', text: 'const x = 1;\n', says: 'revision 0002_cafe (FILE) does not export an up(ctx) function', next: /^Export an async function up\(ctx\) \(and down\(ctx\)\) from 0002_cafe\.mjs: `export async function up\(ctx\) \{ await ctx\.sql\('…'\); \}`/ },
    { name: 'a down that is not a function', text: 'export async function up(ctx) {}\nexport const down = 1;\n', says: 'revision 0002_cafe exports down, but it is not a function', next: /^Make down in 0002_cafe\.mjs a function \(`export async function down\(ctx\) \{ … \}`\), or remove it/ },
  ])('$name', async ({ text, says, next }) => {
    const db = await freshDatabase();
    const project = await makeProject({ ...OK_0001 });
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const file = join(project.migrations, '0002_cafe.mjs');
    await writeFile(file, text);
    const message = says.replace('FILE', file);

    const plan = await belay([...args, 'plan']);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stderr).toContain(`belay: ${message}`);
    expect(plan.stderr).toMatch(/\n {2}next: \S/);
    expect(plan.stderr.slice(plan.stderr.indexOf('  next: ') + '  next: '.length)).toMatch(next);

    const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup']);
    expect(run.code, run.stderr).toBe(2);
    const document = JSON.parse(run.stdout) as { exitCode: number; message: string; next: string | null };
    expect(document).toMatchObject({ exitCode: 2, message });
    expect(document.next).toMatch(next);
    expect(document.next).toMatch(/Nothing was changed\.$/);
    expect(await appliedNames(db)).toEqual(['0001_notes']);
    expect(await db.query("SELECT to_regclass('cafe') AS t")).toEqual([{ t: null }]);
  });
});

describe("a failing revision tells PostgreSQL's whole error", () => {
  it('shows DETAIL and HINT, in the last line, --json and the journal (exit 10, nothing left applied)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...OK_0001,
      '0002_seed.up.sql': "INSERT INTO notes VALUES (1, 'first');",
      '0002_seed.down.sql': 'DELETE FROM notes;',
      '0003_unique.up.sql': 'ALTER TABLE notes ADD PRIMARY KEY (id);\nINSERT INTO notes VALUES (1, \'again\');',
      '0003_unique.down.sql': 'ALTER TABLE notes DROP CONSTRAINT notes_pkey;',
    });
    const args = baseArgs(project, db.url);
    const human = await belay([...args, 'migrate', 'up']);
    expect(human.code, human.stderr).toBe(10);
    expect(human.stdout + human.stderr).toContain('DETAIL: Key (id)=(1) already exists.');
    expect(await appliedNames(db)).toEqual([]);

    await writeFile(
      join(project.migrations, '0003_unique.up.sql'),
      "DO $$ BEGIN RAISE EXCEPTION 'notes are not ready' USING DETAIL = '3 notes have no body', HINT = 'Run scripts/fill-bodies.sql first.'; END $$;",
    );
    const run = await belay([...args, '--json', 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(10);
    const said = stringsIn(JSON.parse(run.stdout)).join('\n');
    expect(said).toContain('DETAIL: 3 notes have no body');
    expect(said).toContain('HINT: Run scripts/fill-bodies.sql first.');
    const lines = await journalOf(project.backups, (JSON.parse(run.stdout).result as { runId: string }).runId);
    const failed = lines.find((l) => l.step === 'apply' && l.outcome === 'failed') as { detail: { failure: Record<string, unknown> } };
    expect(failed.detail.failure).toMatchObject({ revision: '0003_unique', sqlstate: 'P0001', detail: '3 notes have no body', hint: 'Run scripts/fill-bodies.sql first.' });
    expect(await appliedNames(db)).toEqual([]);
    expect(await db.query('SELECT count(*)::int AS n FROM pg_tables WHERE tablename = $1', ['notes'])).toEqual([{ n: 0 }]);
  });

  // the second: sent behind the commit of a revision before it in the same run (src/migrations/engine.ts up), its lock wait watched from then on
  it.each([
    ['the first revision of the run', {}],
    ['a revision sent behind the commit of the one before', { '0002_other.up.sql': 'CREATE TABLE other (id int);', '0002_other.down.sql': 'DROP TABLE other;' }],
  ])('a lock timeout names the session that holds the lock: pid, application_name, when its query started (%s)', async (_layout, before) => {
    const db = await freshDatabase();
    const project = await makeProject(
      {
        ...OK_0001,
        ...before,
        '0003_notes_author.up.sql': 'ALTER TABLE notes ADD COLUMN author text;',
        '0003_notes_author.down.sql': 'ALTER TABLE notes DROP COLUMN author;',
      },
      { database: { lockTimeoutSeconds: 1 } },
    );
    const args = [...baseArgs(project, db.url), '--config', join(project.dir, 'belay.config.json')];
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    // a report that reads notes in a transaction it leaves open
    const holder = new pg.Client({ connectionString: db.url, application_name: 'nightly-report' });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT count(*) FROM notes');
      const [{ pid }] = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows as [{ pid: number }];
      const run = await belay([...args, '--json', 'migrate', 'up']);
      expect(run.code, run.stderr).toBe(10);
      const said = stringsIn(JSON.parse(run.stdout)).join('\n');
      expect(said).toMatch(/canceling statement due to lock timeout/);
      expect(said).toMatch(new RegExp(`lock held by: pid ${pid} \\(application_name "nightly-report", user ${TEST_APP_ROLE}, idle in transaction, transaction since \\S+, last query started \\S+\\)`));
      const lines = await journalOf(project.backups, (JSON.parse(run.stdout).result as { runId: string }).runId);
      const failed = lines.find((l) => l.step === 'apply' && l.outcome === 'failed') as { detail: { failure: { sqlstate: string; blockers: Array<Record<string, unknown>> } } };
      expect(failed).toMatchObject({ revision: '0003_notes_author' });
      expect(failed.detail.failure.sqlstate).toBe('55P03');
      expect(failed.detail.failure.blockers).toEqual([expect.objectContaining({ pid, applicationName: 'nightly-report', state: 'idle in transaction' })]);
      expect(await appliedNames(db)).toEqual(['0001_notes']);
      expect(await db.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'author'")).toEqual([{ n: 0 }]);
      expect(await db.query("SELECT to_regclass('public.other')::text AS other")).toEqual([{ other: null }]);
    } finally {
      await holder.end();
    }
  });
});

describe('a revision outside a transaction that opens one and never commits it', () => {
  it('fails, its open transaction rolled back: no record of it, and the next revision does not run inside it', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...OK_0001,
      '0002_forgets_commit.mjs': `// belay:no-transaction
export async function up(ctx) {
  await ctx.sql('BEGIN');
  await ctx.sql('CREATE TABLE half_done (id int)');
}
export async function down(ctx) {
  await ctx.sql('DROP TABLE IF EXISTS half_done');
}
`,
      '0003_after.up.sql': 'CREATE TABLE after_it (id int);',
      '0003_after.down.sql': 'DROP TABLE after_it;',
    });
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up']);
    expect(run.code, run.stdout + run.stderr).not.toBe(0);
    expect(run.code, run.stdout + run.stderr).not.toBe(1);
    expect(run.stdout).toContain('it left a transaction open (a BEGIN without its COMMIT)');
    expect(await appliedNames(db)).not.toContain('0002_forgets_commit');
    expect(await appliedNames(db)).not.toContain('0003_after');
    expect(await db.query("SELECT relname FROM pg_class WHERE relname IN ('half_done', 'after_it')")).toEqual([]);
    const lines = await journalOf(project.backups, (JSON.parse(run.stdout).result as { runId: string }).runId);
    expect(lines.find((l) => l.step === 'apply' && l.outcome === 'failed')).toMatchObject({ revision: '0002_forgets_commit' });
  });
});

describe('a revision file belay cannot open', () => {
  it('is named, exit 2, before anything is touched (a folder named like a revision file)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({ ...OK_0001 });
    await mkdir(join(project.migrations, '0002_cafe.up.sql'));
    await writeFile(join(project.migrations, '0002_cafe.down.sql'), 'SELECT 1;');
    for (const command of [['plan'], ['migrate', 'up']]) {
      const run = await belay([...baseArgs(project, db.url), ...command]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/cannot read the revision file \S+0002_cafe\.up\.sql: EISDIR/);
      expect(run.stderr).toMatch(/next: /);
    }
    expect(await db.query("SELECT to_regclass('notes') AS t, to_regnamespace('belay') AS s")).toEqual([{ t: null, s: null }]);
  });
});

describe('a fingerprint stopped before anything changed: the advice matches why', () => {
  const NOTES = {
    '0001_notes.up.sql': "CREATE TABLE notes (id int PRIMARY KEY, body text);\nINSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 100) g;",
    '0001_notes.down.sql': 'DROP TABLE notes;',
    '0002_author.up.sql': 'ALTER TABLE notes ADD COLUMN author text;',
    '0002_author.down.sql': 'ALTER TABLE notes DROP COLUMN author;',
  };

  /** A session that keeps notes locked in ACCESS EXCLUSIVE mode, named like an operator's maintenance job. */
  async function lockNotes(db: TestDatabase): Promise<{ holder: pg.Client; pid: number }> {
    const holder = new pg.Client({ connectionString: db.url, application_name: 'vacuum-full-job' });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE notes IN ACCESS EXCLUSIVE MODE');
    const [{ pid }] = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows as [{ pid: number }];
    return { holder, pid };
  }

  it('a lock timeout names the session holding the lock and the table, and says to retry or raise database.lockTimeoutSeconds; no GRANT advice', async () => {
    const db = await freshDatabase();
    const project = await makeProject(NOTES, { database: { lockTimeoutSeconds: 1 } });
    const args = [...baseArgs(project, db.url), '--config', join(project.dir, 'belay.config.json')];
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const { holder, pid } = await lockNotes(db);
    try {
      const run = await belay([...args, '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full']);
      expect(run.code, run.stdout + run.stderr).toBe(4);
      const out = JSON.parse(run.stdout) as { message: string; next: string | string[] };
      const next = [out.next].flat().join('\n');
      expect(out.message).toMatch(/cannot fingerprint the protected tables: canceling statement due to lock timeout/);
      expect(next).toContain(`pid ${pid}`);
      expect(next).toContain('"vacuum-full-job"');
      expect(next).toContain('public.notes');
      expect(next).toMatch(/database\.lockTimeoutSeconds/);
      expect(next).toMatch(/run again|retry/i);
      expect(next).not.toMatch(/grant/i);
      expect(await appliedNames(db)).toEqual(['0001_notes']);
    } finally {
      await holder.end();
    }
  });

  it('a SIGINT while the fingerprint waits says it was interrupted and nothing changed; no GRANT advice', async () => {
    const db = await freshDatabase();
    const project = await makeProject(NOTES, { database: { lockTimeoutSeconds: 60 } });
    const args = [...baseArgs(project, db.url), '--config', join(project.dir, 'belay.config.json')];
    expect((await belay([...args, 'migrate', 'up', '--to', '0001'])).code).toBe(0);
    const { holder } = await lockNotes(db);
    try {
      const run = startBelay([...args, '--json', 'migrate', 'up', '--with-backup', '--backup-scope', 'full']);
      // until belay's work session waits for the lock on notes
      for (let i = 0; i < 1000; i++) {
        const waiting = await db.query("SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'belay%' AND wait_event_type = 'Lock' AND query NOT ILIKE '%pg_dump%' AND backend_type = 'client backend' AND query ILIKE '%notes%'");
        if (waiting.length > 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      run.child.kill('SIGINT');
      const result = await run.done;
      expect(result.code, result.stdout + result.stderr).toBe(4);
      const out = JSON.parse(result.stdout) as { message: string; next: string | string[] };
      const next = [out.next].flat().join('\n');
      expect(`${out.message}\n${next}`).toMatch(/interrupted/);
      expect(next).toMatch(/nothing was changed/i);
      expect(next).not.toMatch(/grant/i);
      expect(await appliedNames(db)).toEqual(['0001_notes']);
    } finally {
      await holder.end();
    }
  });

  it('the advice goes by SQLSTATE: GRANT only for permission denied; a statement timeout or a cancel by another session is named as such', () => {
    const failure = (code: string, message: string): pg.DatabaseError => Object.assign(new pg.DatabaseError(message, 0, 'error'), { code });
    const context = { lockTimeoutSeconds: 10, statementTimeoutSeconds: 30, privilege: 'Grant the role SELECT.' };
    expect(stoppedReadAdvice(failure('42501', 'permission denied for table notes'), context)).toBe('Grant the role SELECT. Nothing was changed.');
    expect(stoppedReadAdvice(failure('57014', 'canceling statement due to statement timeout'), context)).toMatch(/database\.statementTimeoutSeconds \(30 s\) ran out, or another session canceled it/);
    expect(stoppedReadAdvice(failure('55P03', 'canceling statement due to lock timeout'), context)).toMatch(/held by another session .*database\.lockTimeoutSeconds in the config \(now 10 s\)/);
    const interrupted = new AbortController();
    interrupted.abort();
    expect(stoppedReadAdvice(failure('57014', 'canceling statement due to user request'), { ...context, signal: interrupted.signal })).toMatch(/^It was interrupted .*Nothing was changed/);
    for (const code of ['55P03', '57014', 'XX000']) expect(stoppedReadAdvice(failure(code, 'x'), context)).not.toMatch(/grant/i);
  });
});

describe('a transactional module that ends belay\'s transaction', () => {
  const OWNTX_FAIL = {
    ...OK_0001,
    '0002_owntx_fail.mjs': `export async function up(ctx) {
  await ctx.sql('COMMIT');
  await ctx.sql('CREATE TABLE t5 (id int)');
  throw new Error('after commit');
}
export async function down(ctx) {
  await ctx.sql('DROP TABLE t5');
}
`,
  };

  it('a COMMIT then a throw: the run restores its snapshot (exit 11), says what the module did, and t5 is gone', async () => {
    const db = await freshDatabase();
    const project = await makeProject(OWNTX_FAIL);
    const args = baseArgs(project, db.url);
    const run = await belay([...args, '--json', 'migrate', 'up', '--yes', '--with-backup']);
    expect(run.code, run.stdout + run.stderr).toBe(11);
    const doc = JSON.parse(run.stdout) as { message: string; next: string; result: { runId: string } };
    expect(doc.message).toContain("0002_owntx_fail up failed at 0002_owntx_fail.mjs: it ended belay's transaction (a COMMIT or ROLLBACK of its own): what it did may be partly committed; then it failed: after commit");
    expect(doc.message).not.toMatch(/rolled back to the start, data verified intact/);
    expect(doc.next).toContain('make its first line `// belay:no-transaction`');
    expect(await db.query("SELECT to_regclass('t5')::text AS t5, to_regclass('notes')::text AS notes")).toEqual([{ t5: null, notes: null }]);
    const lines = await journalOf(project.backups, doc.result.runId);
    expect(lines.find((l) => l.step === 'apply' && l.outcome === 'failed')).toMatchObject({ revision: '0002_owntx_fail' });
    expect(endedSteps(lines)).toContain(`restore ok`);
    expect(lines[lines.length - 1]).toMatchObject({ type: 'outcome', exitCode: 11 });
    // nothing of the module is left to trip the next run
    const again = await belay([...args, 'migrate', 'up', '--to', '0001']);
    expect(again.code, again.stderr).toBe(0);
  });

  it('its own BEGIN … COMMIT: not applied, and without a snapshot the run says the truth (exit 12)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...OK_0001,
      '0002_owntx.mjs': `export async function up(ctx) {
  await ctx.sql('BEGIN');
  await ctx.sql('CREATE TABLE t6 (id int)');
  await ctx.sql('COMMIT');
}
export async function down(ctx) {
  await ctx.sql('DROP TABLE t6');
}
`,
    });
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--yes']);
    expect(run.code, run.stdout + run.stderr).toBe(12);
    const doc = JSON.parse(run.stdout) as { message: string; next: string; result: { runId: string } };
    expect(doc.message).toContain("0002_owntx up failed at 0002_owntx.mjs: it ended belay's transaction (a COMMIT or ROLLBACK of its own)");
    expect(doc.message).toContain('no snapshot was taken to restore');
    expect(doc.next).toContain('make its first line `// belay:no-transaction`');
    expect(doc.next).toContain('may be damaged');
    expect(await appliedNames(db)).toEqual(['0001_notes']);
    // the truth: what the module committed is there
    expect(await db.query("SELECT to_regclass('t6')::text AS t6")).toEqual([{ t6: 't6' }]);
    const lines = await journalOf(project.backups, doc.result.runId);
    expect(lines.find((l) => l.step === 'apply' && l.outcome === 'failed')).toMatchObject({ revision: '0002_owntx' });
    expect(lines[lines.length - 1]).toMatchObject({ type: 'outcome', exitCode: 12 });
  });
});

describe('a module that throws an error with a cause', () => {
  it('is told with its cause, in the output, --json and the journal', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...OK_0001,
      '0002_caused.mjs': `export async function up(ctx) {
  await ctx.sql('CREATE TABLE caused (id int)');
  throw new Error('outer', { cause: new Error('inner cause detail') });
}
export async function down(ctx) {
  await ctx.sql('DROP TABLE caused');
}
`,
    });
    const args = baseArgs(project, db.url);
    const human = await belay([...args, 'migrate', 'up']);
    expect(human.code, human.stdout + human.stderr).toBe(10);
    expect(human.stdout + human.stderr).toContain('0002_caused up failed at 0002_caused.mjs:3: outer; caused by: inner cause detail');
    const run = await belay([...args, '--json', 'migrate', 'up']);
    expect(run.code, run.stdout + run.stderr).toBe(10);
    const doc = JSON.parse(run.stdout) as { message: string; result: { runId: string } };
    expect(doc.message).toContain('outer; caused by: inner cause detail');
    const lines = await journalOf(project.backups, doc.result.runId);
    const failed = lines.find((l) => l.step === 'apply' && l.outcome === 'failed') as { detail: { failure: { message: string } } };
    expect(failed.detail.failure.message).toBe('outer; caused by: inner cause detail');
    expect(await db.query("SELECT to_regclass('caused')::text AS caused")).toEqual([{ caused: null }]);
  });
});
