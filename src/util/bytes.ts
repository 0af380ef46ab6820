/**
 * Byte-string comparison, for every layer: keys, tokens, cookies, timestamps. Pure.
 * `bytesEqual` may stop at the first difference: for public values (static public keys, binding
 * owners, certificate bytes). `constantTimeEqual` takes the same time whatever the contents, for
 * values an attacker must not learn byte by byte from the answer time (tokens, cookies).
 */

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
