import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createReadStream } from 'node:fs';
import { sha256Hex } from '../sha256.js';

/** sha256 of a file of any size (a snapshot), streamed. */
async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  // 1 MiB reads hash a large dump about twice as fast as the 64 KiB default
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * What keeps a snapshot from being restored as its manifest describes it
 * ("is missing: …", "does not match its manifest …"), or undefined when its
 * file is there with the manifest's sha256.
 */
export async function snapshotProblem(manifest: { path: string; sha256: string }): Promise<string | undefined> {
  const digest = await digestSnapshot(manifest.path).catch(() => undefined);
  if (!digest) return `is missing: ${manifest.path}`;
  if (digest.sha256 !== manifest.sha256) return `does not match its manifest (sha256 ${digest.sha256}, expected ${manifest.sha256}): it was changed or damaged`;
  return undefined;
}

/**
 * sha256 and size of a snapshot, streamed. A directory-format snapshot is
 * hashed as the sorted list of "name sha256" lines of its files.
 */
export async function digestSnapshot(path: string): Promise<{ sha256: string; sizeBytes: number }> {
  const info = await stat(path);
  if (!info.isDirectory()) return { sha256: await sha256File(path), sizeBytes: info.size };
  const names = (await readdir(path)).sort();
  const lines: string[] = [];
  let sizeBytes = 0;
  for (const name of names) {
    const file = join(path, name);
    sizeBytes += (await stat(file)).size;
    lines.push(`${name} ${await sha256File(file)}\n`);
  }
  return { sha256: sha256Hex(lines.join('')), sizeBytes };
}
