/**
 * Movement beyond plain moves, over fakes: NAT rebinding followed at once (the HA's Binding
 * Refresh Request to the new mapping, answered by a BU), NUD-like probing when nothing comes
 * back, path loss -> new handshake, sleep/resume (wall clock jump), returning home
 * (deregistration, HoA moved) and leaving again, HA address change by re-resolution.
 */
import t from 'tap';
import { T0 } from '../helpers/crypto.js';
import { World, HA4, HA_PORT, HOME_LINK, RecordingHomeAddress } from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const HOA = '2001:db8:100::10';
const SERVER = '2001:db8:100::5';
const MN4 = '192.0.2.10';

void t.test('NAT rebinding: the HA hints with a BRR, the BU moves the binding', async (t) => {
  const w = await World.create();
  const nat = w.net.nat({ publicAddress: '198.51.100.77' });
  const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
  w.net.setNat(m.udp4, nat);
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  t.ok((await w.until(() => m.mn.registration.state === 'registered')) >= 0, 'registered');
  const before = w.ha.cache.get(HOA)?.locator.port;
  const toMn: Uint8Array[] = [];
  m.tun.onKernelReceive((p) => toMn.push(p));

  nat.rebind();
  const newPort = nat.mappedPort(m.udp4);
  t.not(newPort, before, 'the NAT gave a new public port');
  // Server -> MN now goes to the stale mapping; the MN keeps sending.
  const start = w.clock.now();
  m.tun.inject([echo(HOA, SERVER, 1)]);
  const took = await w.until(() => w.ha.cache.get(HOA)?.locator.port === newPort, 2000);
  t.ok(took >= 0, 'HA binding follows the new mapping');
  t.ok(w.clock.now() - start <= 30, `within a few one-way delays (${w.clock.now() - start} ms)`);
  w.haTun.inject([echo(SERVER, HOA, 2)]);
  await w.run(20);
  t.equal(toMn.length, 1, 'server -> MN flows again');
  t.equal(m.mn.counters.probes, 0, 'no silence probe was needed');
});

/** A registered MN that probes after 500 ms of silence, 3 unanswered BUs = path lost. */
async function registeredProbing() {
  const w = await World.create();
  const m = await w.registeredMobileNode({
    homeAddress: HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    options: { probeIntervalMs: 500, probeTimeoutMs: 200, probeAttempts: 3 },
  });
  return { w, m };
}

void t.test('silence probe, then path lost: new handshake, recovery', async (t) => {
  const { w, m } = await registeredProbing();
  // Everything from the HA is lost from now on.
  w.haUdp4.sendConditions = { loss: 1 };
  m.tun.inject([echo(HOA, SERVER, 1)]);
  const probed = await w.until(() => m.events.some((e) => e.event === 'probe'), 2000);
  t.ok(probed >= 450 && probed <= 600, `probe after ~probeInterval of silence (${probed} ms)`);
  const lost = await w.until(() => m.events.some((e) => e.event === 'path-lost'), 5000);
  t.ok(lost >= 0, `path lost after probeAttempts unanswered BUs (${lost} ms later)`);
  t.equal(m.mn.counters.pathLost, 1);
  w.haUdp4.sendConditions = {};
  const back = await w.until(() => m.mn.registration.state === 'registered', 10_000);
  t.ok(back >= 0, `registered again once the HA answers (${back} ms)`);
});

void t.test(
  'sends its own socket refuses (a local firewall, EPERM) still lead to a path loss',
  async (t) => {
    const { w, m } = await registeredProbing();
    await w.run(100); // the discovery exchange after the BA is over
    m.udp4.refuseSends = true;
    m.udp6.refuseSends = true;
    const dropsBefore = m.mn.drops.get('udp-send') ?? 0;
    m.tun.inject([echo(HOA, SERVER, 1)]);
    t.equal(
      (m.mn.drops.get('udp-send') ?? 0) - dropsBefore,
      1,
      'counted as a refused send, not as missing keys',
    );
    const probed = await w.until(() => m.events.some((e) => e.event === 'probe'), 2000);
    // The silence counts from the HA's last packet (its discovery reply, ~100 ms earlier).
    t.ok(probed >= 300 && probed <= 600, `probe within ~probeInterval (${probed} ms)`);
    const lost = await w.until(() => m.events.some((e) => e.event === 'path-lost'), 5000);
    t.ok(lost >= 0, `path lost although nothing could be sent (${lost} ms later)`);
    m.udp4.refuseSends = false;
    m.udp6.refuseSends = false;
    const back = await w.until(() => m.mn.registration.state === 'registered', 10_000);
    t.ok(back >= 0, `registered again once sends pass (${back} ms)`);
  },
);

void t.test('no probe while traffic comes back', async (t) => {
  const w = await World.create();
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    options: { probeIntervalMs: 300 },
  });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  for (let i = 0; i < 20; i++) {
    m.tun.inject([echo(HOA, SERVER, i)]);
    await w.run(50);
    w.haTun.inject([echo(SERVER, HOA, i)]);
    await w.run(50);
  }
  t.equal(m.mn.counters.probes, 0, 'two seconds of two-way traffic: no probe');
});

void t.test('sleep/resume: a wall-clock jump re-registers at once', async (t) => {
  const w = await World.create();
  let slept = 0;
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    lifetime: 60,
    options: { wallClock: () => T0 + w.clock.now() + slept },
  });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  const seq = m.mn.registration.status(T0 + w.clock.now()).sequence;
  slept = 3_600_000; // the host slept an hour: monotonic time did not move
  m.mn.status(); // nothing happens until the next timer
  const took = await w.until(() => m.events.some((e) => e.event === 'resume'), 60_000, 10);
  t.ok(took >= 0, 'resume noticed at the next timer');
  await w.until(() => m.mn.registration.state === 'registered');
  t.not(m.mn.registration.status(T0 + w.clock.now()).sequence, seq, 'a new BU was acknowledged');
});

void t.test('returning home: deregistration, HoA moved, and back', async (t) => {
  const w = await World.create();
  const home = new RecordingHomeAddress();
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    options: { homeLink: home },
  });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  t.ok(w.homeLink.bound.has(HOA), 'HA proxies while away');

  // Home: the MN's interface home0 (index 7) is on the HA's home link; the returning-home BU
  // goes out of it (test/sim/returning-home.test.ts has the attacks).
  w.net.attach(m.udp6, HOME_LINK, { ifindex: 7, linkLocal: 'fe80::10' });
  m.careOf.candidates = [
    { family: 6, localAddress: HOA, homeLink: 'home0', homeLinkIndex: 7 },
    { family: 4, localAddress: MN4 },
  ];
  m.careOf.changed();
  const took = await w.until(() => home.calls.length >= 2, 3000);
  t.ok(took >= 0, `home (${took} ms)`);
  t.equal(m.mn.registration.state, 'deregistered');
  t.same(
    home.calls,
    ['enter home0', 'announce home0'],
    'HoA moved onto the home link after the BA',
  );
  t.equal(w.ha.cache.get(HOA), undefined, 'binding gone at the HA');
  t.notOk(w.homeLink.bound.has(HOA), 'HA withdrew proxy ND and the route');

  // Away again.
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.careOf.changed();
  t.ok((await w.until(() => m.mn.registration.state === 'registered', 3000)) >= 0, 'registered');
  t.same(home.calls, ['enter home0', 'announce home0', 'leave home0'], 'HoA back on the TUN');
  t.ok(w.homeLink.bound.has(HOA), 'HA proxies again');
  t.same(
    w.homeLink.detections,
    [[HOA]],
    'DAD for the first binding only: leaving home, the member itself held the address',
  );
  t.same(
    m.events.map((e) => e.event).filter((e) => !['home-agents', 'home-prefix'].includes(e)),
    [
      'attach',
      'registered',
      'home-candidate',
      'deregistered',
      'home',
      'left-home',
      'move',
      'registered',
    ],
  );
});

void t.test('HA address change: re-resolved after the path is lost', async (t) => {
  const w = await World.create();
  const NEW_HA4 = '198.51.100.9';
  let resolved = HA4;
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    options: {
      probeIntervalMs: 300,
      probeTimeoutMs: 200,
      probeAttempts: 2,
      resolveAgents: () => Promise.resolve({ agent4: resolved }),
    },
  });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  // The HA is renumbered; DNS already says so.
  w.net.move(w.haUdp4, NEW_HA4, HA_PORT);
  resolved = NEW_HA4;
  m.tun.inject([echo(HOA, SERVER, 1)]);
  const took = await w.until(
    () => w.ha.cache.get(HOA) !== undefined && m.events.some((e) => e.event === 'agent-resolved'),
    10_000,
  );
  t.ok(took >= 0, 'resolved the new address');
  const back = await w.until(
    () =>
      m.mn.registration.state === 'registered' &&
      m.mn.status().homeAgent === `${NEW_HA4}:${HA_PORT}`,
    10_000,
  );
  t.ok(back >= 0, `registered with the HA at its new address (${took + back} ms in all)`);
});

void t.test('DHAAD and mobile prefix discovery inside the channel', async (t) => {
  const w = await World.create();
  const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  const toTun: Uint8Array[] = [];
  m.tun.onKernelReceive((p) => toTun.push(p));
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  const delay = w.net.conditions.delayMs ?? 0;
  const took = await w.until(
    () => m.mn.homeAgents.length > 0 && m.mn.homePrefixes.length > 0,
    1000,
  );
  t.ok(
    took >= 0 && took <= 2 * delay,
    `DHAAD Reply and MPA within a round trip (${2 * delay} ms) of the registration (${took} ms)`,
  );
  t.same(m.mn.homeAgents, ['2001:db8:100::1'], 'DHAAD Reply lists the HA');
  t.same(
    m.mn.homePrefixes,
    [{ prefix: '2001:db8:100::/64', validLifetime: 0xffffffff, preferredLifetime: 0xffffffff }],
    'MPA carries the home prefix',
  );
  t.equal(toTun.length, 0, 'discovery stays out of the TUN');
  // An unsolicited MPA (a prefix change at the HA) reaches the MN.
  m.mn.homePrefixes = [];
  w.ha.advertisePrefix();
  const mpa = await w.until(() => m.mn.homePrefixes.length > 0, 1000);
  t.ok(mpa >= 0 && mpa <= delay, `unsolicited MPA arrives after one one-way delay (${mpa} ms)`);
  t.ok(m.events.some((e) => e.event === 'home-prefix'));
});
