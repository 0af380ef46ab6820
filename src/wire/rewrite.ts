/**
 * Route-optimization rewrites of whole inner IPv6 packets, in place (RFC 6275 §9.3, §11.3):
 *
 *   MN -> CN  addHomeAddressOption:   src HoA -> CoA, a Destination Options header with the
 *             Home Address option (= HoA) inserted where RFC 8200 §4.1 puts it.
 *   CN        findHomeAddressOption + removeHomeAddressOption: (after the caller checked its
 *             binding for that HoA and CoA) src CoA -> HoA, the option stripped, so the
 *             kernel behind the TUN sees an ordinary packet from the HoA.
 *   CN -> MN  addType2RoutingHeader:  dst HoA -> CoA, a Type 2 Routing Header (= HoA).
 *   MN        removeType2RoutingHeader: checks Hdr Ext Len 2, Segments Left 1 and that the
 *             address is the MN's own HoA, then dst -> HoA and the header removed.
 *
 * Upper-layer checksums are never touched: the pseudo-header of a packet with a HAO uses the
 * HoA as source and with an RH2 the HoA as destination (RFC 6275 §6.3, §6.4), i.e. exactly
 * the addresses of the packet before the rewrite.
 *
 * The packet sits at buf[off, off + len). Growing rewrites need REWRITE_GROWTH bytes of
 * headroom before `off` and move only the IPv6 header (and a Hop-by-Hop header) down; the
 * payload is never copied. Each function returns the packet's new offset (its new length is
 * len + (off - newOff)), or a negative RewriteError code, in which case nothing was changed.
 */
import {
  EXT_HDR_LEN_OFF,
  EXT_NEXT_HEADER_OFF,
  OPT_HOME_ADDRESS,
  OPT_HOME_ADDRESS_LEN,
  OPT_PAD1,
  OPT_PADN,
  RH2_ADDRESS_OFF,
  RH2_HDR_EXT_LEN,
  RH2_LEN,
  ROUTING_TYPE_2,
  ROUTING_TYPE_OFF,
  SEGMENTS_LEFT_OFF,
  HAO_DSTOPTS_LEN,
} from './ext-headers.js';
import {
  IPV6_ADDR_LEN,
  IPV6_DST_OFF,
  IPV6_HEADER_LEN,
  IPV6_NEXT_HEADER_OFF,
  IPV6_PAYLOAD_LENGTH_OFF,
  IPV6_SRC_OFF,
} from './ipv6.js';
import { IPPROTO } from './types.js';

/** Bytes a HAO Destination Options header or an RH2 adds (RFC 6275 §6.3, §6.4.1). */
export const REWRITE_GROWTH = 24;
/** Offset of the home address inside the 24-byte HAO header: PadN(2) + Type + Length. */
export const HAO_ADDRESS_OFF = 8; // RFC 6275 §6.3 at 8n+6, as Linux lays it out
const MAX_WALK = 8; // mip6 limit, as MAX_EXTENSION_HEADERS

/** Why a rewrite did not happen (all negative, so they never collide with an offset). */
export const RewriteError = {
  /** Not enough bytes before `off` to grow the packet. */
  NO_HEADROOM: -1,
  /** Extension headers mip6 does not rewrite around (an existing RH or final DstOpts, ...). */
  UNSUPPORTED_CHAIN: -2,
  /** Truncated or inconsistent headers. */
  MALFORMED: -3,
  /** The packet has no Home Address option / no Type 2 Routing Header. */
  ABSENT: -4,
  /** RH2 address is not this node's home address (RFC 6275 §9.3.2: never forwarded). */
  NOT_OWN_HOME_ADDRESS: -5,
  /** RH2 with Hdr Ext Len != 2 or Segments Left != 1 (RFC 6275 §6.4.1): discard. */
  BAD_RH2: -6,
  /** Payload Length would overflow 16 bits. */
  TOO_BIG: -7,
} as const;

function u16(buf: Uint8Array, o: number): number {
  return ((buf[o] ?? 0) << 8) | (buf[o + 1] ?? 0);
}

function put16(buf: Uint8Array, o: number, v: number): void {
  buf[o] = (v >>> 8) & 0xff;
  buf[o + 1] = v & 0xff;
}

function sane(buf: Uint8Array, off: number, len: number): boolean {
  if (off < 0 || len < IPV6_HEADER_LEN || off + len > buf.length) return false;
  if ((buf[off] ?? 0) >> 4 !== 6) return false;
  return IPV6_HEADER_LEN + u16(buf, off + IPV6_PAYLOAD_LENGTH_OFF) <= len;
}

function headerLength(buf: Uint8Array, at: number): number {
  return ((buf[at + EXT_HDR_LEN_OFF] ?? 0) + 1) * 8;
}

/**
 * Walks the chain; `stop(nh)` says where to stop. Returns the relative offset of the header
 * where it stopped and the relative offset of the Next Header byte that names it.
 */
function walk(
  buf: Uint8Array,
  off: number,
  len: number,
  stop: (nh: number, at: number) => boolean,
): { at: number; nhOff: number; nh: number } | number {
  let nhOff = IPV6_NEXT_HEADER_OFF;
  let at = IPV6_HEADER_LEN;
  const end = Math.min(IPV6_HEADER_LEN + u16(buf, off + IPV6_PAYLOAD_LENGTH_OFF), len);
  for (let i = 0; i <= MAX_WALK; i++) {
    const nh = buf[off + nhOff] ?? 0;
    if (stop(nh, at)) return { at, nhOff, nh };
    if (nh !== IPPROTO.HOPOPTS && nh !== IPPROTO.DSTOPTS && nh !== IPPROTO.ROUTING) {
      return RewriteError.ABSENT;
    }
    if (at + 8 > end) return RewriteError.MALFORMED;
    const hl = headerLength(buf, off + at);
    if (at + hl > end) return RewriteError.MALFORMED;
    nhOff = at + EXT_NEXT_HEADER_OFF;
    at += hl;
  }
  return RewriteError.UNSUPPORTED_CHAIN;
}

/**
 * Opens a gap of REWRITE_GROWTH bytes at relative offset `at` by moving the first `at` bytes
 * down; fixes the Payload Length. Returns the new offset.
 */
function grow(buf: Uint8Array, off: number, at: number): number {
  const n = off - REWRITE_GROWTH;
  buf.copyWithin(n, off, off + at);
  put16(buf, n + IPV6_PAYLOAD_LENGTH_OFF, u16(buf, n + IPV6_PAYLOAD_LENGTH_OFF) + REWRITE_GROWTH);
  return n;
}

/** Closes the `size`-byte header at relative offset `at`; returns the new offset. */
function shrink(buf: Uint8Array, off: number, at: number, size: number): number {
  const n = off + size;
  buf.copyWithin(n, off, off + at);
  put16(buf, n + IPV6_PAYLOAD_LENGTH_OFF, u16(buf, n + IPV6_PAYLOAD_LENGTH_OFF) - size);
  return n;
}

/**
 * MN -> CN: source becomes `careOf` (16 bytes at careOfOff) and a Destination Options header
 * carrying the Home Address option (the old source) goes after any Hop-by-Hop header
 * (RFC 8200 §4.1: after Routing, before Fragment/AH/ESP/upper layer). Packets that already
 * carry Routing or Destination Options headers are left alone (UNSUPPORTED_CHAIN): the caller
 * sends them through the tunnel.
 */
export function addHomeAddressOption(
  buf: Uint8Array,
  off: number,
  len: number,
  careOf: Uint8Array,
  careOfOff = 0,
): number {
  if (!sane(buf, off, len)) return RewriteError.MALFORMED;
  if (off < REWRITE_GROWTH) return RewriteError.NO_HEADROOM;
  if (u16(buf, off + IPV6_PAYLOAD_LENGTH_OFF) + REWRITE_GROWTH > 0xffff)
    return RewriteError.TOO_BIG;
  const w = walk(buf, off, len, (nh, at) => nh !== IPPROTO.HOPOPTS || at !== IPV6_HEADER_LEN);
  if (typeof w === 'number') return w;
  if (w.nh === IPPROTO.ROUTING || w.nh === IPPROTO.DSTOPTS) return RewriteError.UNSUPPORTED_CHAIN;
  const n = grow(buf, off, w.at);
  const h = n + w.at;
  buf[h + EXT_NEXT_HEADER_OFF] = w.nh;
  buf[h + EXT_HDR_LEN_OFF] = HAO_DSTOPTS_LEN / 8 - 1;
  buf[h + 2] = OPT_PADN; // PadN(2): the option's Type lands at 8n+6
  buf[h + 3] = 2;
  buf[h + 4] = 0;
  buf[h + 5] = 0;
  buf[h + 6] = OPT_HOME_ADDRESS;
  buf[h + 7] = OPT_HOME_ADDRESS_LEN;
  buf.copyWithin(h + HAO_ADDRESS_OFF, n + IPV6_SRC_OFF, n + IPV6_SRC_OFF + IPV6_ADDR_LEN);
  buf.set(careOf.subarray(careOfOff, careOfOff + IPV6_ADDR_LEN), n + IPV6_SRC_OFF);
  buf[n + w.nhOff] = IPPROTO.DSTOPTS;
  return n;
}

/**
 * Absolute offset of the 16-byte home address in the packet's Home Address option, or a
 * negative RewriteError (ABSENT when there is none). Looks in the Destination Options headers
 * before the upper layer (RFC 6275 §6.3).
 */
export function findHomeAddressOption(buf: Uint8Array, off: number, len: number): number {
  if (!sane(buf, off, len)) return RewriteError.MALFORMED;
  let found = RewriteError.ABSENT as number;
  const w = walk(buf, off, len, (nh, at) => {
    if (nh !== IPPROTO.DSTOPTS) return false;
    const h = off + at;
    const end = h + headerLength(buf, h);
    if (end > off + len) return false; // walk() reports it
    for (let o = h + 2; o < end;) {
      const type = buf[o] ?? 0;
      if (type === OPT_PAD1) {
        o++;
        continue;
      }
      const olen = buf[o + 1] ?? 0;
      if (o + 2 + olen > end) {
        found = RewriteError.MALFORMED;
        return true;
      }
      if (type === OPT_HOME_ADDRESS) {
        found = olen === OPT_HOME_ADDRESS_LEN ? o + 2 : RewriteError.MALFORMED;
        return true;
      }
      o += 2 + olen;
    }
    return false;
  });
  if (typeof w === 'number' && found === (RewriteError.ABSENT as number)) return w;
  return found;
}

/**
 * CN: swaps the home address at `haoOff` (from findHomeAddressOption) into the source and
 * strips the option: the whole Destination Options header when it holds nothing else, else the
 * option is overwritten with PadN. Returns the new offset.
 */
export function removeHomeAddressOption(
  buf: Uint8Array,
  off: number,
  len: number,
  haoOff: number,
): number {
  const w = walk(buf, off, len, (nh, at) => {
    if (nh !== IPPROTO.DSTOPTS) return false;
    return haoOff > off + at && haoOff < off + at + headerLength(buf, off + at);
  });
  if (typeof w === 'number') return w;
  const h = off + w.at;
  const size = headerLength(buf, h);
  buf.copyWithin(off + IPV6_SRC_OFF, haoOff, haoOff + IPV6_ADDR_LEN);
  let onlyPadding = true;
  for (let o = h + 2; o < h + size;) {
    const type = buf[o] ?? 0;
    if (type === OPT_PAD1) {
      o++;
      continue;
    }
    if (type !== OPT_PADN && o + 2 !== haoOff) onlyPadding = false;
    o += 2 + (buf[o + 1] ?? 0);
  }
  if (!onlyPadding) {
    buf[haoOff - 2] = OPT_PADN;
    buf.fill(0, haoOff, haoOff + IPV6_ADDR_LEN);
    return off;
  }
  buf[off + w.nhOff] = buf[h + EXT_NEXT_HEADER_OFF] ?? 0;
  return shrink(buf, off, w.at, size);
}

/**
 * CN -> MN: destination becomes `careOf` and a Type 2 Routing Header carrying the old
 * destination (the HoA), Segments Left 1, goes right after the IPv6 (and Hop-by-Hop) header.
 * A packet that already has a Routing header is left alone (UNSUPPORTED_CHAIN).
 */
export function addType2RoutingHeader(
  buf: Uint8Array,
  off: number,
  len: number,
  careOf: Uint8Array,
  careOfOff = 0,
): number {
  if (!sane(buf, off, len)) return RewriteError.MALFORMED;
  if (off < REWRITE_GROWTH) return RewriteError.NO_HEADROOM;
  if (u16(buf, off + IPV6_PAYLOAD_LENGTH_OFF) + REWRITE_GROWTH > 0xffff)
    return RewriteError.TOO_BIG;
  const w = walk(buf, off, len, (nh, at) => nh !== IPPROTO.HOPOPTS || at !== IPV6_HEADER_LEN);
  if (typeof w === 'number') return w;
  // A Routing header further down the chain would be a second one: refuse.
  const other = walk(buf, off, len, (nh) => nh === IPPROTO.ROUTING);
  if (typeof other !== 'number') return RewriteError.UNSUPPORTED_CHAIN;
  const n = grow(buf, off, w.at);
  const h = n + w.at;
  buf[h + EXT_NEXT_HEADER_OFF] = w.nh;
  buf[h + EXT_HDR_LEN_OFF] = RH2_HDR_EXT_LEN;
  buf[h + ROUTING_TYPE_OFF] = ROUTING_TYPE_2;
  buf[h + SEGMENTS_LEFT_OFF] = 1;
  buf.fill(0, h + 4, h + RH2_ADDRESS_OFF);
  buf.copyWithin(h + RH2_ADDRESS_OFF, n + IPV6_DST_OFF, n + IPV6_DST_OFF + IPV6_ADDR_LEN);
  buf.set(careOf.subarray(careOfOff, careOfOff + IPV6_ADDR_LEN), n + IPV6_DST_OFF);
  buf[n + w.nhOff] = IPPROTO.ROUTING;
  return n;
}

/** True when the packet carries a Routing header (after IPv6/HBH/DstOpts headers). */
export function hasRoutingHeader(buf: Uint8Array, off: number, len: number): boolean {
  if (!sane(buf, off, len)) return false;
  return typeof walk(buf, off, len, (nh) => nh === IPPROTO.ROUTING) !== 'number';
}

/**
 * MN: validates and removes a Type 2 Routing Header (RFC 6275 §9.3.2, Linux ipv6_rthdr_rcv):
 * Hdr Ext Len 2 and Segments Left 1, else BAD_RH2; the address must be `homeAddress` (16 bytes
 * at homeOff), else NOT_OWN_HOME_ADDRESS. Then the destination becomes the HoA and the header
 * goes. ABSENT when the packet has no Routing header.
 */
export function removeType2RoutingHeader(
  buf: Uint8Array,
  off: number,
  len: number,
  homeAddress: Uint8Array,
  homeOff = 0,
): number {
  if (!sane(buf, off, len)) return RewriteError.MALFORMED;
  const w = walk(buf, off, len, (nh) => nh === IPPROTO.ROUTING);
  if (typeof w === 'number') return w;
  const h = off + w.at;
  if (w.at + RH2_LEN > len) return RewriteError.MALFORMED;
  if ((buf[h + ROUTING_TYPE_OFF] ?? 0) !== ROUTING_TYPE_2) return RewriteError.UNSUPPORTED_CHAIN;
  if (
    (buf[h + EXT_HDR_LEN_OFF] ?? 0) !== RH2_HDR_EXT_LEN ||
    (buf[h + SEGMENTS_LEFT_OFF] ?? 0) !== 1
  ) {
    return RewriteError.BAD_RH2;
  }
  for (let i = 0; i < IPV6_ADDR_LEN; i++) {
    if (buf[h + RH2_ADDRESS_OFF + i] !== homeAddress[homeOff + i]) {
      return RewriteError.NOT_OWN_HOME_ADDRESS;
    }
  }
  buf.copyWithin(off + IPV6_DST_OFF, h + RH2_ADDRESS_OFF, h + RH2_ADDRESS_OFF + IPV6_ADDR_LEN);
  buf[off + w.nhOff] = buf[h + EXT_NEXT_HEADER_OFF] ?? 0;
  return shrink(buf, off, w.at, RH2_LEN);
}

/**
 * Offset (relative to `off`) of the upper-layer header after Hop-by-Hop, Routing and
 * Destination Options headers, and its protocol; undefined when the chain is malformed.
 * No allocation (data path).
 */
export function upperLayer(
  buf: Uint8Array,
  off: number,
  len: number,
): { protocol: number; offset: number } | undefined {
  if (!sane(buf, off, len)) return undefined;
  const w = walk(
    buf,
    off,
    len,
    (nh) => nh !== IPPROTO.HOPOPTS && nh !== IPPROTO.DSTOPTS && nh !== IPPROTO.ROUTING,
  );
  return typeof w === 'number' ? undefined : { protocol: w.nh, offset: w.at };
}
