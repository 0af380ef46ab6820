/**
 * What the MN accepts from its home agent's channel (issue #13): the HA's own signaling is a BA,
 * a BRR or discovery (ICMPv6); a HoT / HoTI only ever forwarded; forwarded BAs refused; bad
 * checksums and undecodable packets refused; anything else the HA marks as its own is ignored.
 */
import t from 'tap';
import { classifyMobileNodeSignal } from '../../src/protocol/mobile-node-signaling.js';
import { decodePacket, encodeIcmpv6Packet, encodeMobilityPacket } from '../../src/wire/packet.js';
import { patchMobilityHeader } from '../helpers/packets.js';

const HA = '2001:db8:100::1';
const HOA = '2001:db8:100::1000';
const CN = '2001:db8:200::5';
const cookie = new Uint8Array(8).fill(7);

const ba = encodeMobilityPacket({
  source: HA,
  destination: HOA,
  message: {
    kind: 'bindingAcknowledgement',
    status: 0,
    flags: { K: false, R: false, P: false, T: false, B: false, S: false, D: false },
    sequence: 1,
    lifetimeUnits: 10,
    options: [],
  },
});
const brr = encodeMobilityPacket({
  source: HA,
  destination: HOA,
  message: { kind: 'bindingRefreshRequest', options: [] },
});
const hot = encodeMobilityPacket({
  source: CN,
  destination: HOA,
  message: {
    kind: 'homeTest',
    homeNonceIndex: 1,
    homeInitCookie: cookie,
    homeKeygenToken: cookie,
    options: [],
  },
});
const reply = encodeIcmpv6Packet({
  source: HA,
  destination: HOA,
  message: { kind: 'haadReply', identifier: 9, mobileRouter: false, homeAgentAddresses: [HA] },
});

void t.test('the HA’s own signaling', async (t) => {
  t.match(classifyMobileNodeSignal(ba, true), {
    kind: 'mobility',
    message: { kind: 'bindingAcknowledgement' },
  });
  t.match(classifyMobileNodeSignal(brr, true), {
    kind: 'mobility',
    message: { kind: 'bindingRefreshRequest' },
  });
  t.match(classifyMobileNodeSignal(reply, true), {
    kind: 'discovery',
    message: { kind: 'haadReply', identifier: 9 },
  });
  t.same(classifyMobileNodeSignal(hot, true), { kind: 'refused', reason: 'unexpected-homeTest' });
});

void t.test('forwarded: only return routability', async (t) => {
  t.match(classifyMobileNodeSignal(hot, false), {
    kind: 'mobility',
    message: { kind: 'homeTest' },
  });
  t.same(classifyMobileNodeSignal(ba, false), { kind: 'refused', reason: 'forwarded-signaling' });
});

void t.test('damaged or not signaling', async (t) => {
  const bad = ba.slice();
  bad[bad.length - 1]! ^= 0xff;
  t.same(classifyMobileNodeSignal(bad, true), { kind: 'refused', reason: 'mh-invalid' });
  const badReply = reply.slice();
  badReply[badReply.length - 1]! ^= 0xff;
  t.same(classifyMobileNodeSignal(badReply, true), {
    kind: 'refused',
    reason: 'discovery-malformed',
  });
  t.same(
    classifyMobileNodeSignal(ba.subarray(0, 41), true),
    { kind: 'ignored', reason: 'unexpected-signaling' },
    'too short to tell',
  );
  const udp = new Uint8Array(48);
  udp[0] = 0x60;
  udp[5] = 8;
  udp[6] = 17; // UDP
  udp[7] = 64;
  t.same(classifyMobileNodeSignal(udp, true), {
    kind: 'ignored',
    reason: 'unexpected-signaling',
  });
});

void t.test(
  'the RFC 6275 §9.2 checks: answered, from the address the packet was sent to',
  async (t) => {
    const patched = (p: Uint8Array, at: number, value: number, mhLen?: number, from = HA) =>
      patchMobilityHeader(p, at, value, { source: from, destination: HOA }, mhLen);
    const unknown = classifyMobileNodeSignal(patched(brr, 2, 99), true);
    t.match(unknown, { kind: 'answer', reason: 'mh-unknown-type' });
    const be = unknown.kind === 'answer' ? decodePacket(unknown.packet) : undefined;
    t.match(be, { source: HOA, destination: HA, mobility: { kind: 'bindingError', status: 2 } });

    const proto = classifyMobileNodeSignal(patched(ba, 0, 6), true);
    t.match(proto, { kind: 'answer', reason: 'mh-payload-proto' });
    const pp = proto.kind === 'answer' ? decodePacket(proto.packet) : undefined;
    t.match(pp, { destination: HA, icmpv6: { kind: 'parameterProblem', code: 0, pointer: 40 } });

    // A BA needs Header Len >= 1; 0 gets a Parameter Problem pointing at Header Len.
    const short = classifyMobileNodeSignal(patched(ba, 1, 0, 8), true);
    t.match(short, { kind: 'answer', reason: 'mh-header-len' });
    const pp2 = short.kind === 'answer' ? decodePacket(short.packet) : undefined;
    t.match(pp2, { icmpv6: { kind: 'parameterProblem', pointer: 41 } });

    // A forwarded HoT with a bad Payload Proto is answered toward its source (the CN).
    const fwd = classifyMobileNodeSignal(patched(hot, 0, 6, undefined, CN), false);
    t.match(fwd, { kind: 'answer', reason: 'mh-payload-proto' });
    t.match(fwd.kind === 'answer' ? decodePacket(fwd.packet) : undefined, {
      source: HOA,
      destination: CN,
    });
  },
);
