/**
 * IPv6 extension headers (RFC 8200 §4) as mip6 meets them: Hop-by-Hop Options, Routing
 * (Type 2 decoded, RFC 6275 §6.4), Fragment, Destination Options (with the Home Address
 * option, RFC 6275 §6.3). The chain walk is bounded (MAX_EXTENSION_HEADERS) and checks every
 * length against the end of the payload, so hostile chains end in a WireError.
 */
import { formatIpv6, parseIpv6 } from './address.js';
import { checkUint, fail, need, put16, put32, u16, u32, u8 } from './bytes.js';
import { IPPROTO } from './types.js';

export const MAX_EXTENSION_HEADERS = 8; // mip6 limit: RFC 8200 §4.1 order needs at most 6
export const EXT_NEXT_HEADER_OFF = 0; // RFC 8200 §4.3
export const EXT_HDR_LEN_OFF = 1; // RFC 8200 §4.3: 8-octet units, not counting the first 8
export const OPT_PAD1 = 0; // RFC 8200 §4.2
export const OPT_PADN = 1; // RFC 8200 §4.2
export const OPT_HOME_ADDRESS = 201; // RFC 6275 §6.3 (0xC9)
export const OPT_HOME_ADDRESS_LEN = 16; // RFC 6275 §6.3
export const ROUTING_TYPE_OFF = 2; // RFC 8200 §4.4
export const SEGMENTS_LEFT_OFF = 3; // RFC 8200 §4.4
export const ROUTING_TYPE_2 = 2; // RFC 6275 §6.4
export const ROUTING_TYPE_SRH = 4; // RFC 8754 §2
export const SRH_SEGMENT_LIST_OFF = 8; // RFC 8754 §2: Segment List[0]
export const RH2_HDR_EXT_LEN = 2; // RFC 6275 §6.4.1
export const RH2_ADDRESS_OFF = 8; // RFC 6275 §6.4.1
export const RH2_LEN = 24; // RFC 6275 §6.4.1
export const FRAGMENT_HEADER_LEN = 8; // RFC 8200 §4.5
export const HAO_DSTOPTS_LEN = 24; // RFC 6275 §6.3 with PadN(2) before the option (as Linux)

export type Ipv6Option =
  | { type: 'pad1' }
  | { type: 'padN'; length: number }
  | { type: 'homeAddress'; address: string }
  | { type: 'unknown'; optionType: number; data: Uint8Array };

export type ExtensionHeader =
  | { kind: 'hopByHop'; offset: number; length: number; nextHeader: number; options: Ipv6Option[] }
  | {
      kind: 'destinationOptions';
      offset: number;
      length: number;
      nextHeader: number;
      options: Ipv6Option[];
    }
  | {
      kind: 'routing';
      offset: number;
      length: number;
      nextHeader: number;
      routingType: number;
      segmentsLeft: number;
      /** Type 2 only: the home address (RFC 6275 §6.4.1). */
      address?: string;
      data: Uint8Array;
    }
  | {
      kind: 'fragment';
      offset: number;
      length: number;
      nextHeader: number;
      fragmentOffset: number;
      moreFragments: boolean;
      identification: number;
    };

export function isExtensionHeader(nextHeader: number): boolean {
  return (
    nextHeader === IPPROTO.HOPOPTS ||
    nextHeader === IPPROTO.ROUTING ||
    nextHeader === IPPROTO.FRAGMENT ||
    nextHeader === IPPROTO.DSTOPTS
  );
}

/** Decodes the TLV options of a Hop-by-Hop or Destination Options header at `off..end`. */
function decodeOptions(buf: Uint8Array, hdrOff: number, off: number, end: number): Ipv6Option[] {
  const options: Ipv6Option[] = [];
  while (off < end) {
    const type = u8(buf, off);
    if (type === OPT_PAD1) {
      options.push({ type: 'pad1' });
      off += 1;
      continue;
    }
    need(buf, off, 2, 'IPv6 option header', end);
    const len = u8(buf, off + 1);
    need(buf, off + 2, len, 'IPv6 option data', end);
    if (type === OPT_PADN) {
      options.push({ type: 'padN', length: len });
    } else if (type === OPT_HOME_ADDRESS) {
      if (len !== OPT_HOME_ADDRESS_LEN) {
        fail('ERR_BAD_LENGTH', `Home Address option length ${len}, expected 16`, off + 1);
      }
      if ((off - hdrOff) % 8 !== 6) {
        fail('ERR_BAD_ALIGNMENT', 'Home Address option not at 8n+6', off);
      }
      options.push({ type: 'homeAddress', address: formatIpv6(buf, off + 2) });
    } else {
      options.push({ type: 'unknown', optionType: type, data: buf.slice(off + 2, off + 2 + len) });
    }
    off += 2 + len;
  }
  return options;
}

export interface ChainWalk {
  headers: ExtensionHeader[];
  upperProtocol: number;
  upperOffset: number;
}

/**
 * Walks the extension headers starting at `off` with next-header value `nextHeader`, up to
 * `end` (the end of the IPv6 payload). Stops at the first non-extension header (the upper
 * layer, ESP, AH, or No Next Header).
 */
export function walkExtensionHeaders(
  buf: Uint8Array,
  off: number,
  nextHeader: number,
  end: number,
): ChainWalk {
  const headers: ExtensionHeader[] = [];
  while (isExtensionHeader(nextHeader)) {
    if (headers.length >= MAX_EXTENSION_HEADERS) {
      fail('ERR_TOO_MANY_HEADERS', `more than ${MAX_EXTENSION_HEADERS} extension headers`, off);
    }
    need(buf, off, 8, 'extension header', end);
    const nh = u8(buf, off + EXT_NEXT_HEADER_OFF);
    if (nextHeader === IPPROTO.FRAGMENT) {
      const fo = u16(buf, off + 2);
      headers.push({
        kind: 'fragment',
        offset: off,
        length: FRAGMENT_HEADER_LEN,
        nextHeader: nh,
        fragmentOffset: fo >> 3,
        moreFragments: (fo & 1) === 1,
        identification: u32(buf, off + 4),
      });
      off += FRAGMENT_HEADER_LEN;
      nextHeader = nh;
      continue;
    }
    const len = (u8(buf, off + EXT_HDR_LEN_OFF) + 1) * 8;
    if (off + len > end) {
      fail('ERR_BAD_LENGTH', `extension header length ${len} runs past the payload`, off + 1);
    }
    if (nextHeader === IPPROTO.ROUTING) {
      const routingType = u8(buf, off + ROUTING_TYPE_OFF);
      const segmentsLeft = u8(buf, off + SEGMENTS_LEFT_OFF);
      const h: ExtensionHeader = {
        kind: 'routing',
        offset: off,
        length: len,
        nextHeader: nh,
        routingType,
        segmentsLeft,
        data: buf.slice(off + 4, off + len),
      };
      if (routingType === ROUTING_TYPE_2) {
        if (len !== RH2_LEN)
          fail('ERR_BAD_LENGTH', 'Type 2 Routing Header length must be 2', off + 1);
        if (segmentsLeft > 1) {
          fail('ERR_BAD_VALUE', 'Type 2 Routing Header Segments Left must be 0 or 1', off + 3);
        }
        h.address = formatIpv6(buf, off + RH2_ADDRESS_OFF);
      }
      headers.push(h);
    } else {
      const options = decodeOptions(buf, off, off + 2, off + len);
      headers.push({
        kind: nextHeader === IPPROTO.HOPOPTS ? 'hopByHop' : 'destinationOptions',
        offset: off,
        length: len,
        nextHeader: nh,
        options,
      });
    }
    if (nextHeader === IPPROTO.HOPOPTS && headers.length !== 1) {
      fail('ERR_BAD_VALUE', 'Hop-by-Hop Options header not first', off);
    }
    off += len;
    nextHeader = nh;
  }
  return { headers, upperProtocol: nextHeader, upperOffset: off };
}

/** Alignment (x, y) of an IPv6 option: its Type byte at offset ≡ y (mod x) in the header. */
function optionAlignment(o: Ipv6Option): [number, number] {
  return o.type === 'homeAddress' ? [8, 6] : [1, 0]; // RFC 6275 §6.3: 8n+6
}

function padBytes(n: number): number[] {
  if (n === 0) return [];
  if (n === 1) return [OPT_PAD1];
  return [OPT_PADN, n - 2, ...new Array<number>(n - 2).fill(0)];
}

/**
 * Encodes a Hop-by-Hop or Destination Options header with the given options (Pad1/PadN in
 * the input are dropped; the encoder pads for alignment and to a multiple of 8 itself).
 */
export function encodeOptionsHeader(nextHeader: number, options: Ipv6Option[]): Uint8Array {
  const out: number[] = [checkUint(nextHeader, 8, 'nextHeader'), 0];
  for (const o of options) {
    if (o.type === 'pad1' || o.type === 'padN') continue;
    const [x, y] = optionAlignment(o);
    out.push(...padBytes((((y - out.length) % x) + x) % x));
    if (o.type === 'homeAddress') {
      out.push(OPT_HOME_ADDRESS, OPT_HOME_ADDRESS_LEN, ...parseIpv6(o.address));
    } else {
      out.push(
        checkUint(o.optionType, 8, 'optionType'),
        checkUint(o.data.length, 8, 'option length'),
        ...o.data,
      );
    }
  }
  out.push(...padBytes((8 - (out.length % 8)) % 8));
  out[1] = out.length / 8 - 1;
  return Uint8Array.from(out);
}

/** Destination Options header carrying only the Home Address option (24 bytes, as Linux). */
export function encodeHomeAddressOption(nextHeader: number, homeAddress: string): Uint8Array {
  return encodeOptionsHeader(nextHeader, [{ type: 'homeAddress', address: homeAddress }]);
}

/** Type 2 Routing Header (RFC 6275 §6.4.1): Hdr Ext Len 2, Segments Left 1 by default. */
export function encodeType2RoutingHeader(
  nextHeader: number,
  homeAddress: string,
  segmentsLeft = 1,
): Uint8Array {
  const out = new Uint8Array(RH2_LEN);
  out[EXT_NEXT_HEADER_OFF] = checkUint(nextHeader, 8, 'nextHeader');
  out[EXT_HDR_LEN_OFF] = RH2_HDR_EXT_LEN;
  out[ROUTING_TYPE_OFF] = ROUTING_TYPE_2;
  out[SEGMENTS_LEFT_OFF] = checkUint(segmentsLeft, 1, 'segmentsLeft');
  out.set(parseIpv6(homeAddress), RH2_ADDRESS_OFF);
  return out;
}

/** Fragment header (RFC 8200 §4.5); `fragmentOffset` in 8-octet units. */
export function encodeFragmentHeader(
  nextHeader: number,
  fragmentOffset: number,
  moreFragments: boolean,
  identification: number,
): Uint8Array {
  const out = new Uint8Array(FRAGMENT_HEADER_LEN);
  out[0] = checkUint(nextHeader, 8, 'nextHeader');
  put16(out, 2, (checkUint(fragmentOffset, 13, 'fragmentOffset') << 3) | (moreFragments ? 1 : 0));
  put32(out, 4, checkUint(identification, 32, 'identification'));
  return out;
}
