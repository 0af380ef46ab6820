/**
 * Which inner packets are mobility signaling (DESIGN.md §4, "inner packets are not signaling by
 * address"). A channel carries two kinds of packets (src/crypto/aead.ts DataKind): signaling the
 * peer wrote itself, and payload it forwards for anybody. These helpers recognise, in a packet
 * that arrived as payload, the messages that must never be taken from (or relayed to) a member
 * that way:
 *
 * - 'mh': a Mobility Header other than HoTI/HoT (RFC 6275 §6.1): BU, BA, BRR, BE, CoTI, CoT, and
 *   unknown types. Home-agent and correspondent signaling travel only as DataKind.SIGNALING.
 * - 'rr': HoTI (type 1) or HoT (type 3). These are forwarded by design: RFC 6275 §5.2.5 sends
 *   them through the home agent, and their authority is return routability's own cookies and
 *   tokens, not the channel.
 * - 'discovery': ICMPv6 types 144-147 (DHAAD, Mobile Prefix Solicitation / Advertisement).
 * - 'redirect': ICMPv6 Redirect (137, RFC 4861 §4.5): a home agent's kernel has no business
 *   redirecting a member whose link is a channel.
 *
 * The upper-layer header is found after Hop-by-Hop, Routing and Destination Options headers (a
 * Home Address option or a type 2 routing header may precede the MH). No allocation.
 */
import { ICMPV6_TYPE } from './icmpv6.js';
import { IPV6_HEADER_LEN, IPV6_NEXT_HEADER_OFF, IPV6_PAYLOAD_LENGTH_OFF } from './ipv6.js';
import { MH_TYPE_OFF } from './mobility.js';
import { upperLayer } from './rewrite.js';
import { IPPROTO, MH_TYPE } from './types.js';

export type MobilitySignal = 'mh' | 'rr' | 'discovery' | 'redirect';

/** ICMPv6 Redirect (RFC 4861 §4.5). */
const ICMPV6_REDIRECT = 137;

/** The class of the IPv6 packet at buf[off, off + len), or undefined for ordinary traffic. */
export function mobilitySignal(
  buf: Uint8Array,
  off: number,
  len: number,
): MobilitySignal | undefined {
  const nh = buf[off + IPV6_NEXT_HEADER_OFF];
  if (nh === IPPROTO.TCP || nh === IPPROTO.UDP) return undefined; // the data path's common case
  // ICMPv6 right after a sane fixed header (a ping): its type, without the walk's result object
  // (upperLayer would find the same).
  if (
    nh === IPPROTO.ICMPV6 &&
    len > IPV6_HEADER_LEN &&
    off + len <= buf.length &&
    buf[off]! >> 4 === 6 &&
    IPV6_HEADER_LEN +
      ((buf[off + IPV6_PAYLOAD_LENGTH_OFF]! << 8) | buf[off + IPV6_PAYLOAD_LENGTH_OFF + 1]!) <=
      len
  ) {
    return icmpv6Signal(buf[off + IPV6_HEADER_LEN]!);
  }
  const u = upperLayer(buf, off, len);
  if (u === undefined || u.offset >= len) return undefined;
  const at = off + u.offset;
  if (u.protocol === IPPROTO.MH) {
    if (u.offset + MH_TYPE_OFF >= len) return 'mh';
    const type = buf[at + MH_TYPE_OFF];
    return type === MH_TYPE.HOTI || type === MH_TYPE.HOT ? 'rr' : 'mh';
  }
  if (u.protocol === IPPROTO.ICMPV6) return icmpv6Signal(buf[at]!);
  return undefined;
}

function icmpv6Signal(type: number): MobilitySignal | undefined {
  if (type >= ICMPV6_TYPE.HAAD_REQUEST && type <= ICMPV6_TYPE.MOBILE_PREFIX_ADVERTISEMENT) {
    return 'discovery';
  }
  return type === ICMPV6_REDIRECT ? 'redirect' : undefined;
}
