/**
 * Whole home agent + mobile node scenarios over fakes (FakeTun, FakeNetwork, FakeClock): the
 * real role code, the real channel and codecs; no root, milliseconds per scenario.
 */
import t from 'tap';
import { decodePacket } from '../../src/wire/packet.js';
import { World, HA4, HA6, HA_PORT } from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const HOA = '2001:db8:100::10';
const SERVER = '2001:db8:100::5';

async function registered(w: World, opts: { loss?: number } = {}) {
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
  });
  m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.10' }];
  m.mn.start();
  const took = await w.until(
    () => m.mn.registration.state === 'registered',
    opts.loss ? 60_000 : 5_000,
  );
  return { m, took };
}

void t.test(
  'first registration over IPv4: binding at the HA, BA back, home link told',
  async (t) => {
    const w = await World.create();
    const { m, took } = await registered(w);
    t.ok(took >= 0, 'the MN registered');
    const rtt = 2 * (w.net.conditions.delayMs ?? 0);
    t.ok(took <= 2 * rtt, `handshake and BU/BA: two round trips of ${rtt} ms (took ${took} ms)`);
    const b = w.ha.cache.get(HOA);
    t.ok(b, 'binding exists');
    t.equal(b?.locator.address, '203.0.113.10');
    t.equal(b?.locator.port, m.udp4.localPort);
    t.equal(b?.careOfAddress, '::ffff:203.0.113.10');
    t.equal(b?.natDetected, false);
    t.ok(w.homeLink.bound.has(HOA), 'proxy ND / host route installed');
    const st = w.ha.status();
    t.equal(st.bindings.length, 1);
    t.equal(st.bindings[0]?.locator, `203.0.113.10:${m.udp4.localPort}`);
    t.same(
      m.events.map((e) => e.event),
      ['attach', 'registered'],
    );
  },
);

void t.test('bidirectional tunneling: packets cross both ways unchanged', async (t) => {
  const w = await World.create();
  const { m } = await registered(w);
  const toMn: Uint8Array[] = [];
  m.tun.onKernelReceive((p) => toMn.push(p));
  const toHome: Uint8Array[] = [];
  w.haTun.onKernelReceive((p) => toHome.push(p));

  const down = [1, 2, 3].map((i) => echo(SERVER, HOA, i, 100 * i));
  w.haTun.inject(down);
  await w.run(20);
  t.same(toMn, down, 'HA -> MN packets arrive in order, byte for byte');

  const up = [4, 5].map((i) => echo(HOA, SERVER, i, 1200));
  m.tun.inject(up);
  await w.run(20);
  t.same(toHome, up, 'MN -> HA packets arrive byte for byte');
  const b = w.ha.cache.get(HOA)!;
  t.equal(b.counters.packetsOut, 3);
  t.equal(b.counters.packetsIn, 2);
});

void t.test(
  'selector check: a source other than the registered home address is dropped',
  async (t) => {
    const w = await World.create();
    const { m } = await registered(w);
    const toHome: Uint8Array[] = [];
    w.haTun.onKernelReceive((p) => toHome.push(p));
    m.tun.inject(echo('2001:db8:100::99', SERVER, 1));
    await w.run(20);
    t.equal(toHome.length, 0);
    t.equal(w.ha.drops.get('no-binding'), 1);
  },
);

void t.test(
  'a packet for an unregistered home address gets ICMPv6 address unreachable',
  async (t) => {
    const w = await World.create();
    const replies: Uint8Array[] = [];
    w.haTun.onKernelReceive((p) => replies.push(p));
    w.haTun.inject(echo(SERVER, '2001:db8:100::77', 1));
    await w.run(5);
    t.equal(w.ha.drops.get('unregistered'), 1);
    t.equal(replies.length, 1);
    const d = decodePacket(replies[0]!);
    t.equal(d.destination, SERVER);
    t.equal(d.icmpv6?.kind, 'destinationUnreachable');
    t.match(d.icmpv6, { code: 3 });
  },
);

void t.test(
  'move IPv4 -> IPv4 behind NAT -> IPv6: the binding follows in one round trip',
  async (t) => {
    const w = await World.create();
    const { m } = await registered(w);
    const toMn: Uint8Array[] = [];
    m.tun.onKernelReceive((p) => toMn.push(p));

    // Hotel Wi-Fi: a private-side address behind a NAT whose public side is 198.51.100.77.
    const nat = w.net.nat({ publicAddress: '198.51.100.77' });
    w.net.move(m.udp4, '192.0.2.20');
    w.net.setNat(m.udp4, nat);
    m.careOf.candidates = [{ family: 4, localAddress: '192.0.2.20' }];
    m.careOf.changed();
    const natTook = await w.until(() => w.ha.cache.get(HOA)?.locator.address === '198.51.100.77');
    t.ok(
      natTook >= 0 && natTook <= 15,
      `binding moved behind the NAT in ${natTook} ms (one-way delay 5 ms)`,
    );
    await w.until(
      () =>
        m.mn.registration.state === 'registered' &&
        m.mn.status().bindingUpdateList[0]?.nat === 'detected',
    );
    const b = w.ha.cache.get(HOA)!;
    t.equal(b.natDetected, true, 'RFC 5555 NAT detection at the HA');
    t.equal(b.careOfAddress, '::ffff:192.0.2.20', 'CoA as the MN sees it');
    t.equal(b.locator.port, nat.mappedPort(m.udp4), 'HA sends to the NAT mapping');
    t.equal(m.mn.status().bindingUpdateList[0]?.nat, 'detected');

    // IPv6-only network.
    m.careOf.candidates = [{ family: 6, localAddress: '2001:db8:3::10' }];
    m.careOf.changed();
    const v6Took = await w.until(() => w.ha.cache.get(HOA)?.locator.address === '2001:db8:3::10');
    t.ok(v6Took >= 0 && v6Took <= 15, `binding moved to IPv6 in ${v6Took} ms`);
    t.equal(
      w.ha.cache.get(HOA)?.careOfAddress,
      '2001:db8:3::10',
      'RFC 6275: CoA from the Alternate CoA / HAO BU',
    );
    w.haTun.inject(echo(SERVER, HOA, 9));
    await w.run(20);
    t.equal(toMn.length, 1, 'traffic reaches the MN on its new network');
    t.equal(m.mn.counters.moves, 2);
  },
);

void t.test('a member may not register another member’s home address (BA 133)', async (t) => {
  const w = await World.create();
  await registered(w);
  const thief = w.mobileNode({
    homeAddress: HOA,
    certAddress: '2001:db8:100::20',
    address4: '203.0.113.66',
    address6: '2001:db8:3::66',
  });
  thief.careOf.candidates = [{ family: 4, localAddress: '203.0.113.66' }];
  thief.mn.start();
  await w.until(() => thief.events.some((e) => e.event === 'failed'));
  const failed = thief.events.find((e) => e.event === 'failed');
  t.equal(failed?.fields['status'], 133);
  t.equal(w.ha.cache.get(HOA)?.locator.address, '203.0.113.10', 'the real binding is untouched');
  t.equal(w.ha.drops.get('bu-notHomeAgentForMn'), 0, 'a rejection is an answer, not a drop');
});

void t.test('close() deregisters: the binding disappears at once', async (t) => {
  const w = await World.create();
  const { m } = await registered(w);
  let closed = false;
  const closing = m.mn.close(5000).then(() => (closed = true));
  const took = await w.until(() => w.ha.cache.get(HOA) === undefined, 1000);
  t.ok(took >= 0 && took <= 10, `binding removed after one one-way delay (${took} ms)`);
  await w.until(() => closed, 1000);
  await closing;
  t.equal(w.ha.cache.get(HOA), undefined);
  t.notOk(w.homeLink.bound.has(HOA), 'home-link state withdrawn');
  t.ok(m.events.some((e) => e.event === 'deregistered' && e.fields['gaveUp'] === false));
});

void t.test('a silent MN’s binding expires after its lifetime', async (t) => {
  const w = await World.create({ maxLifetime: 40 });
  const { m } = await registered(w);
  t.equal(w.ha.cache.get(HOA)?.lifetimeSeconds, 40, 'lifetime capped by the HA');
  // The MN vanishes (crash, or its network dies): nothing it sends arrives any more.
  m.udp4.sendConditions = { loss: 1 };
  m.udp6.sendConditions = { loss: 1 };
  await w.run(41_000, 500);
  t.equal(w.ha.cache.get(HOA), undefined, 'expired');
  t.notOk(w.homeLink.bound.has(HOA));
});

void t.test('registration converges under 30% loss', async (t) => {
  const w = await World.create({ loss: 0.3, seed: 3 });
  const { took } = await registered(w, { loss: 0.3 });
  t.ok(took >= 0, `registered after ${took} ms despite loss`);
  t.ok(w.ha.cache.get(HOA));
});

void t.test('the handshake and BU reach the HA port on both families', async (t) => {
  const w = await World.create();
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
    prefer: 'ipv6',
  });
  m.careOf.candidates = [
    { family: 4, localAddress: '203.0.113.10' },
    { family: 6, localAddress: '2001:db8:3::10' },
  ];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  t.equal(w.ha.cache.get(HOA)?.locator.address, '2001:db8:3::10', 'preferred family used');
  t.equal(m.mn.status().homeAgent, `[${HA6}]:${HA_PORT}`);
  t.not(m.mn.status().homeAgent, `${HA4}:${HA_PORT}`);
});
