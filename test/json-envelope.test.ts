import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { belay, cleanEnv, type CliRun } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

/** docs/json.md, as a schema: the same keys for every command and every outcome. */
const envelope = z.strictObject({
  command: z.string().min(1),
  exitCode: z.number().int(),
  outcome: z.enum([
    'ok',
    'up-to-date',
    'dry-run',
    'rolled-back',
    'restored',
    'manual-action-needed',
    'unhealthy',
    'damaged',
    'rejected',
    'usage-error',
    'locked',
    'refused',
    'internal-error',
  ]),
  message: z.string().min(1),
  next: z.string().min(1).nullable(),
  target: z.strictObject({ database: z.string().regex(/^[^@\s]+@\S+:\d+\/\S+$/), source: z.string().min(1), embedded: z.boolean() }).nullable(),
  result: z.unknown().refine((value) => value !== undefined, 'result is missing'),
  journal: z.string().min(1).nullable(),
});
type Envelope = z.infer<typeof envelope>;

/** One document on stdout, matching the schema, whose exitCode is the process's. */
function envelopeOf(run: CliRun, command: string, exitCode: number): Envelope {
  expect(run.code, `${run.stderr}\n${run.stdout}`).toBe(exitCode);
  const parsed = envelope.safeParse(JSON.parse(run.stdout));
  expect(parsed.success, `${command}: ${parsed.error?.message}\n${run.stdout}`).toBe(true);
  const doc = parsed.data!;
  expect(doc).toMatchObject({ command, exitCode });
  return doc;
}

describe('the --json envelope', () => {
  it('has the same keys for every command and every outcome', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const args = [...baseArgs(project, db.url), '--json'];
    const run = (...words: string[]) => belay([...args, ...words], { cwd: project.dir, env: cleanEnv() });

    // usage errors, from commander and from belay, carry the command they were about
    const unknownOption = envelopeOf(await run('migrate', 'up', '--bogus'), 'migrate up', 2);
    expect(unknownOption).toMatchObject({ outcome: 'usage-error', target: null, journal: null, message: "unknown option '--bogus'" });
    expect(unknownOption.next).toContain('belay migrate up --help');
    expect(envelopeOf(await run('rollback'), 'rollback', 2).message).toMatch(/--to <rev>/);
    expect(envelopeOf(await run('backups', 'prune', '--keep', 'some'), 'backups prune', 2).message).toMatch(/--keep takes a whole number/);
    expect(envelopeOf(await run('restore', 'x', '--strategy', 'copy'), 'restore', 2).message).toMatch(/copy/);
    const unknownCommand = envelopeOf(await run('nosuch'), 'belay', 2);
    expect(unknownCommand).toMatchObject({ outcome: 'usage-error', message: "unknown command 'nosuch'", next: 'Run `belay --help` for its options and an example.' });
    // `help NAME` of no command says what `NAME` says, of a group as of the program
    expect(envelopeOf(await run('help', 'nosuch'), 'belay', 2)).toEqual(unknownCommand);
    expect(envelopeOf(await run('cluster', 'help', 'nosuch'), 'cluster', 2)).toEqual(envelopeOf(await run('cluster', 'nosuch'), 'cluster', 2));
    // a global option's bad value is refused by the program before the command is reached: still that command's document
    const badLevel = envelopeOf(await run('status', '--log-level', 'loud'), 'status', 2);
    expect(badLevel.message).toContain('loud');
    expect(badLevel.next).toContain('belay status --help');
    expect(envelopeOf(await run('rollback', '--to', '0001', '--log-level', 'loud'), 'rollback', 2).next).toContain('belay rollback --help');
    expect(envelopeOf(await run('--log-level', 'loud', 'backups', 'prune'), 'backups prune', 2).outcome).toBe('usage-error');
    expect(envelopeOf(await run('--log-level', 'loud'), 'belay', 2).outcome).toBe('usage-error');
    expect(envelopeOf(await run('migrate'), 'migrate', 2).message).toBe('migrate needs a command (see --help)');
    const badTarget = envelopeOf(await run('migrate', 'up', '--to', '0099'), 'migrate up', 2);
    expect(badTarget).toMatchObject({ outcome: 'usage-error', result: { error: 'usage' } });
    expect(badTarget.target?.source).toBe('--database-url');

    // successes
    const plan = envelopeOf(await run('plan'), 'plan', 0);
    expect(plan.result).toMatchObject({ direction: 'up', to: '0003_accounts_name' });
    const up = envelopeOf(await run('migrate', 'up', '--with-backup'), 'migrate up', 0);
    expect(up).toMatchObject({ outcome: 'ok', next: null, target: { source: '--database-url', embedded: false }, result: { toRevision: '0003_accounts_name' } });
    expect(up.journal).toMatch(/journal\/.*\.jsonl$/);
    expect(up.target?.database).toMatch(/^belay_app@.*\/t/);
    const status = envelopeOf(await run('status'), 'status', 0);
    expect(status).toMatchObject({ result: { current: '0003_accounts_name' }, message: 'at 0003_accounts_name, 0 pending' });
    expect(envelopeOf(await run('migrate', 'up'), 'migrate up', 0).outcome).toBe('up-to-date');
    const runs = envelopeOf(await run('history'), 'history', 0);
    const runId = (runs.result as Array<{ runId: string }>)[0]!.runId;
    envelopeOf(await run('history', runId.slice(0, 12)), 'history', 0);
    const backup = envelopeOf(await run('backup'), 'backup', 0);
    const snapshot = (backup.result as { snapshot: { id: string } }).snapshot.id;
    expect(envelopeOf(await run('backups', 'list'), 'backups list', 0).target).toBeNull();
    expect(envelopeOf(await run('backups', 'verify', snapshot), 'backups verify', 0).message).toBe(`${snapshot}: ok`);
    envelopeOf(await run('verify'), 'verify', 0);
    envelopeOf(await run('recover'), 'recover', 0);
    envelopeOf(await run('new', 'add_bio'), 'new', 0);

    // a rollback, and a restore
    const rollback = envelopeOf(await run('--yes', 'rollback', '--to', '0001'), 'rollback', 0);
    expect(rollback.result).toMatchObject({ toRevision: '0001_accounts' });
    expect(rollback.journal).not.toBeNull();
    const restore = envelopeOf(await run('restore', snapshot), 'restore', 0);
    expect(restore).toMatchObject({ outcome: 'ok', result: { restore: { ok: true } } });
    expect(restore.target?.database).toBe(up.target?.database);
    envelopeOf(await run('backups', 'prune', '--keep', '5'), 'backups prune', 0);

    // a preflight refusal: a revision without a down
    await writeFile(join(project.migrations, '0005_irreversible.up.sql'), 'CREATE TABLE irreversible (id int);');
    const refused = envelopeOf(await run('migrate', 'up'), 'migrate up', 4);
    expect(refused).toMatchObject({ outcome: 'refused', result: { error: 'preflight' } });
    expect(refused.message).toContain('0005_irreversible');
    expect(refused.next).not.toBeNull();
    // refused after the run began: the run and its journal file, which ends with that refusal, are named
    const refusedRun = (refused.result as { details: { runId: string } }).details.runId;
    expect(refused.journal).toBe(join(project.backups, 'journal', `${refusedRun}.jsonl`));
    const lastLine = JSON.parse((await readFile(refused.journal!, 'utf8')).trim().split('\n').at(-1)!) as { type: string; status: string; exitCode: number };
    expect(lastLine).toMatchObject({ type: 'outcome', status: 'refused', exitCode: 4 });

    // rehearse on an ephemeral cluster under a TMPDIR of its own: neither a database on the shared server nor
    // a folder in the shared temp folder, out of the way of the rehearse tests' leftover checks (no target)
    const tmp = join(project.dir, 'tmp');
    await mkdir(tmp);
    await chmod(tmp, 0o1777);
    const rehearseRun = (...words: string[]) =>
      belay(['--migrations', project.migrations, '--backups', project.backups, '--json', 'rehearse', ...words], { cwd: project.dir, env: cleanEnv({ TMPDIR: tmp }), timeoutMs: 120_000 });
    const rehearse = envelopeOf(await rehearseRun('--from', '0003', '--allow-irreversible'), 'rehearse', 2);
    expect(rehearse.outcome).toBe('usage-error');
    await writeFile(join(project.migrations, '0005_irreversible.down.sql'), 'DROP TABLE irreversible;');
    expect(envelopeOf(await rehearseRun('--from', '0003'), 'rehearse', 0)).toMatchObject({ outcome: 'ok', target: null });
    // and the embedded cluster's status (no target)
    expect(envelopeOf(await run('cluster', 'status'), 'cluster status', 0).target).toBeNull();
  }, 300_000);

  it('a dry run preflight would refuse is refused (exit 4) with its next step, as the run would be', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const run = (...words: string[]) => belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', ...words], { cwd: project.dir, env: cleanEnv() });
    expect(envelopeOf(await run('--to', '0001'), 'migrate up', 0).outcome).toBe('ok');
    expect(envelopeOf(await run('--dry-run'), 'migrate up', 0)).toMatchObject({ outcome: 'dry-run', next: null, message: 'dry run: would apply 2 revision(s); nothing was changed' });
    await writeFile(join(project.migrations, '0001_accounts.up.sql'), 'CREATE TABLE accounts (id bigint PRIMARY KEY);');
    const dry = envelopeOf(await run('--dry-run'), 'migrate up', 4);
    expect(dry).toMatchObject({ outcome: 'refused', journal: null, result: { error: 'preflight' } });
    expect(dry.message).toMatch(/^dry run: preflight would refuse: .*0001_accounts/);
    const real = envelopeOf(await run(), 'migrate up', 4);
    expect(dry.next).toBe(real.next);
    expect(dry.next).toMatch(/Nothing was changed\.$/);
  });

  it('an invalid config is one document naming every problem', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS, { integrity: { mode: 'paranoid' }, backup: { jobs: 0 } });
    const run = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up'], { cwd: project.dir });
    const doc = envelopeOf(run, 'migrate up', 2);
    expect(doc).toMatchObject({ target: null, result: { error: 'usage', details: { problems: [expect.stringMatching(/^integrity\.mode/), expect.stringMatching(/^backup\.jobs/)] } } });
  });
});
