import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

/** Per-file checksums and one combined checksum over them. */
export async function checksumFiles(files: string[]): Promise<{ fileChecksums: Record<string, string>; checksum: string }> {
  const fileChecksums: Record<string, string> = {};
  // revision files are small: read whole (a 1 MiB stream buffer per file would only feed the GC)
  for (const file of [...files].sort()) fileChecksums[basename(file)] = createHash('sha256').update(await readFile(file)).digest('hex');
  return { fileChecksums, checksum: combineChecksums(fileChecksums) };
}

export function combineChecksums(fileChecksums: Record<string, string>): string {
  const lines = Object.keys(fileChecksums)
    .sort()
    .map((name) => `${name} ${fileChecksums[name]}\n`);
  return createHash('sha256').update(lines.join('')).digest('hex');
}
