/**
 * Byte-string comparison, for every layer: keys, tokens, cookies, timestamps. Pure.
 * `bytesEqual` may stop at the first difference: for public values (static public keys, binding
 * owners, certificate bytes). `constantTimeEqual` takes the same time whatever the contents, for
 * values an attacker must not learn byte by byte from the answer time (tokens, cookies).
 */

/**
 * `length` bytes from `offset` as a string of one char per byte (latin1): flat and one-byte, so
 * ~16 B of heap plus the bytes, where a Uint8Array of its own costs ~230 B (what a home agent
 * keeps per member: peer keys, certificates, issue 17). Strings compare and hash as the bytes.
 */
export function byteString(bytes: Uint8Array, offset = 0, length = bytes.length - offset): string {
  let out = '';
  for (let start = 0; start < length; start += 4096) {
    const end = Math.min(length, start + 4096);
    out += String.fromCharCode.apply(
      null,
      Array.from(bytes.subarray(offset + start, offset + end)),
    );
  }
  return out;
}

/** The bytes of a byteString (a copy). */
export function bytesOfString(s: string, from = 0, to = s.length): Uint8Array {
  const out = new Uint8Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = s.charCodeAt(i);
  return out;
}

/** True when `a` and `b` hold the same bytes. Not constant time: public values only. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * True when `a` and `b` hold the same bytes, in a time that depends only on their length (a
 * length difference answers at once: lengths are not secret here).
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Lexicographic order of two byte strings (a shorter prefix first): <0, 0, >0. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length && i < b.length; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return a.length - b.length;
}
