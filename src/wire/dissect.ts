/**
 * Human and JSON dissections of one IPv6 packet, for `mip6 decode` and pcap readers.
 * JSON uses RFC field names in camelCase: byte strings as lower-case hex, flags as booleans,
 * BU/BA lifetimes both as `lifetimeUnits` (wire) and `lifetime` (seconds), and the BU's
 * effective `careOfAddress` (Alternate CoA option, else the IPv6 source, RFC 6275 §6.1.7).
 * Text is an indented tree in the spirit of `tshark -V`.
 */
import { walkExtensionHeaders, type ChainWalk } from './ext-headers.js';
import { toHex } from './hex.js';
import { IPV6_HEADER_LEN } from './ipv6.js';
import { MH_TYPE_NAMES, lifetimeSeconds, minHeaderLen } from './mobility.js';
import { decodePacket, type DecodeOptions, type DecodedPacket } from './packet.js';
import {
  BA_STATUS_NAMES,
  BE_STATUS_NAMES,
  IPV4_ADDRESS_ACK_STATUS_NAMES,
  PARAMETER_PROBLEM_CODE_NAMES,
  statusText,
} from './status-names.js';
import { IPPROTO, MH_TYPE } from './types.js';

export const PROTOCOL_NAMES: Record<number, string> = {
  [IPPROTO.HOPOPTS]: 'IPv6 Hop-by-Hop Option',
  [IPPROTO.TCP]: 'TCP',
  [IPPROTO.UDP]: 'UDP',
  [IPPROTO.IPV6]: 'IPv6',
  [IPPROTO.ROUTING]: 'Routing Header for IPv6',
  [IPPROTO.FRAGMENT]: 'Fragment Header for IPv6',
  [IPPROTO.ESP]: 'Encapsulating Security Payload',
  [IPPROTO.AH]: 'Authentication Header',
  [IPPROTO.ICMPV6]: 'ICMPv6',
  [IPPROTO.NONE]: 'IPv6 No Next Header',
  [IPPROTO.DSTOPTS]: 'Destination Options for IPv6',
  [IPPROTO.MH]: 'Mobility Header',
};

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };

function jsonify(v: unknown): JsonValue {
  if (v instanceof Uint8Array) return toHex(v);
  if (Array.isArray(v)) return v.map(jsonify);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, JsonValue> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) o[k] = jsonify(x);
    return o;
  }
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  return null;
}

/**
 * Structured view of a decoded packet (plain JSON values only). With the raw `packet`, an
 * ICMPv6 message also shows its Type and Code numbers as on the wire (as Wireshark does).
 */
export function packetToJson(p: DecodedPacket, packet?: Uint8Array): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {
    ipv6: jsonify({
      version: p.version,
      trafficClass: p.trafficClass,
      flowLabel: p.flowLabel,
      payloadLength: p.payloadLength,
      nextHeader: p.nextHeader,
      hopLimit: p.hopLimit,
      source: p.source,
      destination: p.destination,
    }),
    extensionHeaders: p.extensionHeaders.map((h) => {
      const { offset, ...rest } = h;
      void offset;
      return jsonify(rest);
    }),
  };
  if (p.homeAddress !== undefined) out['homeAddress'] = p.homeAddress;
  if (p.routingHomeAddress !== undefined) out['routingHomeAddress'] = p.routingHomeAddress;
  out['upperProtocol'] = p.upperProtocol;
  out['upperProtocolName'] = PROTOCOL_NAMES[p.upperProtocol] ?? `protocol ${p.upperProtocol}`;
  if (p.mobility !== undefined) {
    const m = p.mobility;
    const mhType = m.kind === 'unknown' ? m.mhType : (KIND_TO_TYPE[m.kind] ?? -1);
    const obj: Record<string, JsonValue> = {
      mhType,
      mhTypeName: MH_TYPE_NAMES[mhType] ?? `Unknown (${mhType})`,
      ...withStatusNames(jsonify(m) as Record<string, JsonValue>),
    };
    if (m.kind === 'bindingUpdate' || m.kind === 'bindingAcknowledgement') {
      obj['lifetime'] = lifetimeSeconds(m.lifetimeUnits);
    }
    if (m.kind === 'bindingUpdate') {
      const acoa = m.options.find((o) => o.type === 'alternateCareOfAddress');
      obj['careOfAddress'] = acoa?.type === 'alternateCareOfAddress' ? acoa.address : p.source;
    }
    out['mobility'] = obj;
    if (m.checksumValid !== undefined) out['checksumValid'] = m.checksumValid;
  }
  if (p.shortMobilityHeader !== undefined) {
    // Header Len below the type's minimum (RFC 6275 §9.2): the message is not decoded.
    const sh = p.shortMobilityHeader;
    out['mobility'] = {
      mhType: sh.mhType,
      mhTypeName: MH_TYPE_NAMES[sh.mhType] ?? `Unknown (${sh.mhType})`,
      payloadProto: sh.payloadProto,
      headerLen: sh.headerLen,
      problem: `Header Len ${sh.headerLen} is below the minimum ${minHeaderLen(sh.mhType)} for this MH Type (RFC 6275 §9.2)`,
    };
    if (sh.checksumValid !== undefined) out['checksumValid'] = sh.checksumValid;
  }
  if (p.icmpv6 !== undefined) {
    const numbers =
      packet !== undefined && p.upperOffset + 1 < packet.length
        ? { type: packet[p.upperOffset]!, code: packet[p.upperOffset + 1]! }
        : {};
    const fields = { ...numbers, ...(jsonify(p.icmpv6) as Record<string, JsonValue>) };
    out['icmpv6'] =
      p.icmpv6.kind === 'parameterProblem'
        ? parameterProblemFields(fields, p.icmpv6.code, p.icmpv6.pointer, p.icmpv6.invoking)
        : fields;
    if (p.icmpv6.checksumValid !== undefined) out['checksumValid'] = p.icmpv6.checksumValid;
  }
  if (p.tcp !== undefined) {
    out['tcp'] = jsonify(p.tcp);
    if (p.tcp.checksumValid !== undefined) out['checksumValid'] = p.tcp.checksumValid;
  }
  if (p.udp !== undefined) {
    out['udp'] = jsonify(p.udp);
    if (p.udp.checksumValid !== undefined) out['checksumValid'] = p.udp.checksumValid;
  }
  return out;
}

/** BA / BE status and IPv4 Address Acknowledgement status, each followed by its name. */
function withStatusNames(m: Record<string, JsonValue>): Record<string, JsonValue> {
  const names =
    m['kind'] === 'bindingAcknowledgement'
      ? BA_STATUS_NAMES
      : m['kind'] === 'bindingError'
        ? BE_STATUS_NAMES
        : undefined;
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(m)) {
    if (k === 'options' && Array.isArray(v)) {
      out[k] = v.map((o) =>
        o !== null &&
        typeof o === 'object' &&
        !Array.isArray(o) &&
        o['type'] === 'ipv4AddressAcknowledgement' &&
        typeof o['status'] === 'number'
          ? insertAfter(
              o,
              'status',
              'statusName',
              statusText(IPV4_ADDRESS_ACK_STATUS_NAMES, o['status']),
            )
          : o,
      );
      continue;
    }
    out[k] = v;
    if (k === 'status' && names !== undefined && typeof v === 'number') {
      out['statusName'] = statusText(names, v);
    }
  }
  return out;
}

function insertAfter(
  o: Record<string, JsonValue>,
  after: string,
  key: string,
  value: JsonValue,
): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(o)) {
    out[k] = v;
    if (k === after) out[key] = value;
  }
  return out;
}

/**
 * A Parameter Problem's fields with the code's name, the field the Pointer designates in the
 * invoking packet, and that packet's addresses and upper layer (RFC 4443 §3.4).
 */
function parameterProblemFields(
  fields: Record<string, JsonValue>,
  code: number,
  pointer: number,
  invoking: Uint8Array,
): Record<string, JsonValue> {
  let out = insertAfter(fields, 'code', 'codeName', statusText(PARAMETER_PROBLEM_CODE_NAMES, code));
  out = insertAfter(out, 'pointer', 'pointerField', pointerField(invoking, pointer));
  const inv = decodeInvoking(invoking);
  if (inv !== undefined) {
    const summary: Record<string, JsonValue> = {
      source: inv.source,
      destination: inv.destination,
      upperProtocolName: PROTOCOL_NAMES[inv.upperProtocol] ?? `protocol ${inv.upperProtocol}`,
    };
    if (inv.homeAddress !== undefined) summary['homeAddress'] = inv.homeAddress;
    const mhType =
      inv.mobility !== undefined
        ? inv.mobility.kind === 'unknown'
          ? inv.mobility.mhType
          : KIND_TO_TYPE[inv.mobility.kind]
        : inv.shortMobilityHeader?.mhType;
    if (mhType !== undefined)
      summary['mhTypeName'] = MH_TYPE_NAMES[mhType] ?? `Unknown (${mhType})`;
    out = insertAfter(out, 'invoking', 'invokingPacket', summary);
  }
  return out;
}

/**
 * The invoking packet as far as it decodes: a Parameter Problem quotes at most what fits in
 * 1280 bytes, so Payload Length may claim more than is there.
 */
function decodeInvoking(invoking: Uint8Array): DecodedPacket | undefined {
  if (invoking.length < IPV6_HEADER_LEN) return undefined;
  const copy = invoking.slice();
  const present = copy.length - IPV6_HEADER_LEN;
  const claimed = (copy[4]! << 8) | copy[5]!;
  if (claimed > present) {
    copy[4] = present >> 8;
    copy[5] = present & 0xff;
  }
  try {
    return decodePacket(copy, { verifyChecksum: false });
  } catch {
    return undefined;
  }
}

const IPV6_FIELDS: [number, string][] = [
  [1, 'IPv6 Version / Traffic Class'],
  [4, 'IPv6 Traffic Class / Flow Label'],
  [6, 'IPv6 Payload Length'],
  [7, 'IPv6 Next Header'],
  [8, 'IPv6 Hop Limit'],
  [24, 'IPv6 Source Address'],
  [40, 'IPv6 Destination Address'],
];
const MH_FIELDS = ['Payload Proto', 'Header Len', 'MH Type', 'Reserved', 'Checksum', 'Checksum'];

/** Names the field at byte `pointer` of the invoking packet (RFC 4443 §3.4 Pointer). */
export function pointerField(invoking: Uint8Array, pointer: number): string {
  if (pointer >= invoking.length) return `byte ${pointer}, beyond the quoted packet`;
  if (pointer < IPV6_HEADER_LEN) return IPV6_FIELDS.find(([end]) => pointer < end)![1];
  let p: ChainWalk;
  try {
    const end = Math.min(invoking.length, IPV6_HEADER_LEN + ((invoking[4]! << 8) | invoking[5]!));
    p = walkExtensionHeaders(invoking, IPV6_HEADER_LEN, invoking[6]!, end);
  } catch {
    return `byte ${pointer}`;
  }
  for (const h of p.headers) {
    if (pointer < h.offset || pointer >= h.offset + h.length) continue;
    const name = `${humanKey(h.kind)} header`;
    const rel = pointer - h.offset;
    if (rel === 0) return `${name} Next Header`;
    if (rel === 1) return `${name} Hdr Ext Len`;
    if (h.kind === 'routing') {
      if (rel === 2) return `${name} Routing Type`;
      if (rel === 3) return `${name} Segments Left`;
      return `${name}, byte ${rel}`;
    }
    if (h.kind === 'destinationOptions' || h.kind === 'hopByHop') {
      // Walk the options (RFC 8200 §4.2: Pad1 is one byte, the others type-length-value).
      for (let i = h.offset + 2; i < h.offset + h.length;) {
        const type = invoking[i]!;
        const len = type === 0 ? 1 : (invoking[i + 1] ?? 0) + 2;
        if (pointer < i + len) {
          const opt = type === 201 ? 'Home Address option' : `option type ${type}`;
          return `${name}, ${opt}${pointer === i ? ' (Option Type)' : ''}`;
        }
        i += len;
      }
    }
    return `${name}, byte ${rel}`;
  }
  const rel = pointer - p.upperOffset;
  if (rel >= 0 && p.upperProtocol === IPPROTO.MH) {
    return `Mobility Header ${MH_FIELDS[rel] ?? `message data, byte ${rel}`}`;
  }
  const proto = PROTOCOL_NAMES[p.upperProtocol] ?? `protocol ${p.upperProtocol}`;
  return rel >= 0 ? `${proto}, byte ${rel}` : `byte ${pointer}`;
}

/** Titles of ICMPv6 messages in the text dissection (Wireshark's wording). */
const ICMPV6_TITLES: Record<string, string> = {
  echoRequest: 'Echo (ping) request',
  echoReply: 'Echo (ping) reply',
  destinationUnreachable: 'Destination Unreachable',
  packetTooBig: 'Packet Too Big',
  parameterProblem: 'Parameter Problem',
  haadRequest: 'Home Agent Address Discovery Request',
  haadReply: 'Home Agent Address Discovery Reply',
  mobilePrefixSolicitation: 'Mobile Prefix Solicitation',
  mobilePrefixAdvertisement: 'Mobile Prefix Advertisement',
};

const KIND_TO_TYPE: Record<string, number> = {
  bindingRefreshRequest: MH_TYPE.BRR,
  homeTestInit: MH_TYPE.HOTI,
  careOfTestInit: MH_TYPE.COTI,
  homeTest: MH_TYPE.HOT,
  careOfTest: MH_TYPE.COT,
  bindingUpdate: MH_TYPE.BU,
  bindingAcknowledgement: MH_TYPE.BA,
  bindingError: MH_TYPE.BE,
};

/** Decodes `packet` and returns its JSON dissection; throws WireError when malformed. */
export function dissectToJson(packet: Uint8Array, opts?: DecodeOptions): Record<string, JsonValue> {
  return packetToJson(decodePacket(packet, opts), packet);
}

function humanKey(k: string): string {
  if (k.length <= 3 && k === k.toUpperCase()) return `${k} flag`;
  const s = k.replace(/([a-z0-9])([A-Z])/g, '$1 $2');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function render(lines: string[], v: JsonValue, indent: string): void {
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      if (x !== null && typeof x === 'object' && !Array.isArray(x)) {
        const title =
          typeof x['type'] === 'string'
            ? x['type']
            : typeof x['kind'] === 'string'
              ? x['kind']
              : `[${i}]`;
        lines.push(`${indent}${humanKey(title)}`);
        const rest = Object.fromEntries(
          Object.entries(x).filter(([k]) => k !== 'type' && k !== 'kind'),
        );
        render(lines, rest, `${indent}    `);
      } else {
        lines.push(`${indent}${String(x)}`);
      }
    });
    return;
  }
  if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (x !== null && typeof x === 'object') {
        if (Array.isArray(x) && x.length === 0) continue;
        lines.push(`${indent}${humanKey(k)}:`);
        render(lines, x, `${indent}    `);
      } else if (typeof x === 'boolean') {
        lines.push(`${indent}${humanKey(k)}: ${x ? 'Set' : 'Not set'}`);
      } else {
        const shown =
          k === 'checksum' && typeof x === 'number'
            ? `0x${x.toString(16).padStart(4, '0')}`
            : String(x);
        lines.push(`${indent}${humanKey(k)}: ${shown}`);
      }
    }
  }
}

/** Decodes `packet` and returns an indented, tshark -V style text dissection. */
export function dissectToText(packet: Uint8Array, opts?: DecodeOptions): string {
  const p = decodePacket(packet, opts);
  const j = packetToJson(p, packet);
  const lines: string[] = [`Internet Protocol Version 6, Src: ${p.source}, Dst: ${p.destination}`];
  render(lines, j['ipv6'] ?? null, '    ');
  for (const h of j['extensionHeaders'] as JsonValue[]) {
    const o = h as Record<string, JsonValue>;
    lines.push(`${humanKey(String(o['kind']))} header`);
    render(lines, Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'kind')), '    ');
  }
  const section = (title: string, key: string): void => {
    const v = j[key];
    if (v === undefined || v === null || typeof v !== 'object' || Array.isArray(v)) return;
    lines.push(title);
    // The title already names the message: drop the discriminators from the field list.
    const fields = Object.fromEntries(
      Object.entries(v).filter(([k]) => k !== 'kind' && k !== 'mhTypeName' && k !== 'mhType'),
    );
    render(lines, fields, '    ');
  };
  const mh = j['mobility'] as Record<string, JsonValue> | undefined;
  if (mh !== undefined) {
    section(
      `Mobile IPv6, ${String(mh['mhTypeName'])} (MH Type ${String(mh['mhType'])})`,
      'mobility',
    );
  }
  const icmp = j['icmpv6'] as Record<string, JsonValue> | undefined;
  if (icmp !== undefined) {
    const kind = String(icmp['kind']);
    section(
      `Internet Control Message Protocol v6, ${ICMPV6_TITLES[kind] ?? humanKey(kind)}`,
      'icmpv6',
    );
  }
  section('Transmission Control Protocol', 'tcp');
  section('User Datagram Protocol', 'udp');
  if (j['checksumValid'] !== undefined)
    lines.push(`[Checksum Status: ${j['checksumValid'] === true ? 'Good' : 'Bad'}]`);
  return lines.join('\n');
}
