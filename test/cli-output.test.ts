import { appendFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { envelopeOf as sealRun, failureEnvelope, tell } from '../src/cli/envelope.js';
import { GLOBAL_OPTIONS, honoured } from '../src/cli/help.js';
import { buildProgram } from '../src/cli/program.js';
import { belay, cleanEnv, jsonResult, type CliRun } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

interface Doc {
  exitCode: number;
  outcome: string;
  message: string;
  next: string | null;
  result: Record<string, unknown> & { messageDetails?: string[] };
}

const doc = (run: CliRun): Doc => JSON.parse(run.stdout) as Doc;

/** The text output's lines, stdout then stderr's last lines (an error is told on stderr). */
const lines = (text: string): string[] => text.trimEnd().split('\n');

/** What docs/json.md and the README promise of every document and every text output. */
function heldToPromises(json: CliRun, text: CliRun): Doc {
  const d = doc(json);
  expect(json.code).toBe(d.exitCode);
  expect(d.message, json.stdout).not.toMatch(/[\r\n]/);
  if (d.next !== null) expect(d.next).not.toMatch(/[\r\n]/);
  if ([10, 11, 12].includes(d.exitCode)) {
    expect(d.next, json.stdout).toEqual(expect.any(String));
    // the text output ends with `next:` (then the target line of a changing command)
    const out = lines(`${text.stdout}${text.stderr}`);
    expect(out.some((line) => /^ {2}next: \S/.test(line)), `${text.stdout}\n${text.stderr}`).toBe(true);
  }
  return d;
}

describe('one line of message, and a next for every 10, 11, 12', () => {
  it('tells a failing statement, its DETAIL and HINT beside the line, not in it', () => {
    const failure = { revision: '0002_bad', direction: 'up', file: '0002_bad.up.sql', line: 2, message: 'division by zero', sqlstate: '22012', detail: 'the detail', hint: 'the hint', statement: 'select\n  1/0', transactional: true };
    const inner = '0002_bad up failed at 0002_bad.up.sql:2: division by zero [SQLSTATE 22012]\n  DETAIL: the detail\n  HINT: the hint\n  statement: select 1/0';
    const said = sealRun('migrate up', { result: { runId: 'r1', exitCode: 10, outcome: 'rolled-back', message: `change rejected (${inner}); rolled back to the start, data verified intact`, failure } }, null);
    expect(said.message).toBe('change rejected (0002_bad up failed at 0002_bad.up.sql:2: division by zero [SQLSTATE 22012]); rolled back to the start, data verified intact');
    expect(said.details).toEqual(['DETAIL: the detail', 'HINT: the hint', 'statement: select 1/0']);
    expect(said.result).toMatchObject({ message: said.message, messageDetails: said.details });
    // a second failure in the message (a down that failed), and what came of it after its statement: one line, all of it
    const down = '0001_a down failed at 0001_a.down.sql:1: no table [SQLSTATE 42P01]\n  statement: drop table x';
    const both = sealRun('migrate up', { result: { exitCode: 12, message: `${inner}; the down of 0001_a failed: ${down}; restoring S failed; it was not touched`, failure } }, null);
    expect(both.message).toBe('0002_bad up failed at 0002_bad.up.sql:2: division by zero [SQLSTATE 22012]; the down of 0001_a failed: 0001_a down failed at 0001_a.down.sql:1: no table [SQLSTATE 42P01]; statement: drop table x; restoring S failed; it was not touched');
    expect(both.details).toEqual(['DETAIL: the detail', 'HINT: the hint', 'statement: select 1/0']);
  });

  it('tells a list that ends the message as details, and joins any other line break', () => {
    expect(tell('invalid config x.json: 2 problems\n  - integrity.mode: expected strict\n  - backup.jobs: expected ≥ 1')).toEqual({
      line: 'invalid config x.json: 2 problems',
      details: ['- integrity.mode: expected strict', '- backup.jobs: expected ≥ 1'],
    });
    expect(tell('pg_restore failed:\npg_restore: error: bad\r\nthen; it stopped')).toEqual({ line: 'pg_restore failed:; pg_restore: error: bad; then; it stopped', details: [] });
    const usage = failureEnvelope('migrate up', { exitCode: 2, code: 'usage', message: 'invalid config x: 1 problem\n  - a: b', hint: undefined, details: { problems: ['a: b'] } }, null);
    expect(usage).toMatchObject({ message: 'invalid config x: 1 problem', result: { error: 'usage', details: { problems: ['a: b'] }, messageDetails: ['- a: b'] } });
    // a result with no room for details keeps them in the line
    expect(sealRun('history', { result: [], message: 'a\n  b' }, null).message).toBe('a; b');
  });

  it('every outcome that ends 10, 11 or 12 has a next, whoever reported it; next is one line', () => {
    for (const exitCode of [10, 11, 12]) {
      const run = sealRun('restore', { result: { runId: 'r-1', exitCode, message: 'x' } }, null);
      expect(run.next, String(exitCode)).toMatch(/belay history r-1/);
      const failed = failureEnvelope('restore', { exitCode, code: 'manual', message: 'x', hint: undefined, details: {} }, null);
      expect(failed.next, String(exitCode)).toEqual(expect.any(String));
      expect(sealRun('rehearse', { result: {}, exitCode, message: 'x' }, null).next).toEqual(expect.any(String));
    }
    for (const exitCode of [0, 2, 3, 4]) expect(sealRun('status', { result: {}, exitCode, message: 'x' }, null).next, String(exitCode)).toBeNull();
    const steps = sealRun('rollback', { result: { exitCode: 12, message: 'x', hint: 'Run this:\n        psql -c 1\n        psql -c 2' } }, null);
    expect(steps.next).toBe('Run this: psql -c 1; psql -c 2');
    const sql = sealRun('restore', { result: { exitCode: 12, message: 'x', hint: 'ALTER DATABASE "a" RENAME TO "b";\n-- or: ALTER DATABASE "c" RENAME TO "b";' } }, null);
    expect(sql.next).toBe('ALTER DATABASE "a" RENAME TO "b"; -- or: ALTER DATABASE "c" RENAME TO "b";');
    expect(steps.result).toMatchObject({ hint: steps.next });
  });

  it('holds over the failures a run can meet: a failing statement, a down that fails, an invalid config', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...GOOD_REVISIONS,
      '0004_bad.up.sql': "ALTER TABLE accounts ADD COLUMN n int;\nDO $$ BEGIN RAISE EXCEPTION 'no good' USING DETAIL = 'what it saw', HINT = 'what to do'; END $$;",
      '0004_bad.down.sql': 'ALTER TABLE accounts DROP COLUMN n;',
    });
    const args = baseArgs(project, db.url);
    const both = async (...words: string[]) => {
      const json = await belay([...args, '--json', ...words], { cwd: project.dir, env: cleanEnv() });
      const text = await belay([...args, ...words], { cwd: project.dir, env: cleanEnv() });
      return { json, text, d: heldToPromises(json, text) };
    };

    // a statement that fails: rolled back (10)
    const rejected = await both('migrate', 'up', '--with-backup');
    expect(rejected.d).toMatchObject({ exitCode: 10, result: { failure: { statement: expect.stringContaining('RAISE') } } });
    expect(rejected.d.message).toMatch(/^change rejected \(0004_bad up failed at 0004_bad\.up\.sql:2: no good \[SQLSTATE P0001\]\); rolled back to the start, data verified intact/);
    expect(rejected.d.result.messageDetails).toEqual(['DETAIL: what it saw', 'HINT: what to do', expect.stringMatching(/^statement: DO \$\$ BEGIN RAISE/)]);
    // the text: the one line, the details under it, next: and the target last
    const out = lines(rejected.text.stdout);
    expect(out[0]).toBe(`migrate-up: ${rejected.d.message}`);
    expect(out.slice(1, 4)).toEqual(['    DETAIL: what it saw', '    HINT: what to do', expect.stringMatching(/^ {4}statement: DO/)]);
    expect(out.at(-2)).toMatch(/^ {2}next: Fix what was rejected/);
    expect(out.at(-1)).toMatch(/^target /);

    // an up that fails after a down that fails: restored (11)
    await writeFile(join(project.migrations, '0003_accounts_name.down.sql'), "DO $$ BEGIN RAISE EXCEPTION 'down broke' USING HINT = 'fix the down'; END $$;");
    const restored = await both('migrate', 'up', '--with-backup');
    expect(restored.d.exitCode).toBe(11);
    expect(restored.d.message).toContain('down broke');

    // an invalid config: a usage error told on stderr
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ integrity: { mode: 'paranoid' }, backup: { jobs: 0 } }));
    const config = await both('status');
    expect(config.d).toMatchObject({ exitCode: 2, message: expect.stringMatching(/^invalid config .*: 2 problems$/) });
    expect(config.d.result.messageDetails).toEqual([expect.stringMatching(/^- integrity\.mode/), expect.stringMatching(/^- backup\.jobs/)]);
    const err = lines(config.text.stderr);
    const told = err.indexOf(`belay: ${config.d.message}`);
    expect(told, config.text.stderr).toBeGreaterThanOrEqual(0);
    expect(err[told + 1]).toMatch(/^ {2}- integrity\.mode/);
    expect(err.at(-1)).toMatch(/^ {2}next: Fix those keys/);
  }, 180_000);

  it('rehearse: a down that loses data ends 10 with next: in the text too', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_people.up.sql': 'CREATE TABLE people (id int PRIMARY KEY, nickname text);\nINSERT INTO people SELECT g, g::text FROM generate_series(1, 20) g;',
      '0001_people.down.sql': 'DROP TABLE people;',
      '0002_nicknames.up.sql': 'UPDATE people SET nickname = upper(nickname);',
      '0002_nicknames.down.sql': 'UPDATE people SET nickname = NULL;',
    });
    const words = [...baseArgs(project, db.url), 'rehearse', '--from', '0001'];
    const json = await belay([...words, '--json'], { cwd: project.dir, env: cleanEnv() });
    const text = await belay(words, { cwd: project.dir, env: cleanEnv() });
    expect(heldToPromises(json, text).exitCode).toBe(10);
    expect(text.code).toBe(10);
  }, 120_000);
});

describe('what a run result says of its revisions', () => {
  it('rollback and migrate up give each revision a step ran its durationMs', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const run = (...words: string[]) => belay([...baseArgs(project, db.url), '--json', '--yes', ...words], { cwd: project.dir, env: cleanEnv() });
    const up = jsonResult<{ revisions: Array<{ status: string; durationMs?: number }> }>(await run('migrate', 'up'));
    expect(up.revisions.map((r) => [r.status, typeof r.durationMs])).toEqual([['applied', 'number'], ['applied', 'number'], ['applied', 'number']]);
    const down = jsonResult<{ revisions: Array<{ status: string; durationMs?: number }> }>(await run('rollback', '--to', '0001'));
    expect(down.revisions.map((r) => [r.status, typeof r.durationMs])).toEqual([['reverted', 'number'], ['reverted', 'number']]);
  }, 120_000);
});

describe('--log-level', () => {
  it('says a failure once at every level, and silent prints no progress: only the target first, then the result, its next: and the target line', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      ...GOOD_REVISIONS,
      '0004_bad.up.sql': "DO $$ BEGIN RAISE EXCEPTION 'no good'; END $$;",
      '0004_bad.down.sql': 'SELECT 1;',
    });
    const run = (...words: string[]) => belay([...baseArgs(project, db.url), ...words], { cwd: project.dir, env: cleanEnv() });
    expect((await run('migrate', 'up', '--to', '0002')).code).toBe(0);
    await appendFile(join(project.migrations, '0001_accounts.up.sql'), '\n-- edited after it was applied\n');
    const refusal = 'preflight refused the run: files of applied revisions changed since they were applied: 0001_accounts (0001_accounts.up.sql)';
    for (const level of ['info', 'warn', 'error', 'silent']) {
      const drift = await run('--log-level', level, 'migrate', 'up');
      const said = `${level}\n${drift.stderr}`;
      expect(drift.code, said).toBe(4);
      expect(drift.stderr.split(refusal), said).toHaveLength(2);
      const out = lines(drift.stderr);
      expect(out.at(-2), said).toMatch(/^ {2}next: An applied revision must not be edited/);
      expect(out.at(-1), said).toMatch(/^target belay_app@/);
      // the first line names the target at every level (the contract's first and last lines), after a log line's warning of the URL's password
      const first = out.findIndex((line) => !line.startsWith('{'));
      expect(out[first], said).toMatch(/^belay migrate up on belay_app@/);
      if (level === 'silent') expect(out.slice(0, 2), said).toEqual([expect.stringMatching(/^belay migrate up on belay_app@/), `belay: ${refusal}`]);
    }
    expect((await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((row) => row.name)).toEqual(['0001_accounts', '0002_profiles']);
    await writeFile(join(project.migrations, '0001_accounts.up.sql'), GOOD_REVISIONS['0001_accounts.up.sql']!);
    // a rejected change: its result on stdout, only the target's first line on stderr
    const rejected = await run('--log-level', 'silent', 'migrate', 'up');
    expect(rejected.code, rejected.stderr).toBe(10);
    expect(lines(rejected.stderr)).toEqual([expect.stringMatching(/^belay migrate up on belay_app@/)]);
    expect(rejected.stdout).toMatch(/^migrate-up: change rejected \(0004_bad up failed at 0004_bad\.up\.sql:1: no good/);
    expect(lines(rejected.stdout).at(-2)).toMatch(/^ {2}next: Fix what was rejected/);
    expect((await db.query('SELECT name FROM belay.migrations ORDER BY name')).map((row) => row.name)).toEqual(['0001_accounts', '0002_profiles']);
  }, 120_000);
});

describe('what status says of the revision', () => {
  it('names the newest applied revision, and that it is missing from disk, when it is', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const run = (...words: string[]) => belay([...baseArgs(project, db.url), ...words], { cwd: project.dir, env: cleanEnv() });
    expect((await run('--yes', 'migrate', 'up')).code).toBe(0);
    await rm(join(project.migrations, '0003_accounts_name.up.sql'));
    await rm(join(project.migrations, '0003_accounts_name.down.sql'));
    const text = await run('status');
    expect(text.code, text.stderr).toBe(0);
    expect(lines(text.stdout)).toContain('revision  0003_accounts_name (missing from disk; the newest applied one on disk is 0002_profiles)');
    expect(lines(text.stdout)).toContain('MISSING   0003_accounts_name (applied, not on disk)');
    // --json says what the text says
    const json = await run('--json', 'status');
    expect(jsonResult(json)).toMatchObject({ current: '0003_accounts_name', currentOnDisk: '0002_profiles', missing: ['0003_accounts_name'] });
    expect(doc(json).message).toMatch(/^at 0003_accounts_name, /);
    expect(await db.query('SELECT name FROM belay.migrations ORDER BY name')).toEqual([{ name: '0001_accounts' }, { name: '0002_profiles' }, { name: '0003_accounts_name' }]);
  }, 120_000);
});

describe('a damaged snapshot is refused before anything is touched', () => {
  it('restore and rollback --restore-from end 4 with a next', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const run = (...words: string[]) => belay([...baseArgs(project, db.url), '--json', '--yes', ...words], { cwd: project.dir, env: cleanEnv() });
    await run('migrate', 'up');
    // a full snapshot at the database's revision: nothing but its bytes stands in a restore's way
    const { snapshot } = jsonResult<{ snapshot: { id: string; path: string } }>(await run('backup'));
    await appendFile(snapshot.path, 'x');
    for (const words of [['restore', snapshot.id], ['rollback', '--to', '0001', '--restore-from', snapshot.id]]) {
      const refused = await run(...words);
      const d = doc(refused);
      expect(refused.code, refused.stdout).toBe(4);
      expect(d).toMatchObject({ exitCode: 4, outcome: 'refused' });
      expect(d.message).toMatch(/does not match its manifest|failed verification/);
      expect(d.next).toMatch(/belay backups/);
    }
    // backups verify says the same of it, with what to do: exit 4, text and --json
    const verifyText = await belay([...baseArgs(project, db.url), 'backups', 'verify', snapshot.id], { cwd: project.dir, env: cleanEnv() });
    expect(verifyText.code, verifyText.stdout).toBe(4);
    expect(verifyText.stdout).toMatch(/: FAILED\n/);
    expect(lines(verifyText.stdout).at(-1)).toMatch(/^ {2}next: This snapshot cannot be trusted for a restore: take a new one \(`belay backup`\), or use another \(`belay backups list`/);
    const verifyJson = doc(await run('backups', 'verify', snapshot.id));
    expect(verifyJson).toMatchObject({ exitCode: 4, outcome: 'damaged' });
    expect(verifyJson.next).toMatch(/belay backups list/);
    expect(jsonResult<{ current: string }>(await run('status')).current).toBe('0003_accounts_name');
    // prune reads --yes (--keep 0 needs it) and the connection it locks
    const prune = doc(await run('backups', 'prune', '--keep', '0')) as Doc & { target: { database: string } };
    expect(prune.exitCode, JSON.stringify(prune)).toBe(0);
    expect(prune.target.database).toContain(db.name);
  }, 120_000);
});

function leaves(command: Command): Command[] {
  return command.commands.length === 0 ? [command] : command.commands.flatMap(leaves);
}

describe('the global options a command honours', () => {
  it('are what its --help lists, and what it reads; prune reads --yes and the connection', async () => {
    const { program } = buildProgram();
    for (const command of leaves(program)) {
      const help = command.helpInformation() + '\n';
      const listed = new Set<string>();
      // the text is added after; read it from the command as commander prints it
      let out = '';
      command.configureOutput({ writeOut: (s) => (out += s) });
      command.outputHelp();
      const section = out.split('Global options it honours (before or after the command):\n')[1]!.split('\n\n')[0]!;
      for (const line of section.split('\n')) listed.add(line.trim().split(' ')[0]!);
      const declared = [...honoured(command)].map((name) => GLOBAL_OPTIONS[name].long!);
      expect([...listed].sort(), `${command.name()}\n${help}`).toEqual(declared.sort());
    }
    const prune = await belay(['backups', 'prune', '--help']);
    for (const flag of ['--yes', '--database-url', '--embedded', '--backups', '--config']) expect(prune.stdout).toMatch(new RegExp(`\\n  ${flag}\\b`));
    const rollback = await belay(['rollback', '--help']);
    expect(rollback.stdout).toMatch(/\n {2}--yes\b/);
  });
});

describe('what commander refuses', () => {
  it('ends with next: in the text too, as under --json', async () => {
    const project = await makeProject({});
    const cases: Array<[string[], string]> = [
      [['migrate', 'up', '--with-bakup'], 'Run `belay migrate up --help`'],
      [['bogus'], 'Run `belay --help`'],
      [['help', 'bogus'], 'Run `belay --help`'],
      [['backups', 'help', 'bogus'], 'Run `belay backups --help`'],
      [['rollback'], 'Run `belay rollback --help`'],
      [['backups', 'prune', '--keep', 'abc'], 'Run `belay backups prune --help`'],
      [['restore'], 'Run `belay restore --help`'],
      [['migrate', 'down'], 'Run `belay migrate --help`'],
      [['--log-level', 'bogus', 'status'], 'Run `belay status --help`'],
      [['restore', 'x', '--strategy', 'nope'], 'Run `belay restore --help`'],
      // a command group given alone prints its help: then the commands it takes
      [[], 'Name a command: `belay status` says where the database stands, `belay --help` lists every command.'],
      [['migrate'], 'Name one of its commands (`belay migrate up`); `belay migrate --help` says what each does.'],
      [['backups'], '(`belay backups list`, `belay backups verify`, `belay backups prune`)'],
    ];
    for (const [words, next] of cases) {
      const run = await belay(words, { cwd: project.dir, env: cleanEnv() });
      expect(run.code, words.join(' ')).toBe(2);
      if (words.at(-1) === 'bogus') expect(lines(run.stderr)[0], run.stderr).toBe("error: unknown command 'bogus'");
      const last = lines(run.stderr).at(-1)!;
      expect(last, `${words.join(' ')}\n${run.stderr}`).toMatch(/^ {2}next: /);
      expect(last).toContain(next);
      expect(run.stdout).toBe('');
    }
  });

  it('an option given twice with two values: refused naming both, nothing done; the same value twice is one value', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const run = (...words: string[]) => belay([...baseArgs(project, db.url), ...words], { cwd: project.dir, env: cleanEnv() });
    expect((await run('migrate', 'up')).code).toBe(0);
    const { snapshot } = jsonResult<{ snapshot: { id: string } }>(await run('--json', 'backup'));
    const runs = async () => (await db.query('SELECT count(*)::int AS n FROM belay.runs'))[0]?.n;
    const before = await runs();
    const cases: Array<[string[], string]> = [
      [['--yes', 'rollback', '--to', '0001', '--to', '0002'], '--to given twice, as "0001" and as "0002": give it once'],
      [['--yes', 'restore', snapshot.id, '--strategy', 'swap', '--strategy', 'in-place'], '--strategy given twice, as "swap" and as "in-place"'],
      [['--yes', 'backups', 'prune', '--keep', '0', '--keep', '1'], '--keep given twice, as "0" and as "1"'],
      [['--yes', 'rollback', '--to', '0001', '--restore-from', snapshot.id, '--restore-from', 'other'], `--restore-from given twice, as "${snapshot.id}" and as "other"`],
      [['migrate', 'up', '--with-backup', '--backup-scope', 'full', '--backup-scope', 'touched'], '--backup-scope given twice, as "full" and as "touched"'],
      // a global option, before and after the command
      [['--log-level', 'warn', 'plan', '--log-level', 'info'], '--log-level given twice, as "warn" and as "info"'],
    ];
    for (const [words, message] of cases) {
      const text = await run(...words);
      expect(text.code, `${words.join(' ')}\n${text.stderr}`).toBe(2);
      expect(text.stderr).toContain(message);
      expect(lines(text.stderr).at(-1)).toMatch(/^ {2}next: Run `belay .*--help`/);
      const json = doc(await run('--json', ...words));
      expect(json, words.join(' ')).toMatchObject({ exitCode: 2, outcome: 'usage-error', result: { error: 'commander.conflictingOption' } });
      expect(json.message).toContain(message);
    }
    expect(await runs()).toBe(before);
    expect(jsonResult<{ current: string }>(await run('--json', 'status')).current).toBe('0003_accounts_name');
    expect((await readdir(project.backups)).filter((f) => f.endsWith('.dump'))).toEqual([`${snapshot.id}.dump`]);
    const same = await run('--json', 'plan', '--to', '0002', '--to', '0002');
    expect(same.code, same.stderr).toBe(0);
    expect(jsonResult<{ to: string }>(same).to).toBe('0002_profiles');
  }, 120_000);

  it('an empty --database-url, --migrations, --backups or --config (an unset variable in a script) is refused, exit 2: it was read as not given, the embedded cluster or the working folder', async () => {
    const db = await freshDatabase();
    const dir = await mkdtemp(join(tmpdir(), 'belay-empty-flag-'));
    for (const flag of ['--database-url', '--migrations', '--backups', '--config']) {
      // PG_BIN without initdb: the old reading of an empty --database-url could not start an embedded cluster here
      const connection = flag === '--database-url' ? [] : ['--database-url', db.url];
      const run = await belay(['--json', ...connection, flag, '', 'migrate', 'up'], { cwd: dir, env: cleanEnv({ PG_BIN: dir }) });
      expect(run.code, `${flag}\n${run.stdout}`).toBe(2);
      expect(doc(run)).toMatchObject({ outcome: 'usage-error', result: { error: 'commander.invalidArgument' } });
      expect(doc(run).message).toContain(`${flag} was given an empty value`);
    }
    // rehearse's files and template: a run without the report CI asked for, or without its seed, was exit 0
    for (const flag of ['--seed', '--junit', '--markdown', '--template']) {
      const run = await belay(['--json', '--database-url', db.url, 'rehearse', flag, ''], { cwd: dir, env: cleanEnv({ PG_BIN: dir }) });
      expect(run.code, `${flag}\n${run.stdout}`).toBe(2);
      expect(doc(run).message).toContain(`${flag} was given an empty value`);
    }
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('--backup-scope where no snapshot is taken', () => {
  it('is refused (exit 2) before anything is done: migrate up without --with-backup, rollback --no-backup, rollback --restore-from', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const run = (...words: string[]) => belay([...baseArgs(project, db.url), ...words], { cwd: project.dir, env: cleanEnv() });
    const up = await run('migrate', 'up', '--backup-scope', 'full');
    expect(up.code, up.stderr).toBe(2);
    expect(up.stderr).toContain('belay: --backup-scope chooses the snapshot --with-backup takes: without --with-backup no snapshot is taken');
    expect(up.stderr).toMatch(/\n {2}next: Add --with-backup to take that snapshot \(`belay migrate up --with-backup --backup-scope full`\), or leave --backup-scope out\./);
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
    expect(await db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).toEqual([]);

    expect((await run('migrate', 'up')).code).toBe(0);
    const { snapshot } = jsonResult<{ snapshot: { id: string } }>(await run('--json', 'backup'));
    const runs = async () => (await db.query('SELECT count(*)::int AS n FROM belay.runs'))[0]?.n;
    const before = await runs();
    const noBackup = doc(await run('--json', '--yes', 'rollback', '--to', '0002', '--no-backup', '--backup-scope', 'full'));
    expect(noBackup).toMatchObject({ exitCode: 2, outcome: 'usage-error', message: '--backup-scope chooses the snapshot taken before the downs: --no-backup takes none' });
    expect(noBackup.next).toBe('Leave out --no-backup to take that snapshot, or leave out --backup-scope.');
    const restoreFrom = await run('--yes', 'rollback', '--to', '0002', '--restore-from', snapshot.id, '--backup-scope', 'touched');
    expect(restoreFrom.code, restoreFrom.stderr).toBe(2);
    expect(restoreFrom.stderr).toContain('--backup-scope chooses the snapshot taken before the downs: --restore-from runs no downs and takes none');
    expect(restoreFrom.stderr).toMatch(/\n {2}next: Leave out --backup-scope: --restore-from restores the snapshot it names\./);
    expect(await runs()).toBe(before);
    expect(jsonResult<{ current: string }>(await run('--json', 'status')).current).toBe('0003_accounts_name');
    expect(await db.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'display_name'")).toEqual([{ n: 1 }]);
  }, 120_000);
});
