/**
 * ICMPv4 Destination Unreachable, Fragmentation Needed and DF Set (RFC 792; code 4 with the
 * Next-Hop MTU of RFC 1191 §4), built for an inner IPv4 packet too big for the tunnel's path
 * (issue #21). The error quotes the offending packet's IP header and first 8 data bytes (RFC
 * 792) and goes back to its source. Only for a packet with Don't Fragment set: RFC 1191 §3 has
 * routers send it for those alone (a packet without DF may be fragmented on the way, so its
 * sender runs no path MTU discovery and would not shrink its packets for it); the tunnel drops
 * a too-big packet without DF instead, counted apart (roles/tunnel-mtu.ts).
 */
import { internetChecksum } from './checksum.js';

const IPV4_HEADER_LEN = 20;
const ICMP_HEADER_LEN = 8;
const ICMP_DEST_UNREACH = 3; // RFC 792
const ICMP_FRAG_NEEDED = 4; // RFC 792, RFC 1191 §4
const ICMP_PROTOCOL = 1;
const ERROR_TTL = 64;
const FLAG_DF = 0x40; // byte 6 of the IPv4 header (RFC 791)

/** True when the IPv4 packet at buf[off] has Don't Fragment set. */
export function ipv4DontFragment(buf: Uint8Array, off: number): boolean {
  return ((buf[off + 6] ?? 0) & FLAG_DF) !== 0;
}

/**
 * The Fragmentation Needed error for `original` (an IPv4 packet) announcing `mtu`, from
 * `source` (4 bytes); null when the packet is no IPv4 packet, has no Don't Fragment (RFC 1191
 * §3), or is itself an ICMP error (never an error about an error, RFC 1122 §3.2.2).
 */
export function buildFragmentationNeeded(
  original: Uint8Array,
  mtu: number,
  source: Uint8Array,
): Uint8Array | null {
  if (original.length < IPV4_HEADER_LEN || original[0]! >> 4 !== 4) return null;
  const ihl = (original[0]! & 0x0f) * 4;
  if (ihl < IPV4_HEADER_LEN || original.length < ihl) return null;
  if (!ipv4DontFragment(original, 0)) return null;
  if (original[9] === ICMP_PROTOCOL) {
    const type = original[ihl];
    if (type !== 0 && type !== 8) return null; // only echo request / reply get errors
  }
  const quoted = original.subarray(0, Math.min(original.length, ihl + 8));
  const out = new Uint8Array(IPV4_HEADER_LEN + ICMP_HEADER_LEN + quoted.length);
  out[0] = 0x45;
  out[2] = out.length >> 8;
  out[3] = out.length & 0xff;
  out[8] = ERROR_TTL;
  out[9] = ICMP_PROTOCOL;
  out.set(source.subarray(0, 4), 12);
  out.set(original.subarray(12, 16), 16); // to the offending packet's source
  const ipSum = internetChecksum(out, 0, IPV4_HEADER_LEN);
  out[10] = ipSum >> 8;
  out[11] = ipSum & 0xff;
  const icmp = IPV4_HEADER_LEN;
  out[icmp] = ICMP_DEST_UNREACH;
  out[icmp + 1] = ICMP_FRAG_NEEDED;
  out[icmp + 6] = (mtu >> 8) & 0xff;
  out[icmp + 7] = mtu & 0xff;
  out.set(quoted, icmp + ICMP_HEADER_LEN);
  const sum = internetChecksum(out, icmp, out.length - icmp);
  out[icmp + 2] = sum >> 8;
  out[icmp + 3] = sum & 0xff;
  return out;
}
