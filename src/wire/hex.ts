/**
 * Hex text <-> bytes, for test vectors, `mip6 decode` input and JSON output. Pure.
 * Input may contain whitespace, ':' or '-' separators and an optional 0x prefix.
 */
import { WireError } from '../util/errors.js';

/** Parses hex text; throws WireError ERR_BAD_VALUE on odd length or a non-hex digit. */
export function fromHex(text: string): Uint8Array {
  let clean = text.trim();
  if (clean.startsWith('0x') || clean.startsWith('0X')) clean = clean.slice(2);
  clean = clean.replace(/[\s:-]/g, '');
  if (clean.length % 2 !== 0) {
    throw new WireError('ERR_BAD_VALUE', 'hex text has an odd number of digits', clean.length >> 1);
  }
  const bad = /[^0-9a-fA-F]/.exec(clean);
  if (bad !== null) {
    throw new WireError('ERR_BAD_VALUE', `not a hex digit: "${bad[0]}"`, bad.index >> 1);
  }
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const DIGITS = '0123456789abcdef';
/** Character codes per chunk of String.fromCharCode (well below any engine's argument limit). */
const CHUNK = 8192;

/**
 * Lower-case hex, no separators. Built from character codes in one go, so the result is one
 * flat string: a key made by `+=` per byte is a rope of 32 pieces (about 3 KiB of heap for a
 * 32-byte key kept in a Map, issue 17), and every map lookup with it flattens it anew.
 */
export function toHex(bytes: Uint8Array, offset = 0, length = bytes.length - offset): string {
  let out = '';
  for (let start = 0; start < length; start += CHUNK) {
    const n = Math.min(CHUNK, length - start);
    const codes = new Array<number>(2 * n);
    for (let i = 0; i < n; i++) {
      const b = bytes[offset + start + i] ?? 0;
      codes[2 * i] = DIGITS.charCodeAt(b >> 4);
      codes[2 * i + 1] = DIGITS.charCodeAt(b & 15);
    }
    out += String.fromCharCode(...codes);
  }
  return out;
}
