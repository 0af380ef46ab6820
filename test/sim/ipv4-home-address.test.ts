/**
 * RFC 5555 IPv4 home addresses through the real roles over fakes (issue #15): the mobile node
 * asks for one ("auto"), the home agent grants it from its pool in the BA, IPv4 packets travel
 * in the same channel both ways, a move keeps the address, and `status` shows it on both sides.
 * Attacks (SECURITY.md trust model): another member's inner IPv4 source is dropped by the
 * selector check and reaches nothing, and a member that asks for an address another member
 * holds (even one its own certificate names) or one it was never given is refused (130) with
 * nothing changed.
 */
import t from 'tap';
import { ipv4Udp } from '../helpers/packets.js';
import { World, type MnHandle } from '../helpers/world.js';

const POOL = '10.99.0.0/24';
const WEB4 = '203.0.113.80'; // an IPv4 server beyond the home agent

const v4src = (p: Uint8Array): string => Array.from(p.subarray(12, 16)).join('.');
const v4dst = (p: Uint8Array): string => Array.from(p.subarray(16, 20)).join('.');
const isV4 = (p: Uint8Array): boolean => p[0]! >> 4 === 4;

async function member(
  w: World,
  hoa: string,
  address4: string,
  ipv4HomeAddress: string,
  certAddresses: string[] = [],
): Promise<MnHandle> {
  const m = w.mobileNode({
    homeAddress: hoa,
    address4,
    address6: `2001:db8:3::${address4.split('.')[3]}`,
    certAddresses,
    options: { ipv4HomeAddress },
  });
  m.careOf.candidates = [{ family: 4, localAddress: address4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  return m;
}

void t.test('IPv4 home address: granted, both directions, kept across a move', async (t) => {
  const w = await World.create({ ipv4Pool: POOL });
  const a = await member(w, '2001:db8:100::10', '203.0.113.10', 'auto');
  t.equal(a.mn.status().homeAddress4, '10.99.0.2', 'mip6 status (MN): homeAddress4');
  const binding = w.ha.status().bindings.find((b) => b.homeAddress === '2001:db8:100::10');
  t.equal(binding?.homeAddress4, '10.99.0.2', 'mip6 status (HA): the binding holds it');
  t.ok(
    a.events.some((e) => e.event === 'ipv4-home-address' && e.fields['address'] === '10.99.0.2'),
    'the MN driver was told (it puts the address on its TUN)',
  );

  const atHa: Uint8Array[] = [];
  w.haTun.onKernelReceive((p) => atHa.push(p));
  const atMn: Uint8Array[] = [];
  a.tun.onKernelReceive((p) => atMn.push(p));
  a.tun.inject(ipv4Udp('10.99.0.2', WEB4, 1));
  await w.run(20);
  t.same(
    atHa.filter(isV4).map((p) => [v4src(p), v4dst(p)]),
    [['10.99.0.2', WEB4]],
    'MN -> HA',
  );
  w.haTun.inject(ipv4Udp(WEB4, '10.99.0.2', 2));
  await w.run(20);
  t.same(
    atMn.filter(isV4).map((p) => [v4src(p), v4dst(p)]),
    [[WEB4, '10.99.0.2']],
    'HA -> MN',
  );

  // A move: a new BU asks for the same address and gets it; traffic follows.
  a.careOf.candidates = [{ family: 4, localAddress: '192.0.2.10' }];
  w.net.move(a.udp4, '192.0.2.10');
  a.careOf.changed();
  await w.until(() => w.ha.cache.get('2001:db8:100::10')?.locator.address === '192.0.2.10');
  await w.run(50);
  t.equal(a.mn.status().homeAddress4, '10.99.0.2', 'the same IPv4 home address after the move');
  w.haTun.inject(ipv4Udp(WEB4, '10.99.0.2', 3));
  await w.run(20);
  t.equal(atMn.filter(isV4).length, 2, 'HA -> MN at the new locator');
  t.equal(w.ha.ipv4.addressOf(w.ha.cache.get('2001:db8:100::10')!.key), '10.99.0.2');
  // Unknown IPv4 destinations are dropped and counted, never sent to anybody.
  w.haTun.inject(ipv4Udp(WEB4, '10.99.0.77', 4));
  await w.run(20);
  t.equal(w.ha.drops.get('unregistered-ipv4'), 1, 'no binding holds 10.99.0.77');
});

void t.test('attack: spoofed inner IPv4 source and address theft change nothing', async (t) => {
  const w = await World.create({ ipv4Pool: POOL });
  const a = await member(w, '2001:db8:100::10', '203.0.113.10', 'auto');
  // B's certificate even names A's address: certificates may overlap, a held address is not
  // handed over.
  const b = await member(w, '2001:db8:100::11', '203.0.113.11', '10.99.0.2', ['::ffff:10.99.0.2']);
  t.equal(a.mn.status().homeAddress4, '10.99.0.2');
  t.equal(b.mn.status().homeAddress4, undefined, 'B got nothing');
  t.equal(b.mn.registration.status(0).ipv4Status, 130, 'refused: incorrect IPv4 home address');
  t.equal(
    w.ha.ipv4.addressOf(w.ha.cache.get('2001:db8:100::10')!.key),
    '10.99.0.2',
    "A's address unchanged",
  );
  t.equal(w.ha.ipv4.addressOf(w.ha.cache.get('2001:db8:100::11')!.key), undefined);

  // C asks for a free pool address by value that nobody gave it and no certificate names.
  const c = await member(w, '2001:db8:100::12', '203.0.113.12', '10.99.0.40');
  t.equal(c.mn.registration.status(0).ipv4Status, 130, 'an address never given: 130');
  t.equal(w.ha.ipv4.activeCount, 1, 'still only A holds an IPv4 home address');

  // B sends IPv4 with A's address as source through its own channel.
  const atHa: Uint8Array[] = [];
  w.haTun.onKernelReceive((p) => atHa.push(p));
  const selectorBefore = w.ha.drops.get('selector');
  for (let i = 0; i < 5; i++) b.tun.inject(ipv4Udp('10.99.0.2', '203.0.113.80', i));
  c.tun.inject(ipv4Udp('10.99.0.40', '203.0.113.80', 9)); // its own but never granted
  await w.run(50);
  t.equal(atHa.filter(isV4).length, 0, 'nothing reached the home side');
  t.equal(w.ha.drops.get('selector') - selectorBefore, 5, "A's address from B's channel: selector");
  t.equal(w.ha.drops.get('no-binding-ipv4'), 1, 'an address nobody holds: no binding');
  // A is untouched: its traffic still flows.
  const atA: Uint8Array[] = [];
  a.tun.onKernelReceive((p) => atA.push(p));
  w.haTun.inject(ipv4Udp('203.0.113.80', '10.99.0.2', 7));
  await w.run(20);
  t.equal(atA.filter(isV4).length, 1, 'HA -> A still delivered');
  const atB: Uint8Array[] = [];
  b.tun.onKernelReceive((p) => atB.push(p));
  await w.run(20);
  t.equal(atB.filter(isV4).length, 0, 'and B received none of it');
});
