/**
 * The home agent applies the RFC 6275 §9.2 Mobility Header checks (protocol/mobility-header-check.ts)
 * to a member's own signaling, over fakes: an unknown MH type gets a Binding Error status 2, a
 * Payload Proto other than 59 an ICMPv6 Parameter Problem (code 0, pointer at the field), both
 * sealed back in the member's channel and rate-limited; neither touches the binding cache.
 */
import t from 'tap';
import { encodeMobilityPacket } from '../../src/wire/packet.js';
import { bindingUpdateFlags } from '../../src/wire/types.js';
import { patchMobilityHeader } from '../helpers/packets.js';
import { rawMember } from '../helpers/raw-member.js';
import { World, HA_HOME_ADDRESS } from '../helpers/world.js';

const HOA = '2001:db8:100::66';
const ADDR4 = '203.0.113.66';

function member(w: World) {
  return rawMember(w, { homeAddress: HOA, address4: ADDR4 });
}

function unknownType(): Uint8Array {
  return encodeMobilityPacket({
    source: HOA,
    destination: HA_HOME_ADDRESS,
    message: { kind: 'unknown', mhType: 99, data: new Uint8Array(2), options: [] },
  });
}

const TO_HA = { source: HOA, destination: HA_HOME_ADDRESS };

function bu(): Uint8Array {
  return encodeMobilityPacket({
    ...TO_HA,
    message: {
      kind: 'bindingUpdate',
      sequence: 1,
      flags: bindingUpdateFlags({ A: true, H: true }),
      lifetimeUnits: 50,
      options: [{ type: 'ipv4CareOfAddress', address: ADDR4 }],
    },
  });
}

/** A BU whose Payload Proto is 6 (TCP), checksum recomputed so only that field is wrong. */
function badPayloadProto(): Uint8Array {
  return patchMobilityHeader(bu(), 0, 6, TO_HA);
}

void t.test('unknown MH type: Binding Error status 2, rate-limited', async (t) => {
  const w = await World.create({ delayMs: 1 });
  const m = await member(w);
  t.ok(m.ready, 'channel up');
  m.send(unknownType());
  await w.run(20);
  const be = m.got.filter((p) => p.mobility?.kind === 'bindingError');
  t.equal(be.length, 1, 'one Binding Error');
  const msg = be[0]?.mobility;
  t.equal(msg?.kind === 'bindingError' && msg.status, 2, 'status 2');
  t.equal(msg?.kind === 'bindingError' && msg.homeAddress, '::', 'no HAO: unspecified');
  t.equal(be[0]?.destination, HOA);
  t.equal(w.ha.drops.get('mh-unknown-type'), 1, 'counted');
  t.equal(w.ha.cache.size, 0, 'no binding');

  for (let i = 0; i < 50; i++) m.send(unknownType());
  await w.run(20);
  const more = m.got.filter((p) => p.mobility?.kind === 'bindingError').length - 1;
  t.ok(more <= 10, `a burst of 50 gets ${more} Binding Errors (at most 10 per second)`);
  t.equal(w.ha.drops.get('mh-unknown-type'), 51);
});

void t.test('Payload Proto not 59: ICMPv6 Parameter Problem code 0 at byte 40', async (t) => {
  const w = await World.create({ delayMs: 1 });
  const m = await member(w);
  t.ok(m.ready, 'channel up');
  m.send(badPayloadProto());
  await w.run(20);
  const pp = m.got.filter((p) => p.icmpv6?.kind === 'parameterProblem');
  t.equal(pp.length, 1, 'one Parameter Problem');
  const icmp = pp[0]?.icmpv6;
  t.equal(icmp?.kind === 'parameterProblem' && icmp.code, 0, 'code 0');
  t.equal(icmp?.kind === 'parameterProblem' && icmp.pointer, 40, 'pointer: Payload Proto');
  t.equal(pp[0]?.source, HA_HOME_ADDRESS);
  t.equal(w.ha.drops.get('mh-payload-proto'), 1, 'counted');
  t.equal(w.ha.cache.size, 0, 'the BU was not processed');
  t.notOk(
    m.got.some((p) => p.mobility?.kind === 'bindingAcknowledgement'),
    'no Binding Acknowledgement',
  );
});

/** A BU with Header Len 0 (its minimum is 1: 12 bytes of fixed fields), checksum over 8 bytes. */
function shortHeaderLen(): Uint8Array {
  return patchMobilityHeader(bu(), 1, 0, TO_HA, 8);
}

void t.test('Header Len below the minimum: Parameter Problem code 0 at byte 41', async (t) => {
  const w = await World.create({ delayMs: 1 });
  const m = await member(w);
  t.ok(m.ready, 'channel up');
  m.send(shortHeaderLen());
  await w.run(20);
  const pp = m.got.filter((p) => p.icmpv6?.kind === 'parameterProblem');
  t.equal(pp.length, 1, 'one Parameter Problem');
  const icmp = pp[0]?.icmpv6;
  t.equal(icmp?.kind === 'parameterProblem' && icmp.code, 0, 'code 0');
  t.equal(icmp?.kind === 'parameterProblem' && icmp.pointer, 41, 'pointer: Header Len');
  t.equal(w.ha.drops.get('mh-header-len'), 1, 'counted');
  t.equal(w.ha.cache.size, 0, 'the BU was not processed');

  // The same with a wrong checksum: dropped silently (the checksum is checked first).
  const bad = shortHeaderLen();
  bad[44] = (bad[44] ?? 0) ^ 0xff;
  m.send(bad);
  await w.run(20);
  t.equal(m.got.filter((p) => p.icmpv6?.kind === 'parameterProblem').length, 1, 'no second one');
  t.equal(w.ha.drops.get('mh-checksum'), 1, 'counted as a checksum drop');
});
