/**
 * IPv6 fixed header (RFC 8200 §3): decode/encode plus zero-allocation accessors for the data
 * path, which reads fields in place (`ipv6NextHeader(buf, off)`, addresses at
 * `off + IPV6_SRC_OFF` / `off + IPV6_DST_OFF`).
 */
import { WireError } from '../util/errors.js';
import { formatIpv6, parseIpv6 } from './address.js';
import { checkUint, need, put16, u16, u8 } from './bytes.js';

export const IPV6_HEADER_LEN = 40; // RFC 8200 §3
export const IPV6_VERSION = 6; // RFC 8200 §3
export const IPV6_VERSION_OFF = 0; // RFC 8200 §3: version (4 bits), traffic class (8), flow label (20)
export const IPV6_PAYLOAD_LENGTH_OFF = 4; // RFC 8200 §3
export const IPV6_NEXT_HEADER_OFF = 6; // RFC 8200 §3
export const IPV6_HOP_LIMIT_OFF = 7; // RFC 8200 §3
export const IPV6_SRC_OFF = 8; // RFC 8200 §3
export const IPV6_DST_OFF = 24; // RFC 8200 §3
export const IPV6_ADDR_LEN = 16; // RFC 4291 §2
export const IPV6_MIN_MTU = 1280; // RFC 8200 §5
export const IPV6_DEFAULT_HOP_LIMIT = 64; // RFC 8200 §3 (the value Linux uses by default)

export interface Ipv6Header {
  version: number;
  trafficClass: number;
  flowLabel: number;
  payloadLength: number;
  nextHeader: number;
  hopLimit: number;
  source: string;
  destination: string;
}

export function ipv6Version(buf: Uint8Array, off: number): number {
  return u8(buf, off + IPV6_VERSION_OFF) >> 4;
}

export function ipv6PayloadLength(buf: Uint8Array, off: number): number {
  return u16(buf, off + IPV6_PAYLOAD_LENGTH_OFF);
}

export function ipv6NextHeader(buf: Uint8Array, off: number): number {
  return u8(buf, off + IPV6_NEXT_HEADER_OFF);
}

export function ipv6HopLimit(buf: Uint8Array, off: number): number {
  return u8(buf, off + IPV6_HOP_LIMIT_OFF);
}

/** Decodes the 40-byte header at `off`; checks the version nibble. */
export function decodeIpv6Header(buf: Uint8Array, off = 0): Ipv6Header {
  need(buf, off, IPV6_HEADER_LEN, 'IPv6 header');
  const version = ipv6Version(buf, off);
  if (version !== IPV6_VERSION) {
    throw new WireError('ERR_BAD_VERSION', `IP version ${version}, expected 6`, off);
  }
  const w0 = u16(buf, off);
  const w1 = u16(buf, off + 2);
  return {
    version,
    trafficClass: (w0 >> 4) & 0xff,
    flowLabel: ((w0 & 0xf) << 16) | w1,
    payloadLength: ipv6PayloadLength(buf, off),
    nextHeader: ipv6NextHeader(buf, off),
    hopLimit: ipv6HopLimit(buf, off),
    source: formatIpv6(buf, off + IPV6_SRC_OFF),
    destination: formatIpv6(buf, off + IPV6_DST_OFF),
  };
}

export interface Ipv6HeaderInput {
  trafficClass?: number;
  flowLabel?: number;
  payloadLength: number;
  nextHeader: number;
  hopLimit?: number;
  source: string;
  destination: string;
}

/** Encodes a 40-byte header (into `out` at `off` when given, else a new array). */
export function encodeIpv6Header(h: Ipv6HeaderInput, out?: Uint8Array, off = 0): Uint8Array {
  const buf = out ?? new Uint8Array(IPV6_HEADER_LEN);
  const tc = checkUint(h.trafficClass ?? 0, 8, 'trafficClass');
  const fl = checkUint(h.flowLabel ?? 0, 20, 'flowLabel');
  buf[off] = (IPV6_VERSION << 4) | (tc >> 4);
  buf[off + 1] = ((tc & 0xf) << 4) | (fl >> 16);
  put16(buf, off + 2, fl & 0xffff);
  put16(buf, off + IPV6_PAYLOAD_LENGTH_OFF, checkUint(h.payloadLength, 16, 'payloadLength'));
  buf[off + IPV6_NEXT_HEADER_OFF] = checkUint(h.nextHeader, 8, 'nextHeader');
  buf[off + IPV6_HOP_LIMIT_OFF] = checkUint(h.hopLimit ?? IPV6_DEFAULT_HOP_LIMIT, 8, 'hopLimit');
  buf.set(parseIpv6(h.source), off + IPV6_SRC_OFF);
  buf.set(parseIpv6(h.destination), off + IPV6_DST_OFF);
  return buf;
}
