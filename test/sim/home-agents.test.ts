/**
 * Several home agents of one home prefix (issue 6), on fakes: the DHAAD Reply follows the
 * configured preferences (ties in random order), the MPA tells the MN where each HA is; a
 * changed configuration reaches registered MNs as an unsolicited MPA, retransmitted until the
 * MN's BU acknowledges it (RFC 6275 §10.6.2, §11.4.3); when its HA dies the MN fails over to the
 * next one it learned, with a new channel (that HA's own key) and a new registration.
 */
import t from 'tap';
import { HomeAgent } from '../../src/roles/ha/home-agent.js';
import type { DiscoveryConfig } from '../../src/protocol/home-agent-discovery.js';
import type { NodeEnvironment } from '../../src/roles/common.js';
import { Logger } from '../../src/util/log.js';
import { DataKind } from '../../src/crypto/aead.js';
import { encodeMobilityPacket } from '../../src/wire/packet.js';
import { endpoint, memberKey, T0 } from '../helpers/crypto.js';
import { FakeTun } from '../helpers/fake-tun.js';
import { HA_HOME_ADDRESS, HOME_PREFIX, World } from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const HOA = '2001:db8:100::10';
/** A host beyond the HA, on the home link. */
const SERVER = '2001:db8:100::5';
const MN4 = '203.0.113.10';
const HA2_HOME = '2001:db8:100::2';
const HA2_4 = '198.51.100.2';
const HA2_PORT = 4192;
const INFINITE = 0xffffffff;

function discovery(ha2Key: Uint8Array, ha1Pref: number, ha2Pref: number): DiscoveryConfig {
  return {
    homeAgents: [
      { address: HA_HOME_ADDRESS, preference: ha1Pref, lifetime: 1800 },
      {
        address: HA2_HOME,
        preference: ha2Pref,
        lifetime: 600,
        underlay4: HA2_4,
        port: HA2_PORT,
        publicKey: ha2Key,
      },
      { address: '2001:db8:100::3', preference: -5, lifetime: 60, underlay4: '198.51.100.3' },
    ],
    prefixes: [
      {
        address: '2001:db8:100::',
        length: 64,
        validLifetime: INFINITE,
        preferredLifetime: INFINITE,
      },
    ],
  };
}

/** A second home agent of the same prefix on the world's network, with its own identity. */
function secondHomeAgent(w: World): { ha: HomeAgent; key: Uint8Array; close(): void } {
  const key = memberKey(0x12);
  const udp4 = w.net.endpoint({ address: HA2_4, port: HA2_PORT });
  const env: NodeEnvironment = {
    endpoint: endpoint(w.ca, { name: 'ha2', role: 'ha', key, addresses: [HOME_PREFIX] }, ['mn']),
    tun: new FakeTun({ name: 'ha2-tun' }),
    udp4,
    udp6: undefined,
    clock: w.clock.createClock(),
    epochOffsetMs: T0,
    log: Logger.silent(),
  };
  const ha = new HomeAgent(env, {
    homePrefix: HOME_PREFIX,
    homeAgentAddress: HA2_HOME,
    maxLifetimeSeconds: 600,
    natKeepaliveSeconds: 110,
    maxBindings: 100,
  });
  ha.start();
  return { ha, key: key.publicKey, close: () => udp4.close() };
}

void t.test('DHAAD Reply order and MPA contents follow the configuration', async (t) => {
  const w = await World.create();
  const ha2Key = memberKey(0x12).publicKey;
  w.ha.setDiscovery(discovery(ha2Key, 1, 7));
  const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  t.ok(
    (await w.until(() => m.mn.learnedAgents.size === 3 && m.mn.homeAgents.length === 3)) >= 0,
    'DHAAD Reply and MPA: three home agents learned',
  );
  t.same(m.mn.homeAgents, [HA2_HOME, HA_HOME_ADDRESS, '2001:db8:100::3'], 'by preference');
  const ha2 = m.mn.learnedAgents.get(HA2_HOME);
  t.equal(ha2?.underlay4, HA2_4);
  t.equal(ha2?.port, HA2_PORT);
  t.same(ha2?.publicKey, ha2Key, "HA2's own key travels in the MPA");
  t.equal(ha2?.preference, 7);
  t.equal(m.mn.learnedAgents.get('2001:db8:100::3')?.port, undefined, 'no port announced');
  const list = m.mn.failoverList();
  t.same(
    list.map((c) => [c.address, c.agent4, c.port]),
    [
      [HA2_HOME, HA2_4, HA2_PORT],
      [HA_HOME_ADDRESS, '198.51.100.1', 4191],
      ['2001:db8:100::3', '198.51.100.3', 4191],
    ],
    'failover candidates in DHAAD order; the configured HA with its configured addresses',
  );
  const st = m.mn.status();
  t.same(
    st.homeAgents?.map((a) => [a.address, a.current, a.dhaad, a.usable, a.preference]),
    [
      [HA2_HOME, false, true, true, 7],
      [HA_HOME_ADDRESS, true, true, true, 1],
      ['2001:db8:100::3', false, true, true, -5],
    ],
  );

  // Equal preferences: every order shows up over a few DHAAD rounds.
  w.ha.setDiscovery(discovery(ha2Key, 3, 3));
  const orders = new Set<string>();
  for (let i = 0; i < 40 && orders.size < 2; i++) {
    m.mn.homeAgents = [];
    m.mn.discover();
    await w.until(() => m.mn.homeAgents.length === 3, 1000);
    orders.add(m.mn.homeAgents.slice(0, 2).join(' '));
    t.equal(m.mn.homeAgents[2], '2001:db8:100::3', 'the lower preference stays last');
  }
  t.equal(orders.size, 2, `ties come in random order: ${[...orders].join(' | ')}`);
});

void t.test('a lost DHAAD Reply / MPA: the MN asks again after 3 s', async (t) => {
  const w = await World.create();
  const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  await w.until(() => m.mn.homeAgents.length === 1 && m.mn.homePrefixes.length === 1);
  m.mn.homeAgents = [];
  m.mn.homePrefixes = [];
  w.haUdp4.sendConditions = { loss: 1 }; // every answer of the HA is lost
  const start = w.clock.now();
  m.mn.discover();
  await w.run(2_000, 10);
  t.equal(m.mn.homeAgents.length, 0, 'the answers were lost');
  w.haUdp4.sendConditions = {};
  const took = await w.until(() => m.mn.homeAgents.length === 1 && m.mn.homePrefixes.length === 1);
  const at = w.clock.now() - start;
  t.ok(took >= 0 && at >= 3000 && at < 3200, `learned after the retransmission at ~3 s (${at} ms)`);
});

void t.test('a changed prefix set: unsolicited MPA, retransmitted until the BU', async (t) => {
  const w = await World.create();
  const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  await w.until(() => m.mn.homePrefixes.length === 1);
  const base = w.ha.discovery;
  t.notOk(w.ha.setDiscovery({ ...base }), 'the same information is no change');
  const renumbered: DiscoveryConfig = {
    ...base,
    prefixes: [
      { ...base.prefixes[0]!, preferredLifetime: 0, validLifetime: 3600 },
      {
        address: '2001:db8:200::',
        length: 64,
        validLifetime: INFINITE,
        preferredLifetime: INFINITE,
      },
    ],
  };
  const seqBefore = m.mn.registration.status(w.clock.now()).sequence ?? 0;
  t.ok(w.ha.setDiscovery(renumbered), 'changed');
  const delay = w.net.conditions.delayMs ?? 0;
  const took = await w.until(() => m.mn.homePrefixes.length === 2, 1000);
  t.ok(
    took >= 0 && took <= delay,
    `the unsolicited MPA: the MN has the new prefix list one one-way delay later (${took} ms)`,
  );
  t.same(m.mn.homePrefixes, [
    { prefix: '2001:db8:100::/64', validLifetime: 3600, preferredLifetime: 0 },
    { prefix: '2001:db8:200::/64', validLifetime: INFINITE, preferredLifetime: INFINITE },
  ]);
  t.ok(
    (await w.until(
      () => (m.mn.registration.status(w.clock.now()).sequence ?? 0) !== seqBefore,
      1000,
    )) >= 0,
    'the MN acknowledged with a BU',
  );
  await w.until(() => m.mn.registration.state === 'registered', 1000);
  await w.run(100, 5); // the BA is out
  const out = w.ha.counters.signalingOut;
  await w.run(30_000, 50);
  t.equal(
    w.ha.counters.signalingOut - out,
    0,
    'acknowledged: no retransmission (and no other signaling in 30 s)',
  );

  // The MN stops listening: three retransmissions (3, 6, 12 s apart), then no more.
  m.udp4.pause();
  const before = w.ha.counters.signalingOut;
  w.ha.setDiscovery(base);
  t.equal(w.ha.counters.signalingOut - before, 1, 'first MPA');
  await w.run(2_900, 50);
  t.equal(w.ha.counters.signalingOut - before, 1, 'nothing before PREFIX_ADV_TIMEOUT');
  await w.run(200, 50);
  t.equal(w.ha.counters.signalingOut - before, 2, 'first retransmission after 3 s');
  await w.run(6_000, 50);
  t.equal(w.ha.counters.signalingOut - before, 3, 'second 6 s later');
  await w.run(12_000, 50);
  t.equal(w.ha.counters.signalingOut - before, 4, 'third 12 s later');
  await w.run(40_000, 100);
  t.equal(w.ha.counters.signalingOut - before, 4, 'PREFIX_ADV_RETRIES reached: no more');
});

void t.test('the HA dies: the MN fails over to the next HA it learned', async (t) => {
  const w = await World.create();
  const two = secondHomeAgent(w);
  w.ha.setDiscovery(discovery(two.key, 10, 5));
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    options: { probeIntervalMs: 1000, probeTimeoutMs: 300, probeAttempts: 3 },
  });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  await w.until(() => m.mn.homeAgents.length === 3 && m.mn.learnedAgents.size === 3);
  t.equal(m.mn.homeAgentAddress, HA_HOME_ADDRESS);
  t.equal(two.ha.cache.get(HOA), undefined, 'HA2 has no binding yet');

  // HA1 goes away (its sockets close); the MN keeps sending, nothing comes back.
  w.haUdp4.close();
  w.haUdp6.close();
  const t0 = w.clock.now();
  let took = -1;
  for (let i = 0; i < 400 && took < 0; i++) {
    m.tun.inject(echo(HOA, SERVER, 1)); // traffic keeps going out, so silence is noticed
    await w.run(50, 10);
    if (m.mn.homeAgentAddress === HA2_HOME && m.mn.registration.state === 'registered')
      took = w.clock.now() - t0;
  }
  t.ok(took > 0, `registered at HA2 ${took} ms after HA1 went silent`);
  t.ok(m.events.some((e) => e.event === 'path-lost'));
  t.same(
    m.events.find((e) => e.event === 'home-agent-switch')?.fields,
    { from: HA_HOME_ADDRESS, to: HA2_HOME },
    'switched to the next in DHAAD order',
  );
  t.equal(two.ha.cache.get(HOA)?.homeAddress, HOA, 'HA2 holds the binding');
  t.equal(m.mn.status().homeAgent, `${HA2_4}:${HA2_PORT}`);
  // Data flows through HA2 now.
  const beforeIn = two.ha.counters.tunnelPacketsIn;
  m.tun.inject(echo(HOA, SERVER, 2));
  await w.run(100, 5);
  t.ok(two.ha.counters.tunnelPacketsIn > beforeIn, 'reverse-tunneled through HA2');
  two.close();
});

void t.test(
  'a home agent that refuses the registration (BA 130) makes the MN fail over at once',
  async (t) => {
    // HA1 holds one binding. The MN registers there and learns HA2; HA1 then loses the MN's
    // binding and another member takes the only place, so the MN's next BU gets status 130.
    const w = await World.create({ maxBindings: 1 });
    const two = secondHomeAgent(w);
    w.ha.setDiscovery(discovery(two.key, 10, 5));
    const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
    m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
    m.mn.start();
    await w.until(() => m.mn.registration.state === 'registered');
    await w.until(() => m.mn.learnedAgents.size === 3);
    w.ha.cache.delete(HOA, w.clock.now());
    const other = w.mobileNode({
      homeAddress: '2001:db8:100::11',
      address4: '203.0.113.11',
      address6: '2001:db8:3::11',
    });
    other.careOf.candidates = [{ family: 4, localAddress: '203.0.113.11' }];
    other.mn.start();
    await w.until(() => other.mn.registration.state === 'registered');
    t.equal(w.ha.cache.size, 1, 'HA1 is full');

    // A move: the BU to HA1 is refused for lack of room; the MN goes to HA2 without waiting.
    m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.12' }];
    m.careOf.changed();
    const took = await w.until(
      () => m.mn.homeAgentAddress === HA2_HOME && m.mn.registration.state === 'registered',
      3000,
    );
    t.ok(took >= 0, `registered at HA2 ${took} ms after the move`);
    t.ok(
      m.events.some((e) => e.event === 'failed' && e.fields.status === 130),
      'HA1 answered 130',
    );
    t.same(m.events.find((e) => e.event === 'home-agent-switch')?.fields, {
      from: HA_HOME_ADDRESS,
      to: HA2_HOME,
    });
    t.equal(two.ha.cache.get(HOA)?.homeAddress, HOA, 'HA2 holds the binding');
    two.close();
  },
);

void t.test(
  'a Binding Error status 2 from the home agent (it does not understand our BU) makes the MN fail over',
  async (t) => {
    const w = await World.create();
    const two = secondHomeAgent(w);
    w.ha.setDiscovery(discovery(two.key, 10, 5));
    const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
    m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
    m.mn.start();
    await w.until(() => m.mn.registration.state === 'registered');
    await w.until(() => m.mn.learnedAgents.size === 3);

    // HA1 sends, as its own signaling in the MN's channel, a Binding Error status 2.
    const session = w.haEndpoint.session(m.key.publicKey);
    t.ok(session, 'HA1 has the channel');
    const be = encodeMobilityPacket({
      source: HA_HOME_ADDRESS,
      destination: HOA,
      message: { kind: 'bindingError', status: 2, homeAddress: HOA, options: [] },
    });
    const sealed = w.haEndpoint.seal(session!, be, T0 + w.clock.now(), DataKind.SIGNALING)!;
    w.haUdp4.send(sealed, MN4, m.udp4.localPort);
    const took = await w.until(
      () => m.mn.homeAgentAddress === HA2_HOME && m.mn.registration.state === 'registered',
      3000,
    );
    t.ok(took >= 0, `registered at HA2 ${took} ms after the Binding Error`);
    t.equal(m.mn.drops.get('binding-error-2'), 1, 'counted');

    t.equal(two.ha.cache.get(HOA)?.homeAddress, HOA, 'HA2 holds the binding');
    two.close();
  },
);

void t.test(
  'refused by every home agent it knows: the MN tries again on a timer, not only after a move',
  async (t) => {
    // One HA with room for one binding, taken by another member: the MN's BU gets 130 and no
    // other HA is known. Once the place is free, the MN registers without moving.
    const w = await World.create({ maxBindings: 1 });
    await w.registeredMobileNode({
      homeAddress: '2001:db8:100::11',
      address4: '203.0.113.11',
      address6: '2001:db8:3::11',
    });
    const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
    m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
    m.mn.start();
    const refused = await w.until(
      () => m.events.some((e) => e.event === 'failed' && e.fields.status === 130),
      3000,
    );
    t.ok(refused >= 0, 'refused with 130 (the HA is full)');
    await w.run(1000);
    t.not(m.mn.registration.state, 'registered');
    w.ha.cache.delete('2001:db8:100::11', w.clock.now());
    const took = await w.until(() => m.mn.registration.state === 'registered', 10_000);
    t.ok(
      took >= 0 && took <= 5_000,
      `registered by the retry timer (${took} ms after the place freed)`,
    );
    t.equal(m.mn.homeAgentAddress, HA_HOME_ADDRESS);
  },
);
