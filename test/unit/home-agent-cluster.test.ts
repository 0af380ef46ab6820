/**
 * The home agent cluster's rules without etcd (issue 18): a BU for a member another home agent
 * serves (processHomeBindingUpdate's `elsewhere`) continues that binding's sequence number and
 * needs its owner key; with etcd unreachable it is refused with BA 130 and counted; the live
 * agents as DHAAD lists them (preference, then load) and as HA-to-HA channels on a virtual home
 * network; the cluster and those channels in `mip6 status`.
 */
import t from 'tap';
import { BindingCache } from '../../src/protocol/binding-cache.js';
import {
  processHomeBindingUpdate,
  type ClusterBindingView,
  type HomeRegistrationInput,
} from '../../src/protocol/home-agent-registration.js';
import { registrationReport } from '../../src/roles/ha/registration-log.js';
import { clusterHomeAgents, clusterPeers } from '../../src/cli/ha-cluster.js';
import { formatStatus } from '../../src/cli/status.js';
import { discoveryChanged, orderHomeAgents } from '../../src/protocol/home-agent-discovery.js';
import { bindingUpdateFlags } from '../../src/wire/types.js';
import { BA_STATUS } from '../../src/wire/types.js';

const HA = '2001:db8:100::2';
const HOA = '2001:db8:100::10';
const KEY = new Uint8Array(32).fill(0x11);

function input(sequence: number, elsewhere?: ClusterBindingView): HomeRegistrationInput {
  return {
    bu: {
      kind: 'bindingUpdate',
      sequence,
      lifetimeUnits: 150,
      options: [{ type: 'ipv4CareOfAddress', address: '198.51.100.7' }],
      flags: bindingUpdateFlags({ A: true, H: true }),
    },
    innerSource: HOA,
    innerDestination: HA,
    locator: { address: '198.51.100.7', port: 4191 },
    peer: { name: 'laptop', publicKey: KEY, allowsHomeAddress: (h) => h === HOA },
    config: {
      homePrefix: '2001:db8:100::/64',
      homeAgentAddress: HA,
      maxLifetimeSeconds: 600,
      natKeepaliveSeconds: 25,
      maxBindings: 10,
    },
    ...(elsewhere !== undefined ? { elsewhere } : {}),
  };
}

const atHa1 = (sequence: number, unverified = false): ClusterBindingView => ({
  servingHa: 'ha1',
  ownerKey: KEY,
  sequence,
  unverified,
});

void t.test('taking a member over continues its sequence number', async (t) => {
  const cache = new BindingCache();
  const stale = processHomeBindingUpdate(cache, input(40, atHa1(41)), 0);
  t.equal(stale.status, BA_STATUS.SEQUENCE_OUT_OF_WINDOW, 'not newer than at HA1: BA 135');
  t.equal(stale.ack?.sequence, 41, "the BA carries HA1's sequence number: the MN resyncs");
  t.equal(cache.get(HOA), undefined);
  const same = processHomeBindingUpdate(cache, input(41, atHa1(41)), 0);
  t.equal(same.status, BA_STATUS.SEQUENCE_OUT_OF_WINDOW, 'the same number: a replay');
  const wrapped = processHomeBindingUpdate(cache, input(3, atHa1(65533)), 0);
  t.equal(wrapped.status, 0, 'newer in serial arithmetic (65533 -> 3): accepted');
  t.equal(wrapped.change, 'created');
  t.equal(cache.get(HOA)?.sequence, 3);
  // Once this home agent holds it, its own binding decides (the cluster's view is not asked).
  const next = processHomeBindingUpdate(cache, input(4, atHa1(9)), 0);
  t.equal(next.status, 0);
  t.equal(next.change, 'updated');
});

void t.test("another key cannot take over a member's binding at another HA", async (t) => {
  const cache = new BindingCache();
  const r = processHomeBindingUpdate(
    cache,
    input(50, { ...atHa1(41), ownerKey: new Uint8Array(32).fill(0x22) }),
    0,
  );
  t.equal(r.status, BA_STATUS.ADMIN_PROHIBITED);
  t.equal(r.code, 'bindingOwnerMismatch');
  t.match(r.reason, /binding at home agent ha1 belongs to another key/);
  t.equal(cache.get(HOA), undefined);
});

void t.test('etcd unreachable: a move between HAs is refused with BA 130', async (t) => {
  const cache = new BindingCache();
  const r = processHomeBindingUpdate(cache, input(50, atHa1(41, true)), 0);
  t.equal(r.status, BA_STATUS.INSUFFICIENT_RESOURCES, 'the MN tries another home agent');
  t.equal(r.code, 'clusterUnreachable');
  t.equal(cache.get(HOA), undefined);
  const report = registrationReport(r, input(50).bu, 'laptop', HOA, {
    address: '198.51.100.7',
    port: 4191,
  });
  t.equal(report?.event, 'bu-rejected');
  t.equal(report?.drop, 'cluster-move-refused', 'counted for mip6 status');
  t.match(report?.fields.reason, /etcd is unreachable: no move between home agents/);
  // A member nobody else serves registers as usual.
  t.equal(processHomeBindingUpdate(cache, input(50), 0).status, 0);
});

void t.test('the live agents as DHAAD lists them', async (t) => {
  const agents = [
    {
      member: 'ha1',
      homeAgentAddress: '2001:db8:100::1',
      port: 4191,
      preference: 10,
      bindings: 3,
      publicKey: '11'.repeat(32),
    },
    {
      member: 'ha2',
      homeAgentAddress: HA,
      address4: '198.51.100.2',
      port: 4192,
      preference: 5,
      bindings: 0,
      publicKey: '22'.repeat(32),
    },
  ];
  const configured = [
    {
      homeAddress: '2001:db8:100::1',
      address4: '198.51.100.1',
      address6: undefined,
      port: 4191,
      preference: 0,
      lifetime: 1800,
      publicKey: undefined,
    },
  ];
  t.same(
    clusterHomeAgents(agents, 'ha2', configured),
    [
      {
        address: '2001:db8:100::1',
        preference: 10,
        lifetime: 1800,
        underlay4: '198.51.100.1',
        underlay6: undefined,
        port: 4191,
        load: 3,
        publicKey: new Uint8Array(32).fill(0x11),
      },
      {
        address: HA,
        preference: 5,
        lifetime: 1800,
        underlay4: '198.51.100.2',
        underlay6: undefined,
        port: 4192,
        load: 0,
      },
    ],
    'its own entry without a key; a wildcard listener filled in from [[home.agents]]',
  );
  // Virtual home network: the other HAs as channels to forward to (ourselves and keyless
  // entries left out; a wildcard listener's address from [[home.agents]]).
  t.same(clusterPeers(agents, 'ha2', configured), [
    {
      member: 'ha1',
      publicKey: new Uint8Array(32).fill(0x11),
      address4: '198.51.100.1',
      address6: undefined,
      port: 4191,
    },
  ]);
  t.same(
    clusterPeers([{ ...agents[0]!, publicKey: undefined }, agents[1]!], 'ha2', configured),
    [],
    'an HA that announced no key gets no channel',
  );
});

void t.test(
  'DHAAD: on equal preference the less loaded HA first; a load sends no MPA',
  async (t) => {
    const agent = (address: string, preference: number, load: number) => ({
      address,
      preference,
      lifetime: 1800,
      load,
    });
    const agents = [
      agent('2001:db8:100::1', 5, 40),
      agent('2001:db8:100::2', 5, 3),
      agent('2001:db8:100::3', 9, 100),
      agent('2001:db8:100::4', 5, 17),
    ];
    for (const r of [0, 0.3, 0.99]) {
      t.same(
        orderHomeAgents(agents, () => r).map((a) => a.address),
        ['2001:db8:100::3', '2001:db8:100::2', '2001:db8:100::4', '2001:db8:100::1'],
        'preference first, then load, whatever the random draw',
      );
    }
    const prefixes = [
      { address: '2001:db8:100::', length: 64, validLifetime: 1, preferredLifetime: 1 },
    ];
    const before = { homeAgents: agents, prefixes };
    const loads = { homeAgents: agents.map((a) => ({ ...a, load: a.load + 1 })), prefixes };
    t.equal(discoveryChanged(before, loads), false, 'new loads only: no unsolicited MPA');
    const gone = { homeAgents: agents.slice(1), prefixes };
    t.equal(discoveryChanged(before, gone), true, 'an HA gone: an MPA');
  },
);

void t.test('mip6 status shows the cluster', async (t) => {
  const base = { role: 'ha', homePrefix: '2001:db8:100::/64', bindings: [] };
  const ok = formatStatus({
    ...base,
    cluster: {
      name: 'home1',
      member: 'ha2',
      etcd: {
        state: 'ok',
        since: 0,
        endpoints: ['http://192.0.2.1:2379', 'http://192.0.2.2:2379'],
      },
      homeAgents: [
        { member: 'ha1', address: '2001:db8:100::1', preference: 10, bindings: 3 },
        { member: 'ha2', address: HA, preference: 5, bindings: 0 },
      ],
    },
  });
  t.match(ok, /cluster home1 {2}member ha2 {2}etcd ok \(2 endpoints\)/);
  t.match(ok, /HOME AGENT +ADDRESS +PREF +BINDINGS/);
  t.match(ok, /ha1 +2001:db8:100::1 +10 +3/);
  t.match(ok, /ha2 \(this\) +2001:db8:100::2 +5 +0/);
  const down = formatStatus({
    ...base,
    cluster: {
      name: 'home1',
      member: 'ha2',
      etcd: {
        state: 'unreachable',
        since: Date.UTC(2026, 0, 1),
        error: 'connect ECONNREFUSED',
        endpoints: [],
      },
      homeAgents: [],
    },
  });
  t.match(
    down,
    'etcd UNREACHABLE since 2026-01-01T00:00:00.000Z: connect ECONNREFUSED; serving the bindings held, moves between home agents refused',
  );
  const forwarding = formatStatus({
    ...base,
    cluster: {
      name: 'home1',
      member: 'ha2',
      etcd: { state: 'ok', since: 0, endpoints: ['http://192.0.2.1:2379'] },
      homeAgents: [],
      channels: [
        {
          member: 'ha1',
          locator: '198.51.100.1:4191',
          established: true,
          forwardedOut: 12,
          bytesOut: 1200,
          forwardedIn: 7,
          bytesIn: 700,
        },
        {
          member: 'ha3',
          locator: '198.51.100.3:4191',
          established: false,
          forwardedOut: 0,
          bytesOut: 0,
          forwardedIn: 0,
          bytesIn: 0,
        },
      ],
    },
  });
  t.match(forwarding, /HA CHANNEL +LOCATOR +STATE +FORWARDED OUT +FORWARDED IN/);
  t.match(forwarding, /ha1 +198\.51\.100\.1:4191 +up +12 \(1200 B\) +7 \(700 B\)/);
  t.match(forwarding, /ha3 +198\.51\.100\.3:4191 +connecting +0 \(0 B\) +0 \(0 B\)/);
  t.notMatch(ok, /HA CHANNEL/, 'no table without channels (a shared home link)');
});
