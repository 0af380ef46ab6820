/**
 * Randomness for keys, SPIs, cookie secrets and nonces: the kernel CSPRNG through node:crypto.
 * libsodium's wasm build reaches the same source through WebCrypto one 32-bit word at a time
 * (about 200 µs of CPU for 32 bytes on the bench machine, more than the X25519 it feeds);
 * `randomFillSync` costs a few µs.
 */
import { randomFillSync } from 'node:crypto';

/** `n` fresh random bytes. */
export function randomBytes(n: number): Uint8Array {
  return randomFillSync(new Uint8Array(n));
}

/** Refilled pool for 32-bit values (SPIs): one kernel call per 256 values. */
const pool = new Uint32Array(256);
let poolNext = pool.length;

/** A uniformly random 32-bit unsigned integer. */
export function randomUint32(): number {
  if (poolNext === pool.length) {
    randomFillSync(pool);
    poolNext = 0;
  }
  const v = pool[poolNext]!;
  pool[poolNext++] = 0;
  return v;
}
