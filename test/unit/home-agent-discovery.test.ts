/**
 * DHAAD / mobile prefix discovery answers (RFC 6275 §10.5, §10.6) and the RFC 2526 HA anycast
 * address (digest §10.1: for a /64 the interface identifier is FDFF:FFFF:FFFF:FFFE).
 */
import t from 'tap';
import {
  advertisedPrefixes,
  answerDiscovery,
  homeAgentAnycast,
  MAX_HAAD_ADDRESSES,
} from '../../src/protocol/home-agent-discovery.js';
import { decodePacket, encodeIcmpv6Packet } from '../../src/wire/packet.js';

const cfg = {
  homeAgentAddresses: ['2001:db8:100::1', '2001:db8:100::2'],
  homePrefix: { address: '2001:db8:100::', length: 64 },
  validLifetime: 3600,
  preferredLifetime: 1800,
};

void t.test('HA anycast address (RFC 2526)', async (t) => {
  t.equal(homeAgentAnycast('2001:db8:100::', 64), '2001:db8:100:0:fdff:ffff:ffff:fffe');
  t.equal(homeAgentAnycast('2001:db8:100::', 48), '2001:db8:100:ffff:ffff:ffff:ffff:fffe');
  t.equal(homeAgentAnycast('2001:db8:100:1:2:3::', 120), '2001:db8:100:1:2:3:0:fe');
});

void t.test('DHAAD Request -> Reply with the list, identifier echoed', async (t) => {
  const a = answerDiscovery({ kind: 'haadRequest', identifier: 0x1234, mobileRouter: false }, cfg);
  t.same(a, {
    kind: 'haadReply',
    identifier: 0x1234,
    mobileRouter: false,
    homeAgentAddresses: cfg.homeAgentAddresses,
  });
  const many = {
    ...cfg,
    homeAgentAddresses: Array.from({ length: 100 }, (_, i) => `2001:db8::${i + 1}`),
  };
  const b = answerDiscovery({ kind: 'haadRequest', identifier: 1, mobileRouter: false }, many);
  t.equal(b?.kind === 'haadReply' ? b.homeAgentAddresses.length : 0, MAX_HAAD_ADDRESSES);
  const packet = encodeIcmpv6Packet({
    source: '2001:db8:100::1',
    destination: '2001:db8:100::10',
    message: b!,
  });
  t.ok(packet.length <= 1280, `trimmed reply fits the minimum MTU (${packet.length} bytes)`);
});

void t.test('MPS -> MPA with the home prefix; round trip through the codec', async (t) => {
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
  ]);
  t.equal(
    answerDiscovery(
      { kind: 'echoRequest', identifier: 1, sequence: 1, data: new Uint8Array() },
      cfg,
    ),
    null,
  );
});
