import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { errorMessage, usageError } from '../errors.js';
import { sha256Hex } from '../sha256.js';
import { readProblem } from '../unreadable.js';
import { keepHashedBytes } from './revision-bytes.js';

/**
 * Per-file checksums and one combined checksum over them. Revision files are
 * read whole and synchronously: for the few hundred small files of a
 * revisions folder that is several times faster than fs/promises, which pays
 * an open, a stat, a read and a close through the thread pool for each (the
 * run reads a file whole anyway to split it into statements).
 */

export function checksumFiles(files: string[]): { fileChecksums: Record<string, string>; checksum: string } {
  const fileChecksums: Record<string, string> = {};
  for (const file of [...files].sort()) {
    const bytes = readRevisionFile(file);
    const sha256 = sha256Hex(bytes);
    fileChecksums[basename(file)] = sha256;
    if (file.endsWith('.sql')) keepHashedBytes(file, sha256, bytes);
  }
  return { fileChecksums, checksum: combineChecksums(fileChecksums) };
}

function readRevisionFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const problem = readProblem(error, `the revision file ${file}`);
    throw usageError(`cannot read the revision file ${file}: ${problem ? `${problem.code}: ${problem.reason}` : errorMessage(error)}`, {
      hint: `${problem?.hint ?? 'Make it a readable file for the user running belay.'} Or move it out of the migrations folder.`,
      cause: error,
    });
  }
}

export function combineChecksums(fileChecksums: Record<string, string>): string {
  const lines = Object.keys(fileChecksums)
    .sort()
    .map((name) => `${name} ${fileChecksums[name]}\n`);
  return sha256Hex(lines.join(''));
}
