/** Deterministic crypto fixtures for the src/crypto tests: an authority, members, endpoints. */
import { signCertificate, parseAllowedPrefix, type Role } from '../../src/crypto/certificate.js';
import { SecureEndpoint, type EndpointOptions } from '../../src/crypto/endpoint.js';
import { generateAuthority, type AuthorityKeyPair } from '../../src/crypto/keys.js';
import { x25519FromPrivate, type KeyPair } from '../../src/crypto/noise.js';

/** Fixed "now" for tests: 2026-01-01T00:00:00Z. */
export const T0 = Date.UTC(2026, 0, 1);
const DAY = 86_400;

export function fixedBytes(fill: number, len = 32): Uint8Array {
  return new Uint8Array(len).fill(fill);
}

export function authority(seedByte = 0xa0): AuthorityKeyPair {
  return generateAuthority(fixedBytes(seedByte));
}

export function memberKey(byte: number): KeyPair {
  return x25519FromPrivate(fixedBytes(byte));
}

export interface MemberSpec {
  name: string;
  role: Role;
  key: KeyPair;
  addresses?: string[];
  notBefore?: number;
  notAfter?: number;
}

export function cert(ca: AuthorityKeyPair, m: MemberSpec) {
  const nb = m.notBefore ?? Math.floor(T0 / 1000) - DAY;
  return signCertificate(
    {
      name: m.name,
      role: m.role,
      publicKey: m.key.publicKey,
      addresses: (m.addresses ?? ['2001:db8:1::10']).map((a) => parseAllowedPrefix(a)!),
      notBefore: nb,
      notAfter: m.notAfter ?? nb + 365 * DAY,
    },
    ca.secretKey,
  );
}

/** A member's endpoint; its wall clock stands at T0 unless `extra.wallClock` moves it. */
export function endpoint(
  ca: AuthorityKeyPair,
  m: MemberSpec,
  allowedPeerRoles: Role[],
  extra: Partial<EndpointOptions> = {},
  caPublic: Uint8Array = ca.publicKey,
): SecureEndpoint {
  return new SecureEndpoint({
    staticKey: m.key,
    certificate: cert(ca, m),
    authorityPublicKey: caPublic,
    allowedPeerRoles,
    wallClock: () => T0,
    ...extra,
  });
}

/** Minimal IPv6 packet (40-byte header + payload) with the given source. */
export function ipv6Packet(src: Uint8Array, payloadLen = 8): Uint8Array {
  const p = new Uint8Array(40 + payloadLen);
  p[0] = 0x60;
  p[4] = payloadLen >> 8;
  p[5] = payloadLen & 0xff;
  p[6] = 59; // No Next Header
  p[7] = 64;
  p.set(src, 8);
  p[39] = 1; // destination ::1
  for (let i = 0; i < payloadLen; i++) p[40 + i] = i & 0xff;
  return p;
}
