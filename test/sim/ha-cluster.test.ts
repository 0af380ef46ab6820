/**
 * Two home agents of one home prefix sharing their bindings through a real etcd (issue 18):
 * the real HomeAgent code on fakes (network, TUN, clock), each with an EtcdBindingStore on an
 * etcd the test starts. Fake time drives the daemons; etcd runs in real time, so the loops
 * below also give real time to it.
 *   1. The MN registers at HA1; DHAAD and MPAs list both live home agents from etcd. HA1
 *      becomes unreachable for the MN (HA1 itself still runs and talks to etcd): the MN fails
 *      over to HA2, whose BU check continues the sequence number from etcd; HA1 hears of the
 *      takeover and drops its binding and its home-link (proxy ND) entry; only HA2 defends the
 *      home address (HA2 runs no DAD for it: HA1's proxy would answer until it saw the change).
 *   2. etcd unreachable: HA2 refuses the move (BA 130, 'cluster-move-refused') while HA1 keeps
 *      serving; once etcd is back the move goes through.
 */
import t from 'tap';
import { HomeAgent } from '../../src/roles/ha/home-agent.js';
import type { NodeEnvironment } from '../../src/roles/common.js';
import { EtcdBindingStore, type ClusterAgent } from '../../src/io/etcd-binding-store.js';
import { clusterHomeAgents } from '../../src/cli/ha-cluster.js';
import { Logger } from '../../src/util/log.js';
import { endpoint, memberKey, T0 } from '../helpers/crypto.js';
import { FakeTun } from '../helpers/fake-tun.js';
import {
  HA4,
  HA_HOME_ADDRESS,
  HA_PORT,
  HOME_PREFIX,
  RecordingHomeLink,
  World,
} from '../helpers/world.js';
import { echo } from '../helpers/packets.js';
import { etcdSkipReason, startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const skip = etcdSkipReason() ?? false;
const HOA = '2001:db8:100::10';
const SERVER = '2001:db8:100::5';
const MN4 = '203.0.113.10';
const HA2_HOME = '2001:db8:100::2';
const HA2_4 = '198.51.100.2';
const HA2_PORT = 4192;

interface Cluster {
  w: World;
  ha2: HomeAgent;
  ha2Link: RecordingHomeLink;
  ha2Logs: { event: string; fields: Record<string, unknown> }[];
  s1: EtcdBindingStore;
  s2: EtcdBindingStore;
  closeHa2(): void;
}

let clusters = 0;

/** HA1 (the World's) and HA2, each on its own store in cluster `name`, wired as the cli does. */
async function cluster(etcd: EtcdCluster): Promise<Cluster> {
  const name = `sim${clusters++}`;
  const open = (member: string): Promise<EtcdBindingStore> =>
    EtcdBindingStore.open({
      endpoints: etcd.endpoints,
      cluster: name,
      member,
      configKey: '[cluster] of test',
      leaseTtlSeconds: 2,
    });
  const s1 = await open('ha1');
  const s2 = await open('ha2');
  const w = await World.create({ store: s1, cluster: s1 });
  const key = memberKey(0x12);
  const udp4 = w.net.endpoint({ address: HA2_4, port: HA2_PORT });
  const ha2Logs: Cluster['ha2Logs'] = [];
  const log = new Logger({
    sink: {
      write: (line: string) => {
        const o = JSON.parse(line) as { event: string } & Record<string, unknown>;
        ha2Logs.push({ event: o.event, fields: o });
      },
    },
    format: 'json',
  });
  const env: NodeEnvironment = {
    endpoint: endpoint(w.ca, { name: 'ha2', role: 'ha', key, addresses: [HOME_PREFIX] }, ['mn']),
    tun: new FakeTun({ name: 'ha2-tun' }),
    udp4,
    udp6: undefined,
    clock: w.clock.createClock(),
    epochOffsetMs: T0,
    log,
  };
  const ha2Link = new RecordingHomeLink();
  const ha2 = new HomeAgent(env, {
    homePrefix: HOME_PREFIX,
    homeAgentAddress: HA2_HOME,
    maxLifetimeSeconds: 600,
    natKeepaliveSeconds: 110,
    maxBindings: 100,
    homeLink: ha2Link,
    store: s2,
    cluster: s2,
    wallClock: () => T0 + w.clock.now(),
  });
  ha2.start();
  const wire = (s: EtcdBindingStore, ha: HomeAgent): void =>
    s.on({
      takenOver: (hoa, by) => ha.clusterTookOver(hoa, by),
      agentsChanged: (agents: ClusterAgent[]) =>
        ha.setClusterAgents(clusterHomeAgents(agents, s.member)),
    });
  wire(s1, w.ha);
  wire(s2, ha2);
  await s1.announce({
    homeAgentAddress: HA_HOME_ADDRESS,
    address4: HA4,
    port: HA_PORT,
    preference: 10,
  });
  await s2.announce({
    homeAgentAddress: HA2_HOME,
    address4: HA2_4,
    port: HA2_PORT,
    preference: 5,
    publicKey: Buffer.from(key.publicKey).toString('hex'),
  });
  return {
    w,
    ha2,
    ha2Link,
    ha2Logs,
    s1,
    s2,
    closeHa2: () => udp4.close(),
  };
}

/** Sends traffic and gives fake and real time until `cond` holds (bounded). */
async function runUntil(
  c: Cluster,
  m: ReturnType<World['mobileNode']>,
  cond: () => boolean,
): Promise<boolean> {
  for (let i = 0; i < 600 && !cond(); i++) {
    m.tun.inject(echo(HOA, SERVER, i)); // traffic keeps going out, so silence is noticed
    await c.w.run(50, 10);
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

function member(w: World): ReturnType<World['mobileNode']> {
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    options: { probeIntervalMs: 1000, probeTimeoutMs: 300, probeAttempts: 3 },
  });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  return m;
}

void t.test(
  'a member moves to another HA of the cluster; the first drops it',
  { skip },
  async (t) => {
    const etcd = await startEtcd(t);
    const c = await cluster(etcd);
    t.teardown(async () => {
      c.closeHa2();
      await c.w.ha.close();
      await c.ha2.close();
      await c.s1.close();
      await c.s2.close();
    });
    const { w, ha2, s2 } = c;
    await waitFor(
      'both agents known to both',
      () => c.s1.agents().length === 2 && s2.agents().length === 2,
      5_000,
    );
    const m = member(w);
    m.mn.start();
    t.ok(await runUntil(c, m, () => m.mn.registration.state === 'registered'), 'registered at HA1');
    t.equal(m.mn.homeAgentAddress, HA_HOME_ADDRESS);
    t.ok(
      await runUntil(c, m, () => m.mn.learnedAgents.get(HA2_HOME)?.underlay4 === HA2_4),
      'the MN learned HA2 from DHAAD / MPA (the live agents in etcd)',
    );
    t.equal(m.mn.learnedAgents.get(HA2_HOME)?.port, HA2_PORT);
    await waitFor(
      'HA2 to see the binding at HA1',
      () => s2.binding(HOA)?.servingHa === 'ha1',
      5_000,
    );
    const seq1 = w.ha.cache.get(HOA)!.sequence;
    t.equal(s2.binding(HOA)?.sequence, seq1, 'etcd holds HA1 sequence number');
    t.ok(w.homeLink.bound.has(HOA), 'HA1 defends the home address');

    // HA1 becomes unreachable for the member only; it stays in the cluster.
    w.haUdp4.close();
    w.haUdp6.close();
    t.ok(
      await runUntil(
        c,
        m,
        () => m.mn.homeAgentAddress === HA2_HOME && m.mn.registration.state === 'registered',
      ),
      'the member registered at HA2',
    );
    const entry = ha2.cache.get(HOA);
    t.ok(entry, 'HA2 holds the binding');
    t.ok(
      ((entry!.sequence - seq1) & 0xffff) > 0 && ((entry!.sequence - seq1) & 0xffff) < 0x8000,
      `the sequence continued (${seq1} -> ${entry!.sequence})`,
    );
    t.match(c.ha2Logs.find((l) => l.event === 'taken-over')?.fields, { hoa: HOA, from: 'ha1' });
    await waitFor('HA1 to drop the binding', () => w.ha.cache.get(HOA) === undefined, 10_000);
    t.notOk(w.homeLink.bound.has(HOA), 'HA1 withdrew its proxy-ND entry and route');
    t.ok(c.ha2Link.bound.has(HOA), 'HA2 defends the home address');
    t.same(
      c.ha2Link.detections,
      [],
      "no DAD for a member taken over: HA1's proxy ND still answers",
    );
    await waitFor('etcd: served by HA2', () => s2.binding(HOA)?.servingHa === 'ha2', 5_000);
    t.equal(c.s1.binding(HOA)?.servingHa, 'ha2');
    t.same([...c.s1.bindingCounts()], [['ha2', 1]]);
    // Data goes through HA2.
    const before = ha2.counters.tunnelPacketsIn;
    m.tun.inject(echo(HOA, SERVER, 1));
    await w.run(100, 5);
    t.ok(ha2.counters.tunnelPacketsIn > before, 'reverse-tunneled through HA2');
  },
);

void t.test('etcd unreachable: no move between HAs until it is back', { skip }, async (t) => {
  const etcd = await startEtcd(t);
  const c = await cluster(etcd);
  t.teardown(async () => {
    await c.w.ha.close();
    await c.ha2.close();
    c.closeHa2();
    await c.s1.close();
    await c.s2.close();
  });
  const { w, ha2, s2 } = c;
  await waitFor(
    'both agents known',
    () => c.s1.agents().length === 2 && s2.agents().length === 2,
    5_000,
  );
  const m = member(w);
  m.mn.start();
  t.ok(
    await runUntil(c, m, () => m.mn.learnedAgents.get(HA2_HOME)?.underlay4 === HA2_4),
    'registered, HA2 learned',
  );
  await waitFor('HA2 to see the binding at HA1', () => s2.binding(HOA)?.servingHa === 'ha1', 5_000);

  await etcd.stop('e0', 'SIGKILL');
  await waitFor('HA2 to see etcd gone', () => s2.health.state === 'unreachable', 10_000);
  // HA1 keeps serving what it holds.
  const inBefore = w.ha.counters.tunnelPacketsIn;
  m.tun.inject(echo(HOA, SERVER, 1));
  await w.run(100, 5);
  t.ok(w.ha.counters.tunnelPacketsIn > inBefore, 'HA1 still carries the member');

  // The member loses HA1: HA2 refuses to take it over while etcd is away.
  w.haUdp4.close();
  w.haUdp6.close();
  t.ok(
    await runUntil(c, m, () => (ha2.drops.byReason['cluster-move-refused'] ?? 0) > 0),
    'HA2 refused the move',
  );
  t.equal(ha2.cache.get(HOA), undefined, 'no binding at HA2');
  t.match(c.ha2Logs.find((l) => l.event === 'bu-rejected')?.fields, {
    status: 130,
    reason: /etcd is unreachable/,
  });

  await etcd.start('e0');
  await waitFor('HA2 back in touch with etcd', () => s2.health.state === 'ok', 20_000);
  t.ok(
    await runUntil(
      c,
      m,
      () => m.mn.homeAgentAddress === HA2_HOME && m.mn.registration.state === 'registered',
    ),
    'once etcd is back the member registers at HA2',
  );
  await waitFor('etcd: served by HA2', () => s2.binding(HOA)?.servingHa === 'ha2', 10_000);
});
