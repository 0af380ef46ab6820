/**
 * `mip6 decode` dissects every message docs/CONFORMANCE.md mentions (issue #22): the eight
 * Mobility Header types with their options (RFC 6275 and RFC 5555's IPv4 ones), the Home
 * Address option, the type 2 routing header, DHAAD and mobile prefix discovery, a Mobility
 * Header with a Header Len below its type's minimum, and ICMPv6 Parameter Problem with the field
 * its Pointer names in the invoking packet.
 */
import t from 'tap';
import { runDecode } from '../../src/cli/decode.js';
import { dissectToJson, pointerField } from '../../src/wire/dissect.js';
import { toHex } from '../../src/wire/hex.js';
import { buildParameterProblem, type Icmpv6Message } from '../../src/wire/icmpv6.js';
import { encodeIcmpv6Packet, encodeMobilityPacket } from '../../src/wire/packet.js';
import {
  bindingUpdateFlags,
  type BindingAcknowledgement,
  type MobilityMessage,
  type MobilityOption,
} from '../../src/wire/types.js';

const COA = '2001:db8:2::100';
const HA = '2001:db8:1::1';
const HOA = '2001:db8:1::100';
const CN = '2001:db8:3::1';
const COOKIE = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
const TOKEN = Uint8Array.from([9, 9, 9, 9, 8, 8, 8, 8]);
const BA_FLAGS = { K: false, R: false, P: false, T: false, B: false, S: false, D: false };

function ack(
  status: number,
  sequence: number,
  lifetimeUnits: number,
  options: MobilityOption[] = [],
): BindingAcknowledgement {
  return {
    kind: 'bindingAcknowledgement',
    status,
    flags: BA_FLAGS,
    sequence,
    lifetimeUnits,
    options,
  };
}

type Json = Record<string, unknown>;
const mobility = (p: Uint8Array): Json => dissectToJson(p)['mobility'] as Json;
const icmp = (p: Uint8Array): Json => dissectToJson(p)['icmpv6'] as Json;

async function decodeText(packet: Uint8Array): Promise<string> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  try {
    const failures = await runDecode([toHex(packet)], {});
    if (failures !== 0) throw new Error('decode failed');
  } finally {
    process.stdout.write = write;
  }
  return out;
}

void t.test('every Mobility Header type, by number and name, checksum good', async (t) => {
  const messages: [MobilityMessage, number, string][] = [
    [{ kind: 'bindingRefreshRequest', options: [] }, 0, 'Binding Refresh Request'],
    [{ kind: 'homeTestInit', homeInitCookie: COOKIE, options: [] }, 1, 'Home Test Init'],
    [{ kind: 'careOfTestInit', careOfInitCookie: COOKIE, options: [] }, 2, 'Care-of Test Init'],
    [
      {
        kind: 'homeTest',
        homeNonceIndex: 3,
        homeInitCookie: COOKIE,
        homeKeygenToken: TOKEN,
        options: [],
      },
      3,
      'Home Test',
    ],
    [
      {
        kind: 'careOfTest',
        careOfNonceIndex: 4,
        careOfInitCookie: COOKIE,
        careOfKeygenToken: TOKEN,
        options: [],
      },
      4,
      'Care-of Test',
    ],
    [
      {
        kind: 'bindingUpdate',
        sequence: 7,
        flags: bindingUpdateFlags({ A: true, H: true }),
        lifetimeUnits: 150,
        options: [{ type: 'alternateCareOfAddress', address: COA }],
      },
      5,
      'Binding Update',
    ],
    [ack(0, 7, 150), 6, 'Binding Acknowledgement'],
    [{ kind: 'bindingError', status: 2, homeAddress: HOA, options: [] }, 7, 'Binding Error'],
  ];
  for (const [message, type, name] of messages) {
    const p = encodeMobilityPacket({ source: COA, destination: CN, message });
    const text = await decodeText(p);
    t.match(text, `Mobile IPv6, ${name} (MH Type ${type})`, name);
    t.match(text, 'Checksum Status: Good', `${name}: checksum`);
    t.equal(mobility(p)['mhType'], type);
  }
  const hot = encodeMobilityPacket({ source: CN, destination: HOA, message: messages[3]![0] });
  t.match(
    await decodeText(hot),
    /Home Nonce Index: 3\n.*Home Init Cookie: 0102030405060708\n.*Home Keygen Token: 0909090908080808/,
  );
  const cot = encodeMobilityPacket({ source: CN, destination: COA, message: messages[4]![0] });
  t.match(await decodeText(cot), /Care Of Nonce Index: 4/);
});

void t.test(
  'BU with HAO, Alternate CoA, Nonce Indices and Binding Authorization Data',
  async (t) => {
    const bu = encodeMobilityPacket({
      source: COA,
      destination: CN,
      homeAddress: HOA,
      message: {
        kind: 'bindingUpdate',
        sequence: 9,
        flags: bindingUpdateFlags({ A: true }),
        lifetimeUnits: 105,
        options: [
          { type: 'nonceIndices', homeNonceIndex: 5, careOfNonceIndex: 6 },
          { type: 'bindingAuthorizationData', authenticator: new Uint8Array(12).fill(0xab) },
        ],
      },
    });
    const j = dissectToJson(bu);
    t.equal(j['homeAddress'], HOA, 'Home Address option');
    const ext = (j['extensionHeaders'] as Json[])[0]!;
    t.equal(ext['kind'], 'destinationOptions');
    t.match(ext['options'], [{ type: 'padN' }, { type: 'homeAddress', address: HOA }]);
    const m = mobility(bu);
    t.same(m['options'], [
      { type: 'nonceIndices', homeNonceIndex: 5, careOfNonceIndex: 6 },
      { type: 'bindingAuthorizationData', authenticator: 'ab'.repeat(12) },
    ]);
    t.equal(m['lifetime'], 420);
    t.equal(m['careOfAddress'], COA);
    const text = await decodeText(bu);
    t.match(text, /Destination Options header[\s\S]*Home Address\n\s+Address: 2001:db8:1::100/);
    t.match(text, /Nonce Indices\n\s+Home Nonce Index: 5\n\s+Care Of Nonce Index: 6/);
    t.match(text, /Binding Authorization Data\n\s+Authenticator: (ab){12}/);
  },
);

void t.test(
  'RFC 5555 options: IPv4 Home Address, IPv4 CoA, IPv4 Address Ack, NAT Detection',
  async (t) => {
    const bu = encodeMobilityPacket({
      source: HOA,
      destination: HA,
      message: {
        kind: 'bindingUpdate',
        sequence: 1,
        flags: bindingUpdateFlags({ A: true, H: true }),
        lifetimeUnits: 150,
        options: [
          { type: 'ipv4HomeAddress', prefixLength: 0, requestPrefix: false, address: '0.0.0.0' },
          { type: 'ipv4CareOfAddress', address: '192.0.2.10' },
        ],
      },
    });
    t.match(mobility(bu)['options'], [
      { type: 'ipv4HomeAddress', prefixLength: 0, requestPrefix: false, address: '0.0.0.0' },
      { type: 'ipv4CareOfAddress', address: '192.0.2.10' },
    ]);
    const ba = encodeMobilityPacket({
      source: HA,
      destination: HOA,
      message: ack(0, 1, 150, [
        {
          type: 'ipv4AddressAcknowledgement',
          status: 132,
          prefixLength: 24,
          address: '10.0.0.5',
        },
        { type: 'natDetection', udpEncapsulationRequired: true, refreshTime: 110 },
      ]),
    });
    const m = mobility(ba);
    t.match(m['options'], [
      {
        type: 'ipv4AddressAcknowledgement',
        status: 132,
        statusName: 'Dynamic IPv4 home address assignment not available',
        prefixLength: 24,
        address: '10.0.0.5',
      },
      { type: 'natDetection', udpEncapsulationRequired: true, refreshTime: 110 },
    ]);
    const text = await decodeText(ba);
    t.match(text, /Ipv4 Address Acknowledgement\n\s+Status: 132\n\s+Status Name: Dynamic IPv4/);
    t.match(text, /Nat Detection\n\s+Udp Encapsulation Required: Set\n\s+Refresh Time: 110/);
  },
);

void t.test('BA with RH2 and Binding Refresh Advice; BA and BE status names', async (t) => {
  const ba = encodeMobilityPacket({
    source: HA,
    destination: COA,
    routingHomeAddress: HOA,
    message: ack(135, 41, 0, [{ type: 'bindingRefreshAdvice', refreshInterval: 30 }]),
  });
  const j = dissectToJson(ba);
  t.equal(j['routingHomeAddress'], HOA);
  t.match((j['extensionHeaders'] as Json[])[0], {
    kind: 'routing',
    routingType: 2,
    segmentsLeft: 1,
    address: HOA,
  });
  t.equal(mobility(ba)['statusName'], 'Sequence number out of window');
  const text = await decodeText(ba);
  t.match(text, /Routing header\n[\s\S]*Routing Type: 2\n\s+Segments Left: 1/);
  t.match(text, /Status: 135\n\s+Status Name: Sequence number out of window/);
  t.match(text, /Binding Refresh Advice\n\s+Refresh Interval: 30/);
  const be = encodeMobilityPacket({
    source: CN,
    destination: COA,
    message: { kind: 'bindingError', status: 1, homeAddress: HOA, options: [] },
  });
  t.equal(mobility(be)['statusName'], 'Unknown binding for Home Address destination option');
  t.match(await decodeText(be), /Home Address: 2001:db8:1::100/);
});

void t.test('DHAAD Request / Reply and Mobile Prefix Solicitation / Advertisement', async (t) => {
  const cases: [Icmpv6Message, string, RegExp][] = [
    [
      { kind: 'haadRequest', identifier: 77, mobileRouter: false },
      'Home Agent Address Discovery Request',
      /Identifier: 77/,
    ],
    [
      { kind: 'haadReply', identifier: 77, mobileRouter: false, homeAgentAddresses: [HA] },
      'Home Agent Address Discovery Reply',
      /Home Agent Addresses:\n\s+2001:db8:1::1/,
    ],
    [
      { kind: 'mobilePrefixSolicitation', identifier: 78 },
      'Mobile Prefix Solicitation',
      /Identifier: 78/,
    ],
    [
      {
        kind: 'mobilePrefixAdvertisement',
        identifier: 78,
        managed: false,
        other: true,
        options: [
          {
            type: 'prefixInformation',
            prefixLength: 64,
            onLink: false,
            autonomous: false,
            routerAddress: true,
            validLifetime: 86400,
            preferredLifetime: 14400,
            prefix: HA,
          },
        ],
      },
      'Mobile Prefix Advertisement',
      /Prefix Information\n\s+Prefix Length: 64[\s\S]*Router Address: Set[\s\S]*Valid Lifetime: 86400/,
    ],
  ];
  for (const [message, title, body] of cases) {
    const p = encodeIcmpv6Packet({ source: HOA, destination: HA, message });
    const text = await decodeText(p);
    t.match(text, `Internet Control Message Protocol v6, ${title}\n`, title);
    t.match(text, body, `${title}: fields`);
    t.match(text, 'Checksum Status: Good');
  }
});

void t.test('a Mobility Header whose Header Len is below the minimum for its type', async (t) => {
  const bu = encodeMobilityPacket({
    source: COA,
    destination: HA,
    message: {
      kind: 'bindingUpdate',
      sequence: 1,
      flags: bindingUpdateFlags({ A: true, H: true }),
      lifetimeUnits: 1,
      options: [],
    },
  });
  bu[41] = 0; // Header Len 0; a BU needs at least 1 (RFC 6275 §9.2)
  const m = mobility(bu);
  t.match(m, { mhType: 5, mhTypeName: 'Binding Update', headerLen: 0, payloadProto: 59 });
  t.match(m['problem'], /below the minimum 1/);
  t.match(await decodeText(bu), /Mobile IPv6, Binding Update \(MH Type 5\)\n[\s\S]*Header Len: 0/);
});

void t.test('ICMPv6 Parameter Problem: code name and the field its Pointer names', async (t) => {
  const brr = encodeMobilityPacket({
    source: COA,
    destination: CN,
    homeAddress: HOA,
    message: { kind: 'bindingRefreshRequest', options: [] },
  });
  // Payload Proto (RFC 6275 §9.2, code 0): the MH starts after the 24-byte HAO header.
  const payloadProto = buildParameterProblem(brr, 0, 64, CN);
  t.match(icmp(payloadProto), {
    type: 4,
    code: 0,
    codeName: 'Erroneous header field encountered',
    pointer: 64,
    pointerField: 'Mobility Header Payload Proto',
    invokingPacket: {
      source: COA,
      destination: CN,
      homeAddress: HOA,
      upperProtocolName: 'Mobility Header',
      mhTypeName: 'Binding Refresh Request',
    },
  });
  t.equal(
    icmp(buildParameterProblem(brr, 0, 65, CN))['pointerField'],
    'Mobility Header Header Len',
  );
  // Code 2 at the Home Address option (a CN without HAO support, RFC 6275 §11.3.5).
  const hao = icmp(buildParameterProblem(brr, 2, 46, CN));
  t.equal(hao['codeName'], 'Unrecognized IPv6 option encountered');
  t.equal(hao['pointerField'], 'Destination Options header, Home Address option (Option Type)');
  // Code 1 at the Next Header that names the Mobility Header (a CN without MH support).
  const nh = icmp(buildParameterProblem(brr, 1, 40, CN));
  t.equal(nh['codeName'], 'Unrecognized Next Header type encountered');
  t.equal(nh['pointerField'], 'Destination Options header Next Header');
  t.equal(pointerField(brr, 6), 'IPv6 Next Header');
  t.equal(pointerField(brr, 30), 'IPv6 Destination Address');
  t.equal(pointerField(brr, 500), 'byte 500, beyond the quoted packet');
  const text = await decodeText(payloadProto);
  t.match(
    text,
    /Parameter Problem\n\s+Type: 4\n\s+Code: 0\n\s+Code Name: Erroneous header field encountered\n\s+Pointer: 64\n\s+Pointer Field: Mobility Header Payload Proto/,
  );
  // A quoted packet cut short (Payload Length claims more) still names the field.
  const ba = encodeMobilityPacket({
    source: HA,
    destination: COA,
    routingHomeAddress: HOA,
    message: ack(0, 1, 1),
  });
  t.equal(pointerField(ba.subarray(0, 70), 43), 'Routing header Segments Left');
});
