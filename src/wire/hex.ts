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

/** Lower-case hex, no separators. */
export function toHex(bytes: Uint8Array, offset = 0, length = bytes.length - offset): string {
  let s = '';
  for (let i = offset; i < offset + length; i++) s += (bytes[i] ?? 0).toString(16).padStart(2, '0');
  return s;
}
