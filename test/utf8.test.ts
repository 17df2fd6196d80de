import { describe, expect, it } from 'vitest';
import { findNotUtf8 } from '../src/migrations/utf8.js';

const bytes = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

describe('findNotUtf8', () => {
  it('accepts UTF-8 text, a literal U+FFFD and 4-byte characters included', () => {
    expect(findNotUtf8(bytes("SELECT 'café', '\uFFFD', '🦀';\n-- ok\n"))).toBeUndefined();
  });

  it.each([
    ['a Latin-1 byte', bytes('a\nb\ncaf', [0xe9], '\n'), { line: 3, bytes: '0xe9 0x0a' }],
    ['a NUL byte', bytes('a\n', [0], 'b'), { line: 2, bytes: '0x00' }],
    ['an overlong form', bytes([0xc0, 0xaf]), { line: 1, bytes: '0xc0 0xaf' }],
    ['a UTF-16 surrogate', bytes('x\n', [0xed, 0xa0, 0x80]), { line: 2, bytes: '0xed 0xa0 0x80' }],
    ['a sequence cut by the end of the file', bytes('x', [0xe2, 0x82]), { line: 1, bytes: '0xe2 0x82' }],
    ['a code point above U+10FFFF', bytes([0xf4, 0x90, 0x80, 0x80]), { line: 1, bytes: '0xf4 0x90 0x80 0x80' }],
    ['a stray continuation byte', bytes('ok ', [0x80]), { line: 1, bytes: '0x80' }],
  ])('refuses %s, naming its line and bytes', (_name, data, expected) => {
    expect(findNotUtf8(data)).toEqual(expected);
  });
});
