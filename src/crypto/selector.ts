/**
 * Inbound selector check (DESIGN.md §4, the IPsec inbound policy of RFC 4301 §5.2): after a
 * data message decrypts, the inner IPv6 packet's source address must be one the peer's
 * certificate allows, or the packet is dropped and counted by the caller. No allocation: the
 * source is compared in place against each allowed prefix.
 */
import { parseIpv6 } from '../wire/address.js';
import { IPV6_HEADER_LEN, IPV6_SRC_OFF } from '../wire/ipv6.js';
import { certificateHoldsAt, type MemberCertificate } from './certificate.js';

/** True iff `packet[offset..]` is an IPv6 packet whose source lies in one of `cert`'s prefixes.
 *  `length` bounds the packet (defaults to the rest of the buffer). */
export function sourceAllowed(
  cert: MemberCertificate,
  packet: Uint8Array,
  offset: number,
  length: number = packet.length - offset,
): boolean {
  if (length < IPV6_HEADER_LEN || offset + IPV6_HEADER_LEN > packet.length) return false;
  if (packet[offset]! >> 4 !== 6) return false;
  return certificateHoldsAt(cert, packet, offset + IPV6_SRC_OFF);
}

/** True iff one of `cert`'s allowed prefixes holds the 16-byte IPv6 `address`. */
export function certificateHolds(cert: MemberCertificate, address: Uint8Array): boolean {
  return certificateHoldsAt(cert, address, 0);
}

/** True when the member certificate allows this home address (text; one of its prefixes holds
 *  it). False for text that is no IPv6 address. */
export function certificateAllows(cert: MemberCertificate, homeAddress: string): boolean {
  let bytes: Uint8Array;
  try {
    bytes = parseIpv6(homeAddress);
  } catch {
    return false;
  }
  return certificateHoldsAt(cert, bytes, 0);
}

/**
 * True iff `cert` may speak for the home agent of `homeAddress` (DESIGN.md §4): role `ha` and a
 * prefix holding that home address. Only a channel whose peer passes this may carry home-agent
 * signaling (BA, BRR, Binding Error, DHAAD Reply, MPA) to a mobile node.
 */
export function isHomeAgentFor(cert: MemberCertificate | null, homeAddress: Uint8Array): boolean {
  return cert !== null && cert.role === 'ha' && certificateHolds(cert, homeAddress);
}
