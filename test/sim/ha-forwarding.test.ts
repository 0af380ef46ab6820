/**
 * HA-to-HA forwarding of a cluster on a virtual home network (issue 18), two real HomeAgents on
 * fakes (network, TUNs, clock) with the cluster's view given by the test (who serves which home
 * address; src/io/etcd-binding-store.ts provides it for real, test/lab/ha-cluster-virtual.test.ts
 * runs it against etcd). Each HA's "kernel" routes what the HA writes to its TUN for the home
 * prefix straight back into that TUN, as the kernel does for a prefix on the TUN.
 *   1. mn1 (at HA1) -> mn2 (at HA2): HA1 seals the packet on its channel to HA2, HA2 delivers it;
 *      mn2's answer comes back the same way. The channels' counts say so.
 *   2. The views disagree (HA1: HA2 serves it, HA2: HA1 does): HA2 drops the packet as
 *      ha-forward-not-served and never sends it back: no loop.
 *   3. Mobility signaling for mn2 in HA1's TUN (a Binding Refresh Request): HA1 does not
 *      forward it; the same sent by a peer on an HA channel is dropped by the receiver (4).
 *   4. A channel with an HA certificate of the prefix (a rogue or compromised peer) sends a BU
 *      for mn1's home address as its own signaling, a Binding Refresh Request for mn1 as
 *      payload, and data for an address not served there: nothing but drops, mn1's binding
 *      unchanged.
 *   5. The HA-to-HA channel idle past its keys' life (nothing rekeys an idle channel): the first
 *      packet for it is dropped (ha-forward-no-channel) and starts a handshake; the next ones
 *      cross to HA2 again.
 *   6. HA2 restarts (same key and address, within the lease: etcd's entry does not change, so
 *      HA1 keeps its session): HA2's handshake and its keepalive make HA1 send under the new
 *      keys at once; HA1's next forwarded packet reaches the new HA2.
 */
import t from 'tap';
import { DataKind } from '../../src/crypto/aead.js';
import type { PeerSession } from '../../src/crypto/endpoint.js';
import type { ClusterBinding } from '../../src/io/etcd-binding-store.js';
import type { NodeEnvironment } from '../../src/roles/common.js';
import { HomeAgent } from '../../src/roles/ha/home-agent.js';
import { Logger } from '../../src/util/log.js';
import { parseIpv6 } from '../../src/wire/address.js';
import { decodePacket, encodeMobilityPacket } from '../../src/wire/packet.js';
import { bindingUpdateFlags } from '../../src/wire/types.js';
import { endpoint, memberKey, T0 } from '../helpers/crypto.js';
import { FakeTun } from '../helpers/fake-tun.js';
import { echo } from '../helpers/packets.js';
import { HA4, HA_HOME_ADDRESS, HA_PORT, HOME_PREFIX, World } from '../helpers/world.js';

const HOA1 = '2001:db8:100::11';
const HOA2 = '2001:db8:100::12';
const HOA3 = '2001:db8:100::13';
const HA2_HOME = '2001:db8:100::2';
const HA2_4 = '198.51.100.2';

/** A cluster view: who serves each home address, as this HA last heard from etcd. */
function view(member: string, serving: Map<string, string>) {
  return {
    member,
    health: { state: 'ok' as const, since: 0, endpoints: [] },
    binding: (hoa: string): ClusterBinding | undefined => {
      const by = serving.get(hoa);
      return by === undefined
        ? undefined
        : {
            homeAddress: hoa,
            servingHa: by,
            sequence: 1,
            ownerKey: new Uint8Array(32),
            modRevision: '1',
          };
    },
  };
}

/** The kernel of a virtual home network: the home prefix (but the HA's address) back into the TUN. */
function loopPrefix(tun: FakeTun, haAddress: string): void {
  const prefix = parseIpv6('2001:db8:100::').subarray(0, 8);
  const own = parseIpv6(haAddress);
  tun.onKernelReceive((p) => {
    const dst = p.subarray(24, 40);
    if (p[0]! >> 4 !== 6 || !dst.subarray(0, 8).every((b, i) => b === prefix[i])) return;
    if (dst.every((b, i) => b === own[i])) return;
    queueMicrotask(() => tun.inject(p));
  });
}

const delivered = (tun: FakeTun, src: string, dst: string): number =>
  tun.written.filter((p) => {
    try {
      const d = decodePacket(p);
      return d.source === src && d.destination === dst;
    } catch {
      return false;
    }
  }).length;

void t.test('two HAs of a virtual home network forward to each other', async (t) => {
  const serving1 = new Map<string, string>();
  const serving2 = new Map<string, string>();
  const w = await World.create({
    cluster: view('ha1', serving1),
    forwardToPeers: true,
    haPeerRoles: ['mn', 'cn', 'ha'],
    haWallClockFollows: true,
  });
  const ha2Key = memberKey(0x21);
  const ha2Tun = new FakeTun({ name: 'ha2-tun' });
  /** HA2 (again after a restart: a new process with the same key and address). */
  const startHa2 = () => {
    const udp4 = w.net.endpoint({ address: HA2_4, port: HA_PORT });
    const env: NodeEnvironment = {
      endpoint: endpoint(
        w.ca,
        { name: 'ha2', role: 'ha', key: ha2Key, addresses: [HOME_PREFIX] },
        ['mn', 'ha'],
        { wallClock: () => T0 + w.clock.now() },
      ),
      tun: ha2Tun,
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
      cluster: view('ha2', serving2),
      forwardToPeers: true,
    });
    ha.start();
    return { ha, udp4 };
  };
  const first = startHa2();
  const ha2 = first.ha;
  const running = [w.ha, ha2];
  t.teardown(async () => {
    for (const ha of running) await ha.close();
  });
  loopPrefix(w.haTun, HA_HOME_ADDRESS);
  loopPrefix(ha2Tun, HA2_HOME);

  const mn1 = w.mobileNode({
    homeAddress: HOA1,
    address4: '203.0.113.11',
    address6: '2001:db8:3::11',
  });
  const mn2 = w.mobileNode({
    homeAddress: HOA2,
    address4: '203.0.113.12',
    address6: '2001:db8:3::12',
    options: {
      homeAgentAddress: HA2_HOME,
      agent4: HA2_4,
      agent6: undefined,
      agentPublicKey: ha2Key.publicKey,
    },
  });
  for (const m of [mn1, mn2]) {
    m.careOf.candidates = [
      { family: 4, localAddress: m === mn1 ? '203.0.113.11' : '203.0.113.12' },
    ];
    m.mn.start();
  }
  t.not(
    await w.until(
      () =>
        mn1.mn.registration.state === 'registered' && mn2.mn.registration.state === 'registered',
    ),
    -1,
    'both registered',
  );
  for (const s of [serving1, serving2]) {
    s.set(HOA1, 'ha1');
    s.set(HOA2, 'ha2');
  }
  w.ha.setClusterPeers([
    { member: 'ha2', publicKey: ha2Key.publicKey, address4: HA2_4, port: HA_PORT },
  ]);
  ha2.setClusterPeers([
    { member: 'ha1', publicKey: w.haKey.publicKey, address4: HA4, port: HA_PORT },
  ]);
  t.not(
    await w.until(
      () =>
        (w.ha.haChannels() ?? []).every((c) => c.established) &&
        (ha2.haChannels() ?? []).every((c) => c.established),
    ),
    -1,
    'the HA-to-HA channels are up',
  );

  // ---- 1. member to member across the two HAs ------------------------------------------
  mn1.tun.inject(echo(HOA1, HOA2, 1));
  t.not(await w.until(() => delivered(mn2.tun, HOA1, HOA2) === 1, 2_000), -1, 'mn2 got mn1 packet');
  mn2.tun.inject(echo(HOA2, HOA1, 2));
  t.not(await w.until(() => delivered(mn1.tun, HOA2, HOA1) === 1, 2_000), -1, 'and mn1 the answer');
  t.match(w.ha.haChannels(), [
    { member: 'ha2', established: true, forwardedOut: 1, forwardedIn: 1 },
  ]);
  t.match(ha2.haChannels(), [
    { member: 'ha1', established: true, forwardedOut: 1, forwardedIn: 1 },
  ]);

  // ---- 2. views that disagree: no loop ---------------------------------------------------
  serving1.set(HOA3, 'ha2');
  serving2.set(HOA3, 'ha1');
  w.haTun.inject(echo('2001:db8:300::5', HOA3, 3));
  t.not(
    await w.until(() => ha2.drops.get('ha-forward-not-served') === 1, 2_000),
    -1,
    'HA2 drops it',
  );
  await w.run(200);
  t.equal(ha2.haChannels()?.[0]?.forwardedOut, 1, 'and never sends it back');
  t.equal(w.ha.haChannels()?.[0]?.forwardedOut, 2, 'HA1 sent it once');

  // ---- 3. mobility signaling through the channel -----------------------------------------
  const brr = encodeMobilityPacket({
    source: HA_HOME_ADDRESS,
    destination: HOA2,
    message: { kind: 'bindingRefreshRequest', options: [] },
  });
  const before = ha2.cache.get(HOA2)!.sequence;
  w.haTun.inject(brr);
  t.not(
    await w.until(() => w.ha.drops.get('ha-forward-signaling') === 1, 2_000),
    -1,
    'HA1 does not forward a BRR for mn2',
  );
  await w.run(200);
  t.equal(w.ha.haChannels()?.[0]?.forwardedOut, 2, 'nothing more went to HA2');
  t.equal(ha2.cache.get(HOA2)!.sequence, before, 'mn2 sent no BU for it');

  // ---- 4. an HA certificate gains no member authority ------------------------------------
  const rogue = endpoint(
    w.ca,
    { name: 'rogue-ha', role: 'ha', key: memberKey(0x77), addresses: [HOME_PREFIX] },
    ['ha'],
    { wallClock: () => T0 + w.clock.now() },
  );
  const udp = w.net.endpoint({ address: '203.0.113.66' });
  let session: PeerSession | undefined;
  udp.onDatagrams((b) => {
    for (let i = 0; i < b.count; i++) {
      const r = rogue.receive(b.packet(i).slice(), T0 + w.clock.now());
      if (r.kind === 'established') session = r.session;
    }
  });
  udp.send(rogue.connect(w.haKey.publicKey, T0 + w.clock.now()), HA4, HA_PORT);
  t.not(await w.until(() => session !== undefined, 2_000), -1, 'the rogue HA channel is up');
  const pick = () => {
    const b = w.ha.cache.get(HOA1)!;
    return {
      locator: b.locator,
      sequence: b.sequence,
      careOf: b.careOfAddress,
      owner: [...b.ownerKey],
    };
  };
  const binding = pick();
  const bu = encodeMobilityPacket({
    source: HOA1,
    destination: HA_HOME_ADDRESS,
    message: {
      kind: 'bindingUpdate',
      sequence: (w.ha.cache.get(HOA1)!.sequence + 10) & 0xffff,
      flags: bindingUpdateFlags({ A: true, H: true }),
      lifetimeUnits: 150,
      options: [{ type: 'ipv4CareOfAddress', address: '203.0.113.66' }],
    },
  });
  const send = (p: Uint8Array, kind: DataKind) =>
    udp.send(rogue.seal(session!, p, T0 + w.clock.now(), kind)!, HA4, HA_PORT);
  send(bu, DataKind.SIGNALING);
  send(echo(HOA1, '2001:db8:300::5', 4), DataKind.PAYLOAD);
  send(echo(HOA2, HOA1, 5), DataKind.PAYLOAD);
  send(
    encodeMobilityPacket({
      source: HA_HOME_ADDRESS,
      destination: HOA1,
      message: { kind: 'bindingRefreshRequest', options: [] },
    }),
    DataKind.PAYLOAD,
  );
  t.not(
    await w.until(
      () =>
        w.ha.drops.get('ha-forward-signaling-kind') === 1 &&
        w.ha.drops.get('ha-forward-signaling') === 2 &&
        w.ha.drops.get('ha-forward-not-served') === 1,
      2_000,
    ),
    -1,
    'its BU, its BRR for mn1 and its data for an address not served here dropped by reason',
  );
  await w.run(200);
  t.same(pick(), binding, "mn1's binding unchanged (locator, sequence, care-of, owner)");
  t.equal(
    delivered(mn1.tun, HOA2, HOA1),
    2,
    'the forged packet to mn1 was delivered, as data only',
  );

  // ---- 5. an idle channel comes back with traffic ----------------------------------------
  await w.run(200_000, 1000); // past REJECT_AFTER_TIME (180 s); the members refresh meanwhile
  t.equal(w.ha.haChannels()?.[0]?.established, false, 'the idle channel lost its keys');
  const noChannel = w.ha.drops.get('ha-forward-no-channel');
  // A packet every 100 ms into HA1's TUN (a host beyond HA1), as retransmissions would come.
  // (Whether HA2 then reaches mn2 is its member channel's matter, not this test's.)
  const inBefore = ha2.haChannels()![0]!.forwardedIn;
  for (let i = 0; i < 20 && ha2.haChannels()![0]!.forwardedIn === inBefore; i++) {
    w.haTun.inject(echo('2001:db8:300::5', HOA2, 10 + i));
    await w.run(100);
  }
  t.ok(ha2.haChannels()![0]!.forwardedIn > inBefore, 'HA2 takes packets from HA1 again');
  t.equal(
    w.ha.drops.get('ha-forward-no-channel'),
    noChannel + 1,
    'one packet dropped while the HA-to-HA handshake ran',
  );
  t.equal(w.ha.haChannels()?.[0]?.established, true, 'the channel is up again');

  // ---- 6. HA2 restarts: HA1's old session must not blackhole -----------------------------
  await ha2.close();
  first.udp4.close();
  const second = startHa2();
  running.push(second.ha);
  second.ha.setClusterPeers([
    { member: 'ha1', publicKey: w.haKey.publicKey, address4: HA4, port: HA_PORT },
  ]);
  t.not(
    await w.until(() => second.ha.haChannels()?.[0]?.established === true, 2_000),
    -1,
    'the restarted HA2 opened its channel to HA1',
  );
  await w.run(50);
  w.haTun.inject(echo('2001:db8:300::5', HOA2, 30)); // etcd still says HA2 serves mn2
  t.not(
    await w.until(() => second.ha.drops.get('ha-forward-not-served') === 1, 2_000),
    -1,
    'it reached the new HA2 under the new keys (which holds no binding yet)',
  );
});

void t.test(
  'etcd announces a member key as an HA: nothing of the members is sealed to it',
  async (t) => {
    // A wrong or forged etcd entry names "ha3" with mn2's key and address. HA1's channel to
    // that key answers with a member certificate: HA1 must not forward HOA3's traffic on it.
    const serving = new Map<string, string>([[HOA3, 'ha3']]);
    const w = await World.create({
      cluster: view('ha1', serving),
      forwardToPeers: true,
      haPeerRoles: ['mn', 'cn', 'ha'],
      haWallClockFollows: true,
    });
    t.teardown(() => w.ha.close());
    const mn2 = await w.registeredMobileNode({
      homeAddress: HOA2,
      address4: '203.0.113.12',
      address6: '2001:db8:3::12',
    });
    t.equal(mn2.mn.registration.state, 'registered', 'mn2 registered');
    w.ha.setClusterPeers([
      {
        member: 'ha3',
        publicKey: mn2.key.publicKey,
        address4: '203.0.113.12',
        port: mn2.udp4.localPort,
      },
    ]);
    await w.run(200);
    const before = mn2.tun.written.length;
    const mn2Drops = mn2.mn.drops.get('not-for-home-address');
    w.haTun.inject(echo('2001:db8:100::5', HOA3, 1));
    await w.run(100);
    t.equal(w.ha.drops.get('ha-forward-not-peer'), 1, 'dropped at HA1 as not a peer');
    t.equal(mn2.tun.written.length, before, 'mn2 got nothing');
    t.equal(mn2.mn.drops.get('not-for-home-address'), mn2Drops, 'nothing reached mn2 to drop');
  },
);
