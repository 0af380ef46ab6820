/**
 * The trust boundary (DESIGN.md §4, issue #13), attacked over the fakes with the real role code:
 * inner packets are not signaling. Each test performs the attack and asserts that nothing the
 * attacker aimed at changed: registration state and sequence, home prefixes, home-agent list,
 * HA channel, binding locator; no BU triggered; the attempt counted as a drop by reason.
 */
import t from 'tap';
import { DataKind } from '../../src/crypto/aead.js';
import type { PeerSession } from '../../src/crypto/endpoint.js';
import { encodeIcmpv6Packet, encodeMobilityPacket } from '../../src/wire/packet.js';
import { bindingUpdateFlags, type MobilityMessage } from '../../src/wire/types.js';
import { PATH_CHALLENGE_MAX_SENDS } from '../../src/protocol/path-validation.js';
import { HomeAgent } from '../../src/roles/ha/home-agent.js';
import { Logger } from '../../src/util/log.js';
import { endpoint, memberKey, T0 } from '../helpers/crypto.js';
import { FakeTun } from '../helpers/fake-tun.js';
import { HA4, HA_HOME_ADDRESS, HA_PORT, World, type MnHandle } from '../helpers/world.js';

const HOA = '2001:db8:100::10';
const MN4 = '203.0.113.10';
const ROGUE_HOA = '2001:db8:100::66';
const ROGUE4 = '203.0.113.66';
const VICTIM4 = '192.0.2.77';
const EVIL_PREFIX = '2001:db8:bad::';

async function registeredMn(w: World, peerRoles?: ('ha' | 'mn' | 'cn')[]): Promise<MnHandle> {
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    ...(peerRoles ? { peerRoles } : {}),
  });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  const took = await w.until(() => m.mn.registration.state === 'registered', 5000);
  if (took < 0) throw new Error('MN did not register');
  await w.run(3000); // DHAAD + MPS answered, the path validated: a quiet, settled member
  return m;
}

/** What an attacker aims at: must be identical before and after. */
function snapshot(w: World, m: MnHandle) {
  const st = m.mn.registration.status(T0 + w.clock.now());
  return {
    state: st.state,
    sequence: st.sequence,
    lastStatus: st.lastStatus,
    prefixes: JSON.stringify(m.mn.homePrefixes),
    homeAgents: JSON.stringify(m.mn.homeAgents),
    learned: JSON.stringify([...m.mn.learnedAgents.keys()]),
    signalingOut: m.mn.counters.signalingOut,
    binding: JSON.stringify(w.ha.cache.get(HOA)?.locator),
    bindingSequence: w.ha.cache.get(HOA)?.sequence,
  };
}

function mh(source: string, message: MobilityMessage): Uint8Array {
  return encodeMobilityPacket({ source, destination: HOA, message });
}

/** Forged home-agent signaling for the MN, as an internet host would write it. */
function forgeries(w: World, m: MnHandle): Uint8Array[] {
  const seq = m.mn.registration.status(T0 + w.clock.now()).sequence ?? 0;
  const ba = (status: number, sequence: number): MobilityMessage => ({
    kind: 'bindingAcknowledgement',
    status,
    flags: { K: false, R: false, P: false, T: false, B: false, S: false, D: false },
    sequence,
    lifetimeUnits: 100,
    options: [],
  });
  return [
    mh(HA_HOME_ADDRESS, { kind: 'bindingRefreshRequest', options: [] }),
    mh(HA_HOME_ADDRESS, ba(135, 0x1237)),
    mh(HA_HOME_ADDRESS, ba(129, (seq + 1) & 0xffff)),
    mh(HA_HOME_ADDRESS, { kind: 'bindingError', status: 2, homeAddress: HOA, options: [] }),
    encodeIcmpv6Packet({
      source: HA_HOME_ADDRESS,
      destination: HOA,
      message: {
        kind: 'mobilePrefixAdvertisement',
        identifier: 1,
        managed: false,
        other: false,
        options: [
          {
            type: 'prefixInformation',
            prefixLength: 64,
            onLink: true,
            autonomous: true,
            routerAddress: false,
            validLifetime: 3600,
            preferredLifetime: 3600,
            prefix: EVIL_PREFIX,
          },
        ],
      },
    }),
    encodeIcmpv6Packet({
      source: HA_HOME_ADDRESS,
      destination: HOA,
      message: {
        kind: 'haadReply',
        identifier: 1,
        mobileRouter: false,
        homeAgentAddresses: ['2001:db8:100::bad'],
      },
    }),
  ];
}

void t.test('forged HA signaling from the home side is not relayed into the channel', async (t) => {
  const w = await World.create({ delayMs: 2 });
  const m = await registeredMn(w);
  const before = snapshot(w, m);
  const dropped = w.ha.drops.get('signaling-to-member');
  const forged = forgeries(w, m);
  for (let burst = 0; burst < 3; burst++) {
    w.haTun.inject(forged);
    await w.run(50);
  }
  await w.run(2000);
  t.same(snapshot(w, m), before, 'state, sequence, prefixes, HA list, binding unchanged; no BU');
  t.equal(w.ha.drops.get('signaling-to-member') - dropped, 3 * forged.length, 'each counted');
  t.ok(
    (w.ha.status().drops?.['signaling-to-member'] ?? 0) >= 3 * forged.length,
    'visible in status drops',
  );
});

void t.test("the HA kernel's ICMPv6 Redirects are not relayed to a member", async (t) => {
  const w = await World.create({ delayMs: 2 });
  const m = await registeredMn(w);
  const received: Uint8Array[] = [];
  m.tun.onKernelReceive((p) => received.push(p));
  const redirect = encodeIcmpv6Packet({
    source: 'fe80::1',
    destination: HOA,
    message: { kind: 'echoRequest', identifier: 1, sequence: 1, data: new Uint8Array(32) },
  });
  redirect[40] = 137; // ICMPv6 Redirect (RFC 4861 §4.5); the classifier reads the type
  w.haTun.inject([redirect]);
  await w.run(50);
  t.equal(received.length, 0, 'nothing reached the MN');
  t.equal(w.ha.drops.get('redirect-to-member'), 1, 'counted');
});

void t.test('forged HA signaling relayed as payload in the HA channel is ignored', async (t) => {
  // As if the home agent had forwarded someone else's packets: the MN itself refuses them.
  const w = await World.create({ delayMs: 2 });
  const m = await registeredMn(w);
  const before = snapshot(w, m);
  const session = w.haEndpoint.session(m.key.publicKey)!;
  const forged = forgeries(w, m);
  const drops = m.mn.drops.get('forwarded-signaling');
  for (const p of forged) {
    const msg = w.haEndpoint.seal(session, p, T0 + w.clock.now(), DataKind.PAYLOAD)!;
    w.haUdp4.send(msg, MN4, m.udp4.localPort);
  }
  await w.run(2000);
  t.same(snapshot(w, m), before, 'nothing changed, no BU sent');
  t.equal(m.mn.drops.get('forwarded-signaling') - drops, forged.length, 'each counted');
});

void t.test('the HA own signaling still works: a BRR as SIGNALING brings a BU', async (t) => {
  // The control experiment for the two tests above: the same BRR, written by the HA itself.
  const w = await World.create({ delayMs: 2 });
  const m = await registeredMn(w);
  const before = m.mn.counters.signalingOut;
  const session = w.haEndpoint.session(m.key.publicKey)!;
  const brr = mh(HA_HOME_ADDRESS, { kind: 'bindingRefreshRequest', options: [] });
  w.haUdp4.send(
    w.haEndpoint.seal(session, brr, T0 + w.clock.now(), DataKind.SIGNALING)!,
    MN4,
    m.udp4.localPort,
  );
  await w.run(100);
  t.ok(m.mn.counters.signalingOut > before, 'the MN answered with a BU');
  t.equal(m.mn.registration.state, 'registered');
});

void t.test('a DHAAD Reply that answers no request of ours is dropped', async (t) => {
  const w = await World.create({ delayMs: 2 });
  const m = await registeredMn(w);
  const before = snapshot(w, m);
  const session = w.haEndpoint.session(m.key.publicKey)!;
  const reply = encodeIcmpv6Packet({
    source: HA_HOME_ADDRESS,
    destination: HOA,
    message: {
      kind: 'haadReply',
      identifier: 0xbeef,
      mobileRouter: false,
      homeAgentAddresses: ['2001:db8:100::bad'],
    },
  });
  w.haUdp4.send(
    w.haEndpoint.seal(session, reply, T0 + w.clock.now(), DataKind.SIGNALING)!,
    MN4,
    m.udp4.localPort,
  );
  await w.run(100);
  t.same(snapshot(w, m), before, 'home-agent list unchanged');
  t.equal(m.mn.drops.get('dhaad-reply-unsolicited'), 1);
});

/** A member with a valid `mn` certificate that opens a channel to the MN and speaks as an HA. */
async function rogueMember(w: World, target: MnHandle) {
  const rogue = endpoint(
    w.ca,
    { name: 'rogue', role: 'mn', key: memberKey(0x91), addresses: [ROGUE_HOA] },
    ['mn', 'cn'],
  );
  const udp = w.net.endpoint({ address: ROGUE4 });
  let session: PeerSession | undefined;
  udp.onDatagrams((batch) => {
    for (let i = 0; i < batch.count; i++) {
      const r = rogue.receive(batch.packet(i).slice(), T0 + w.clock.now());
      if (r.kind === 'established') session = r.session;
    }
  });
  udp.send(rogue.connect(target.key.publicKey, T0 + w.clock.now()), MN4, target.udp4.localPort);
  await w.until(() => session !== undefined, 1000);
  return { rogue, udp, session };
}

void t.test('a member speaking as the HA on its own channel changes nothing', async (t) => {
  const w = await World.create({ delayMs: 2 });
  // Route optimization on: the MN accepts member certificates on direct channels.
  const m = await registeredMn(w, ['ha', 'mn', 'cn']);
  const before = snapshot(w, m);
  const { rogue, udp, session } = await rogueMember(w, m);
  t.ok(session, 'the rogue member completed a handshake with the MN');
  for (const p of forgeries(w, m)) {
    udp.send(
      rogue.seal(session!, p, T0 + w.clock.now(), DataKind.SIGNALING)!,
      MN4,
      m.udp4.localPort,
    );
  }
  await w.run(2000);
  t.same(snapshot(w, m), before, 'nothing changed, no BU sent');
  t.ok(m.mn.drops.get('not-home-agent') >= 1, 'counted');
});

void t.test(
  'before the HA channel exists, a member completing a handshake is not the HA',
  async (t) => {
    const w = await World.create({ delayMs: 2 });
    const m = w.mobileNode({
      homeAddress: HOA,
      address4: MN4,
      address6: '2001:db8:3::10',
      peerRoles: ['ha', 'mn', 'cn'],
    });
    m.mn.start(); // no care-of address yet: no HA channel
    await w.run(100);
    const { rogue, udp, session } = await rogueMember(w, m);
    t.ok(session, 'the rogue member completed a handshake first');
    const ba = mh(HA_HOME_ADDRESS, {
      kind: 'bindingAcknowledgement',
      status: 0,
      flags: { K: false, R: false, P: false, T: false, B: false, S: false, D: false },
      sequence: 1,
      lifetimeUnits: 100,
      options: [],
    });
    udp.send(
      rogue.seal(session!, ba, T0 + w.clock.now(), DataKind.SIGNALING)!,
      MN4,
      m.udp4.localPort,
    );
    await w.run(200);
    t.not(m.mn.registration.state, 'registered', 'no registration from a member');
    // The real HA becomes reachable: the MN registers there, with the HA's key.
    m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
    m.careOf.changed();
    t.ok((await w.until(() => m.mn.registration.state === 'registered', 5000)) >= 0, 'registered');
    t.ok(w.ha.cache.get(HOA), 'the binding is at the real home agent');
  },
);

void t.test('a BU from a spoofed outer source does not stream data at the victim', async (t) => {
  const w = await World.create({ delayMs: 2 });
  // The attacker is a registered member with its own home address and channel.
  const rogue = endpoint(
    w.ca,
    { name: 'rogue', role: 'mn', key: memberKey(0x92), addresses: [ROGUE_HOA] },
    ['ha'],
  );
  const udp = w.net.endpoint({ address: ROGUE4 });
  let session: PeerSession | undefined;
  let dataAtRogue = 0;
  udp.onDatagrams((batch) => {
    for (let i = 0; i < batch.count; i++) {
      const copy = batch.packet(i).slice();
      const r = rogue.receive(copy, T0 + w.clock.now());
      if (r.kind === 'established') session = r.session;
      if (r.kind === 'data' && !r.signaling) dataAtRogue++;
    }
  });
  // The victim: any host; here it records every datagram that reaches it.
  const victim = w.net.endpoint({ address: VICTIM4, port: 5201 });
  const atVictim: number[] = [];
  victim.onDatagrams((batch) => {
    for (let i = 0; i < batch.count; i++) atVictim.push(batch.lengths[i]!);
  });
  udp.send(rogue.connect(w.haKey.publicKey, T0 + w.clock.now()), HA4, HA_PORT);
  await w.until(() => session !== undefined, 1000);
  const bu = (sequence: number, address: string): Uint8Array =>
    rogue.seal(
      session!,
      encodeMobilityPacket({
        source: ROGUE_HOA,
        destination: HA_HOME_ADDRESS,
        message: {
          kind: 'bindingUpdate',
          sequence,
          flags: bindingUpdateFlags({ A: true, H: true }),
          lifetimeUnits: 50,
          options: [{ type: 'ipv4CareOfAddress', address }],
        },
      }),
      T0 + w.clock.now(),
      DataKind.SIGNALING,
    )!;
  udp.send(bu(1, ROGUE4), HA4, HA_PORT);
  t.ok((await w.until(() => w.ha.cache.get(ROGUE_HOA) !== undefined, 1000)) >= 0, 'registered');
  await w.run(50);

  // The attack: the next BU, sent with the victim's address and port as its outer source.
  const spoofed = bu(2, VICTIM4);
  victim.send(spoofed, HA4, HA_PORT);
  await w.run(20);
  t.equal(w.ha.cache.get(ROGUE_HOA)?.locator.address, VICTIM4, 'the BU itself is accepted');
  // A download the attacker asked for: 200 full-size packets to its home address.
  const big = (i: number) =>
    encodeIcmpv6Packet({
      source: '2001:db8:100::5',
      destination: ROGUE_HOA,
      message: { kind: 'echoRequest', identifier: 1, sequence: i, data: new Uint8Array(1200) },
    });
  for (let i = 0; i < 200; i++) {
    w.haTun.inject([big(i)]);
    if (i % 10 === 9) await w.run(5);
  }
  await w.run(3000); // every challenge retransmission has happened
  const bytes = atVictim.reduce((a, b) => a + b, 0);
  t.ok(
    atVictim.length <= 1 + PATH_CHALLENGE_MAX_SENDS,
    `the victim got ${atVictim.length} datagrams (the BA and the challenges), no data`,
  );
  t.ok(bytes <= 3 * spoofed.length, `${bytes} bytes <= 3 x the spoofed BU (${spoofed.length})`);
  t.ok(dataAtRogue >= 190, `the data went to the validated locator instead (${dataAtRogue})`);
  t.ok(w.ha.counters.pathChallenges >= 1, 'a path challenge was sent');
});

void t.test('a real move: data follows once the challenge is answered', async (t) => {
  const w = await World.create({ delayMs: 2 });
  const m = await registeredMn(w);
  const received: Uint8Array[] = [];
  m.tun.onKernelReceive((p) => received.push(p));
  w.net.move(m.udp4, '198.51.100.50');
  m.careOf.candidates = [{ family: 4, localAddress: '198.51.100.50' }];
  m.careOf.changed();
  const took = await w.until(() => w.ha.cache.get(HOA)?.locator.address === '198.51.100.50', 2000);
  t.ok(took >= 0, 'binding moved');
  const validated = await w.until(
    () => w.ha.status().bindings.find((b) => b.homeAddress === HOA)?.path === 'validated',
    100,
  );
  t.ok(validated >= 0, `the new locator validated ${validated} ms after the move`);
  t.equal(w.ha.drops.get('path-response-unmatched'), 0);
  // The MN stays silent: only a validated path, not the anti-amplification budget, carries this.
  const before = received.length;
  for (let i = 0; i < 50; i++) {
    w.haTun.inject([
      encodeIcmpv6Packet({
        source: '2001:db8:100::5',
        destination: HOA,
        message: { kind: 'echoRequest', identifier: 4, sequence: i, data: new Uint8Array(1200) },
      }),
    ]);
  }
  await w.run(50);
  t.equal(received.length - before, 50, 'a download to the silent MN arrives whole');
  const ping = encodeIcmpv6Packet({
    source: '2001:db8:100::5',
    destination: HOA,
    message: { kind: 'echoRequest', identifier: 2, sequence: 1, data: new Uint8Array(64) },
  });
  t.ok(
    (await w.until(
      () => {
        w.haTun.inject([ping]);
        return received.length > 0;
      },
      200,
      2,
    )) >= 0,
    'traffic reaches the MN on its new network within a few round trips',
  );
});

void t.test('failover never makes a member (role mn) the home agent', async (t) => {
  // An MPA of the genuine HA lists a second "home agent" whose key belongs to a member
  // certificate (an operator's mistake, or a member that got its key listed). The MN accepts
  // member certificates on direct channels (route optimization), but not as its HA.
  const w = await World.create();
  const ROGUE_HA = '2001:db8:100::2';
  const ROGUE_HA4 = '198.51.100.2';
  const key = memberKey(0x93);
  const udp4 = w.net.endpoint({ address: ROGUE_HA4, port: 4192 });
  const rogueEnv = {
    endpoint: endpoint(
      w.ca,
      { name: 'member', role: 'mn', key, addresses: ['2001:db8:100::/64'] },
      ['mn', 'cn'],
    ),
    tun: new FakeTun({ name: 'rogue-tun' }),
    udp4,
    udp6: undefined,
    clock: w.clock.createClock(),
    epochOffsetMs: T0,
    log: Logger.silent(),
  };
  const rogueHa = new HomeAgent(rogueEnv, {
    homePrefix: '2001:db8:100::/64',
    homeAgentAddress: ROGUE_HA,
    maxLifetimeSeconds: 600,
    natKeepaliveSeconds: 110,
    maxBindings: 100,
  });
  rogueHa.start();
  t.teardown(() => udp4.close());
  w.ha.setDiscovery({
    homeAgents: [
      { address: HA_HOME_ADDRESS, preference: 10, lifetime: 1800 },
      {
        address: ROGUE_HA,
        preference: 5,
        lifetime: 600,
        underlay4: ROGUE_HA4,
        port: 4192,
        publicKey: key.publicKey,
      },
    ],
    prefixes: [
      { address: '2001:db8:100::', length: 64, validLifetime: 86400, preferredLifetime: 86400 },
    ],
  });
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    peerRoles: ['ha', 'mn', 'cn'],
    options: { probeIntervalMs: 1000, probeTimeoutMs: 300, probeAttempts: 3 },
  });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  t.ok((await w.until(() => m.mn.learnedAgents.has(ROGUE_HA))) >= 0, 'the MPA listed it');
  // The genuine HA goes silent: the MN fails over to the next one it learned.
  w.haUdp4.close();
  w.haUdp6.close();
  for (let i = 0; i < 200; i++) {
    m.tun.inject([
      encodeIcmpv6Packet({
        source: HOA,
        destination: '2001:db8:100::5',
        message: { kind: 'echoRequest', identifier: 3, sequence: i, data: new Uint8Array(16) },
      }),
    ]);
    await w.run(50, 10);
  }
  t.ok(
    m.events.some((e) => e.event === 'home-agent-switch'),
    'the MN tried the next home agent',
  );
  t.equal(rogueHa.cache.get(HOA), undefined, 'no registration at the member');
  t.not(m.mn.registration.state, 'registered', 'not registered anywhere');
  t.ok(m.mn.drops.get('home-agent-certificate') >= 1, 'the member certificate was refused');
  t.equal(rogueHa.counters.tunnelPacketsIn, 0, 'no traffic reached the member');
});
