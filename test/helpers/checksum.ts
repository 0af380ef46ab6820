/**
 * Checksum checks for whole IPv4 / IPv6 packets in tests of the TUN offloads (the addon's C
 * computes them; these use src/wire/checksum.ts, an independent implementation).
 */
import { internetChecksum, onesComplementSum } from '../../src/wire/checksum.js';

/** The IPv4 header checksum verifies (true for IPv6, which has none). */
export function ipHeaderChecksumOk(p: Uint8Array): boolean {
  if (p[0]! >> 4 !== 4) return true;
  return internetChecksum(p, 0, (p[0]! & 15) * 4) === 0;
}

/**
 * The TCP / UDP checksum over the pseudo-header verifies (IPv6 without extension headers);
 * undefined for other protocols.
 */
export function l4ChecksumOk(p: Uint8Array): boolean | undefined {
  const v6 = p[0]! >> 4 === 6;
  const l4 = v6 ? 40 : (p[0]! & 15) * 4;
  const proto = v6 ? p[6]! : p[9]!;
  if (proto !== 6 && proto !== 17) return undefined;
  const pseudo = onesComplementSum(p, v6 ? 8 : 12, v6 ? 32 : 8) + proto + (p.length - l4);
  return internetChecksum(p, l4, p.length - l4, pseudo) === 0;
}

/**
 * Sets the UDP checksum of a whole IPv4 / IPv6 UDP packet (no options or extension headers)
 * in place; RFC 768: a computed 0 is sent as all ones. Returns the packet.
 */
export function withUdpChecksum(p: Uint8Array): Uint8Array {
  const v6 = p[0]! >> 4 === 6;
  const ipl = v6 ? 40 : 20;
  const v = new DataView(p.buffer, p.byteOffset);
  v.setUint16(ipl + 6, 0);
  const pseudo = onesComplementSum(p, v6 ? 8 : 12, v6 ? 32 : 8) + 17 + (p.length - ipl);
  const c = internetChecksum(p, ipl, p.length - ipl, pseudo);
  v.setUint16(ipl + 6, c === 0 ? 0xffff : c);
  return p;
}
