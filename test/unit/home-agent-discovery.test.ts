/**
 * DHAAD / mobile prefix discovery answers (RFC 6275 §10.5, §10.6), the Home Agents List order
 * (§10.5.1: preference, ties randomized), the Home Agent Locator option (our RFC 4727
 * experimental ND option) and the RFC 2526 HA anycast address (digest §10.1: for a /64 the
 * interface identifier is FDFF:FFFF:FFFF:FFFE).
 */
import t from 'tap';
import {
  advertisedHomeAgents,
  advertisedPrefixes,
  answerDiscovery,
  decodeHomeAgentLocator,
  discoveryChanged,
  homeAgentAnycast,
  homeAgentLocatorOption,
  MAX_HAAD_ADDRESSES,
  orderHomeAgents,
  type DiscoveryConfig,
  type HomeAgentInfo,
} from '../../src/protocol/home-agent-discovery.js';
import { decodePacket, encodeIcmpv6Packet } from '../../src/wire/packet.js';

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const cfg: DiscoveryConfig = {
  homeAgents: [
    { address: '2001:db8:100::1', preference: 0, lifetime: 1800 },
    {
      address: '2001:db8:100::2',
      preference: 10,
      lifetime: 600,
      underlay4: '203.0.113.7',
      underlay6: '2001:db8:ff::7',
      port: 4192,
      publicKey: KEY,
    },
  ],
  prefixes: [
    { address: '2001:db8:100::', length: 64, validLifetime: 3600, preferredLifetime: 1800 },
    { address: '2001:db8:200::', length: 48, validLifetime: 7200, preferredLifetime: 0 },
  ],
};

/** A deterministic "random" sequence. */
function seq(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

void t.test('HA anycast address (RFC 2526)', async (t) => {
  t.equal(homeAgentAnycast('2001:db8:100::', 64), '2001:db8:100:0:fdff:ffff:ffff:fffe');
  t.equal(homeAgentAnycast('2001:db8:100::', 48), '2001:db8:100:ffff:ffff:ffff:ffff:fffe');
  t.equal(homeAgentAnycast('2001:db8:100:1:2:3::', 120), '2001:db8:100:1:2:3:0:fe');
});

void t.test('DHAAD Request -> Reply by preference, identifier echoed', async (t) => {
  const a = answerDiscovery({ kind: 'haadRequest', identifier: 0x1234, mobileRouter: false }, cfg);
  t.same(a, {
    kind: 'haadReply',
    identifier: 0x1234,
    mobileRouter: false,
    homeAgentAddresses: ['2001:db8:100::2', '2001:db8:100::1'],
  });
  const many: DiscoveryConfig = {
    ...cfg,
    homeAgents: Array.from({ length: 100 }, (_, i) => ({
      address: `2001:db8::${i + 1}`,
      preference: i,
      lifetime: 60,
    })),
  };
  const b = answerDiscovery({ kind: 'haadRequest', identifier: 1, mobileRouter: false }, many);
  const list = b?.kind === 'haadReply' ? b.homeAgentAddresses : [];
  t.equal(list.length, MAX_HAAD_ADDRESSES);
  t.equal(list[0], '2001:db8::100', 'the most preferred (99, text "100") first');
  t.notOk(list.includes('2001:db8::1'), 'the least preferred are trimmed');
  const packet = encodeIcmpv6Packet({
    source: '2001:db8:100::1',
    destination: '2001:db8:100::10',
    message: b!,
  });
  t.ok(packet.length <= 1280, `trimmed reply fits the minimum MTU (${packet.length} bytes)`);
});

void t.test(
  'Home Agents List order: preference, ties randomized, lifetime 0 left out',
  async (t) => {
    const agents: HomeAgentInfo[] = [
      { address: '2001:db8:100::a', preference: 5, lifetime: 10 },
      { address: '2001:db8:100::b', preference: 5, lifetime: 10 },
      { address: '2001:db8:100::c', preference: 5, lifetime: 10 },
      { address: '2001:db8:100::d', preference: -3, lifetime: 10 },
      { address: '2001:db8:100::e', preference: 100, lifetime: 0 },
      { address: '2001:db8:100::f', preference: 7, lifetime: 10 },
    ];
    const seen = new Set<string>();
    for (const r of [0, 0.3, 0.6, 0.99, 0.5, 0.1]) {
      const order = orderHomeAgents(agents, seq([r, 1 - r, r / 2])).map((a) => a.address.slice(-1));
      t.equal(order[0], 'f', 'highest preference first');
      t.equal(order[4], 'd', 'negative preference last');
      t.notOk(order.includes('e'), 'lifetime 0 is not a home agent');
      t.same([...order.slice(1, 4)].sort(), ['a', 'b', 'c']);
      seen.add(order.slice(1, 4).join(''));
    }
    t.ok(seen.size > 1, `equal preferences come in more than one order (${[...seen].join(' ')})`);
  },
);

void t.test('Home Agent Locator option round trip, with and without a key', async (t) => {
  for (const a of cfg.homeAgents) {
    const o = homeAgentLocatorOption(a);
    t.equal(o.type === 'unknown' ? (o.data.length + 2) % 8 : -1, 0, 'a multiple of 8 bytes');
    const back = decodeHomeAgentLocator(o);
    t.same(back, a);
  }
  t.equal(
    decodeHomeAgentLocator({ type: 'unknown', optionType: 253, data: new Uint8Array(46) }),
    null,
    'another experiment (no "m6" magic) is ignored',
  );
  t.equal(
    decodeHomeAgentLocator({ type: 'unknown', optionType: 253, data: new Uint8Array(14) }),
    null,
    'wrong length is ignored',
  );
});

void t.test('MPS -> MPA with every prefix and the HA locators; codec round trip', async (t) => {
  const a = answerDiscovery({ kind: 'mobilePrefixSolicitation', identifier: 7 }, cfg);
  t.equal(a?.kind, 'mobilePrefixAdvertisement');
  const packet = encodeIcmpv6Packet({
    source: '2001:db8:100::1',
    destination: '2001:db8:100::10',
    message: a!,
  });
  const decoded = decodePacket(packet).icmpv6;
  t.equal(decoded?.checksumValid, true);
  if (decoded?.kind !== 'mobilePrefixAdvertisement') throw new Error('not an MPA');
  t.equal(decoded.identifier, 7);
  t.same(advertisedPrefixes(decoded), [
    { prefix: '2001:db8:100::/64', validLifetime: 3600, preferredLifetime: 1800 },
    { prefix: '2001:db8:200::/48', validLifetime: 7200, preferredLifetime: 0 },
  ]);
  t.same(
    advertisedHomeAgents(decoded).map((h) => h.address),
    ['2001:db8:100::2', '2001:db8:100::1'],
    'locators by preference',
  );
  t.same(advertisedHomeAgents(decoded)[0], cfg.homeAgents[1]);
  t.equal(
    answerDiscovery(
      { kind: 'echoRequest', identifier: 1, sequence: 1, data: new Uint8Array() },
      cfg,
    ),
    null,
  );
});

void t.test('MPA stays within the minimum MTU with many home agents', async (t) => {
  const big: DiscoveryConfig = {
    ...cfg,
    homeAgents: Array.from({ length: 40 }, (_, i) => ({
      address: `2001:db8:100::${i + 1}`,
      preference: i,
      lifetime: 60,
      underlay4: '203.0.113.1',
      publicKey: KEY,
    })),
  };
  const a = answerDiscovery({ kind: 'mobilePrefixSolicitation', identifier: 1 }, big)!;
  const packet = encodeIcmpv6Packet({
    source: '2001:db8:100::1',
    destination: '2001:db8:100::10',
    message: a,
  });
  t.ok(packet.length <= 1280, `${packet.length} bytes`);
  const decoded = decodePacket(packet).icmpv6;
  if (decoded?.kind !== 'mobilePrefixAdvertisement') throw new Error('not an MPA');
  const listed = advertisedHomeAgents(decoded);
  t.ok(listed.length > 5 && listed.length < 40, `${listed.length} locators fit`);
  t.equal(listed[0]?.preference, 39, 'the most preferred are kept');
});

void t.test('discoveryChanged', async (t) => {
  t.notOk(discoveryChanged(cfg, { ...cfg, homeAgents: [...cfg.homeAgents].reverse() }));
  t.ok(
    discoveryChanged(cfg, {
      ...cfg,
      prefixes: [{ ...cfg.prefixes[0]!, validLifetime: 60 }],
    }),
  );
  t.ok(
    discoveryChanged(cfg, {
      ...cfg,
      homeAgents: [cfg.homeAgents[0]!, { ...cfg.homeAgents[1]!, preference: 11 }],
    }),
  );
});
