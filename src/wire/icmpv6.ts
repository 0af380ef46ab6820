/**
 * ICMPv6 codec (RFC 4443) for the messages mip6 sends or reads: Echo, Destination
 * Unreachable, Packet Too Big, Parameter Problem, and the Mobile IPv6 messages DHAAD
 * Request/Reply and Mobile Prefix Solicitation/Advertisement (RFC 6275 §6.5-§6.8) with the
 * Prefix Information ND option (RFC 4861 §4.6.2, R flag RFC 6275 §7.2).
 */
import { formatIpv6, parseIpv6 } from './address.js';
import { checkUint, concatBytes, fail, need, put16, put32, u16, u32, u8 } from './bytes.js';
import { upperLayerChecksum } from './checksum.js';
import { IPV6_HEADER_LEN, IPV6_MIN_MTU, encodeIpv6Header } from './ipv6.js';
import { IPPROTO } from './types.js';

export const ICMPV6_TYPE_OFF = 0; // RFC 4443 §2.1
export const ICMPV6_CODE_OFF = 1; // RFC 4443 §2.1
export const ICMPV6_CHECKSUM_OFF = 2; // RFC 4443 §2.1
export const ICMPV6_BODY_OFF = 4; // RFC 4443 §2.1
export const ICMPV6_HEADER_LEN = 8; // RFC 4443 §3, §4
export const ICMPV6_ERROR_HOP_LIMIT = 255; // mip6 choice (any value is allowed, RFC 4443 §2.4)

export const ICMPV6_TYPE = {
  DESTINATION_UNREACHABLE: 1, // RFC 4443 §3.1
  PACKET_TOO_BIG: 2, // RFC 4443 §3.2
  TIME_EXCEEDED: 3, // RFC 4443 §3.3
  PARAMETER_PROBLEM: 4, // RFC 4443 §3.4
  ECHO_REQUEST: 128, // RFC 4443 §4.1
  ECHO_REPLY: 129, // RFC 4443 §4.2
  HAAD_REQUEST: 144, // RFC 6275 §6.5
  HAAD_REPLY: 145, // RFC 6275 §6.6
  MOBILE_PREFIX_SOLICITATION: 146, // RFC 6275 §6.7
  MOBILE_PREFIX_ADVERTISEMENT: 147, // RFC 6275 §6.8
} as const;

export const ND_OPT_PREFIX_INFORMATION = 3; // RFC 4861 §4.6.2
export const ND_OPT_PREFIX_INFORMATION_LEN = 32; // RFC 4861 §4.6.2 (Length 4)
export const PREFIX_FLAG_L = 0x80; // RFC 4861 §4.6.2
export const PREFIX_FLAG_A = 0x40; // RFC 4861 §4.6.2
export const PREFIX_FLAG_R = 0x20; // RFC 6275 §7.2
export const HAAD_FLAG_R = 0x8000; // RFC 3963 §4.3 (mobile router), in the Reserved field
export const MPA_FLAG_M = 0x80; // RFC 6275 §6.8
export const MPA_FLAG_O = 0x40; // RFC 6275 §6.8

export type NdOption =
  | {
      type: 'prefixInformation';
      prefixLength: number;
      onLink: boolean;
      autonomous: boolean;
      routerAddress: boolean;
      validLifetime: number;
      preferredLifetime: number;
      prefix: string;
    }
  | { type: 'unknown'; optionType: number; data: Uint8Array };

export type Icmpv6Message =
  | { kind: 'echoRequest' | 'echoReply'; identifier: number; sequence: number; data: Uint8Array }
  | { kind: 'destinationUnreachable'; code: number; invoking: Uint8Array }
  | { kind: 'packetTooBig'; mtu: number; invoking: Uint8Array }
  | { kind: 'parameterProblem'; code: number; pointer: number; invoking: Uint8Array }
  | { kind: 'haadRequest'; identifier: number; mobileRouter: boolean }
  | { kind: 'haadReply'; identifier: number; mobileRouter: boolean; homeAgentAddresses: string[] }
  | { kind: 'mobilePrefixSolicitation'; identifier: number }
  | {
      kind: 'mobilePrefixAdvertisement';
      identifier: number;
      managed: boolean;
      other: boolean;
      options: NdOption[];
    }
  | { kind: 'unknown'; type: number; code: number; body: Uint8Array };

export type DecodedIcmpv6 = Icmpv6Message & { checksum: number; checksumValid?: boolean };

export interface Pseudo {
  source: string;
  destination: string;
}

function encodeNdOptions(options: NdOption[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const o of options) {
    if (o.type === 'prefixInformation') {
      const b = new Uint8Array(ND_OPT_PREFIX_INFORMATION_LEN);
      b[0] = ND_OPT_PREFIX_INFORMATION;
      b[1] = ND_OPT_PREFIX_INFORMATION_LEN / 8;
      b[2] = checkUint(o.prefixLength, 8, 'prefixLength');
      if (o.prefixLength > 128) fail('ERR_BAD_VALUE', 'prefixLength above 128', -1);
      b[3] =
        (o.onLink ? PREFIX_FLAG_L : 0) |
        (o.autonomous ? PREFIX_FLAG_A : 0) |
        (o.routerAddress ? PREFIX_FLAG_R : 0);
      put32(b, 4, checkUint(o.validLifetime, 32, 'validLifetime'));
      put32(b, 8, checkUint(o.preferredLifetime, 32, 'preferredLifetime'));
      b.set(parseIpv6(o.prefix), 16);
      parts.push(b);
    } else {
      const total = 2 + o.data.length;
      if (total % 8 !== 0)
        fail('ERR_BAD_LENGTH', 'ND option data must make a multiple of 8 bytes', -1);
      const b = new Uint8Array(total);
      b[0] = checkUint(o.optionType, 8, 'optionType');
      b[1] = checkUint(total / 8, 8, 'option length');
      b.set(o.data, 2);
      parts.push(b);
    }
  }
  return concatBytes(parts);
}

function decodeNdOptions(buf: Uint8Array, off: number, end: number): NdOption[] {
  const options: NdOption[] = [];
  while (off < end) {
    need(buf, off, 2, 'ND option header', end);
    const type = u8(buf, off);
    const len = u8(buf, off + 1) * 8;
    if (len === 0) fail('ERR_BAD_LENGTH', 'ND option with length 0', off + 1); // RFC 4861 §4.6
    need(buf, off, len, 'ND option', end);
    if (type === ND_OPT_PREFIX_INFORMATION) {
      if (len !== ND_OPT_PREFIX_INFORMATION_LEN) {
        fail('ERR_BAD_LENGTH', 'Prefix Information option length must be 4', off + 1);
      }
      const f = u8(buf, off + 3);
      options.push({
        type: 'prefixInformation',
        prefixLength: u8(buf, off + 2),
        onLink: (f & PREFIX_FLAG_L) !== 0,
        autonomous: (f & PREFIX_FLAG_A) !== 0,
        routerAddress: (f & PREFIX_FLAG_R) !== 0,
        validLifetime: u32(buf, off + 4),
        preferredLifetime: u32(buf, off + 8),
        prefix: formatIpv6(buf, off + 16),
      });
    } else {
      options.push({ type: 'unknown', optionType: type, data: buf.slice(off + 2, off + len) });
    }
    off += len;
  }
  return options;
}

/** Encodes an ICMPv6 message with its checksum over the given pseudo-header addresses. */
export function encodeIcmpv6(message: Icmpv6Message, pseudo: Pseudo | undefined): Uint8Array {
  const m = message;
  let head = new Uint8Array(ICMPV6_HEADER_LEN);
  let tail: Uint8Array = new Uint8Array(0);
  switch (m.kind) {
    case 'echoRequest':
    case 'echoReply':
      head[0] = m.kind === 'echoRequest' ? ICMPV6_TYPE.ECHO_REQUEST : ICMPV6_TYPE.ECHO_REPLY;
      put16(head, 4, checkUint(m.identifier, 16, 'identifier'));
      put16(head, 6, checkUint(m.sequence, 16, 'sequence'));
      tail = m.data;
      break;
    case 'destinationUnreachable':
      head[0] = ICMPV6_TYPE.DESTINATION_UNREACHABLE;
      head[1] = checkUint(m.code, 8, 'code');
      tail = m.invoking;
      break;
    case 'packetTooBig':
      head[0] = ICMPV6_TYPE.PACKET_TOO_BIG;
      put32(head, 4, checkUint(m.mtu, 32, 'mtu'));
      tail = m.invoking;
      break;
    case 'parameterProblem':
      head[0] = ICMPV6_TYPE.PARAMETER_PROBLEM;
      head[1] = checkUint(m.code, 8, 'code');
      put32(head, 4, checkUint(m.pointer, 32, 'pointer'));
      tail = m.invoking;
      break;
    case 'haadRequest':
      head[0] = ICMPV6_TYPE.HAAD_REQUEST;
      put16(head, 4, checkUint(m.identifier, 16, 'identifier'));
      put16(head, 6, m.mobileRouter ? HAAD_FLAG_R : 0);
      break;
    case 'haadReply':
      head[0] = ICMPV6_TYPE.HAAD_REPLY;
      put16(head, 4, checkUint(m.identifier, 16, 'identifier'));
      put16(head, 6, m.mobileRouter ? HAAD_FLAG_R : 0);
      tail = concatBytes(m.homeAgentAddresses.map((a) => parseIpv6(a)));
      break;
    case 'mobilePrefixSolicitation':
      head[0] = ICMPV6_TYPE.MOBILE_PREFIX_SOLICITATION;
      put16(head, 4, checkUint(m.identifier, 16, 'identifier'));
      break;
    case 'mobilePrefixAdvertisement':
      head[0] = ICMPV6_TYPE.MOBILE_PREFIX_ADVERTISEMENT;
      put16(head, 4, checkUint(m.identifier, 16, 'identifier'));
      head[6] = (m.managed ? MPA_FLAG_M : 0) | (m.other ? MPA_FLAG_O : 0);
      tail = encodeNdOptions(m.options);
      break;
    case 'unknown':
      head = new Uint8Array(ICMPV6_BODY_OFF);
      head[0] = checkUint(m.type, 8, 'type');
      head[1] = checkUint(m.code, 8, 'code');
      tail = m.body;
      break;
  }
  const bytes = concatBytes([head, tail]);
  if (pseudo !== undefined) {
    put16(
      bytes,
      ICMPV6_CHECKSUM_OFF,
      upperLayerChecksum(pseudo.source, pseudo.destination, IPPROTO.ICMPV6, bytes),
    );
  }
  return bytes;
}

/** Decodes an ICMPv6 message filling `bytes`; with `pseudo`, checks the checksum. */
export function decodeIcmpv6(bytes: Uint8Array, pseudo?: Pseudo): DecodedIcmpv6 {
  need(bytes, 0, ICMPV6_BODY_OFF, 'ICMPv6 header');
  const type = u8(bytes, ICMPV6_TYPE_OFF);
  const code = u8(bytes, ICMPV6_CODE_OFF);
  const checksum = u16(bytes, ICMPV6_CHECKSUM_OFF);
  const b = bytes;
  const head = (): void => need(b, 0, ICMPV6_HEADER_LEN, 'ICMPv6 message');
  let m: Icmpv6Message;
  switch (type) {
    case ICMPV6_TYPE.ECHO_REQUEST:
    case ICMPV6_TYPE.ECHO_REPLY:
      head();
      m = {
        kind: type === ICMPV6_TYPE.ECHO_REQUEST ? 'echoRequest' : 'echoReply',
        identifier: u16(b, 4),
        sequence: u16(b, 6),
        data: b.slice(8),
      };
      break;
    case ICMPV6_TYPE.DESTINATION_UNREACHABLE:
      head();
      m = { kind: 'destinationUnreachable', code, invoking: b.slice(8) };
      break;
    case ICMPV6_TYPE.PACKET_TOO_BIG:
      head();
      m = { kind: 'packetTooBig', mtu: u32(b, 4), invoking: b.slice(8) };
      break;
    case ICMPV6_TYPE.PARAMETER_PROBLEM:
      head();
      m = { kind: 'parameterProblem', code, pointer: u32(b, 4), invoking: b.slice(8) };
      break;
    case ICMPV6_TYPE.HAAD_REQUEST:
      head();
      m = {
        kind: 'haadRequest',
        identifier: u16(b, 4),
        mobileRouter: (u16(b, 6) & HAAD_FLAG_R) !== 0,
      };
      break;
    case ICMPV6_TYPE.HAAD_REPLY: {
      head();
      if ((b.length - 8) % 16 !== 0)
        fail('ERR_BAD_LENGTH', 'DHAAD Reply address list is not a multiple of 16', 8);
      const homeAgentAddresses: string[] = [];
      for (let o = 8; o + 16 <= b.length; o += 16) homeAgentAddresses.push(formatIpv6(b, o));
      m = {
        kind: 'haadReply',
        identifier: u16(b, 4),
        mobileRouter: (u16(b, 6) & HAAD_FLAG_R) !== 0,
        homeAgentAddresses,
      };
      break;
    }
    case ICMPV6_TYPE.MOBILE_PREFIX_SOLICITATION:
      head();
      m = { kind: 'mobilePrefixSolicitation', identifier: u16(b, 4) };
      break;
    case ICMPV6_TYPE.MOBILE_PREFIX_ADVERTISEMENT:
      head();
      m = {
        kind: 'mobilePrefixAdvertisement',
        identifier: u16(b, 4),
        managed: (u8(b, 6) & MPA_FLAG_M) !== 0,
        other: (u8(b, 6) & MPA_FLAG_O) !== 0,
        options: decodeNdOptions(b, 8, b.length),
      };
      break;
    default:
      m = { kind: 'unknown', type, code, body: b.slice(ICMPV6_BODY_OFF) };
  }
  const out: DecodedIcmpv6 = Object.assign(m, { checksum }); // no spread: slow on Node 20
  if (pseudo !== undefined) {
    out.checksumValid =
      upperLayerChecksum(pseudo.source, pseudo.destination, IPPROTO.ICMPV6, b) === 0;
  }
  return out;
}

/** Full IPv6 packet carrying an ICMPv6 error about `original` (RFC 4443 §2.4 (c)). */
function buildError(original: Uint8Array, source: string, message: Icmpv6Message): Uint8Array {
  need(original, 0, IPV6_HEADER_LEN, 'offending IPv6 packet');
  const destination = formatIpv6(original, 8);
  const body = encodeIcmpv6(message, { source, destination });
  const out = new Uint8Array(IPV6_HEADER_LEN + body.length);
  encodeIpv6Header(
    {
      payloadLength: body.length,
      nextHeader: IPPROTO.ICMPV6,
      hopLimit: ICMPV6_ERROR_HOP_LIMIT,
      source,
      destination,
    },
    out,
    0,
  );
  out.set(body, IPV6_HEADER_LEN);
  return out;
}

/** As much of the offending packet as fits in a 1280-byte error (RFC 4443 §2.4 (c)). */
function invokingPart(original: Uint8Array): Uint8Array {
  return original.slice(0, IPV6_MIN_MTU - IPV6_HEADER_LEN - ICMPV6_HEADER_LEN);
}

/** Packet Too Big (RFC 4443 §3.2) from `source` back to the offending packet's source. */
export function buildPacketTooBig(original: Uint8Array, mtu: number, source: string): Uint8Array {
  return buildError(original, source, {
    kind: 'packetTooBig',
    mtu,
    invoking: invokingPart(original),
  });
}

/** Destination Unreachable (RFC 4443 §3.1) with `code` back to the offending packet's source. */
export function buildDestinationUnreachable(
  original: Uint8Array,
  code: number,
  source: string,
): Uint8Array {
  return buildError(original, source, {
    kind: 'destinationUnreachable',
    code,
    invoking: invokingPart(original),
  });
}

/** Parameter Problem (RFC 4443 §3.4) with `code` and `pointer` into the offending packet. */
export function buildParameterProblem(
  original: Uint8Array,
  code: number,
  pointer: number,
  source: string,
): Uint8Array {
  return buildError(original, source, {
    kind: 'parameterProblem',
    code,
    pointer,
    invoking: invokingPart(original),
  });
}
