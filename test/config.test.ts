import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { BelayError } from '../src/errors.js';
import { belay } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

async function dirWith(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'belay-config-'));
  await writeFile(join(dir, name), text);
  return dir;
}

async function configError(config: unknown): Promise<BelayError> {
  const dir = await dirWith('belay.config.json', JSON.stringify(config));
  try {
    await loadConfig({ cwd: dir, overrides: {} });
  } catch (error) {
    if (error instanceof BelayError) return error;
    throw error;
  }
  throw new Error('the config was accepted');
}

describe('config', () => {
  it.each([
    [{ helth: {} }, /unknown key helth/],
    [{ health: { sql: [{ name: 'x', query: 'select 1', expect: 'many-rows' }] } }, /health\.sql\[0\]\.expect must be "no-rows", "some-rows" or \{ equals: VALUE \}/],
    [{ health: { http: [{ url: 'http://x' }] } }, /health\.http\[0\]\.name must be a non-empty string/],
    [{ health: { timeoutSeconds: 'soon' } }, /health\.timeoutSeconds must be a number/],
    [{ integrity: { mode: 'paranoid' } }, /integrity\.mode must be one of "strict", "invariants", "off"/],
    [{ backup: { format: 'tar' } }, /backup\.format must be one of "custom", "directory"/],
    [{ backup: { jobs: 0 } }, /backup\.jobs must be a whole number from 1 to 64 \(got 0\)/],
    [{ hooks: { afterDeploy: { run: 'true' } } }, /unknown key hooks\.afterDeploy/],
    [{ hooks: { afterApply: { run: '' } } }, /hooks\.afterApply\.run must be a non-empty string/],
    [{ integrity: { invariants: [{ name: 'x' }] } }, /integrity\.invariants\[0\]\.query must be a non-empty string/],
    [[], /- the config must be an object \(got \[\]\)$/],
    [null, /- the config must be an object \(got null\)$/],
    [{ hooks: { afterApply: 'restart' } }, /- hooks\.afterApply must be an object \{ run, timeoutSeconds \} \(got "restart"\)$/],
    [{ integrity: { tables: ['public.*'] } }, /- integrity\.tables must be an object \{ include, exclude \} \(got \["public\.\*"\]\)$/],
    [{ health: { http: [{ name: 'x', url: 'http://x', headers: 'x-a: 1' }] } }, /- health\.http\[0\]\.headers must be an object of header names and values \(got "x-a: 1"\)$/],
    [{ health: { sql: [{ name: 'multi', query: 'select 1; select 2', expect: 'some-rows' }] } }, /- health\.sql\[0\]\.query must be one statement: "multi" holds 2 \(got "select 1; select 2"\)$/],
    [{ health: { sql: [{ name: 'nothing', query: '-- to do', expect: 'no-rows' }] } }, /- health\.sql\[0\]\.query must be one statement: "nothing" holds 0/],
  ])('refuses %j naming the key', async (config, message) => {
    const error = await configError(config);
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(message);
  });

  it('reports every problem at once, not the first', async () => {
    const error = await configError({ helth: {}, integrity: { mode: 'paranoid' }, backup: { jobs: 'two', keep: 0 }, health: { http: [{ name: 'x', url: 'ftp://x' }] } });
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/5 problems/);
    for (const key of [/unknown key helth/, /integrity\.mode must be one of/, /backup\.jobs must be a whole number from 1 to 64 \(got "two"\)/, /backup\.keep must be/, /health\.http\[0\]\.url must be an http:\/\/ or https:\/\/ URL/]) {
      expect(error.message).toMatch(key);
    }
    expect(error.details.problems).toHaveLength(5);
  });

  it('a module with no default export is told it must export an object', async () => {
    const error = await loadConfig({ cwd: await dirWith('belay.config.mjs', 'export const backup = {};'), overrides: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BelayError);
    expect((error as BelayError).exitCode).toBe(2);
    expect((error as BelayError).message).toMatch(/: 1 problem\n {2}- the config must be an object \(got nothing\)$/);
  });

  it('a module config number JSON has no word for is told as it is, not as the null JSON writes (Infinity read "(got null)")', async () => {
    const error = await loadConfig({ cwd: await dirWith('belay.config.mjs', 'export default { health: { timeoutSeconds: Infinity } };'), overrides: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BelayError);
    expect((error as BelayError).exitCode).toBe(2);
    expect((error as BelayError).message).toMatch(/- health\.timeoutSeconds must be .* \(got Infinity\)$/);
  });

  it.each([
    ['a BigInt', 'export default { health: { sql: [{ name: "x", query: "select 1", expect: { equals: 1n } }] } };', /Do not know how to serialize a BigInt/],
    ['an object that holds itself', 'const o = {}; o.self = o; export default { health: { sql: [{ name: "x", query: "select 1", expect: { equals: o } }] } };', /circular/],
    ['a getter that throws', 'export default { get health() { throw new Error("no health here"); } };', /no health here/],
  ])('a module whose config holds %s is refused (exit 2) as not plain data (a BigInt was exit 1 at the health baseline, a getter exit 1 before it)', async (_what, text, cause) => {
    const error = await loadConfig({ cwd: await dirWith('belay.config.mjs', text), overrides: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BelayError);
    expect((error as BelayError).exitCode).toBe(2);
    expect((error as BelayError).message).toMatch(/it holds a value that is not plain data: /);
    expect((error as BelayError).message).toMatch(cause);
  });

    it('accepts a $schema key, so editors complete belay.config.json', async () => {
    const config = await loadConfig({ cwd: await dirWith('belay.config.json', JSON.stringify({ $schema: './node_modules/pg-belay/belay.schema.json' })), overrides: {} });
    expect(config.integrity.mode).toBe('strict');
  });

  it('accepts one statement with its semicolon, quoted semicolons, and a UTF-8 byte order mark before the JSON', async () => {
    const query = "select ';' as x; -- one";
    const config = await loadConfig({ cwd: await dirWith('belay.config.json', `\uFEFF${JSON.stringify({ health: { sql: [{ name: 'one', query, expect: 'some-rows' }] } })}`), overrides: {} });
    expect(config.health.sql[0]!.query).toBe(query);
  });

  it('fills defaults and reads .json, .mjs and .ts files', async () => {
    const json = await loadConfig({ cwd: await dirWith('belay.config.json', '{}'), overrides: {} });
    expect(json.integrity.mode).toBe('strict');
    expect(json.health.timeoutSeconds).toBe(30);
    const mjs = await loadConfig({ cwd: await dirWith('belay.config.mjs', "export default { backup: { format: 'directory', jobs: 2 } };"), overrides: {} });
    expect(mjs.backup).toMatchObject({ format: 'directory', jobs: 2 });
    const ts = await loadConfig({
      cwd: await dirWith('belay.config.ts', "const mode: 'invariants' = 'invariants';\nexport default async () => ({ integrity: { mode } });"),
      overrides: {},
    });
    expect(ts.integrity.mode).toBe('invariants');
  });

  it('two config files side by side are refused (exit 2) naming both, where the .ts was read and the .json silently not; --config picks one', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS, { integrity: { mode: 'invariants' } });
    await writeFile(join(project.dir, 'belay.config.ts'), "export default { integrity: { mode: 'strict' } };");
    const run = await belay([...baseArgs(project, db.url), 'status'], { cwd: project.dir });
    expect(run.code, run.stdout + run.stderr).toBe(2);
    expect(run.stderr).toContain('belay.config.ts and belay.config.json are both in');
    expect(run.stderr).toMatch(/next: Keep one of them \(belay would read belay\.config\.ts\), or name it with --config FILE\./);
    const picked = await belay([...baseArgs(project, db.url), '--config', 'belay.config.json', 'status'], { cwd: project.dir });
    expect(picked.code, picked.stderr).toBe(0);
  });

  it('a bad config exits 2 from the command line, naming the key, before touching the database', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS, { health: { sql: [{ name: 'users', query: 'select 1', expect: { equal: 1 } }] } });
    const run = await belay([...baseArgs(project, db.url), 'migrate', 'up'], { cwd: project.dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('health.sql[0].expect');
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
    // a check of two statements crashed (exit 1) in verify and in the baseline, leaving the run unfinished
    await writeFile(join(project.dir, 'belay.config.json'), JSON.stringify({ health: { sql: [{ name: 'multi', query: 'select 1; select 2', expect: 'some-rows' }] } }));
    for (const command of [['verify'], ['migrate', 'up', '--with-backup']]) {
      const multi = await belay([...baseArgs(project, db.url), ...command], { cwd: project.dir });
      expect(multi.code, multi.stderr).toBe(2);
      expect(multi.stderr).toContain('health.sql[0].query must be one statement: "multi" holds 2');
    }
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'belay'")).toHaveLength(0);
    const missing = await belay([...baseArgs(project, db.url), '--config', 'nope.json', 'status'], { cwd: project.dir });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--config nope.json: no such file');
  });
});
