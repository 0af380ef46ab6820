// Property tests for src/wire: decode(encode(x)) == x for every message, and hostile bytes
// (random or mutated valid packets) only ever produce WireError.
import t from 'tap';
import fc from 'fast-check';
import { WireError } from '../../src/util/errors.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../../src/wire/address.js';
import { decodeMobilityHeader, encodeMobilityHeader } from '../../src/wire/mobility.js';
import {
  decodeIcmpv6,
  encodeIcmpv6,
  type Icmpv6Message,
  type NdOption,
} from '../../src/wire/icmpv6.js';
import {
  decodePacket,
  encodeIcmpv6Packet,
  encodeMobilityPacket,
  type PacketAddressing,
} from '../../src/wire/packet.js';
import { walkExtensionHeaders } from '../../src/wire/ext-headers.js';
import { decodePcap, encodePcapHeader, encodePcapRecord } from '../../src/wire/pcap.js';
import { verifyUpperLayerChecksum } from '../../src/wire/checksum.js';
import { dissectToJson, dissectToText } from '../../src/wire/dissect.js';
import { fromHex, toHex } from '../../src/wire/hex.js';
import type { MobilityMessage, MobilityOption } from '../../src/wire/types.js';

const RUNS = 300;

const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => formatIpv6(b));
const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => formatIpv4(b));
const u16 = fc.integer({ min: 0, max: 0xffff });
const u8 = fc.integer({ min: 0, max: 0xff });
const bytes8 = fc.uint8Array({ minLength: 8, maxLength: 8 });
const KNOWN = [0, 1, 2, 3, 4, 5, 29, 30, 31, 32];

const meaningfulOption: fc.Arbitrary<MobilityOption> = fc.oneof(
  fc.record({ type: fc.constant('bindingRefreshAdvice' as const), refreshInterval: u16 }),
  fc.record({ type: fc.constant('alternateCareOfAddress' as const), address: v6 }),
  fc.record({
    type: fc.constant('nonceIndices' as const),
    homeNonceIndex: u16,
    careOfNonceIndex: u16,
  }),
  fc.record({
    type: fc.constant('ipv4HomeAddress' as const),
    prefixLength: fc.integer({ min: 0, max: 32 }),
    requestPrefix: fc.boolean(),
    address: v4,
  }),
  fc.record({
    type: fc.constant('ipv4AddressAcknowledgement' as const),
    status: u8,
    prefixLength: fc.integer({ min: 0, max: 32 }),
    address: v4,
  }),
  fc.record({
    type: fc.constant('natDetection' as const),
    udpEncapsulationRequired: fc.boolean(),
    refreshTime: fc.integer({ min: 0, max: 0xffffffff }),
  }),
  fc.record({ type: fc.constant('ipv4CareOfAddress' as const), address: v4 }),
  fc.record({
    type: fc.constant('unknown' as const),
    optionType: u8.filter((x) => !KNOWN.includes(x)),
    data: fc.uint8Array({ maxLength: 40 }),
  }),
);

const options = fc
  .tuple(
    fc.array(meaningfulOption, { maxLength: 6 }),
    fc.option(fc.uint8Array({ minLength: 12, maxLength: 12 }), { nil: undefined }),
  )
  .map(([opts, auth]): MobilityOption[] =>
    auth === undefined
      ? opts
      : [...opts, { type: 'bindingAuthorizationData', authenticator: auth }],
  );

const buFlags = fc.record({
  A: fc.boolean(),
  H: fc.boolean(),
  L: fc.boolean(),
  K: fc.boolean(),
  M: fc.boolean(),
  R: fc.boolean(),
  P: fc.boolean(),
  F: fc.boolean(),
  T: fc.boolean(),
  B: fc.boolean(),
  S: fc.boolean(),
  D: fc.boolean(),
});
const baFlags = fc.record({
  K: fc.boolean(),
  R: fc.boolean(),
  P: fc.boolean(),
  T: fc.boolean(),
  B: fc.boolean(),
  S: fc.boolean(),
  D: fc.boolean(),
});

const mobilityMessage: fc.Arbitrary<MobilityMessage> = fc.oneof(
  fc.record({ kind: fc.constant('bindingRefreshRequest' as const), options }),
  fc.record({ kind: fc.constant('homeTestInit' as const), homeInitCookie: bytes8, options }),
  fc.record({ kind: fc.constant('careOfTestInit' as const), careOfInitCookie: bytes8, options }),
  fc.record({
    kind: fc.constant('homeTest' as const),
    homeNonceIndex: u16,
    homeInitCookie: bytes8,
    homeKeygenToken: bytes8,
    options,
  }),
  fc.record({
    kind: fc.constant('careOfTest' as const),
    careOfNonceIndex: u16,
    careOfInitCookie: bytes8,
    careOfKeygenToken: bytes8,
    options,
  }),
  fc.record({
    kind: fc.constant('bindingUpdate' as const),
    sequence: u16,
    flags: buFlags,
    lifetimeUnits: u16,
    options,
  }),
  fc.record({
    kind: fc.constant('bindingAcknowledgement' as const),
    status: u8,
    flags: baFlags,
    sequence: u16,
    lifetimeUnits: u16,
    options,
  }),
  fc.record({ kind: fc.constant('bindingError' as const), status: u8, homeAddress: v6, options }),
  fc.record({
    kind: fc.constant('unknown' as const),
    mhType: fc.integer({ min: 8, max: 255 }),
    data: fc
      .integer({ min: 0, max: 10 })
      .chain((n) => fc.uint8Array({ minLength: 8 * n + 2, maxLength: 8 * n + 2 })),
    options: fc.constant<MobilityOption[]>([]),
  }),
);

function withoutPads(m: MobilityMessage): MobilityMessage {
  return { ...m, options: m.options.filter((o) => o.type !== 'pad1' && o.type !== 'padN') };
}

function onlyWireErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (err instanceof WireError)
      return typeof err.code === 'string' && Number.isInteger(err.offset);
    throw err;
  }
}

void t.test(
  'MH round trip: decode(encode(m)) == m, checksum valid, re-encoding is stable',
  async (t) => {
    fc.assert(
      fc.property(mobilityMessage, v6, v6, (m, src, dst) => {
        const pseudo = { source: src, destination: dst };
        const b = encodeMobilityHeader(m, pseudo);
        if (b.length % 8 !== 0) return false;
        const d = decodeMobilityHeader(b, pseudo);
        if (d.checksumValid !== true) return false;
        const { checksum, checksumValid, payloadProto, length, ...msg } = d;
        void checksum;
        void checksumValid;
        t.equal(payloadProto, 59);
        t.equal(length, b.length);
        t.same(withoutPads(msg as MobilityMessage), m);
        t.equal(toHex(encodeMobilityHeader(msg as MobilityMessage, pseudo)), toHex(b));
        return true;
      }),
      { numRuns: RUNS },
    );
  },
);

void t.test('MH option alignment: every option Type byte sits at its xn+y', async (t) => {
  const align: Record<number, [number, number]> = {
    2: [2, 0],
    3: [8, 6],
    4: [2, 0],
    5: [8, 2],
    29: [4, 0],
    30: [4, 0],
    31: [4, 0],
    32: [4, 0],
  };
  fc.assert(
    fc.property(mobilityMessage, (m) => {
      const b = encodeMobilityHeader(m, undefined);
      const start =
        (
          {
            bindingRefreshRequest: 8,
            homeTestInit: 16,
            careOfTestInit: 16,
            homeTest: 24,
            careOfTest: 24,
            bindingUpdate: 12,
            bindingAcknowledgement: 12,
            bindingError: 24,
            unknown: b.length,
          } as Record<string, number>
        )[m.kind] ?? 0;
      for (let o = start; o < b.length;) {
        const type = b[o] ?? 0;
        if (type === 0) {
          o++;
          continue;
        }
        const a = align[type];
        if (a !== undefined && o % a[0] !== a[1]) return false;
        o += 2 + (b[o + 1] ?? 0);
      }
      return true;
    }),
    { numRuns: RUNS },
  );
  t.pass('alignment held');
});

const ndOption: fc.Arbitrary<NdOption> = fc.oneof(
  fc.record({
    type: fc.constant('prefixInformation' as const),
    prefixLength: fc.integer({ min: 0, max: 128 }),
    onLink: fc.boolean(),
    autonomous: fc.boolean(),
    routerAddress: fc.boolean(),
    validLifetime: fc.integer({ min: 0, max: 0xffffffff }),
    preferredLifetime: fc.integer({ min: 0, max: 0xffffffff }),
    prefix: v6,
  }),
  fc.record({
    type: fc.constant('unknown' as const),
    optionType: u8.filter((x) => x !== 3),
    data: fc
      .integer({ min: 0, max: 4 })
      .chain((n) => fc.uint8Array({ minLength: 8 * n + 6, maxLength: 8 * n + 6 })),
  }),
);

const icmpMessage: fc.Arbitrary<Icmpv6Message> = fc.oneof(
  fc.record({
    kind: fc.constantFrom('echoRequest' as const, 'echoReply' as const),
    identifier: u16,
    sequence: u16,
    data: fc.uint8Array({ maxLength: 64 }),
  }),
  fc.record({
    kind: fc.constant('destinationUnreachable' as const),
    code: u8,
    invoking: fc.uint8Array({ maxLength: 64 }),
  }),
  fc.record({
    kind: fc.constant('packetTooBig' as const),
    mtu: fc.integer({ min: 0, max: 0xffffffff }),
    invoking: fc.uint8Array({ maxLength: 64 }),
  }),
  fc.record({
    kind: fc.constant('parameterProblem' as const),
    code: u8,
    pointer: fc.integer({ min: 0, max: 0xffffffff }),
    invoking: fc.uint8Array({ maxLength: 64 }),
  }),
  fc.record({
    kind: fc.constant('haadRequest' as const),
    identifier: u16,
    mobileRouter: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('haadReply' as const),
    identifier: u16,
    mobileRouter: fc.boolean(),
    homeAgentAddresses: fc.array(v6, { maxLength: 5 }),
  }),
  fc.record({ kind: fc.constant('mobilePrefixSolicitation' as const), identifier: u16 }),
  fc.record({
    kind: fc.constant('mobilePrefixAdvertisement' as const),
    identifier: u16,
    managed: fc.boolean(),
    other: fc.boolean(),
    options: fc.array(ndOption, { maxLength: 4 }),
  }),
  fc.record({
    kind: fc.constant('unknown' as const),
    type: u8.filter((x) => ![1, 2, 4, 128, 129, 144, 145, 146, 147].includes(x)),
    code: u8,
    body: fc.uint8Array({ maxLength: 64 }),
  }),
);

void t.test('ICMPv6 round trip with checksum', async (t) => {
  fc.assert(
    fc.property(icmpMessage, v6, v6, (m, src, dst) => {
      const pseudo = { source: src, destination: dst };
      const d = decodeIcmpv6(encodeIcmpv6(m, pseudo), pseudo);
      const { checksum, checksumValid, ...msg } = d;
      void checksum;
      t.same(msg, m);
      return checksumValid === true;
    }),
    { numRuns: RUNS },
  );
});

const addressing = fc.record({
  source: v6,
  destination: v6,
  homeAddress: fc.option(v6, { nil: undefined }),
  routingHomeAddress: fc.option(v6, { nil: undefined }),
  hopLimit: u8,
});

function strip(o: {
  source: string;
  destination: string;
  homeAddress: string | undefined;
  routingHomeAddress: string | undefined;
  hopLimit: number;
}): PacketAddressing {
  return Object.fromEntries(
    Object.entries(o).filter(([, v]) => v !== undefined),
  ) as unknown as PacketAddressing;
}

void t.test(
  'whole packets with HAO / RH2: round trip, valid checksum, same pseudo-header',
  async (t) => {
    fc.assert(
      fc.property(addressing, mobilityMessage, icmpMessage, (a, mh, icmp) => {
        const addr = strip(a);
        const p = encodeMobilityPacket({ ...addr, message: mh });
        const d = decodePacket(p);
        t.equal(d.homeAddress, a.homeAddress);
        t.equal(d.routingHomeAddress, a.routingHomeAddress);
        t.equal(d.pseudoSource, a.homeAddress ?? a.source);
        t.equal(d.pseudoDestination, a.routingHomeAddress ?? a.destination);
        t.equal(d.hopLimit, a.hopLimit);
        const q = encodeIcmpv6Packet({ ...addr, message: icmp });
        return (
          d.mobility?.checksumValid === true &&
          verifyUpperLayerChecksum(p) === true &&
          decodePacket(q).icmpv6?.checksumValid === true &&
          verifyUpperLayerChecksum(q) === true
        );
      }),
      { numRuns: RUNS },
    );
  },
);

void t.test('addresses, hex and pcap round trip', async (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      (a, b) => {
        return (
          toHex(parseIpv6(formatIpv6(a))) === toHex(a) &&
          toHex(parseIpv4(formatIpv4(b))) === toHex(b)
        );
      },
    ),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (b) => toHex(fromHex(toHex(b))) === toHex(b)),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 2 ** 31 * 1e6 })),
        { maxLength: 5 },
      ),
      (recs) => {
        const parts = [encodePcapHeader(), ...recs.map(([d, tm]) => encodePcapRecord(d, tm))];
        const file = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) {
          file.set(p, o);
          o += p.length;
        }
        const back = decodePcap(file);
        return (
          back.records.length === recs.length &&
          back.records.every(
            (r, i) =>
              toHex(r.data) === toHex(recs[i]?.[0] ?? new Uint8Array(0)) &&
              r.timeMicros === recs[i]?.[1],
          )
        );
      },
    ),
    { numRuns: 100 },
  );
  t.pass('round trips held');
});

const decoders: [string, (b: Uint8Array) => unknown][] = [
  ['decodePacket', (b) => decodePacket(b)],
  ['decodeMobilityHeader', (b) => decodeMobilityHeader(b, { source: '::1', destination: '::2' })],
  ['decodeIcmpv6', (b) => decodeIcmpv6(b, { source: '::1', destination: '::2' })],
  ['walkExtensionHeaders', (b) => walkExtensionHeaders(b, 0, b[0] ?? 0, b.length)],
  ['decodePcap', (b) => decodePcap(b)],
  ['dissectToJson', (b) => dissectToJson(b)],
  ['dissectToText', (b) => dissectToText(b)],
  ['verifyUpperLayerChecksum', (b) => verifyUpperLayerChecksum(b)],
];

void t.test('random bytes only ever produce WireError', async (t) => {
  for (const [name, fn] of decoders) {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => onlyWireErrors(() => fn(b))),
      { numRuns: 500 },
    );
    t.pass(name);
  }
  // Random bytes behind a valid-looking IPv6 header reach the extension-header and upper-layer code.
  fc.assert(
    fc.property(
      fc.constantFrom(0, 6, 17, 43, 44, 58, 60, 135),
      fc.uint8Array({ maxLength: 200 }),
      (nh, body) => {
        const p = new Uint8Array(40 + body.length);
        p[0] = 0x60;
        p[4] = body.length >> 8;
        p[5] = body.length & 0xff;
        p[6] = nh;
        p.set(body, 40);
        return (
          onlyWireErrors(() => dissectToJson(p)) &&
          onlyWireErrors(() => verifyUpperLayerChecksum(p))
        );
      },
    ),
    { numRuns: 1000 },
  );
});

void t.test('mutated valid packets only ever produce WireError', async (t) => {
  const mutation = fc.array(fc.tuple(fc.nat(), u8), { minLength: 1, maxLength: 4 });
  fc.assert(
    fc.property(addressing, mobilityMessage, mutation, fc.nat(), (a, m, muts, cut) => {
      const p = encodeMobilityPacket({ ...strip(a), message: m });
      for (const [pos, val] of muts) p[pos % p.length] = val;
      const truncated = p.subarray(0, p.length - (cut % 8));
      return (
        onlyWireErrors(() => dissectToJson(p)) &&
        onlyWireErrors(() => dissectToJson(truncated)) &&
        onlyWireErrors(() => dissectToText(p))
      );
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(addressing, icmpMessage, mutation, (a, m, muts) => {
      const p = encodeIcmpv6Packet({ ...strip(a), message: m });
      for (const [pos, val] of muts) p[pos % p.length] = val;
      return onlyWireErrors(() => dissectToJson(p));
    }),
    { numRuns: 500 },
  );
  t.pass('no exception other than WireError');
});
