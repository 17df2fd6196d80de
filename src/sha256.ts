import * as crypto from 'node:crypto';

/**
 * sha256 of `data` as hex, in one call: crypto.hash (Node ≥ 20.12) where it
 * exists. A Hash object per call cost several times more than the hashing
 * itself, for the many small inputs belay hashes (revision files, schema
 * objects).
 */
export const sha256Hex: (data: Buffer | string) => string =
  typeof crypto.hash === 'function' ? (data) => crypto.hash('sha256', data, 'hex') : (data) => crypto.createHash('sha256').update(data).digest('hex');
