import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Revision } from './revision.js';

/**
 * The bytes discovery hashed, kept until the run reads them: a revision runs
 * exactly what its checksum says (an edit after discovery is not half-seen),
 * and each file is read once. One entry per path, the newest reading.
 */
const hashed = new Map<string, { sha256: string; bytes: Buffer }>();

export function keepHashedBytes(file: string, sha256: string, bytes: Buffer): void {
  hashed.set(file, { sha256, bytes });
}

/**
 * The bytes of one of `revision`'s files: those discovery hashed when it kept
 * them (its recorded checksum says what they are), else read now. `take`:
 * the run that executes them takes them, handed out once; anything else that
 * reads them (the rollback plan's data at risk) leaves them for it.
 */
export async function revisionFileBytes(revision: Revision, file: string, { take }: { take: boolean }): Promise<Buffer> {
  const kept = hashed.get(file);
  if (!kept || kept.sha256 !== revision.fileChecksums[basename(file)]) return readFile(file);
  if (take) hashed.delete(file);
  return kept.bytes;
}
