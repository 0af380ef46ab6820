/**
 * Floods against the home agent over fakes (issue 9), with a legitimate MN beside them:
 *  - an authenticated member that sends BUs far above MAX_UPDATE_RATE gets at most
 *    HA_BU_RATE_PER_MEMBER (2 x MAX_UPDATE_RATE) processed per second (the rest dropped and counted, no BA), and
 *    the legitimate MN's binding and traffic are untouched;
 *  - a flood of initiations from spoofed sources with a valid MAC1 (anyone can compute it) is
 *    answered with cookies once above the endpoint's handshake rate, so the Diffie-Hellman
 *    work stays bounded per second, every cookie reply is smaller than the initiation it answers
 *    (no amplification), no state is kept per spoofed source, and the legitimate MN still
 *    registers.
 */
import { DataKind } from '../../src/crypto/aead.js';
import { bindingUpdateFlags } from '../../src/wire/types.js';
import t from 'tap';
import { MACS_LEN, mac1Key, writeMacs } from '../../src/crypto/handshake.js';
import { DEFAULT_MAX_HANDSHAKES_PER_SECOND, type PeerSession } from '../../src/crypto/endpoint.js';
import { HA_BU_RATE_PER_MEMBER } from '../../src/roles/ha/home-agent.js';
import { decodePacket, encodeMobilityPacket } from '../../src/wire/packet.js';
import { authority, endpoint, memberKey, T0 } from '../helpers/crypto.js';
import { World, HA4, HA_HOME_ADDRESS, HA_PORT } from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const HOA = '2001:db8:100::10';
const ROGUE_HOA = '2001:db8:100::66';
const ROGUE4 = '203.0.113.99';

async function legitimate(w: World) {
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
  });
  m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.10' }];
  m.mn.start();
  return m;
}

void t.test(
  'BU flood from an authenticated member: HA_BU_RATE_PER_MEMBER per second',
  async (t) => {
    const w = await World.create({ delayMs: 1 });
    const m = await legitimate(w);
    t.ok((await w.until(() => m.mn.registration.state === 'registered')) >= 0, 'MN registered');

    const rogue = endpoint(
      w.ca,
      { name: 'rogue', role: 'mn', key: memberKey(0x90), addresses: [ROGUE_HOA] },
      ['ha'],
    );
    const udp = w.net.endpoint({ address: ROGUE4 });
    let session: PeerSession | undefined;
    let acks = 0;
    udp.onDatagrams((batch) => {
      for (let i = 0; i < batch.count; i++) {
        const copy = batch.packet(i).slice();
        const r = rogue.receive(copy, T0 + w.clock.now());
        if (r.kind === 'established') session = r.session;
        // Path messages (validation, MTU probes) are sealed too and are not IPv6.
        if (r.kind === 'data' && (copy[r.offset] ?? 0) >> 4 === 6) {
          const p = decodePacket(copy.subarray(r.offset, r.offset + r.length));
          if (p.mobility?.kind === 'bindingAcknowledgement') acks++;
        }
      }
    });
    udp.send(rogue.connect(w.haKey.publicKey, T0 + w.clock.now()), HA4, HA_PORT);
    t.ok((await w.until(() => session !== undefined, 1000)) >= 0, 'rogue channel up');

    const SENT = 2000;
    const DURATION_MS = 2000;
    const start = w.clock.now();
    for (let i = 0; i < SENT; i++) {
      const bu = encodeMobilityPacket({
        source: ROGUE_HOA,
        destination: HA_HOME_ADDRESS,
        message: {
          kind: 'bindingUpdate',
          sequence: i + 1,
          flags: bindingUpdateFlags({ A: true, H: true }),
          lifetimeUnits: 50,
          options: [{ type: 'ipv4CareOfAddress', address: ROGUE4 }],
        },
      });
      const sealed = rogue.seal(session!, bu, T0 + w.clock.now(), DataKind.SIGNALING);
      if (sealed === null) throw new Error('seal failed');
      udp.send(sealed, HA4, HA_PORT);
      if (i % 2 === 1) await w.run(2); // 1000 BUs per second for 2 s
    }
    await w.run(50);
    const elapsed = w.clock.now() - start;
    t.ok(elapsed >= DURATION_MS, `flood lasted ${elapsed} ms`);
    const maxAllowed = HA_BU_RATE_PER_MEMBER * Math.ceil(elapsed / 1000);
    const limited = w.ha.drops.get('bu-rate-limited');
    t.ok(acks >= 1, `the member's first BUs were answered (${acks} BAs)`);
    t.ok(
      acks <= maxAllowed,
      `${acks} BAs <= ${maxAllowed} (${HA_BU_RATE_PER_MEMBER}/s per member)`,
    );
    // The first BU's BA waits for DAD (RFC 6275 §10.3.1); BUs meanwhile are dropped as such.
    const dadPending = w.ha.drops.get('dad-pending');
    t.equal(
      limited + dadPending + acks,
      SENT,
      `every other BU dropped and counted (${limited} rate-limited, ${dadPending} during DAD)`,
    );
    t.ok(w.ha.status().drops?.['bu-rate-limited'] === limited, 'visible in status drops');
    t.equal(w.ha.cache.get(ROGUE_HOA)?.peerName, 'rogue', 'the member itself stays registered');

    // The legitimate MN is untouched: binding, and traffic both ways.
    t.equal(w.ha.cache.get(HOA)?.locator.address, '203.0.113.10');
    m.tun.inject(echo(HOA, '2001:db8:100::5', 1));
    w.haTun.inject(echo('2001:db8:100::5', HOA, 2));
    await w.run(20);
    t.equal(w.haTun.written.length >= 1, true, 'MN -> home link delivered');
    t.equal(m.tun.written.length >= 1, true, 'home link -> MN delivered');
  },
);

void t.test('handshake flood from spoofed sources: cookies bound the DH work', async (t) => {
  const w = await World.create({ delayMs: 1 });
  // A well-formed initiation from a non-member, made once; the flood varies its encrypted
  // static key (so Noise fails after one DH) and recomputes MAC1, which anyone can do.
  const stranger = endpoint(
    authority(0x77),
    { name: 'stranger', role: 'mn', key: memberKey(0x91), addresses: [ROGUE_HOA] },
    ['ha'],
    {},
    w.ca.publicKey,
  );
  const base = stranger.connect(w.haKey.publicKey, T0);
  const key1 = mac1Key(w.haKey.publicKey);
  const spoofers = Array.from({ length: 200 }, (_, i) =>
    w.net.endpoint({ address: `198.18.${i >> 8}.${(i & 0xff) + 1}` }),
  );
  let replies = 0;
  let largest = 0;
  for (const s of spoofers) {
    s.onDatagrams((b) => {
      for (let i = 0; i < b.count; i++) {
        replies++;
        largest = Math.max(largest, b.lengths[i]!);
      }
    });
  }

  const m = await legitimate(w);
  const PER_MS = 3;
  const DURATION_MS = 2000;
  let sent = 0;
  let registeredAt = -1;
  const start = w.clock.now();
  for (let ms = 0; ms < DURATION_MS; ms++) {
    for (let k = 0; k < PER_MS; k++) {
      const msg = base.slice();
      msg[8 + 32 + (sent % 32)]! ^= 1 + (sent & 0x7f);
      writeMacs(msg, key1, null);
      spoofers[sent % spoofers.length]!.send(msg, HA4, HA_PORT);
      sent++;
    }
    await w.run(1);
    if (registeredAt < 0 && m.mn.registration.state === 'registered')
      registeredAt = w.clock.now() - start;
  }
  await w.run(20);
  const d = w.ha.status().drops ?? {};
  const dhWork = (d['channel-bad-handshake'] ?? 0) + (d['channel-bad-certificate'] ?? 0);
  t.equal(sent, PER_MS * DURATION_MS, `${sent} spoofed initiations in ${DURATION_MS} ms`);
  const perS = DEFAULT_MAX_HANDSHAKES_PER_SECOND;
  t.ok(dhWork <= perS * (DURATION_MS / 1000 + 1), `DH spent on ${dhWork} of them (<= ${perS}/s)`);
  t.ok((d['channel-cookie-required'] ?? 0) >= sent - dhWork - 10, 'the rest got cookie replies');
  t.ok(
    largest > 0 && largest < base.length + MACS_LEN,
    `cookie reply ${largest} B < initiation ${base.length} B`,
  );
  t.ok(replies <= sent, 'at most one reply per initiation');
  t.ok(
    registeredAt >= 0 && registeredAt < 1000,
    `legitimate MN registered after ${registeredAt} ms of flood`,
  );
  t.equal(w.ha.cache.size, 1, 'no state for spoofed sources');
});
