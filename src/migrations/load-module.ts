import { pathToFileURL } from 'node:url';
import { usageError } from '../errors.js';
import type { RevisionModule } from './revision-context.js';

/** Import a revision module; TypeScript is compiled on the fly, and only then is the compiler loaded. */
export async function loadRevisionModule(file: string, name: string): Promise<RevisionModule> {
  let loaded: Record<string, unknown>;
  if (/\.m?ts$/.test(file)) {
    const { tsImport } = await import('tsx/esm/api');
    loaded = (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
  } else {
    loaded = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  }
  const candidate = (loaded.up === undefined && typeof loaded.default === 'object' && loaded.default !== null
    ? loaded.default
    : loaded) as Record<string, unknown>;
  if (typeof candidate.up !== 'function') {
    throw usageError(`revision ${name} (${file}) does not export an up(ctx) function`);
  }
  for (const key of ['down', 'verify'] as const) {
    if (candidate[key] !== undefined && typeof candidate[key] !== 'function') {
      throw usageError(`revision ${name} exports ${key}, but it is not a function`);
    }
  }
  return candidate as unknown as RevisionModule;
}
