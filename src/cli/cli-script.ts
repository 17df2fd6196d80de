import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import vm from 'node:vm';

/**
 * The bundled CLI (dist/cli/belay.js, built by scripts/build.mjs) is one
 * function expression, `(function (require, __filename, __dirname, __belayUrl, IMPORT) { … })`,
 * compiled here as a classic script so that V8 can take its compiled code
 * from a code cache made at build time (Node 20 keeps no compile cache for ES
 * modules). A cache V8 rejects (another Node or V8 flags) only costs the
 * compile it would have saved. The build turned the bundle's `import(…)`
 * (a user's config or revision module, tsx) into `IMPORT(…)`: this module's
 * own import(), since a classic script's import() needs a vm callback that
 * node drops for code taken from a cache (and flags as experimental).
 */
export interface CliScript {
  script: vm.Script;
  /** A cache was given and V8 refused it. */
  rejected: boolean;
  run(): void;
}

type CliFunction = (require: NodeJS.Require, filename: string, dirname: string, url: string, importModule: (specifier: string) => Promise<unknown>) => void;

export function loadCliScript(file: string, cacheFile: string | undefined): CliScript {
  // the bundle is ASCII (esbuild's default charset): latin1 makes a one-byte string without decoding
  const source = readFileSync(file, 'latin1');
  let cachedData: Buffer | undefined;
  if (cacheFile !== undefined) {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      // no cache: compiled from source
    }
  }
  const script = new vm.Script(source, {
    filename: file,
    ...(cachedData === undefined ? {} : { cachedData }),
  });
  return {
    script,
    rejected: cachedData !== undefined && script.cachedDataRejected === true,
    run: () => {
      const cli = script.runInThisContext() as CliFunction;
      cli(createRequire(file), file, dirname(file), pathToFileURL(file).href, (specifier) => import(specifier));
    },
  };
}
