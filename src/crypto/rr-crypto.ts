/**
 * The hashes return routability needs (RFC 6275 §5.2.5): HMAC-SHA1 and SHA1, from node:crypto
 * (libsodium has no SHA-1). The protocol layer never imports node:crypto: it receives an
 * `RrCrypto` (this file's `nodeRrCrypto`, or a test double) and stays pure.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';

/** The primitives return routability is computed with (RFC 6275 §5.2.5). */
export interface RrCrypto {
  /** HMAC_SHA1(key, data): 20 bytes (RFC 2104). */
  hmacSha1(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** SHA1(data): 20 bytes. */
  sha1(data: Uint8Array): Uint8Array;
  /** `n` random bytes (Kcn, nonces, init cookies). */
  random(n: number): Uint8Array;
}

/** RrCrypto over node:crypto. */
export const nodeRrCrypto: RrCrypto = {
  hmacSha1(key, data) {
    return new Uint8Array(createHmac('sha1', key).update(data).digest());
  },
  sha1(data) {
    return new Uint8Array(createHash('sha1').update(data).digest());
  },
  random(n) {
    return new Uint8Array(randomBytes(n));
  },
};
