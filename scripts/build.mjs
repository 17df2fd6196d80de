#!/usr/bin/env node
// npm run build: the library with tsc (dist/**/*.js and .d.ts, src/cli left
// out), then the CLI, bundled by esbuild for a fast cold start:
//   dist/cli/belay.js        the whole CLI as one function expression (a classic
//                            script); each command's modules still run only when
//                            the command does (esbuild's lazy module wrappers)
//   dist/cli/belay.js.cache  V8's code cache for it, made here by running the
//                            CLI once (a `status` that cannot connect): Node 20
//                            keeps no compile cache for ES modules, and compiling
//                            the bundle was the largest part of a cold `status`
//   dist/cli/main.js         the `belay` command (CommonJS): prints the top-level help
//                            taken from the built CLI when that is all that is
//                            asked, else compiles belay.js with the cache
//                            (src/cli/main.ts, src/cli/cli-script.ts)
// Type errors in src/cli are `npm run typecheck`'s to find (esbuild does not check types).
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = path.join(ROOT, 'dist/cli');

/** Loaded at run time from node_modules, never bundled. */
const EXTERNAL = [
  // pino and pino-pretty are required on the first logged line only (src/cli/logger.ts)
  'pino',
  'pino-pretty',
  // tsx compiles .ts configs and revision modules, only when there is one
  'tsx',
  'tsx/*',
  // pg's optional native binding, which belay does not use
  'pg-native',
];

/**
 * pg decides at load time whether it runs in a Cloudflare Worker, and on Node
 * 20 (which has no `navigator`) it asks `typeof Response`: that global is a
 * lazy getter which loads node's bundled undici (about 20 ms) for nothing.
 * belay runs on Node only, so the bundle's copy of pg skips that probe. The
 * build fails if pg's code changes shape, rather than silently keep the cost.
 */
const PG_STREAM = /[\\/]node_modules[\\/]pg[\\/]lib[\\/]stream\.js$/;
const CLOUDFLARE_PROBE = "typeof Response === 'function'";
const nodeOnlyPg = {
  name: 'pg-node-only',
  setup(esbuild) {
    esbuild.onLoad({ filter: PG_STREAM }, async ({ path: file }) => {
      const source = await readFile(file, 'utf8');
      if (source.split(CLOUDFLARE_PROBE).length !== 2) throw new Error(`${file}: expected one \`${CLOUDFLARE_PROBE}\`; pg changed, look at scripts/build.mjs`);
      return { contents: source.replace(CLOUDFLARE_PROBE, 'false'), loader: 'js' };
    });
  },
};

/**
 * pg computes SCRAM through WebCrypto (crypto.subtle): importKey, deriveBits,
 * sign and digest, each a trip through the thread pool and a promise, and the
 * first use loads node's WebCrypto layer. The bundle's copy of pg uses
 * node:crypto instead: the same functions, the same bytes. The build fails if
 * pg's module exports other functions than these.
 */
const PG_CRYPTO_UTILS = /[\\/]node_modules[\\/]pg[\\/]lib[\\/]crypto[\\/]utils\.js$/;
const PG_CRYPTO_EXPORTS = ['postgresMd5PasswordHash', 'randomBytes', 'deriveKey', 'sha256', 'hashByName', 'hmacSha256', 'md5'];
const PG_CRYPTO_NODE = `'use strict'
const nodeCrypto = require('crypto')

module.exports = { ${PG_CRYPTO_EXPORTS.join(', ')} }

function randomBytes(length) {
  return nodeCrypto.randomBytes(length)
}

async function md5(string) {
  return nodeCrypto.createHash('md5').update(string, 'utf-8').digest('hex')
}

async function postgresMd5PasswordHash(user, password, salt) {
  const inner = await md5(password + user)
  const outer = await md5(Buffer.concat([Buffer.from(inner), salt]))
  return 'md5' + outer
}

async function sha256(data) {
  return nodeCrypto.createHash('sha256').update(Buffer.from(data)).digest()
}

/** WebCrypto's names (SHA-256, SHA-384, SHA-512) as node's (sha256 …). */
async function hashByName(hashName, data) {
  return nodeCrypto.createHash(hashName.replace('-', '').toLowerCase()).update(Buffer.from(data)).digest()
}

async function hmacSha256(key, msg) {
  return nodeCrypto.createHmac('sha256', Buffer.from(key)).update(msg, 'utf8').digest()
}

function deriveKey(password, salt, iterations) {
  return new Promise((resolve, reject) => {
    nodeCrypto.pbkdf2(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256', (error, key) => (error ? reject(error) : resolve(key)))
  })
}
`;
const nodeCryptoPg = {
  name: 'pg-node-crypto',
  setup(esbuild) {
    esbuild.onLoad({ filter: PG_CRYPTO_UTILS }, async ({ path: file }) => {
      const source = await readFile(file, 'utf8');
      const exported = /module\.exports = \{([^}]*)\}/.exec(source)?.[1].split(',').map((name) => name.trim()).filter(Boolean);
      if (exported?.join() !== PG_CRYPTO_EXPORTS.join()) throw new Error(`${file}: expected it to export ${PG_CRYPTO_EXPORTS.join(', ')}; pg changed, look at scripts/build.mjs`);
      return { contents: PG_CRYPTO_NODE, loader: 'js' };
    });
  },
};

function run(file, args, { cwd = ROOT, env = process.env, capture = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { cwd, env, stdio: ['ignore', capture ? 'pipe' : 'inherit', capture ? 'pipe' : 'inherit'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk) => (stdout += chunk));
    child.stderr?.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal, stdout, stderr });
    });
  });
}

async function mustRun(file, args) {
  const { code } = await run(file, args);
  if (code !== 0) throw new Error(`${path.basename(file)} ${args.join(' ')} exited ${code}`);
}

const BUNDLE = path.join(OUT, 'belay.js');
const CACHE = `${BUNDLE}.cache`;

/** A node process that loads the bundle as main.js does (cli-script.ts) and runs it with `args`; `then` is code run after. */
function bundleProcess(loader, args, then, options) {
  const code = `
    import { writeFileSync } from 'node:fs';
    import { loadCliScript } from ${JSON.stringify(loader)};
    const [bundle, cache, ...args] = process.argv.slice(1);
    process.argv = [process.argv[0], ${JSON.stringify(path.join(OUT, 'main.js'))}, ...args];
    const cli = loadCliScript(bundle, cache === '-' ? undefined : cache);
    ${then}`;
  return run('--input-type=module', ['-e', code, ...args], options);
}

/** Environment without connection settings: the training run must not find a server. */
function withoutConnection() {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PG') && key !== 'DATABASE_URL' && key !== 'NODE_OPTIONS' && key !== 'CI'));
}

/**
 * V8's code cache for the bundle, made after one run so that it holds the
 * functions that run compiled, not only the top level: `status` against a
 * server that refuses the connection (port 1 of this machine) loads and runs
 * the path of every connected command up to the connection (commander, the
 * command table, config, target, revision discovery and hashing, pg). Then a
 * second process checks that V8 takes the cache.
 */
async function makeCodeCache(loader, work) {
  const migrations = path.join(work, 'migrations');
  await mkdir(migrations);
  await writeFile(path.join(migrations, '0001_first.up.sql'), 'CREATE TABLE first (id int);\n');
  await writeFile(path.join(migrations, '0001_first.down.sql'), 'DROP TABLE first;\n');
  const args = ['--database-url', 'postgresql://belay@127.0.0.1:1/belay', '--migrations', migrations, '--backups', path.join(work, 'backups'), 'status'];
  const options = { cwd: work, env: withoutConnection(), capture: true };
  const trained = await bundleProcess(loader, [BUNDLE, '-', ...args], `process.once('exit', () => writeFileSync(cache === '-' ? ${JSON.stringify(CACHE)} : cache, cli.script.createCachedData())); cli.run();`, options);
  if (trained.code !== 2) throw new Error(`the training run (belay ${args.join(' ')}) exited ${trained.code}, expected 2 (cannot connect):\n${trained.stderr}`);
  const checked = await bundleProcess(loader, [BUNDLE, CACHE], 'process.stdout.write(String(cli.rejected));', options);
  if (checked.stdout !== 'false') throw new Error(`V8 rejected the code cache it just made (${checked.stdout} ${checked.stderr})`);
}

/** `belay --help` as the built CLI prints it to a pipe. */
async function rootHelp(loader) {
  const { code, stdout, stderr } = await bundleProcess(loader, [BUNDLE, '-', '--help'], 'cli.run();', { capture: true, env: withoutConnection() });
  if (code !== 0 || !stdout.startsWith('Usage: belay')) throw new Error(`belay --help exited ${code}:\n${stderr}`);
  return stdout;
}

/**
 * A classic script's import() needs a vm callback, which node loses for
 * functions taken from a code cache: every `import(…)` call in the bundle
 * becomes `IMPORT(…)`, the launcher's own import() (src/cli/cli-script.ts).
 * Found by parsing (TypeScript's parser), not by text, so that comments and
 * strings are left alone; same length, so the source map still fits.
 */
async function routeDynamicImports(file) {
  const source = await readFile(file, 'latin1');
  // the wrapper's parameter is the one IMPORT before the replacement
  if (source.match(/\bIMPORT\b/g)?.length !== 1) throw new Error(`${file} already uses the name IMPORT; pick another in scripts/build.mjs and src/cli/cli-script.ts`);
  const tree = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS);
  const starts = [];
  const visit = (node) => {
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) starts.push(node.expression.getStart(tree));
    ts.forEachChild(node, visit);
  };
  visit(tree);
  if (starts.length === 0) throw new Error(`${file}: no import() found; the revision and config loaders use one`);
  let out = source;
  for (const start of starts) out = `${out.slice(0, start)}IMPORT${out.slice(start + 'import'.length)}`;
  await writeFile(file, out, 'latin1');
}

const common = { absWorkingDir: ROOT, bundle: true, platform: 'node', target: 'node20', logLevel: 'warning' };

try {
  await mustRun(path.join(ROOT, 'node_modules/typescript/bin/tsc'), ['-p', 'tsconfig.json']);
  await rm(OUT, { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: ['src/cli/cli.ts'],
    outfile: BUNDLE,
    format: 'cjs',
    external: EXTERNAL,
    plugins: [nodeOnlyPg, nodeCryptoPg],
    // one function expression: main.js calls it with the bundle's own require, path and URL
    banner: { js: "(function (require, __filename, __dirname, __belayUrl, IMPORT) {\n'use strict';" },
    footer: { js: '})' },
    define: { 'import.meta.url': '__belayUrl' },
    sourcemap: true,
  });
  await routeDynamicImports(BUNDLE);
  // cli-script.ts as a module of its own (it imports only node's modules), for the build's runs of the bundle
  const work = await mkdtemp(path.join(tmpdir(), 'belay-build-'));
  let help;
  try {
    const loader = path.join(work, 'cli-script.mjs');
    await build({ ...common, entryPoints: ['src/cli/cli-script.ts'], outfile: loader, format: 'esm' });
    help = await rootHelp(loader);
    await makeCodeCache(loader, work);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  // main.js is CommonJS (dist/cli/package.json says so): node starts an ES module entry through its ESM loader, about 5 ms more
  await writeFile(path.join(OUT, 'package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`);
  await build({
    ...common,
    entryPoints: ['src/cli/main.ts'],
    outfile: path.join(OUT, 'main.js'),
    format: 'cjs',
    define: { BELAY_ROOT_HELP: JSON.stringify(help), 'import.meta.url': '__belayMainUrl' },
    banner: { js: "'use strict';\nconst __belayMainUrl = require('node:url').pathToFileURL(__filename).href;" },
  });
} catch (error) {
  console.error(`build failed: ${error.message}`);
  process.exitCode = 1;
}
