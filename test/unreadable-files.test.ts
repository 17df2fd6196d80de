import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lookupUser } from '../src/cluster/os-user.js';
import { belay, cleanEnv, cliRunnableBy } from './support/cli.js';
import { GOOD_REVISIONS, makeProject } from './support/project.js';

// a file belay cannot read: the advice follows the cause (its errno code), never "fix its syntax" for a permission problem
const nobody = lookupUser('nobody');
const asNobody = process.getuid?.() === 0 && nobody !== undefined && cliRunnableBy(nobody);
// nothing here reaches a server: every case stops at the file
const NO_SERVER = 'postgresql://belay@127.0.0.1:1/none';

async function ownedBy(path: string, user: { uid: number; gid: number }): Promise<void> {
  await chown(path, user.uid, user.gid);
}

describe('a file belay cannot read', () => {
  it.runIf(asNobody)('a config the user running belay may not read: exit 2, told to make it readable, not to fix its syntax', async () => {
    const project = await makeProject(GOOD_REVISIONS, {});
    const config = join(project.dir, 'belay.config.json');
    await chmod(config, 0o000);
    const run = await belay(['--database-url', NO_SERVER, 'status'], { cwd: project.dir, uid: nobody!.uid, gid: nobody!.gid, env: cleanEnv({ HOME: project.dir }) });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(`cannot read the config ${config}: EACCES: permission denied`);
    expect(run.stderr).toMatch(/next: Make the config \S+ readable by the user running belay \(.*uid \d+\): chmod or chown it/);
    expect(run.stderr).not.toContain('syntax');
  });

  it('a config that is a folder: told so; a config with a syntax error: told to fix its syntax', async () => {
    const project = await makeProject(GOOD_REVISIONS);
    await mkdir(join(project.dir, 'belay.config.json'));
    const folder = await belay(['--database-url', NO_SERVER, 'status'], { cwd: project.dir });
    expect(folder.code, folder.stderr).toBe(2);
    expect(folder.stderr).toContain('EISDIR: it is a folder, not a file');
    expect(folder.stderr).not.toContain('syntax');
    const broken = await makeProject(GOOD_REVISIONS);
    await writeFile(join(broken.dir, 'belay.config.json'), '{ "health": ');
    const syntax = await belay(['--database-url', NO_SERVER, 'status'], { cwd: broken.dir });
    expect(syntax.code, syntax.stderr).toBe(2);
    expect(syntax.stderr).toMatch(/next: Fix its syntax/);
  });

  it.runIf(asNobody)('a revision file, the migrations folder and a snapshot manifest the user may not read: exit 2 or 4, told to make it readable', async () => {
    const project = await makeProject(GOOD_REVISIONS);
    for (const path of [project.dir, project.migrations]) await ownedBy(path, nobody!);
    const as = { cwd: project.dir, uid: nobody!.uid, gid: nobody!.gid, env: cleanEnv({ HOME: project.dir }) };
    const file = join(project.migrations, '0002_profiles.up.sql');
    await chmod(file, 0o000);
    const revision = await belay(['--database-url', NO_SERVER, '--migrations', project.migrations, 'status'], as);
    expect(revision.code, revision.stderr).toBe(2);
    expect(revision.stderr).toContain(`cannot read the revision file ${file}: EACCES: permission denied`);
    expect(revision.stderr).toMatch(/next: Make the revision file \S+ readable by the user running belay/);

    await chmod(project.migrations, 0o000);
    const folder = await belay(['--database-url', NO_SERVER, '--migrations', project.migrations, 'status'], as);
    expect(folder.code, folder.stderr).toBe(2);
    expect(folder.stderr).toContain(`cannot read the migrations folder ${project.migrations}: EACCES: permission denied`);
    expect(folder.stderr).toMatch(/next: Make the migrations folder \S+ readable by the user running belay/);
    expect(folder.stderr).not.toContain('belay new');

    await mkdir(project.backups);
    await ownedBy(project.backups, nobody!);
    const id = '20260101T000000Z-app-0123ab';
    const manifest = join(project.backups, `${id}.manifest.json`);
    await writeFile(manifest, '{}');
    await chmod(manifest, 0o000);
    const verify = await belay(['--backups', project.backups, 'backups', 'verify', id], as);
    expect(verify.code, verify.stderr).toBe(4);
    expect(verify.stderr).toContain(`manifest ${manifest} is refused: cannot be read: EACCES: permission denied`);
    expect(verify.stderr).toMatch(/next: Nothing was touched\. Make the manifest \S+ readable by the user running belay/);
    const list = await belay(['--json', '--backups', project.backups, 'backups', 'list'], as);
    expect(JSON.parse(list.stdout).result.refused).toEqual([
      { file: `${id}.manifest.json`, problem: 'cannot be read: EACCES: permission denied', next: expect.stringMatching(/^Make the manifest \S+ readable by the user running belay/) },
    ]);
  });
});
