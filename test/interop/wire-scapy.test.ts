// Interop for src/wire against tools nobody here wrote: scapy (Debian python3-scapy under
// /usr/bin/python3) and tshark.
//  1. scapy builds every MH type, the RFC 5555 options (packed by hand: scapy lacks them),
//     HAO/RH2 packets carrying TCP/UDP, DHAAD, MPS/MPA and Echo; mip6 decodes them to the
//     same field values and judges scapy's checksums valid.
//  2. mip6 encodes the same set; scapy dissects them to the same values and, after deleting
//     the checksum field and recomputing it, gets the checksum mip6 wrote.
//  3. tshark reads a pcap mip6 wrote: no malformed packets, no bad checksums, fields as sent.
// scapy runs ONCE for (1) and (2) together (test/interop/wire-scapy.py); `mip6 decode --json`
// runs once on scapy's packets.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalIpv6, parseIpv4, parseIpv6 as parseIpv6Bytes } from '../../src/wire/address.js';
import { upperLayerChecksum } from '../../src/wire/checksum.js';
import { fromHex, toHex } from '../../src/wire/hex.js';
import {
  decodePacket,
  encodeIcmpv6Packet,
  encodePacket,
  encodeMobilityPacket,
  type DecodedPacket,
} from '../../src/wire/packet.js';
import { BA_FLAG_BITS, BU_FLAG_BITS } from '../../src/wire/mobility.js';
import { encodePcapHeader, encodePcapRecord } from '../../src/wire/pcap.js';
import {
  IPPROTO,
  bindingUpdateFlags,
  type BindingAckFlags,
  type BindingUpdateFlags,
  type MobilityOption,
} from '../../src/wire/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const PYTHON = '/usr/bin/python3';
const HOA = '2001:db8:1::100';
const COA = '2001:db8:2::100';
const HA = '2001:db8:1::1';
const CN = '2001:db8:3::1';
const COOKIE = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
const TOKEN = Uint8Array.from([0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7]);
const AUTH = Uint8Array.from({ length: 12 }, (_, i) => 0x10 + i);

type View = Record<string, unknown>;

/** Option bytes after Type/Length for RFC 5555 options, packed here independently of src/wire. */
function dsmipData(o: MobilityOption): string | undefined {
  switch (o.type) {
    case 'ipv4HomeAddress':
      return toHex(
        Uint8Array.from([
          (o.prefixLength << 2) | (o.requestPrefix ? 2 : 0),
          0,
          ...parseIpv4(o.address),
        ]),
      );
    case 'ipv4AddressAcknowledgement':
      return toHex(Uint8Array.from([o.status, o.prefixLength << 2, ...parseIpv4(o.address)]));
    case 'natDetection':
      return toHex(
        Uint8Array.from([
          o.udpEncapsulationRequired ? 0x80 : 0,
          0,
          o.refreshTime >>> 24,
          (o.refreshTime >>> 16) & 0xff,
          (o.refreshTime >>> 8) & 0xff,
          o.refreshTime & 0xff,
        ]),
      );
    case 'ipv4CareOfAddress':
      return toHex(Uint8Array.from([0, 0, ...parseIpv4(o.address)]));
    case 'pad1':
    case 'padN':
    case 'bindingRefreshAdvice':
    case 'alternateCareOfAddress':
    case 'nonceIndices':
    case 'bindingAuthorizationData':
    case 'unknown':
      return undefined;
  }
}

const DSMIP_TYPES: Record<string, number> = {
  ipv4HomeAddress: 29,
  ipv4AddressAcknowledgement: 30,
  natDetection: 31,
  ipv4CareOfAddress: 32,
};

function optionView(o: MobilityOption): View | undefined {
  switch (o.type) {
    case 'pad1':
    case 'padN':
      return undefined;
    case 'bindingRefreshAdvice':
      return { type: 2, refreshInterval: o.refreshInterval };
    case 'alternateCareOfAddress':
      return { type: 3, address: o.address };
    case 'nonceIndices':
      return { type: 4, homeNonceIndex: o.homeNonceIndex, careOfNonceIndex: o.careOfNonceIndex };
    case 'bindingAuthorizationData':
      return { type: 5, authenticator: toHex(o.authenticator) };
    case 'unknown':
      return { type: o.optionType, data: toHex(o.data) };
    case 'ipv4HomeAddress':
    case 'ipv4AddressAcknowledgement':
    case 'natDetection':
    case 'ipv4CareOfAddress':
      return { type: DSMIP_TYPES[o.type], data: dsmipData(o) };
  }
}

/** mip6's decode in the shape wire-scapy.py prints scapy's dissection. */
function mip6View(p: DecodedPacket): View {
  const v: View = { src: p.source, dst: p.destination, hlim: p.hopLimit };
  if (p.homeAddress !== undefined) v['hoa'] = p.homeAddress;
  for (const h of p.extensionHeaders) {
    if (h.kind === 'routing') {
      // SRH: the final destination (Segment List[0]) is what the pseudo-header uses.
      v['rh'] = {
        type: h.routingType,
        segleft: h.segmentsLeft,
        address: h.address ?? p.pseudoDestination,
      };
    }
  }
  const m = p.mobility;
  if (m !== undefined) {
    const mh: View = { mhType: m.kind === 'unknown' ? m.mhType : undefined, ok: m.checksumValid };
    switch (m.kind) {
      case 'bindingRefreshRequest':
        mh['mhType'] = 0;
        break;
      case 'homeTestInit':
        Object.assign(mh, { mhType: 1, cookie: toHex(m.homeInitCookie) });
        break;
      case 'careOfTestInit':
        Object.assign(mh, { mhType: 2, cookie: toHex(m.careOfInitCookie) });
        break;
      case 'homeTest':
        Object.assign(mh, {
          mhType: 3,
          index: m.homeNonceIndex,
          cookie: toHex(m.homeInitCookie),
          token: toHex(m.homeKeygenToken),
        });
        break;
      case 'careOfTest':
        Object.assign(mh, {
          mhType: 4,
          index: m.careOfNonceIndex,
          cookie: toHex(m.careOfInitCookie),
          token: toHex(m.careOfKeygenToken),
        });
        break;
      case 'bindingUpdate': {
        let f = 0;
        for (const [k, bit] of Object.entries(BU_FLAG_BITS))
          if (m.flags[k as keyof BindingUpdateFlags]) f |= bit;
        Object.assign(mh, { mhType: 5, seq: m.sequence, flags: f, lifetime: m.lifetimeUnits });
        break;
      }
      case 'bindingAcknowledgement': {
        let f = 0;
        for (const [k, bit] of Object.entries(BA_FLAG_BITS))
          if (m.flags[k as keyof BindingAckFlags]) f |= bit;
        Object.assign(mh, {
          mhType: 6,
          status: m.status,
          flags: f,
          seq: m.sequence,
          lifetime: m.lifetimeUnits,
        });
        break;
      }
      case 'bindingError':
        Object.assign(mh, { mhType: 7, status: m.status, homeAddress: m.homeAddress });
        break;
      case 'unknown':
        break;
    }
    mh['options'] = m.options.map(optionView).filter((x) => x !== undefined);
    v['mh'] = mh;
  }
  const i = p.icmpv6;
  if (i !== undefined) {
    const ok = i.checksumValid;
    switch (i.kind) {
      case 'haadRequest':
        v['icmp'] = { kind: 'haadRequest', id: i.identifier, ok, R: i.mobileRouter ? 1 : 0 };
        break;
      case 'haadReply':
        v['icmp'] = {
          kind: 'haadReply',
          id: i.identifier,
          ok,
          R: i.mobileRouter ? 1 : 0,
          addresses: i.homeAgentAddresses,
        };
        break;
      case 'mobilePrefixSolicitation':
        v['icmp'] = { kind: 'mps', id: i.identifier, ok };
        break;
      case 'mobilePrefixAdvertisement':
        v['icmp'] = {
          kind: 'mpa',
          id: i.identifier,
          ok,
          flags: (i.managed ? 2 : 0) | (i.other ? 1 : 0),
          prefixes: i.options.flatMap((o) =>
            o.type === 'prefixInformation'
              ? [
                  {
                    prefixLength: o.prefixLength,
                    L: o.onLink ? 1 : 0,
                    A: o.autonomous ? 1 : 0,
                    R: o.routerAddress ? 1 : 0,
                    valid: o.validLifetime,
                    preferred: o.preferredLifetime,
                    prefix: o.prefix,
                  },
                ]
              : [],
          ),
        };
        break;
      case 'echoRequest':
      case 'echoReply':
        v['icmp'] = { kind: i.kind, id: i.identifier, ok, seq: i.sequence, data: toHex(i.data) };
        break;
      case 'destinationUnreachable':
      case 'packetTooBig':
      case 'parameterProblem':
      case 'unknown':
        v['icmp'] = { kind: i.kind };
    }
  }
  if (p.tcp !== undefined) {
    const f = p.tcp.flags;
    const flags =
      (f.CWR ? 0x80 : 0) |
      (f.ECE ? 0x40 : 0) |
      (f.URG ? 0x20 : 0) |
      (f.ACK ? 0x10 : 0) |
      (f.PSH ? 8 : 0) |
      (f.RST ? 4 : 0) |
      (f.SYN ? 2 : 0) |
      (f.FIN ? 1 : 0);
    v['tcp'] = {
      sport: p.tcp.sourcePort,
      dport: p.tcp.destinationPort,
      seq: p.tcp.sequenceNumber,
      flags,
      ok: p.tcp.checksumValid,
    };
  }
  if (p.udp !== undefined) {
    v['udp'] = {
      sport: p.udp.sourcePort,
      dport: p.udp.destinationPort,
      len: p.udp.length,
      ok: p.udp.checksumValid,
    };
  }
  return v;
}

/** Addresses from scapy in RFC 5952 form (scapy prints inet_ntop output). */
function canon(v: unknown, key = ''): unknown {
  if (
    typeof v === 'string' &&
    /^[0-9a-f:]*:[0-9a-f:.]*$/i.test(v) &&
    !/^[0-9a-f]+$/i.test(v) &&
    key !== 'data'
  )
    return canonicalIpv6(v);
  if (Array.isArray(v)) return v.map((x) => canon(x, key));
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, canon(x, k)]));
  return v;
}

function tcpSegment(sport: number, dport: number, seq: number, flags: number, payload: string) {
  return (pseudo: { source: string; destination: string }): Uint8Array => {
    const data = new TextEncoder().encode(payload);
    const seg = new Uint8Array(20 + data.length);
    seg[0] = sport >> 8;
    seg[1] = sport & 0xff;
    seg[2] = dport >> 8;
    seg[3] = dport & 0xff;
    seg[4] = seq >>> 24;
    seg[5] = (seq >>> 16) & 0xff;
    seg[6] = (seq >>> 8) & 0xff;
    seg[7] = seq & 0xff;
    seg[12] = 0x50;
    seg[13] = flags;
    seg[14] = 0x20;
    seg.set(data, 20);
    const c = upperLayerChecksum(pseudo.source, pseudo.destination, IPPROTO.TCP, seg);
    seg[16] = c >> 8;
    seg[17] = c & 0xff;
    return seg;
  };
}

function udpDatagram(sport: number, dport: number, payload: string) {
  return (pseudo: { source: string; destination: string }): Uint8Array => {
    const data = new TextEncoder().encode(payload);
    const d = new Uint8Array(8 + data.length);
    d[0] = sport >> 8;
    d[1] = sport & 0xff;
    d[2] = dport >> 8;
    d[3] = dport & 0xff;
    d[5] = d.length;
    d.set(data, 8);
    const c = upperLayerChecksum(pseudo.source, pseudo.destination, IPPROTO.UDP, d) || 0xffff;
    d[6] = c >> 8;
    d[7] = c & 0xff;
    return d;
  };
}

const NO_BU = bindingUpdateFlags();
const NO_BA = { K: false, R: false, P: false, T: false, B: false, S: false, D: false };

/** The packets mip6 encodes for scapy and tshark to read. */
function mip6Packets(): { name: string; bytes: Uint8Array }[] {
  const mh = [
    [
      'BRR',
      { source: HA, destination: COA, routingHomeAddress: HOA },
      { kind: 'bindingRefreshRequest', options: [] },
    ],
    [
      'HoTI',
      { source: HOA, destination: CN },
      { kind: 'homeTestInit', homeInitCookie: COOKIE, options: [] },
    ],
    [
      'CoTI',
      { source: COA, destination: CN },
      { kind: 'careOfTestInit', careOfInitCookie: COOKIE, options: [] },
    ],
    [
      'HoT',
      { source: CN, destination: HOA },
      {
        kind: 'homeTest',
        homeNonceIndex: 0x1234,
        homeInitCookie: COOKIE,
        homeKeygenToken: TOKEN,
        options: [],
      },
    ],
    [
      'CoT',
      { source: CN, destination: COA },
      {
        kind: 'careOfTest',
        careOfNonceIndex: 0x4321,
        careOfInitCookie: COOKIE,
        careOfKeygenToken: TOKEN,
        options: [],
      },
    ],
    [
      'BU home',
      { source: COA, destination: HA, homeAddress: HOA },
      {
        kind: 'bindingUpdate',
        sequence: 7,
        flags: { ...NO_BU, A: true, H: true, K: true },
        lifetimeUnits: 150,
        options: [{ type: 'alternateCareOfAddress', address: COA }],
      },
    ],
    [
      'BU to CN',
      { source: COA, destination: CN, homeAddress: HOA, hopLimit: 33 },
      {
        kind: 'bindingUpdate',
        sequence: 65535,
        flags: { ...NO_BU, A: true },
        lifetimeUnits: 10,
        options: [
          { type: 'bindingAuthorizationData', authenticator: AUTH },
          { type: 'nonceIndices', homeNonceIndex: 5, careOfNonceIndex: 6 },
        ],
      },
    ],
    [
      'BA home',
      { source: HA, destination: COA, routingHomeAddress: HOA },
      {
        kind: 'bindingAcknowledgement',
        status: 0,
        flags: { ...NO_BA, K: true },
        sequence: 7,
        lifetimeUnits: 150,
        options: [{ type: 'bindingRefreshAdvice', refreshInterval: 100 }],
      },
    ],
    [
      'BA from CN',
      { source: CN, destination: COA, routingHomeAddress: HOA },
      {
        kind: 'bindingAcknowledgement',
        status: 136,
        flags: NO_BA,
        sequence: 9,
        lifetimeUnits: 0,
        options: [{ type: 'bindingAuthorizationData', authenticator: AUTH }],
      },
    ],
    [
      'BE',
      { source: CN, destination: COA },
      { kind: 'bindingError', status: 1, homeAddress: HOA, options: [] },
    ],
    [
      'BU DSMIPv6',
      { source: HOA, destination: HA },
      {
        kind: 'bindingUpdate',
        sequence: 3,
        flags: { ...NO_BU, A: true, H: true, F: true },
        lifetimeUnits: 60,
        options: [
          { type: 'ipv4HomeAddress', prefixLength: 24, requestPrefix: true, address: '192.0.2.10' },
          { type: 'ipv4CareOfAddress', address: '198.51.100.20' },
        ],
      },
    ],
    [
      'BA DSMIPv6',
      { source: HA, destination: HOA },
      {
        kind: 'bindingAcknowledgement',
        status: 0,
        flags: NO_BA,
        sequence: 3,
        lifetimeUnits: 60,
        options: [
          {
            type: 'ipv4AddressAcknowledgement',
            status: 0,
            prefixLength: 24,
            address: '192.0.2.10',
          },
          { type: 'natDetection', udpEncapsulationRequired: true, refreshTime: 110 },
        ],
      },
    ],
  ] as const;
  const out: { name: string; bytes: Uint8Array }[] = mh.map(([name, addr, message]) => ({
    name,
    bytes: encodeMobilityPacket({
      ...addr,
      message: message as unknown as Parameters<typeof encodeMobilityPacket>[0]['message'],
    }),
  }));
  out.push(
    {
      name: 'TCP with HAO',
      bytes: encodePacket(
        { source: COA, destination: CN, homeAddress: HOA },
        IPPROTO.TCP,
        tcpSegment(40000, 22, 1000, 0x02, 'hello'),
      ),
    },
    {
      name: 'TCP with RH2',
      bytes: encodePacket(
        { source: CN, destination: COA, routingHomeAddress: HOA },
        IPPROTO.TCP,
        tcpSegment(22, 40000, 5, 0x12, 'world!'),
      ),
    },
    { name: 'TCP with SRH', bytes: tcpWithSrh() },
    {
      name: 'UDP with HAO',
      bytes: encodePacket(
        { source: COA, destination: CN, homeAddress: HOA },
        IPPROTO.UDP,
        udpDatagram(5000, 9999, 'q'),
      ),
    },
    {
      name: 'DHAAD Request',
      bytes: encodeIcmpv6Packet({
        source: COA,
        destination: '2001:db8:1:0:fdff:ffff:ffff:fffe',
        message: { kind: 'haadRequest', identifier: 77, mobileRouter: true },
      }),
    },
    {
      name: 'DHAAD Reply',
      bytes: encodeIcmpv6Packet({
        source: HA,
        destination: COA,
        message: {
          kind: 'haadReply',
          identifier: 77,
          mobileRouter: true,
          homeAgentAddresses: [HA, '2001:db8:1::2'],
        },
      }),
    },
    {
      name: 'MPS',
      bytes: encodeIcmpv6Packet({
        source: COA,
        destination: HA,
        homeAddress: HOA,
        message: { kind: 'mobilePrefixSolicitation', identifier: 5 },
      }),
    },
    {
      name: 'MPA',
      bytes: encodeIcmpv6Packet({
        source: HA,
        destination: COA,
        routingHomeAddress: HOA,
        message: {
          kind: 'mobilePrefixAdvertisement',
          identifier: 5,
          managed: false,
          other: true,
          options: [
            {
              type: 'prefixInformation',
              prefixLength: 64,
              onLink: true,
              autonomous: true,
              routerAddress: true,
              validLifetime: 86400,
              preferredLifetime: 14400,
              prefix: '2001:db8:1::',
            },
          ],
        },
      }),
    },
    {
      name: 'Echo',
      bytes: encodeIcmpv6Packet({
        source: HOA,
        destination: CN,
        message: {
          kind: 'echoRequest',
          identifier: 1,
          sequence: 2,
          data: new TextEncoder().encode('ping'),
        },
      }),
    },
  );
  return out;
}

/** TCP behind a Segment Routing Header (RFC 8754) whose last segment is the HoA. */
function tcpWithSrh(): Uint8Array {
  const seg = '2001:db8:4::1';
  const tcp = tcpSegment(80, 40001, 77, 0x18, 'srh')({ source: CN, destination: HOA });
  return encodePacket({ source: CN, destination: seg }, IPPROTO.ROUTING, () => {
    const srh = new Uint8Array(8 + 32);
    srh[0] = IPPROTO.TCP;
    srh[1] = 4; // two segments
    srh[2] = 4; // Routing Type 4 = SRH
    srh[3] = 1; // Segments Left
    srh[4] = 1; // Last Entry
    srh.set(parseIpv6Bytes(HOA), 8);
    srh.set(parseIpv6Bytes(seg), 24);
    return new Uint8Array([...srh, ...tcp]);
  });
}

interface ScapyOut {
  built: { name: string; hex: string; view: View; expect?: unknown[] }[];
  parsed: View[];
}

function runScapy(parse: string[]): ScapyOut | string {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  const r = spawnSync(PYTHON, [join(here, 'wire-scapy.py')], {
    input: JSON.stringify({ parse }),
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0 && /No module named '?scapy/.test(r.stderr))
    return `${PYTHON} lacks scapy (install python3-scapy)`;
  if (r.status !== 0) throw new Error(`wire-scapy.py failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ScapyOut;
}

const ours = mip6Packets();
const scapy = runScapy(ours.map((p) => toHex(p.bytes)));

void t.test(
  'scapy builds, mip6 decodes the same values with valid checksums',
  { skip: typeof scapy === 'string' ? scapy : false },
  async (t) => {
    if (typeof scapy === 'string') return;
    t.equal(scapy.built.length, ours.length, 'one scapy packet per mip6 packet');
    for (const b of scapy.built) {
      const d = decodePacket(fromHex(b.hex));
      const mine = mip6View(d);
      t.same(mine, canon(b.view), `${b.name}: same dissection`);
      for (const k of ['mh', 'icmp', 'tcp', 'udp']) {
        const s = b.view[k] as View | undefined;
        if (s !== undefined) {
          t.equal(s['ok'], true, `${b.name}: scapy's own ${k} checksum (recomputed by scapy)`);
          t.equal((mine[k] as View)['ok'], true, `${b.name}: mip6 accepts scapy's ${k} checksum`);
        }
      }
      if (b.expect !== undefined) {
        // RFC 5555 options: scapy carries raw bytes packed in wire-scapy.py; check mip6's fields.
        t.same(
          d.mobility?.options.filter((o) => o.type !== 'pad1' && o.type !== 'padN'),
          b.expect,
          `${b.name}: RFC 5555 option fields`,
        );
      }
    }
  },
);

void t.test(
  'mip6 encodes, scapy dissects the same values and recomputes the same checksum',
  { skip: typeof scapy === 'string' ? scapy : false },
  async (t) => {
    if (typeof scapy === 'string') return;
    t.equal(scapy.parsed.length, ours.length);
    ours.forEach((p, i) => {
      const s = scapy.parsed[i] ?? {};
      t.same(canon(s), mip6View(decodePacket(p.bytes)), `${p.name}: scapy reads mip6's fields`);
      const layer = ['mh', 'icmp', 'tcp', 'udp'].find((k) => s[k] !== undefined);
      t.ok(layer, `${p.name}: scapy found the upper layer`);
      t.equal(
        (s[layer ?? ''] as View | undefined)?.['ok'],
        true,
        `${p.name}: scapy's recomputed checksum equals mip6's`,
      );
    });
  },
);

void t.test(
  'mip6 decode --json on scapy packets',
  { skip: typeof scapy === 'string' ? scapy : false },
  async (t) => {
    if (typeof scapy === 'string') return;
    const input = scapy.built.map((b) => b.hex).join('\n') + '\n';
    const r = spawnSync(
      join(root, 'node_modules', '.bin', 'tsx'),
      [join(root, 'src', 'cli', 'main.ts'), 'decode', '--json'],
      { input, encoding: 'utf8', timeout: 60_000 },
    );
    t.equal(r.status, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, Record<string, unknown>>);
    t.equal(lines.length, scapy.built.length);
    const bu = lines[5];
    t.equal(bu?.['mobility']?.['sequence'], 7);
    t.equal(bu?.['mobility']?.['lifetime'], 600);
    t.equal(bu?.['mobility']?.['lifetimeUnits'], 150);
    t.equal(bu?.['mobility']?.['careOfAddress'], COA);
    t.equal(bu?.['homeAddress'] as unknown, HOA);
    t.same(bu?.['mobility']?.['flags'], { ...NO_BU, A: true, H: true, K: true });
    for (const l of lines) t.equal(l['checksumValid'] as unknown, true);
  },
);

const TSHARK = ['/usr/bin/tshark', '/usr/local/bin/tshark'].find((p) => existsSync(p));

void t.test(
  'tshark reads a pcap mip6 wrote without malformed packets or bad checksums',
  { skip: TSHARK === undefined ? 'tshark not installed' : false },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), `mip6-wire-${process.pid}-`));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'mip6.pcap');
    const t0 = 1_700_000_000_123_456;
    const parts = [encodePcapHeader(), ...ours.map((p, i) => encodePcapRecord(p.bytes, t0 + i))];
    writeFileSync(file, Buffer.concat(parts));
    if (process.env['MIP6_KEEP_PCAP'] !== undefined)
      writeFileSync(process.env['MIP6_KEEP_PCAP'], Buffer.concat(parts));
    const r = spawnSync(
      TSHARK ?? 'tshark',
      ['-r', file, '-V', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    t.equal(r.status, 0, r.stderr);
    const out = r.stdout;
    t.notMatch(out, /Malformed/, 'no malformed packet');
    t.notMatch(out, /\[Expert Info \(Error/, 'no expert errors');
    t.notMatch(out, /Checksum Status: Bad|\[incorrect/i, 'no bad checksum');
    t.equal((out.match(/^Frame \d+:/gm) ?? []).length, ours.length, 'all frames read');
    t.equal((out.match(/^ {4}Mobile IPv6$/gm) ?? []).length, 12, 'twelve Mobility Headers');
    t.equal(
      (out.match(/Checksum Status: Good/g) ?? []).length,
      ours.length - 12,
      'every ICMPv6, TCP and UDP checksum good (tshark verifies them; it does not check MH ones)',
    );
    t.match(out, /Epoch Time: 1700000000\.123456000 seconds/, 'microsecond timestamps');
    t.match(out, /Sequence number: 65535/);
    t.match(out, /Lifetime: 150 \(600 seconds\)/);
    t.match(out, /Alternate care-of address: 2001:db8:2::100/);
    t.match(out, /Home nonce index: 5\s+Care-of nonce index: 6/);
    t.match(out, /Authenticator: 101112131415161718191a1b/);
    t.match(out, /Refresh interval: 100 \(400 seconds\)/);
    t.match(out, /MIPv6 Home Address: 2001:db8:1::100/);
    t.match(out, /Prefix-len: 24/);
    t.match(out, /IPv4 Care-of address: 198\.51\.100\.20/);
    t.match(out, /\(F\) flag: MUST use UDP encapsulation\s+.*\s+Refresh time: 110s/);
    t.match(out, /Address\[1\]: 2001:db8:1::100/);
  },
);
