/**
 * A multi-homed home agent (issue #16): its IPv4 socket holds two addresses, the first being
 * what the kernel would choose as source. A member registering via the second address from
 * behind an address-dependent NAT (it admits answers only from addresses it sent to) gets
 * every handshake answer, BA and data packet from that second address; without pktinfo-chosen
 * sources they would come from the first one and die at the NAT. Over fakes (FakeNetwork's
 * endpoint sends from its first address unless told otherwise): the real HA and MN code.
 */
import t from 'tap';
import { readAddress, isZeroSlot } from '../../src/io/address-bytes.js';
import type { OutgoingDatagrams } from '../../src/io/types.js';
import type { HaStatus } from '../../src/io/control-protocol.js';
import { HA4, World } from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const HA4_SECOND = '198.51.100.2';
const NAT_PUBLIC = '192.0.2.77';
const HOA = '2001:db8:100::10';
const SERVER = '2001:db8:100::5';

/** Records the source of every datagram the HA's IPv4 socket sends to `to` ('kernel' = none chosen). */
function spySources(w: World, to: string): string[] {
  const seen: string[] = [];
  const sock = w.haUdp4;
  const send = sock.sendDatagrams.bind(sock);
  sock.sendDatagrams = (b: OutgoingDatagrams): number => {
    for (let i = 0; i < b.count; i++) {
      if (readAddress(4, b.dstAddrs, i * 16) !== to) continue;
      const chosen = b.srcAddrs !== undefined && !isZeroSlot(b.srcAddrs, i * 16);
      seen.push(chosen ? readAddress(4, b.srcAddrs!, i * 16) : 'kernel');
    }
    return send(b);
  };
  return seen;
}

/** Echo packets both ways through the tunnel; resolves how many arrived on each side. */
async function exchange(w: World, m: { tun: World['haTun'] }, n: number, base: number) {
  let up = 0;
  let down = 0;
  w.haTun.onKernelReceive(() => up++);
  m.tun.onKernelReceive(() => down++);
  for (let i = 0; i < n; i++) {
    m.tun.inject(echo(HOA, SERVER, base + i, 200));
    w.haTun.inject(echo(SERVER, HOA, base + i, 200));
    await w.run(20);
  }
  return { up, down };
}

/**
 * The HA with two IPv4 addresses, the spy on what it sends to the NAT, and a member behind an
 * address-dependent NAT configured with the second address (not started yet).
 */
async function memberBehindNat() {
  const w = await World.create({ haAddresses4: [HA4, HA4_SECOND] });
  const sources = spySources(w, NAT_PUBLIC);
  const nat = w.net.nat({ publicAddress: NAT_PUBLIC, filtering: 'address-dependent' });
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '10.99.0.10',
    address6: '2001:db8:3::10',
    options: { agent4: HA4_SECOND },
  });
  w.net.setNat(m.udp4, nat);
  m.careOf.candidates = [{ family: 4, localAddress: '10.99.0.10' }];
  return { w, sources, nat, m };
}

void t.test('a member that reached the second address hears only from it', async (t) => {
  const { w, sources, m } = await memberBehindNat();
  m.mn.start();
  t.ok((await w.until(() => m.mn.registration.state === 'registered', 5_000)) >= 0, 'registered');

  const r = await exchange(w, m, 5, 0);
  t.same(r, { up: 5, down: 5 }, 'data both ways');
  t.ok(sources.length >= 7, `the HA sent ${sources.length} datagrams to the member`);
  t.same(
    [...new Set(sources)],
    [HA4_SECOND],
    'handshake answer, BA and data: all from the address the member contacted',
  );

  // The member now reaches the first address, same care-of locator (a changed route or
  // agent order): what follows goes back from there, without a new BU.
  const send = m.udp4.sendDatagrams.bind(m.udp4);
  m.udp4.sendDatagrams = (b: OutgoingDatagrams): number => {
    for (let i = 0; i < b.count; i++) {
      if (readAddress(4, b.dstAddrs, i * 16) === HA4_SECOND)
        b.dstAddrs.set([198, 51, 100, 1], i * 16);
    }
    return send(b);
  };
  const seq = w.ha.cache.get(HOA)?.sequence;
  sources.length = 0;
  const r2 = await exchange(w, m, 5, 100);
  t.same(r2, { up: 5, down: 5 }, 'data both ways via the first address');
  t.equal(w.ha.cache.get(HOA)?.sequence, seq, 'no new BU was needed');
  t.equal(sources.at(-1), HA4, 'the HA answers from the first address now');
  t.equal(w.haUdp4.counters().txSourceFallbacks, 0, 'no fallback');
});

void t.test('the contacted address goes away: the kernel chooses, counted', async (t) => {
  const w = await World.create({ haAddresses4: [HA4, HA4_SECOND] });
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
    options: { agent4: HA4_SECOND },
  });
  m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.10' }];
  m.mn.start();
  t.ok((await w.until(() => m.mn.registration.state === 'registered', 5_000)) >= 0, 'registered');
  w.net.move(w.haUdp4, [HA4]); // the second address is removed from the HA's host
  let down = 0;
  m.tun.onKernelReceive(() => down++);
  for (let i = 0; i < 3; i++) w.haTun.inject(echo(SERVER, HOA, i, 200));
  await w.run(20);
  t.equal(down, 3, 'data still reaches the member (from the kernel-chosen address)');
  t.equal(w.haUdp4.counters().txSourceFallbacks, 3, 'each counted by the socket');
  const st = w.ha.status() as HaStatus;
  t.equal(st.counters?.['udpSourceFallbacks'], 3, 'and shown in mip6 status');
});

void t.test('spoofed or replayed datagrams to the other address move nothing', async (t) => {
  const { w, sources, nat, m } = await memberBehindNat();
  // Every datagram the member sends, as it leaves (the attacker copies them off the wire).
  const captured: Uint8Array[] = [];
  const send = m.udp4.sendDatagrams.bind(m.udp4);
  m.udp4.sendDatagrams = (b: OutgoingDatagrams): number => {
    for (let i = 0; i < b.count; i++) {
      captured.push(b.buf.slice(b.offsets[i], b.offsets[i]! + b.lengths[i]!));
    }
    return send(b);
  };
  m.mn.start();
  t.ok((await w.until(() => m.mn.registration.state === 'registered', 5_000)) >= 0, 'registered');
  t.same(await exchange(w, m, 3, 0), { up: 3, down: 3 }, 'data both ways');
  const port = nat.mappedPort(m.udp4)!;

  // An off-path host with no key sends, from the member's public locator (spoofed), to the
  // HA's first address: every datagram the member sent so far (replays: handshake, BU, data)
  // and junk shaped like channel data.
  const attacker = w.net.endpoint({ address: '203.0.113.66' });
  const junk = new Uint8Array(120);
  junk[0] = 4;
  for (const data of [...captured, junk]) {
    w.net.transmit(attacker, {
      data,
      srcAddr: NAT_PUBLIC,
      srcPort: port,
      dstAddr: HA4,
      dstPort: 4191,
    });
  }
  await w.run(50);
  sources.length = 0;
  t.same(await exchange(w, m, 3, 50), { up: 3, down: 3 }, 'data still flows both ways');
  t.ok(sources.length >= 3, 'the HA sent to the member');
  t.same([...new Set(sources)], [HA4_SECOND], 'still only from the address the member uses');
});

void t.test(
  'a copy of one uplink datagram sent first to the other address moves nothing',
  async (t) => {
    const { w, sources, nat, m } = await memberBehindNat();
    m.mn.start();
    t.ok((await w.until(() => m.mn.registration.state === 'registered', 5_000)) >= 0, 'registered');
    t.same(await exchange(w, m, 3, 0), { up: 3, down: 3 }, 'data both ways');
    const port = nat.mappedPort(m.udp4)!;

    // An on-path host copies the member's next datagram (a data packet) to the HA's first
    // address, where it arrives first; the original reaches the second address late.
    const attacker = w.net.endpoint({ address: '203.0.113.66' });
    const spoofed = (data: Uint8Array, dstAddr: string): void =>
      w.net.transmit(attacker, {
        data,
        srcAddr: NAT_PUBLIC,
        srcPort: port,
        dstAddr,
        dstPort: 4191,
      });
    let original: Uint8Array | undefined;
    const send = m.udp4.sendDatagrams.bind(m.udp4);
    m.udp4.sendDatagrams = (b: OutgoingDatagrams): number => {
      if (original !== undefined || b.count !== 1) return send(b);
      original = b.buf.slice(b.offsets[0], b.offsets[0]! + b.lengths[0]!);
      spoofed(original, HA4);
      return 1; // held back on the wire
    };
    let up = 0;
    w.haTun.onKernelReceive(() => up++);
    m.tun.inject(echo(HOA, SERVER, 60, 200));
    await w.run(20);
    t.ok(original !== undefined, 'the member sent one datagram, copied to the first address');
    t.equal(up, 1, 'the copy opened at the HA (it is authentic)');
    const drops = () => (w.ha.status() as HaStatus).drops?.['channel-replay'] ?? 0;
    const replays = drops();
    spoofed(original!, HA4_SECOND);
    await w.run(20);
    t.equal(drops(), replays + 1, 'the late original is dropped as a replay');
    t.equal(up, 1, 'and not forwarded twice');

    // Downlink only: the member sends nothing that could put the source right again.
    const challenges = w.ha.counters.pathChallenges;
    sources.length = 0;
    let down = 0;
    m.tun.onKernelReceive(() => down++);
    for (let i = 0; i < 5; i++) w.haTun.inject(echo(SERVER, HOA, 70 + i, 200));
    await w.run(20);
    t.equal(down, 5, 'every downlink packet reaches the member');
    // Only the challenges (from the first address, dropped by the member's NAT) left from there.
    await w.run(3_000);
    const fromFirst = sources.filter((s) => s === HA4).length;
    t.ok(fromFirst >= 1 && fromFirst <= 3, `${fromFirst} challenge(s) from the first address`);
    t.ok(w.ha.counters.pathChallenges - challenges <= 3, 'at most 3 challenges for one copy');
    for (let i = 0; i < 5; i++) w.haTun.inject(echo(SERVER, HOA, 80 + i, 200));
    await w.run(20);
    t.equal(down, 10, 'still every downlink packet once the challenges are given up');
    const data = sources.filter((s) => s !== HA4);
    t.ok(data.length >= 10, 'the data went out');
    t.same([...new Set(data)], [HA4_SECOND], 'from the address the member uses');
    m.udp4.sendDatagrams = send;
    t.same(await exchange(w, m, 3, 90), { up: 3, down: 3 }, 'data both ways afterwards');
  },
);
