/**
 * Internet checksum (RFC 1071) and the IPv6 upper-layer pseudo-header (RFC 8200 §8.1).
 * With a Home Address option the pseudo-header source is the home address, with a Type 2
 * Routing Header (Segments Left 1) the destination is the home address (RFC 6275 §6.3,
 * §6.4): so swapping CoA <-> HoA in the IPv6 header while adding/removing HAO or RH2 keeps
 * TCP, UDP, ICMPv6 and MH checksums valid.
 */
import { fail } from './bytes.js';
import {
  RH2_ADDRESS_OFF,
  ROUTING_TYPE_2,
  ROUTING_TYPE_SRH,
  SRH_SEGMENT_LIST_OFF,
  walkExtensionHeaders,
} from './ext-headers.js';
import {
  IPV6_ADDR_LEN,
  IPV6_DST_OFF,
  IPV6_HEADER_LEN,
  IPV6_SRC_OFF,
  decodeIpv6Header,
} from './ipv6.js';
import { parseIpv6 } from './address.js';
import { IPPROTO } from './types.js';

/** Adds bytes `off..off+len` as 16-bit big-endian words to `acc` (no folding). */
export function onesComplementSum(
  buf: Uint8Array,
  off = 0,
  len = buf.length - off,
  acc = 0,
): number {
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) acc += ((buf[i] ?? 0) << 8) | (buf[i + 1] ?? 0);
  if (i < end) acc += (buf[i] ?? 0) << 8;
  return acc;
}

function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

/** RFC 1071 checksum of `buf[off..off+len]`, starting from partial sum `initial`. */
export function internetChecksum(
  buf: Uint8Array,
  off = 0,
  len = buf.length - off,
  initial = 0,
): number {
  return ~fold(onesComplementSum(buf, off, len, initial)) & 0xffff;
}

/** Partial (unfolded) sum of the IPv6 pseudo-header (RFC 8200 §8.1). */
export function pseudoHeaderChecksum(
  src: Uint8Array,
  dst: Uint8Array,
  length: number,
  nextHeader: number,
  srcOff = 0,
  dstOff = 0,
): number {
  let acc = onesComplementSum(src, srcOff, IPV6_ADDR_LEN);
  acc = onesComplementSum(dst, dstOff, IPV6_ADDR_LEN, acc);
  acc += Math.floor(length / 0x10000) + (length & 0xffff) + nextHeader;
  return acc;
}

/** Checksum for an upper-layer message whose checksum field is zero, given text addresses. */
export function upperLayerChecksum(
  source: string,
  destination: string,
  nextHeader: number,
  data: Uint8Array,
): number {
  const acc = pseudoHeaderChecksum(
    parseIpv6(source),
    parseIpv6(destination),
    data.length,
    nextHeader,
  );
  return internetChecksum(data, 0, data.length, acc);
}

/** True when the upper-layer bytes (checksum field included) sum to all ones. */
export function upperLayerChecksumOk(
  source: string,
  destination: string,
  nextHeader: number,
  data: Uint8Array,
): boolean {
  return upperLayerChecksum(source, destination, nextHeader, data) === 0;
}

/** Byte offset of the checksum field for the protocols whose checksum mip6 checks. */
export function checksumFieldOffset(protocol: number): number | undefined {
  switch (protocol) {
    case IPPROTO.TCP:
      return 16; // RFC 9293 §3.1
    case IPPROTO.UDP:
      return 6; // RFC 768
    case IPPROTO.ICMPV6:
      return 2; // RFC 4443 §2.1
    case IPPROTO.MH:
      return 4; // RFC 6275 §6.1.1
    default:
      return undefined;
  }
}

export interface PseudoAddresses {
  /** Offsets into the packet of the 16-byte pseudo-header source and destination. */
  srcOff: number;
  dstOff: number;
}

/**
 * Which addresses the final receiver's upper layer sees (RFC 6275 §6.3, §6.4; RFC 8200 §8.1):
 * HAO -> its home address is the source; a Type 2 Routing Header or a Segment Routing Header
 * with segments left -> the final destination it names (RFC 8200 §8.1). Other routing types
 * (RH0 is deprecated, RFC 5095) leave the IPv6 destination.
 */
export function pseudoAddressOffsets(
  packet: Uint8Array,
  walk: ReturnType<typeof walkExtensionHeaders>,
): PseudoAddresses {
  let srcOff = IPV6_SRC_OFF;
  let dstOff = IPV6_DST_OFF;
  for (const h of walk.headers) {
    if (h.kind === 'routing' && h.segmentsLeft > 0 && dstOff === IPV6_DST_OFF) {
      if (h.routingType === ROUTING_TYPE_2) {
        dstOff = h.offset + RH2_ADDRESS_OFF; // RFC 6275 §6.4.1: the home address
      } else if (
        h.routingType === ROUTING_TYPE_SRH &&
        h.length >= SRH_SEGMENT_LIST_OFF + IPV6_ADDR_LEN
      ) {
        dstOff = h.offset + SRH_SEGMENT_LIST_OFF; // RFC 8754 §2: Segment List[0] is the last segment
      }
    } else if (h.kind === 'destinationOptions') {
      let o = h.offset + 2;
      const end = h.offset + h.length;
      while (o < end) {
        const t = packet[o] ?? 0;
        if (t === 0) {
          o += 1;
          continue;
        }
        if (t === 201) srcOff = o + 2; // RFC 6275 §6.3 Home Address option
        o += 2 + (packet[o + 1] ?? 0);
      }
    }
  }
  return { srcOff, dstOff };
}

/**
 * Verifies the TCP / UDP / ICMPv6 / MH checksum of a whole IPv6 packet. Returns undefined for
 * protocols without a checksum mip6 knows (ESP, No Next Header, ...). Throws WireError on a
 * malformed packet. A UDP checksum of zero is invalid over IPv6 (RFC 8200 §8.1).
 */
export function verifyUpperLayerChecksum(packet: Uint8Array): boolean | undefined {
  const h = decodeIpv6Header(packet, 0);
  const end = IPV6_HEADER_LEN + h.payloadLength;
  if (end > packet.length)
    fail('ERR_TRUNCATED', 'IPv6 payload shorter than Payload Length', packet.length);
  const walk = walkExtensionHeaders(packet, IPV6_HEADER_LEN, h.nextHeader, end);
  const fieldOff = checksumFieldOffset(walk.upperProtocol);
  if (fieldOff === undefined) return undefined;
  const len = end - walk.upperOffset;
  if (len < fieldOff + 2) fail('ERR_TRUNCATED', 'upper-layer header truncated', end);
  if (
    walk.upperProtocol === IPPROTO.UDP &&
    (packet[walk.upperOffset + 6] ?? 0) === 0 &&
    (packet[walk.upperOffset + 7] ?? 0) === 0
  ) {
    return false;
  }
  const { srcOff, dstOff } = pseudoAddressOffsets(packet, walk);
  const acc = pseudoHeaderChecksum(packet, packet, len, walk.upperProtocol, srcOff, dstOff);
  return internetChecksum(packet, walk.upperOffset, len, acc) === 0;
}

/** Recomputes and writes the upper-layer checksum of a whole IPv6 packet in place. */
export function fixUpperLayerChecksum(packet: Uint8Array): void {
  const h = decodeIpv6Header(packet, 0);
  const end = IPV6_HEADER_LEN + h.payloadLength;
  if (end > packet.length)
    fail('ERR_TRUNCATED', 'IPv6 payload shorter than Payload Length', packet.length);
  const walk = walkExtensionHeaders(packet, IPV6_HEADER_LEN, h.nextHeader, end);
  const fieldOff = checksumFieldOffset(walk.upperProtocol);
  if (fieldOff === undefined) return;
  const len = end - walk.upperOffset;
  if (len < fieldOff + 2) fail('ERR_TRUNCATED', 'upper-layer header truncated', end);
  const at = walk.upperOffset + fieldOff;
  packet[at] = 0;
  packet[at + 1] = 0;
  const { srcOff, dstOff } = pseudoAddressOffsets(packet, walk);
  const acc = pseudoHeaderChecksum(packet, packet, len, walk.upperProtocol, srcOff, dstOff);
  let c = internetChecksum(packet, walk.upperOffset, len, acc);
  if (c === 0 && walk.upperProtocol === IPPROTO.UDP) c = 0xffff; // RFC 768
  packet[at] = c >> 8;
  packet[at + 1] = c & 0xff;
}
