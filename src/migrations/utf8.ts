/** Where a file stops being text PostgreSQL accepts: its first byte sequence that is not UTF-8, or a NUL. */
export interface NotUtf8 {
  /** 1-based line of the offending bytes. */
  line: number;
  /** The offending bytes as PostgreSQL names them, e.g. "0xe9 0x74". */
  bytes: string;
}

/** Length of the UTF-8 sequence `data[i]` starts, and the range its second byte must fall in. */
function sequenceAt(lead: number): { length: number; min: number; max: number } | undefined {
  if (lead >= 0xc2 && lead <= 0xdf) return { length: 2, min: 0x80, max: 0xbf };
  if (lead === 0xe0) return { length: 3, min: 0xa0, max: 0xbf };
  if (lead === 0xed) return { length: 3, min: 0x80, max: 0x9f };
  if (lead >= 0xe1 && lead <= 0xef) return { length: 3, min: 0x80, max: 0xbf };
  if (lead === 0xf0) return { length: 4, min: 0x90, max: 0xbf };
  if (lead >= 0xf1 && lead <= 0xf3) return { length: 4, min: 0x80, max: 0xbf };
  if (lead === 0xf4) return { length: 4, min: 0x80, max: 0x8f };
  return undefined;
}

/** How many bytes a lead byte claims, valid or not: PostgreSQL shows that many when it refuses one. */
function claimedLength(lead: number): number {
  if (lead >= 0xf0 && lead <= 0xf7) return 4;
  if (lead >= 0xe0) return lead <= 0xef ? 3 : 1;
  return lead >= 0xc0 ? 2 : 1;
}

function isValidSequence(data: Uint8Array, start: number, length: number, min: number, max: number): boolean {
  const second = data[start + 1];
  if (second === undefined || second < min || second > max) return false;
  for (let k = 2; k < length; k++) {
    const next = data[start + k];
    if (next === undefined || (next & 0xc0) !== 0x80) return false;
  }
  return true;
}

/**
 * The first place `data` is not valid UTF-8 (overlong forms and surrogates
 * included), or holds a NUL byte, which no query text may carry; undefined
 * when it is all text. Node's own decoding would turn such bytes into U+FFFD
 * and commit that.
 */
export function findNotUtf8(data: Uint8Array): NotUtf8 | undefined {
  let line = 1;
  let i = 0;
  while (i < data.length) {
    const byte = data[i]!;
    if (byte === 0x0a) line++;
    if (byte !== 0 && byte < 0x80) {
      i++;
      continue;
    }
    const sequence = byte === 0 ? undefined : sequenceAt(byte);
    if (sequence && isValidSequence(data, i, sequence.length, sequence.min, sequence.max)) {
      i += sequence.length;
      continue;
    }
    const shown = data.subarray(i, Math.min(data.length, i + (sequence?.length ?? claimedLength(byte))));
    return { line, bytes: [...shown].map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ') };
  }
  return undefined;
}
