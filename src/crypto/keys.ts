/**
 * Key pair types and their text codecs (pure; file I/O is in src/cli/key-files.ts). Formats, all one
 * line `TAG <base64 (RFC 4648 §4, padded)>`, optional '#' comment lines (keys/README.md):
 *
 *   mip6-authority-private-v1  32-byte Ed25519 seed            (mode 0600)
 *   mip6-authority-public-v1   32-byte Ed25519 public key
 *   mip6-member-private-v1     32-byte X25519 private key       (mode 0600)
 *   mip6-member-public-v1      32-byte X25519 public key
 */
import { CryptoError } from '../util/errors.js';
import { decodeTaggedBase64 } from './certificate.js';
import { generateX25519, x25519FromPrivate, type KeyPair } from './noise.js';
import { randomBytes } from './random.js';
import { lib } from './sodium.js';

export type { KeyPair } from './noise.js';

export const KeyTag = {
  AUTHORITY_PRIVATE: 'mip6-authority-private-v1',
  AUTHORITY_PUBLIC: 'mip6-authority-public-v1',
  MEMBER_PRIVATE: 'mip6-member-private-v1',
  MEMBER_PUBLIC: 'mip6-member-public-v1',
} as const;
export type KeyTag = (typeof KeyTag)[keyof typeof KeyTag];

/** Ed25519 authority key pair; `secretKey` is libsodium's 64-byte form (seed | public). */
export interface AuthorityKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  seed: Uint8Array;
}

export function generateAuthority(seed?: Uint8Array): AuthorityKeyPair {
  const s = lib();
  const sd = seed ?? randomBytes(32);
  const kp = s.crypto_sign_seed_keypair(sd);
  return { publicKey: kp.publicKey, secretKey: kp.privateKey, seed: sd };
}

export function generateMember(): KeyPair {
  return generateX25519();
}

export function encodeKey(tag: KeyTag, key: Uint8Array, comments: string[] = []): string {
  const s = lib();
  const lines = comments.map((c) => `# ${c}`);
  lines.push(`${tag} ${s.to_base64(key, s.base64_variants.ORIGINAL)}`);
  return lines.join('\n') + '\n';
}

/** Decodes a key of the given tag; `source` (a file name) goes into the error message. */
export function decodeKey(text: string, tag: KeyTag, source: string): Uint8Array {
  const key = decodeTaggedBase64(
    text,
    tag,
    (m) => new CryptoError('ERR_BAD_KEY', `${source}: ${m}`),
  );
  if (key.length !== 32) {
    throw new CryptoError('ERR_BAD_KEY', `${source}: key must be 32 bytes, got ${key.length}`);
  }
  return key;
}

export function authorityFromSeed(seed: Uint8Array): AuthorityKeyPair {
  return generateAuthority(seed);
}

export function memberFromPrivate(privateKey: Uint8Array): KeyPair {
  return x25519FromPrivate(privateKey);
}
