import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { errorMessage, usageError } from '../errors.js';

/** Per-file checksums and one combined checksum over them. */
export async function checksumFiles(files: string[]): Promise<{ fileChecksums: Record<string, string>; checksum: string }> {
  const fileChecksums: Record<string, string> = {};
  // revision files are small: read whole (a 1 MiB stream buffer per file would only feed the GC)
  for (const file of [...files].sort()) fileChecksums[basename(file)] = createHash('sha256').update(await readRevisionFile(file)).digest('hex');
  return { fileChecksums, checksum: combineChecksums(fileChecksums) };
}

async function readRevisionFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw usageError(`cannot read the revision file ${file}: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}`, {
      hint: 'Make it a readable file for the user running belay, or move it out of the migrations folder.',
      cause: error,
    });
  }
}

export function combineChecksums(fileChecksums: Record<string, string>): string {
  const lines = Object.keys(fileChecksums)
    .sort()
    .map((name) => `${name} ${fileChecksums[name]}\n`);
  return createHash('sha256').update(lines.join('')).digest('hex');
}
