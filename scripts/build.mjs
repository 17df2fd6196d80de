#!/usr/bin/env node
// npm run build: the library with tsc (dist/**/*.js and .d.ts, src/cli left
// out), then the CLI bundled by esbuild into dist/cli/main.js and lazy chunks
// under dist/cli/chunks/. The bundle is what makes a cold `belay` start fast:
// the entry holds commander, the command table and the CLI's own helpers (what
// `--help` loads: the entry and a few small shared chunks, where it loaded some
// 30 modules); the API and each command's runner, pg included, are chunks
// loaded when a command runs.
// Type errors in src/cli are `npm run typecheck`'s to find (esbuild does not check types).
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

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

function run(file, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { cwd: ROOT, stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${path.basename(file)} ${args.join(' ')} exited ${code ?? signal}`))));
  });
}

try {
  await run(path.join(ROOT, 'node_modules/typescript/bin/tsc'), ['-p', 'tsconfig.json']);
  // chunk names carry a content hash: clear the old ones
  await rm(OUT, { recursive: true, force: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints: { main: 'src/cli/main.ts' },
    outdir: OUT,
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: EXTERNAL,
    plugins: [nodeOnlyPg],
    // the bundled CommonJS (pg, commander) calls require() for node's own modules
    banner: { js: "import { createRequire as __belayCreateRequire } from 'node:module';\nconst require = __belayCreateRequire(import.meta.url);" },
    sourcemap: true,
    logLevel: 'warning',
  });
} catch (error) {
  console.error(`build failed: ${error.message}`);
  process.exitCode = 1;
}
