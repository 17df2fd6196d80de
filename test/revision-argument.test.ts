import { describe, expect, it } from 'vitest';
import { resolveRevisionName, resolveRevisionOrStart } from '../src/migrations/resolve-name.js';
import { belay } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

// README "Migrations": a revision is named by its number, its full name or a unique prefix; `--to 0`, exactly, is before the first
const NAMES = ['0001_accounts', '0002_profiles', '0003_accounts_name'];

describe('a revision argument', () => {
  it('`0` alone is before the first revision; `00`, `000`, `0000` and an empty one name no revision, never all of them', () => {
    expect(resolveRevisionOrStart('0', NAMES)).toBeNull();
    expect(() => resolveRevisionOrStart('00', NAMES)).toThrow(/--to 00 is ambiguous: it matches 0001_accounts, 0002_profiles, 0003_accounts_name/);
    expect(() => resolveRevisionOrStart('000', NAMES)).toThrow(/--to 000 is ambiguous/);
    expect(() => resolveRevisionOrStart('0000', NAMES)).toThrow(/--to 0000 names no revision/);
    expect(() => resolveRevisionOrStart('', NAMES)).toThrow(/--to was given an empty revision/);
    expect(() => resolveRevisionName(' ', NAMES, '--from')).toThrow(/--from was given an empty revision/);
    // numbers and prefixes as before
    expect(resolveRevisionOrStart('2', NAMES)).toBe('0002_profiles');
    expect(resolveRevisionOrStart('0002', NAMES)).toBe('0002_profiles');
    expect(resolveRevisionOrStart('0003_acc', NAMES)).toBe('0003_accounts_name');
    // a number a digit short, that is also the start of other names, is neither reading
    const many = ['0001_a', '0002_b', ...Array.from({ length: 10 }, (_, i) => `00${20 + i}_c${i}`)];
    expect(() => resolveRevisionOrStart('002', many)).toThrow(/--to 002 is ambiguous: revision number 2 is 0002_b, and it begins 0020_c0, .*, 0029_c9/);
    expect(resolveRevisionOrStart('0002', many)).toBe('0002_b');
    expect(resolveRevisionOrStart('2', many)).toBe('0002_b');
    expect(resolveRevisionOrStart('0022', many)).toBe('0022_c2');
    expect(resolveRevisionOrStart('22', many)).toBe('0022_c2');
    expect(resolveRevisionOrStart('1', ['1_a', '10_b', '11_c'])).toBe('1_a');
    // a revision numbered 0 is named by 0 and by its zeros alike
    expect(resolveRevisionOrStart('0', ['0000_init', ...NAMES])).toBe('0000_init');
    expect(resolveRevisionOrStart('0000', ['0000_init', ...NAMES])).toBe('0000_init');
  });

  it('rollback --to 00 (or 0000, or an empty one) reverts nothing and exits 2; plan and migrate up read it alike; --to 0 still reverts every revision', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up'])).code).toBe(0);
    const applied = async (): Promise<string[]> => (await db.query<{ name: string }>('SELECT name FROM belay.migrations ORDER BY name')).map((r) => r.name);
    for (const to of ['00', '000', '0000', '']) {
      const rollback = await belay([...args, '--yes', 'rollback', '--no-backup', '--to', to]);
      expect(rollback.code, `--to '${to}': ${rollback.stderr}`).toBe(2);
      expect(rollback.stderr).toMatch(to === '' ? /--to was given an empty revision/ : new RegExp(`--to ${to} (is ambiguous|names no revision)`));
      if (to !== '') expect(rollback.stderr).toContain('`--to 0`, exactly, means before the first revision');
      expect(await applied()).toEqual(NAMES);
      const plan = await belay([...args, 'plan', '--to', to]);
      expect(plan.code, plan.stderr).toBe(2);
    }
    const up = await belay([...args, 'migrate', 'up', '--to', '00']);
    expect(up.code, up.stderr).toBe(2);
    const plan = await belay([...args, 'plan', '--to', '0']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain('rollback from 0003_accounts_name to (none)');
    const all = await belay([...args, '--yes', 'rollback', '--no-backup', '--to', '0']);
    expect(all.code, all.stderr).toBe(0);
    expect(await applied()).toEqual([]);
  });

  it('rollback --to the revision the database is at (a rerun) ends 0, already there, in --json and history alike; with --restore-from it points at belay restore (exit 2)', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const args = baseArgs(project, db.url);
    expect((await belay([...args, 'migrate', 'up', '--to', '0002'])).code).toBe(0);
    for (const to of ['0002', '2', '0002_profiles']) {
      const again = await belay([...args, '--json', '--yes', 'rollback', '--to', to]);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ outcome: 'up-to-date', exitCode: 0, message: 'already at 0002_profiles; nothing to roll back' });
    }
    const history = JSON.parse((await belay([...args, '--json', 'history', '--limit', '1'])).stdout).result as Array<{ command: string; status: string; exitCode: number; toRevision: string }>;
    expect(history[0]).toMatchObject({ command: 'rollback', status: 'up-to-date', exitCode: 0, toRevision: '0002_profiles' });
    const restoring = await belay([...args, '--yes', 'rollback', '--to', '0002', '--restore-from', 'nosuch']);
    expect(restoring.code, restoring.stderr).toBe(2);
    expect(restoring.stderr).toContain('the database is already at 0002_profiles, so there is nothing to roll back');
    expect(restoring.stderr).toContain('belay restore nosuch');
    expect((await db.query<{ name: string }>('SELECT name FROM belay.migrations ORDER BY name')).map((r) => r.name)).toEqual(['0001_accounts', '0002_profiles']);
    // with nothing applied, --to 0 is where it already is
    const empty = await freshDatabase();
    const none = await belay([...baseArgs(project, empty.url), '--yes', 'rollback', '--to', '0']);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toContain('already at the start; nothing to roll back');
  });
});
