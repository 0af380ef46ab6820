/**
 * RFC 6275 §9.2 receiver checks of a Mobility Header (src/protocol/mobility-header-check.ts):
 * checksum, Payload Proto (Parameter Problem code 0 pointing at it), unknown MH type (Binding
 * Error status 2), in that order; and the error rate limiter.
 */
import t from 'tap';
import { checkMobilityHeader, ErrorRateLimiter } from '../../src/protocol/mobility-header-check.js';
import { upperLayerChecksum } from '../../src/wire/checksum.js';
import { decodePacket, encodeMobilityPacket } from '../../src/wire/packet.js';
import { bindingUpdateFlags, type MobilityMessage } from '../../src/wire/types.js';

const MN = '2001:db8:100::10';
const COA = '2001:db8:3::10';
const HA = '2001:db8:100::1';
const MH_OFF = 40; // no extension header

const bu: MobilityMessage = {
  kind: 'bindingUpdate',
  sequence: 1,
  flags: bindingUpdateFlags({ A: true, H: true }),
  lifetimeUnits: 10,
  options: [],
};

/** Sets the MH byte `at` (from the MH start) and recomputes the checksum (unless told not to). */
function patch(packet: Uint8Array, at: number, value: number, fixChecksum = true): Uint8Array {
  const p = packet.slice();
  p[MH_OFF + at] = value;
  if (fixChecksum) {
    p[MH_OFF + 4] = 0;
    p[MH_OFF + 5] = 0;
    const c = upperLayerChecksum(MN, HA, 135, p.subarray(MH_OFF));
    p[MH_OFF + 4] = c >> 8;
    p[MH_OFF + 5] = c & 0xff;
  }
  return p;
}

void t.test('a well-formed BU is accepted', async (t) => {
  const p = encodeMobilityPacket({ source: MN, destination: HA, message: bu });
  const v = checkMobilityHeader(decodePacket(p));
  t.equal(v.action, 'accept');
  t.equal(v.action === 'accept' && v.message.kind, 'bindingUpdate', 'with the decoded message');
});

void t.test('Header Len below the minimum: Parameter Problem code 0 at Header Len', async (t) => {
  // A BU needs Header Len >= 1 (12 bytes of fixed fields); 0 claims only 8 bytes.
  const full = encodeMobilityPacket({ source: MN, destination: HA, message: bu });
  const p = patch(full.slice(0, MH_OFF + 8), 1, 0);
  p[5] = 8; // Payload Length
  p[MH_OFF + 4] = 0;
  p[MH_OFF + 5] = 0;
  const c = upperLayerChecksum(MN, HA, 135, p.subarray(MH_OFF));
  p[MH_OFF + 4] = c >> 8;
  p[MH_OFF + 5] = c & 0xff;
  const d = decodePacket(p);
  t.equal(d.mobility, undefined, 'not decoded as a BU');
  t.same(d.shortMobilityHeader, { mhType: 5, headerLen: 0, payloadProto: 59, checksumValid: true });
  t.same(checkMobilityHeader(d), {
    action: 'parameterProblem',
    reason: 'mh-header-len',
    code: 0,
    pointer: MH_OFF + 1,
  });
  // Checksum first, then Payload Proto, then Header Len (RFC 6275 §9.2).
  const badSum = p.slice();
  badSum[MH_OFF + 4] = (badSum[MH_OFF + 4] ?? 0) ^ 1;
  t.same(checkMobilityHeader(decodePacket(badSum)), { action: 'drop', reason: 'mh-checksum' });
  const proto = p.slice();
  proto[MH_OFF] = 6;
  proto[MH_OFF + 4] = 0;
  proto[MH_OFF + 5] = 0;
  const c2 = upperLayerChecksum(MN, HA, 135, proto.subarray(MH_OFF));
  proto[MH_OFF + 4] = c2 >> 8;
  proto[MH_OFF + 5] = c2 & 0xff;
  t.match(checkMobilityHeader(decodePacket(proto)), {
    action: 'parameterProblem',
    reason: 'mh-payload-proto',
    pointer: MH_OFF,
  });
});

void t.test('a wrong checksum is dropped silently, before anything else', async (t) => {
  const p = encodeMobilityPacket({ source: MN, destination: HA, message: bu });
  t.same(checkMobilityHeader(decodePacket(patch(p, 0, 6, false))), {
    action: 'drop',
    reason: 'mh-checksum',
  });
});

void t.test('Payload Proto not 59: Parameter Problem code 0 at the field', async (t) => {
  const p = patch(encodeMobilityPacket({ source: MN, destination: HA, message: bu }), 0, 6);
  t.same(checkMobilityHeader(decodePacket(p)), {
    action: 'parameterProblem',
    reason: 'mh-payload-proto',
    code: 0,
    pointer: MH_OFF,
  });
  // Behind a Home Address option the pointer moves with the MH.
  const withHao = encodeMobilityPacket({
    source: COA,
    destination: HA,
    homeAddress: MN,
    message: { kind: 'unknown', mhType: 99, data: new Uint8Array(2), options: [] },
  });
  const d = decodePacket(withHao);
  const q = withHao.slice();
  q[d.upperOffset] = 17;
  q[d.upperOffset + 4] = 0;
  q[d.upperOffset + 5] = 0;
  const c = upperLayerChecksum(MN, HA, 135, q.subarray(d.upperOffset));
  q[d.upperOffset + 4] = c >> 8;
  q[d.upperOffset + 5] = c & 0xff;
  const v = checkMobilityHeader(decodePacket(q));
  t.equal(v.action, 'parameterProblem', 'Payload Proto before the MH type');
  t.equal(v.action === 'parameterProblem' && v.pointer, d.upperOffset);
});

void t.test('unknown MH type: Binding Error status 2 to the source', async (t) => {
  const unknown: MobilityMessage = {
    kind: 'unknown',
    mhType: 99,
    data: new Uint8Array(2),
    options: [],
  };
  const p = encodeMobilityPacket({ source: MN, destination: HA, message: unknown });
  t.same(checkMobilityHeader(decodePacket(p)), {
    action: 'bindingError',
    reason: 'mh-unknown-type',
    status: 2,
    homeAddress: '::',
    destination: MN,
  });
  const h = encodeMobilityPacket({
    source: COA,
    destination: HA,
    homeAddress: MN,
    message: unknown,
  });
  const v = checkMobilityHeader(decodePacket(h));
  t.equal(v.action === 'bindingError' && v.homeAddress, MN, 'the HAO home address');
  t.equal(v.action === 'bindingError' && v.destination, COA, 'to the packet source');
});

void t.test('not a Mobility Header', async (t) => {
  const p = encodeMobilityPacket({ source: MN, destination: HA, message: bu });
  const d = decodePacket(p);
  delete d.mobility;
  t.same(checkMobilityHeader(d), { action: 'drop', reason: 'not-mobility' });
});

void t.test('ErrorRateLimiter: at most N per one-second window', async (t) => {
  const r = new ErrorRateLimiter(3);
  const T0 = 5_000;
  t.same(
    [0, 1, 2, 3, 999].map((d) => r.allow(T0 + d)),
    [true, true, true, false, false],
  );
  t.equal(r.allow(T0 + 1000), true, 'next window');
});
