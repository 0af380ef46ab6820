/**
 * Human and JSON dissections of one IPv6 packet, for `mip6 decode` and pcap readers.
 * JSON uses RFC field names in camelCase: byte strings as lower-case hex, flags as booleans,
 * BU/BA lifetimes both as `lifetimeUnits` (wire) and `lifetime` (seconds), and the BU's
 * effective `careOfAddress` (Alternate CoA option, else the IPv6 source, RFC 6275 §6.1.7).
 * Text is an indented tree in the spirit of `tshark -V`.
 */
import { toHex } from './hex.js';
import { MH_TYPE_NAMES, lifetimeSeconds } from './mobility.js';
import { decodePacket, type DecodeOptions, type DecodedPacket } from './packet.js';
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
      ...(jsonify(m) as Record<string, JsonValue>),
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
  if (p.icmpv6 !== undefined) {
    const numbers =
      packet !== undefined && p.upperOffset + 1 < packet.length
        ? { type: packet[p.upperOffset]!, code: packet[p.upperOffset + 1]! }
        : {};
    out['icmpv6'] = { ...numbers, ...(jsonify(p.icmpv6) as Record<string, JsonValue>) };
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
    section(`Internet Control Message Protocol v6, ${humanKey(String(icmp['kind']))}`, 'icmpv6');
  }
  section('Transmission Control Protocol', 'tcp');
  section('User Datagram Protocol', 'udp');
  if (j['checksumValid'] !== undefined)
    lines.push(`[Checksum Status: ${j['checksumValid'] === true ? 'Good' : 'Bad'}]`);
  return lines.join('\n');
}
