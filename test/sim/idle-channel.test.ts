/**
 * Issue 17, over the whole HA + MN (real role code, real channel, fake clock): an idle member
 * costs its refresh BUs and nothing else. No handshake by time on either side; its expired keys
 * come back with one handshake on its next refresh; a busy member still rekeys; the HA sends no
 * Binding Refresh Request to a member that registers right after its handshake.
 */
import t from 'tap';
import { World, HA_PORT } from '../helpers/world.js';
import { echo } from '../helpers/packets.js';
import type { FakeUdpEndpoint } from '../helpers/fake-network.js';

const HOA = '2001:db8:100::10';
const SERVER = '2001:db8:100::5';

/** Counts the handshake initiations (type 1) a socket sends. */
function countInitiations(udp: FakeUdpEndpoint): { n: number } {
  const c = { n: 0 };
  const send = udp.send.bind(udp);
  udp.send = (data, address, port, source) => {
    if (data[0] === 1) c.n++;
    return send(data, address, port, source);
  };
  return c;
}

async function registered(w: World, lifetime = 600) {
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: '203.0.113.10',
    address6: '2001:db8:3::10',
    lifetime,
  });
  const mnInits = countInitiations(m.udp4);
  m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.10' }];
  m.mn.start();
  const took = await w.until(() => m.mn.registration.state === 'registered', 5_000);
  if (took < 0) throw new Error('not registered');
  return { m, mnInits };
}

/** Counts the Binding Refresh Requests (MH type 0) and BAs (6) the HA seals as its signaling. */
function countMobility(w: World): { brr: number; ba: number } {
  const c = { brr: 0, ba: 0 };
  const ep = w.haEndpoint;
  const seal = ep.seal.bind(ep);
  ep.seal = (session, packet, now, kind) => {
    if (packet.length > 42 && packet[0]! >> 4 === 6 && packet[6] === 135) {
      if (packet[42] === 0) c.brr++;
      if (packet[42] === 6) c.ba++;
    }
    return seal(session, packet, now, kind);
  };
  return c;
}

void t.test('a first registration: one BA from the HA, no Binding Refresh Request', async (t) => {
  const w = await World.create();
  const haInits = countInitiations(w.haUdp4);
  const mh = countMobility(w);
  const { mnInits } = await registered(w);
  await w.run(3_000, 10); // past the unbound-channel grace
  t.equal(mnInits.n, 1, 'one handshake');
  t.same(mh, { brr: 0, ba: 1 }, 'the BA only: no BRR after the handshake');
  t.equal(haInits.n, 0);
});

void t.test(
  'a channel that stays without a binding still gets its BRR (a lost binding)',
  async (t) => {
    const w = await World.create();
    const { m } = await registered(w);
    await w.run(2_000, 10); // the registration's own grace passes: its BU made the binding
    const mh = countMobility(w);
    // The HA loses the binding (as after a restart without [home] state); the MN does not know.
    w.ha.cache.delete(HOA, w.clock.now());
    // A handshake from the member (its payload after its keys expired) and no BU of its own.
    await w.run(200_000, 1_000);
    m.tun.inject([echo(HOA, SERVER, 1, 100)]);
    await w.run(500, 1);
    t.equal(mh.brr, 0, 'not before the grace');
    await w.run(2_000, 10);
    t.equal(mh.brr, 1, 'one BRR after it');
    t.ok(
      (await w.until(() => w.ha.cache.get(HOA) !== undefined, 5_000)) >= 0,
      'the MN answered it with a BU',
    );
  },
);

void t.test(
  'idle for an hour: no handshake but one per refresh on expired keys; the HA initiates none',
  async (t) => {
    const w = await World.create();
    const haInits = countInitiations(w.haUdp4);
    const { m, mnInits } = await registered(w, 600);
    const ha = w.haEndpoint.allSessions()[0]!;
    const sequenceBefore = w.ha.cache.get(HOA)!.sequence;
    t.equal(ha.stats.handshakes, 1);
    await w.run(3_600_000, 1_000);
    t.equal(m.mn.registration.state, 'registered', 'still registered');
    t.ok(w.ha.cache.get(HOA), 'binding kept');
    t.equal(haInits.n, 0, 'the HA never initiated a handshake');
    // A refresh every 0.85 x 600 s = 510 s: 7 in an hour, each on keys long expired (180 s).
    const refreshes = w.ha.cache.get(HOA)!.sequence - sequenceBefore;
    t.comment(`refresh BUs: ${refreshes}, MN initiations: ${mnInits.n}`);
    t.ok(refreshes >= 6 && refreshes <= 8, `refreshes (${refreshes})`);
    t.equal(mnInits.n, 1 + refreshes, 'one handshake per refresh, none in between');
    t.equal(ha.stats.handshakes, 1 + refreshes);
    t.notOk(m.mn.status().drops?.['signaling-send'], 'no BU lost for want of keys');
  },
);

void t.test('a busy member rekeys every REKEY_AFTER_TIME; no packet lost to it', async (t) => {
  const w = await World.create();
  const haInits = countInitiations(w.haUdp4);
  const { m, mnInits } = await registered(w, 600);
  const toHome: Uint8Array[] = [];
  w.haTun.onKernelReceive((p) => toHome.push(p));
  const toMn: Uint8Array[] = [];
  m.tun.onKernelReceive((p) => toMn.push(p));
  // A ping each second, both ways, for 400 s (stays below the 510 s refresh).
  for (let i = 0; i < 400; i++) {
    m.tun.inject([echo(HOA, SERVER, i, 100)]);
    w.haTun.inject([echo(SERVER, HOA, i, 100)]);
    await w.run(1_000, 50);
  }
  t.equal(toHome.length, 400, 'every packet up arrived');
  t.equal(toMn.length, 400, 'every packet down arrived');
  t.equal(haInits.n, 0, 'the HA never initiated: the MN keeps the channel fresh');
  // Rekeys at ~120 s, ~240 s, ~360 s after the first handshake.
  t.equal(mnInits.n, 1 + 3, 'the first handshake and three rekeys');
});

void t.test(
  'payload for a member whose keys expired while idle: the HA brings the channel back',
  async (t) => {
    const w = await World.create();
    const haInits = countInitiations(w.haUdp4);
    const { m } = await registered(w, 600);
    const toMn: Uint8Array[] = [];
    m.tun.onKernelReceive((p) => toMn.push(p));
    await w.run(200_000, 1_000); // idle past REJECT_AFTER_TIME
    t.equal(w.haEndpoint.allSessions()[0]!.established, false, 'the HA wiped the keys');
    w.haTun.inject([echo(SERVER, HOA, 1, 100)]);
    await w.run(100, 1);
    t.equal(haInits.n, 1, 'the HA initiates for traffic, at once');
    w.haTun.inject([echo(SERVER, HOA, 2, 100)]);
    await w.run(100, 1);
    t.ok(toMn.length >= 1, `traffic flows again (${toMn.length} of 2)`);
    t.equal(m.udp4.localPort > 0 && HA_PORT, HA_PORT);
  },
);
