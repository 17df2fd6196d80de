/**
 * The bytes discovery hashed, kept until the run reads them: a revision runs
 * exactly what its checksum says (an edit after discovery is not half-seen),
 * and each file is read once. One entry per path, the newest reading.
 */
const hashed = new Map<string, { sha256: string; bytes: Buffer }>();

export function keepHashedBytes(file: string, sha256: string, bytes: Buffer): void {
  hashed.set(file, { sha256, bytes });
}

/** The bytes of `file` that hashed to `sha256`, handed out once; undefined when not kept. */
export function takeHashedBytes(file: string, sha256: string | undefined): Buffer | undefined {
  const kept = hashed.get(file);
  if (!kept || kept.sha256 !== sha256) return undefined;
  hashed.delete(file);
  return kept.bytes;
}

/** The bytes of `file` that hashed to `sha256`, left for the run to take; undefined when not kept. */
export function peekHashedBytes(file: string, sha256: string | undefined): Buffer | undefined {
  const kept = hashed.get(file);
  return kept && kept.sha256 === sha256 ? kept.bytes : undefined;
}
