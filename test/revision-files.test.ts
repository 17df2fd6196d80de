import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

describe('revision files belay cannot read', () => {
  it.each([
    { what: 'a broken link', code: 'ENOENT', make: (file: string) => symlink(`${file}.gone`, file), next: /next: Create the revision file \S+, or fix the link/ },
    { what: 'a folder', code: 'EISDIR', make: (file: string) => mkdir(file), next: /next: Replace the folder with the revision file \S+ itself/ },
  ])('$what named like a revision file: exit 2 naming the file and what to do about that cause, nothing touched', async ({ code, make, next }) => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const file = join(project.migrations, '0004_tags.down.sql');
    await writeFile(join(project.migrations, '0004_tags.up.sql'), 'CREATE TABLE tags (id int);');
    await make(file);
    for (const command of [['migrate', 'up'], ['status']]) {
      const run = await belay([...baseArgs(project, db.url), ...command]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(`cannot read the revision file ${file}: ${code}`);
      expect(run.stderr).toMatch(next);
      expect(run.stderr).toMatch(/Or move it out of the migrations folder/);
    }
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
  });
});

describe('revision text belay reads the way psql does', () => {
  it('a plpgsql body dollar-quoted with a non-ASCII tag ($größe$) applies and reverts', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_size.up.sql': [
        'CREATE FUNCTION size_label(n int) RETURNS text LANGUAGE plpgsql AS $größe$',
        'BEGIN',
        "  IF n > 10 THEN RETURN 'groß'; END IF;",
        "  RETURN 'klein';",
        'END',
        '$größe$;',
        '',
      ].join('\n'),
      '0001_size.down.sql': 'DROP FUNCTION size_label(int);\n',
    });
    const up = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
    expect(up.code, up.stderr).toBe(0);
    expect(await db.query('SELECT size_label(11) AS a, size_label(1) AS b')).toEqual([{ a: 'groß', b: 'klein' }]);
    const down = await belay([...baseArgs(project, db.url), 'rollback', '--to', '0', '--yes']);
    expect(down.code, down.stderr).toBe(0);
  });

  it.each([
    ['a transactional file', ''],
    ['a no-transaction file', '-- belay:no-transaction\n'],
  ])("COPY … FROM stdin data in %s is refused in preflight (exit 4, next: …), quotes and all, nothing touched", async (_what, marker) => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_countries.up.sql': `${marker}CREATE TABLE countries (code text PRIMARY KEY, name text);\nCOPY countries (code, name) FROM stdin;\nCI\tCôte d'Ivoire\nXX\t$$; END; -- /* "\n\\.\n`,
      '0001_countries.down.sql': 'DROP TABLE countries;\n',
    });
    const line = marker ? 3 : 2;
    const run = await belay([...baseArgs(project, db.url), 'migrate', 'up']);
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toContain(`0001_countries.up.sql line ${line}: \`COPY countries (code, name) FROM stdin\` is followed by data (lines ${line + 1}–${line + 3}) that only psql can send`);
    expect(run.stderr).toMatch(/next: Fix the named lines/);
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
    expect(await db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).toEqual([]);
  });
});

describe('what plan says of revisions the run refuses', () => {
  it('plan lists a script the run cannot run and a revision without a down (up: said nothing of it, while migrate up refused it) and, pointed down, a revision without a down; upper-case extensions are refused as misnamed (plan said "apply", exit 0, and 0001_a.UP.SQL was skipped without a word)', async () => {
    const db = await freshDatabase();
    const project = await makeProject({
      '0001_a.up.sql': 'CREATE TABLE a (id int);',
      '0002_b.up.sql': 'CREATE TABLE b (id int);',
      '0003_c.up.sql': '\\i other.sql',
      '0003_c.down.sql': 'SELECT 1;',
    });
    const args = [...baseArgs(project, db.url), '--json'];
    const up = JSON.parse((await belay([...args, 'plan'])).stdout) as { result: { problems: Array<{ name: string; message: string }> } };
    // what migrate up refuses, as it says it: the revisions without a down among them (plan said nothing of them)
    expect(up.result.problems).toEqual([
      { name: 'downs', ok: false, message: 'revisions without a down: 0001_a, 0002_b' },
      expect.objectContaining({ name: 'scripts', message: expect.stringContaining('psql command `\\i other.sql` is not SQL') }),
    ]);
    const refused = await belay([...args, 'migrate', 'up', '--with-backup']);
    expect(refused.code).toBe(4);
    expect(JSON.parse(refused.stdout).message).toContain('revisions without a down: 0001_a, 0002_b');
    expect(await db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).toEqual([]);
    const text = await belay([...baseArgs(project, db.url), 'plan']);
    expect(text.stdout).toContain('  problem: revisions without a down: 0001_a, 0002_b');
    expect((await belay([...args, 'migrate', 'up', '--to', '0002', '--allow-irreversible'])).code).toBe(0);
    const down = JSON.parse((await belay([...args, 'plan', '--to', '0'])).stdout) as { result: { problems: Array<{ name: string; message: string }> } };
    expect(down.result.problems).toEqual([{ name: 'downs', ok: false, message: 'revisions without a down stand between 0002_b and the start: 0002_b, 0001_a' }]);
    await writeFile(join(project.migrations, '0004_d.UP.SQL'), 'SELECT 1;');
    await writeFile(join(project.migrations, '0005_upgrade_v6.0.up.sql'), 'SELECT 1;');
    const misnamed = await belay([...args, 'plan']);
    expect(misnamed.code).toBe(2);
    expect(misnamed.stdout).toContain('look like revisions but are not named like one: 0004_d.UP.SQL, 0005_upgrade_v6.0.up.sql');
    // a golang-migrate name whose slug holds a dot looks like NNNN_slug.up.sql: the next: line says what a slug may hold
    expect(JSON.parse(misnamed.stdout).next).toContain('the slug of letters, digits, _ and - only');
  });
});
