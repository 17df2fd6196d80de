import { chmod, copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { belay, cleanEnv, startBelay } from './support/cli.js';
import { childrenOf, pollUntil, processGone } from './support/kill.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, makeProject } from './support/project.js';

const idOf = (stdout: string): string => (JSON.parse(stdout).result as { snapshot: { id: string } }).snapshot.id;

describe('the snapshot store is a jail', () => {
  it('a truncated manifest: `backups list` lists the sound snapshots and names it with what to do (exit 4, next:), as verify does', async () => {
    const db = await freshDatabase();
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const sound = idOf((await belay([...args, '--json', 'backup'])).stdout);
    const broken = '20261124T133700Z-app-abcdef.manifest.json';
    await writeFile(join(project.backups, broken), '{"id":"X","trunc');
    const before = (await readdir(project.backups)).sort();
    const todo = 'Inspect the file; move it out of the backups folder once you know where it came from.';

    const text = await belay([...args, 'backups', 'list']);
    expect(text.code, text.stderr).toBe(4);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^${sound}  `));
    expect(lines).toContain(`refused manifest ${broken}: not valid JSON; next: ${todo}`);
    expect(lines.at(-1)).toBe(`  next: Nothing was touched. ${broken}: ${todo}`);

    const json = await belay([...args, '--json', 'backups', 'list']);
    expect(json.code).toBe(4);
    const document = JSON.parse(json.stdout) as { outcome: string; next: string | null; result: { snapshots: Array<{ id: string }>; refused: Array<{ file: string; problem: string }> } };
    expect(document).toMatchObject({ outcome: 'refused', next: `Nothing was touched. ${broken}: ${todo}` });
    expect(document.result.snapshots.map((m) => m.id)).toEqual([sound]);
    expect(document.result.refused).toEqual([{ file: broken, problem: 'not valid JSON' }]);

    const verify = await belay([...args, 'backups', 'verify', broken.replace('.manifest.json', '')]);
    expect(verify.code).toBe(4);
    expect(verify.stderr).toContain(`next: Nothing was touched. ${todo}`);
    expect((await readdir(project.backups)).sort()).toEqual(before);
  });

  it('a manifest that names another file, or disagrees with its own name, is refused (exit 4) and never followed', async () => {
    const db = await freshDatabase();
    await db.appQuery('CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)');
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const keep = idOf((await belay([...args, '--json', 'backup'])).stdout);
    const victim = idOf((await belay([...args, '--json', 'backup'])).stdout);
    const outside = join(project.dir, 'outside.txt');
    await writeFile(outside, 'precious');
    const original = JSON.parse(await readFile(join(project.backups, `${victim}.manifest.json`), 'utf8')) as Record<string, unknown>;
    const everything = async (): Promise<string[]> => (await readdir(project.dir, { recursive: true })).map(String).sort();

    for (const file of ['..', '', '../outside.txt', '.', `${keep}.dump`, '/etc/passwd']) {
      await writeFile(join(project.backups, `${victim}.manifest.json`), JSON.stringify({ ...original, file }));
      const before = await everything();
      const prune = await belay([...args, '--yes', 'backups', 'prune', '--keep', '0']);
      expect(prune.code, `file ${JSON.stringify(file)}: ${prune.stderr}`).toBe(4);
      expect(prune.stderr).toMatch(new RegExp(`${victim}\\.manifest\\.json .*names the dump`));
      expect(await everything(), `file ${JSON.stringify(file)}`).toEqual(before);
      const restore = await belay([...args, '--yes', 'restore', victim]);
      expect(restore.code).toBe(4);
      const list = await belay([...args, '--json', 'backups', 'list']);
      expect(list.code).toBe(4);
      expect((JSON.parse(list.stdout).result as { refused: Array<{ file: string }> }).refused.map((r) => r.file)).toEqual([`${victim}.manifest.json`]);
    }
    expect(await readFile(outside, 'utf8')).toBe('precious');

    // a manifest copied under another snapshot's name, an id that is a path, a newer or unknown format
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      [`20990101T000000Z-x-abcdef.manifest.json`, { ...original }, /disagrees with its own name/],
      [`20990101T000000Z-y-abcdef.manifest.json`, { ...original, id: '../../etc' }, /not a snapshot id belay makes/],
      [`${victim}.manifest.json`, { ...original, formatVersion: '2.0' }, /written by a newer belay \(manifest format 2\.0; this belay reads format 1\.x\)/],
      [`${victim}.manifest.json`, { ...original, formatVersion: 'banana' }, /unknown manifest format "banana"/],
      [`${victim}.manifest.json`, { ...original, format: 'tar' }, /unknown snapshot format "tar"/],
    ];
    await writeFile(join(project.backups, `${victim}.manifest.json`), JSON.stringify(original));
    for (const [name, manifest, problem] of cases) {
      await writeFile(join(project.backups, name), JSON.stringify(manifest));
      const list = await belay([...args, 'backups', 'list']);
      expect(list.code, name).toBe(4);
      expect(list.stdout).toMatch(problem);
      const verify = await belay([...args, 'backups', 'verify', name.replace('.manifest.json', '')]);
      expect(verify.code, `${name}: ${verify.stderr}`).toBe(4);
      if (name === `${victim}.manifest.json`) await writeFile(join(project.backups, name), JSON.stringify(original));
      else await rm(join(project.backups, name));
    }
    // sound again: prune goes on, under its rules
    const prune = await belay([...args, '--json', '--yes', 'backups', 'prune', '--keep', '0']);
    expect(prune.code, prune.stderr).toBe(0);
    expect((JSON.parse(prune.stdout).result as { removed: string[] }).removed).toEqual([keep]);
    expect(await readFile(outside, 'utf8')).toBe('precious');
  });

  it('a snapshot of another database is restored only with --allow-other-database', async () => {
    const source = await freshDatabase();
    const target = await freshDatabase();
    await source.appQuery("CREATE TABLE s (v text); INSERT INTO s VALUES ('from source')");
    await target.appQuery("CREATE TABLE keepme (v text); INSERT INTO keepme VALUES ('target data')");
    const project = await makeProject({});
    const id = idOf((await belay([...baseArgs(project, source.url), '--json', 'backup'])).stdout);
    const refused = await belay([...baseArgs(project, target.url), '--yes', 'restore', id]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(new RegExp(`was taken from database ${source.name}, not ${target.name}`));
    expect(refused.stderr).toMatch(/--allow-other-database/);
    expect(await target.query('SELECT v FROM keepme')).toEqual([{ v: 'target data' }]);
    const allowed = await belay([...baseArgs(project, target.url), '--yes', 'restore', id, '--allow-other-database']);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(await target.query('SELECT v FROM s')).toEqual([{ v: 'from source' }]);
  });

  it('a dump half written by a run killed during pg_dump is private, listed as partial, and removed by recover (and by prune)', async () => {
    const db = await freshDatabase();
    await db.appQuery('CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload FROM generate_series(1, 400000) g');
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const tmp = join(project.dir, 'tmp');
    await mkdir(tmp);
    const killDuringDump = async (): Promise<string> => {
      const run = startBelay([...args, 'backup'], { env: cleanEnv({ TMPDIR: tmp }) });
      let pgDump: number | undefined;
      let partial: string | undefined;
      await pollUntil(async () => {
        // the pg_dump writing the dump (its command line names the partial file), not the `pg_dump --version` belay runs first to pick its tools
        pgDump ??= (await Promise.all((await childrenOf(run.child.pid!)).map(async (pid) => (/pg_dump.*\.dump\.partial/.test((await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ')) ? pid : undefined)))).find(Boolean);
        partial = (await readdir(project.backups).catch(() => [] as string[])).find((f) => f.endsWith('.dump.partial'));
        return pgDump !== undefined && partial !== undefined && (await stat(join(project.backups, partial)).catch(() => ({ size: 0 }))).size > 0;
      }, 'pg_dump writing its dump');
      // from its first bytes
      expect((await stat(join(project.backups, partial!))).mode & 0o077).toBe(0);
      run.child.kill('SIGKILL');
      // pg_dump may already be gone: with belay dead, its next progress line to stderr meets a closed pipe
      try {
        process.kill(pgDump!, 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
      await run.done;
      await pollUntil(() => processGone(pgDump!), 'pg_dump gone');
      expect(await readdir(tmp), 'no passfile left in the temp folder').toEqual([]);
      return partial!;
    };

    const partial = await killDuringDump();
    const list = await belay([...args, '--json', 'backups', 'list']);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout).result as { partial: Array<{ file: string }> }).partial.map((p) => p.file)).toEqual([partial]);
    expect((await belay([...args, 'backups', 'list'])).stdout).toMatch(new RegExp(`${partial.replaceAll('.', '\\.')} .*partial`));
    const recover = await belay([...args, 'recover']);
    expect(recover.code, recover.stderr).toBe(0);
    expect((await readdir(project.backups)).filter((f) => f.endsWith('.partial'))).toEqual([]);

    const again = await killDuringDump();
    // another database's half-written dump is not this prune's to remove
    const other = await freshDatabase();
    const foreign = `.20260101T000000Z-${other.name}-abcdef.dump.partial`;
    await writeFile(join(project.backups, foreign), 'x');
    await chmod(join(project.backups, foreign), 0o600);
    // a run killed after its dump was renamed into place, before its manifest was: the manifest is still under its temp name
    const orphan = `20260101T000000Z-${db.name}-fedcba.dump`;
    await writeFile(join(project.backups, orphan), 'dump whose manifest was not yet in place');
    await writeFile(join(project.backups, `20260101T000000Z-${db.name}-fedcba.manifest.json.tmp-4242`), '{}');
    const prune = await belay([...args, '--json', '--yes', 'backups', 'prune', '--keep', '1']);
    expect(prune.code, prune.stderr).toBe(0);
    const result = JSON.parse(prune.stdout).result as { leftoversRemoved: string[]; leftoversKept: Array<{ file: string; why: string }> };
    expect(result.leftoversRemoved.sort()).toEqual([again, orphan, `20260101T000000Z-${db.name}-fedcba.manifest.json.tmp-4242`].sort());
    expect(result.leftoversKept).toEqual([{ file: foreign, why: expect.stringMatching(/whose lock this run does not hold/) as unknown as string }]);
    expect((await readdir(project.backups)).filter((f) => f.endsWith('.partial'))).toEqual([foreign]);
  });

  it('a finished dump copied in without its manifest is listed as such and never removed, by prune or by recover', async () => {
    const db = await freshDatabase();
    await db.appQuery("CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g");
    const project = await makeProject({});
    const args = baseArgs(project, db.url);
    const taken = idOf((await belay([...args, '--json', 'backup'])).stdout);
    // a valid pg_dump archive brought back from an offsite copy, its manifest not copied (yet); and a directory-format one
    const copied = `20240101T000000Z-${db.name}-0ff51e.dump`;
    const folder = `20240101T000000Z-${db.name}-0ff51f.dir`;
    await copyFile(join(project.backups, `${taken}.dump`), join(project.backups, copied));
    await mkdir(join(project.backups, folder), { mode: 0o700 });
    await copyFile(join(project.backups, `${taken}.dump`), join(project.backups, folder, 'toc.dat'));
    const before = await readFile(join(project.backups, copied));

    const list = await belay([...args, '--json', 'backups', 'list']);
    expect(list.code, list.stderr).toBe(0);
    const listing = JSON.parse(list.stdout).result as { partial: unknown[]; withoutManifest: Array<{ file: string; id: string }> };
    expect(listing.partial).toEqual([]);
    expect(listing.withoutManifest.map((d) => d.file).sort()).toEqual([copied, folder].sort());
    const human = await belay([...args, 'backups', 'list']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`${copied.replaceAll('.', '\\.')} .*no manifest: not made by belay or its manifest is missing; not removed .*next: put its manifest \\(${copied.replace('.dump', '')}\\.manifest\\.json\\) beside it`));
    expect(human.stdout).not.toMatch(/half written|partial/);

    const prune = await belay([...args, '--json', '--yes', 'backups', 'prune', '--keep', '0']);
    expect(prune.code, prune.stderr).toBe(0);
    expect((JSON.parse(prune.stdout).result as { leftoversRemoved: string[] }).leftoversRemoved).toEqual([]);
    const pruneText = await belay([...args, '--yes', 'backups', 'prune', '--keep', '0']);
    expect(pruneText.code, pruneText.stderr).toBe(0);
    expect(pruneText.stdout).not.toMatch(/half written/);
    const recover = await belay([...args, 'recover']);
    expect(recover.code, recover.stderr).toBe(0);
    expect(await readFile(join(project.backups, copied))).toEqual(before);
    expect(await readFile(join(project.backups, folder, 'toc.dat'))).toEqual(before);
  });

  it('a directory-format snapshot is a private folder, verified, and pruned as a whole', async () => {
    const db = await freshDatabase();
    await db.appQuery('CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000); CREATE TABLE u (id int)');
    const project = await makeProject({}, { backup: { format: 'directory', jobs: 2 } });
    const args = baseArgs(project, db.url);
    const older = idOf((await belay([...args, '--json', 'backup'], { cwd: project.dir })).stdout);
    const newer = idOf((await belay([...args, '--json', 'backup'], { cwd: project.dir })).stdout);
    expect((await stat(join(project.backups, `${newer}.dir`))).mode & 0o777).toBe(0o700);
    expect((await belay([...args, 'backups', 'verify', newer], { cwd: project.dir })).code).toBe(0);
    const prune = await belay([...args, '--json', '--yes', 'backups', 'prune', '--keep', '0'], { cwd: project.dir });
    expect(prune.code, prune.stderr).toBe(0);
    expect((JSON.parse(prune.stdout).result as { removed: string[] }).removed).toEqual([older]);
    expect((await readdir(project.backups)).filter((f) => !f.startsWith('journal')).sort()).toEqual([`${newer}.dir`, `${newer}.manifest.json`]);
  });
});
