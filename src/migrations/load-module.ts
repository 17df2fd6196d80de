import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import { preflightError, usageError, type BelayError } from '../errors.js';
import type { RevisionModule } from './revision-context.js';

const isTypeScript = (file: string): boolean => /\.[mc]?ts$/.test(file);

async function importModule(file: string): Promise<Record<string, unknown>> {
  if (isTypeScript(file)) {
    const { tsImport } = await import('tsx/esm/api');
    return (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
  }
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

/** Import a revision module; TypeScript is compiled on the fly, and only then is the compiler loaded. */
export async function loadRevisionModule(file: string, name: string): Promise<RevisionModule> {
  let loaded: Record<string, unknown>;
  try {
    loaded = await importModule(file);
  } catch (error) {
    throw await loadError(file, name, error);
  }
  const candidate = (loaded.up === undefined && typeof loaded.default === 'object' && loaded.default !== null
    ? loaded.default
    : loaded) as Record<string, unknown>;
  if (typeof candidate.up !== 'function') {
    throw usageError(`revision ${name} (${file}) does not export an up(ctx) function`, {
      hint: `Export an async function up(ctx) (and down(ctx)) from ${basename(file)}: \`export async function up(ctx) { await ctx.sql('…'); }\`; README, Migrations, shows a module revision. Nothing was changed.`,
    });
  }
  for (const key of ['down', 'verify'] as const) {
    if (candidate[key] !== undefined && typeof candidate[key] !== 'function') {
      throw usageError(`revision ${name} exports ${key}, but it is not a function`, {
        hint: `Make ${key} in ${basename(file)} a function (\`export async function ${key}(ctx) { … }\`), or remove it. Nothing was changed.`,
      });
    }
  }
  return candidate as unknown as RevisionModule;
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The first line of `file` that an error's stack or message points at, e.g. "at …/0004_x.mjs:3:7". */
export function lineIn(error: unknown, file: string): number | undefined {
  const text = error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error);
  const names = [file, pathToFileURL(file).href].map(escapeRegExp).join('|');
  const match = new RegExp(`(?:${names}):(\\d+)`).exec(text);
  return match ? Number(match[1]) : undefined;
}

/**
 * Where a module that failed to load went wrong, when its error does not say:
 * Node's SyntaxError from import() carries no location (`node --check` prints
 * it), and tsx compiles a .ts file of a CommonJS package into code without a
 * source map (its CommonJS loader maps lines, so a top-level throw is reproduced there).
 */
async function locate(file: string, error: unknown): Promise<number | undefined> {
  if (isTypeScript(file)) {
    const { require: tsRequire } = await import('tsx/cjs/api');
    try {
      tsRequire(file, import.meta.url);
      return undefined;
    } catch (again) {
      return lineIn(again, file);
    }
  }
  if (!(error instanceof SyntaxError)) return undefined;
  const stderr = await new Promise<string>((resolve) => {
    // an empty environment: the check needs none, and the child must not see a password
    const child = spawn(process.execPath, ['--check', file], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000, env: {} });
    let text = '';
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.on('error', () => resolve(''));
    child.on('close', () => resolve(text));
  });
  return lineIn(stderr, file);
}

async function loadError(file: string, name: string, error: unknown): Promise<BelayError> {
  const line = lineIn(error, file) ?? (await locate(file, error));
  const where = line === undefined ? basename(file) : `${basename(file)}:${line}`;
  const raw = error instanceof Error ? error.message : String(error);
  // esbuild: "Transform failed with 1 error:\n/path/x.ts:4:10: ERROR: Unexpected "=""
  const reason = /: ERROR: (.*)/.exec(raw)?.[1] ?? raw.split('\n')[0] ?? raw;
  const kind = error instanceof SyntaxError || /^Transform failed/.test(raw) ? 'a syntax error' : 'an error thrown while loading it';
  return preflightError(`revision ${name} cannot be loaded: ${kind} at ${where}: ${reason}`, {
    hint: `Fix ${basename(file)} (\`node --check\` or \`tsc --noEmit\` shows the error; top-level code runs when belay loads the revision). Nothing was changed.`,
    details: { file, ...(line === undefined ? {} : { line }) },
    cause: error,
  });
}
