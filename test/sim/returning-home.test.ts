/**
 * Returning home needs the home agent's proof (issue #13), over fakes: a candidate home link
 * (a rogue Router Advertisement for the home prefix, an evil twin's Neighbor Advertisement for
 * the HA's home address) only makes the MN send its returning-home BU out of that link; the
 * HA accepts it only when it arrives on its home link with hop limit 255, and the MN moves its
 * home address only on that BA. An evil twin that relays the BU over the internet, or answers
 * nothing, or a link of the HA that is not its home link, leave the MN away: registered, the
 * tunnel in use, the home address on the TUN. Also: starting at home (handshake on the link),
 * and return_home off.
 */
import t from 'tap';
import type { FakeUdpEndpoint } from '../helpers/fake-network.js';
import {
  HA_HOME_LINK_INDEX,
  HA_PORT,
  HA6,
  HOME_LINK,
  RecordingHomeAddress,
  World,
  type MnHandle,
} from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const HOA = '2001:db8:100::10';
const SERVER = '2001:db8:100::5';
const MN4 = '192.0.2.10';
/** The MN's Wi-Fi interface (index 9) on the hotel link, where the evil twin also sits. */
const WLAN = { family: 6 as const, localAddress: HOA, homeLink: 'wlan0', homeLinkIndex: 9 };

/** An MN with home-link control (unless returnHome false), its IPv6 socket on `link`. */
async function member(o: {
  returnHome?: boolean;
  link: string;
  ifindex: number;
}): Promise<{ w: World; m: MnHandle; home: RecordingHomeAddress }> {
  const w = await World.create();
  const home = new RecordingHomeAddress();
  const m = w.mobileNode({
    homeAddress: HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    options: o.returnHome === false ? {} : { homeLink: home },
  });
  w.net.attach(m.udp6, o.link, { ifindex: o.ifindex, linkLocal: 'fe80::10' });
  return { w, m, home };
}

/** Registered over IPv4, its IPv6 socket on the hotel link (interface 9). */
async function away(o: { returnHome?: boolean } = {}): Promise<{
  w: World;
  m: MnHandle;
  home: RecordingHomeAddress;
}> {
  const r = await member({ ...o, link: 'hotel', ifindex: 9 });
  r.m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  r.m.mn.start();
  await r.w.until(() => r.m.mn.registration.state === 'registered');
  return r;
}

/**
 * The evil twin on the hotel link (no mip6 keys): it receives what the MN sends on the link and
 * relays it over the internet to the HA's underlay address, and relays the answers back onto
 * the link (or, with relay false, swallows everything).
 */
function evilTwin(w: World, relay: boolean): { evil: FakeUdpEndpoint; seen: number } {
  const evil = w.net.endpoint({ address: '2001:db8:66::6', port: HA_PORT });
  w.net.attach(evil, 'hotel', { ifindex: 3, linkLocal: 'fe80::66' });
  const state = { evil, seen: 0 };
  let mn: { address: string; port: number } | undefined;
  evil.onDatagrams((b) => {
    for (const d of b.datagrams()) {
      if (d.ifindex === 3) {
        state.seen++;
        mn = { address: d.remoteAddress, port: d.remotePort };
        if (relay) evil.send(d.data, HA6, HA_PORT);
      } else if (relay && mn !== undefined) {
        evil.send(d.data, mn.address, mn.port);
      }
    }
  });
  return state;
}

void t.test('an evil twin relaying the BU to the HA: refused, the MN stays away', async (t) => {
  const { w, m, home } = await away();
  const twin = evilTwin(w, true);
  const entry = w.ha.cache.get(HOA)!;
  const before = { ...entry, careOfAddress: entry.careOfAddress };
  // The rogue RA / NA made the hotel link look like home.
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }, WLAN];
  m.careOf.changed();
  const took = await w.until(() => m.events.some((e) => e.event === 'home-refused'), 3000);
  t.ok(took >= 0, `refused after ${took} ms`);
  t.ok(twin.seen >= 1, 'the BU went out on the hotel link (sealed: the twin cannot read it)');
  t.ok(w.ha.drops.get('home-not-on-link') >= 1, 'the HA refused it: not from its home link');
  const refused = m.events.find((e) => e.event === 'home-refused')!;
  t.match(refused.fields, { link: 'wlan0', status: 129 }, 'BA 129 came back through the twin');
  t.equal(m.mn.registration.state, 'registered', 'still registered');
  t.same(home.calls, [], 'the home address never left the TUN');
  const after = w.ha.cache.get(HOA)!;
  t.same(after.locator, before.locator, 'binding at the HA: same locator');
  t.equal(after.careOfAddress, before.careOfAddress, 'binding at the HA: same care-of');
  t.ok(w.homeLink.bound.has(HOA), 'the HA still defends the home address');
  t.equal(m.mn.counters.homeRefused, 1);
  // The tunnel is still in use.
  const atHa: Uint8Array[] = [];
  w.haTun.onKernelReceive((p) => atHa.push(p));
  m.tun.inject(echo(HOA, SERVER, 1));
  await w.until(() => atHa.length > 0, 500);
  t.equal(atHa.length, 1, 'MN -> HA through the tunnel');
  // The link rests 10 s, then is tried again (and refused again), then rests 20 s.
  const candidates = (): number => m.events.filter((e) => e.event === 'home-candidate').length;
  await w.run(9000, 10);
  t.equal(candidates(), 1, 'not asked again within the rest');
  await w.until(() => candidates() === 2, 7000, 10);
  await w.until(() => m.mn.counters.homeRefused === 2, 3000, 10);
  t.match(m.events.filter((e) => e.event === 'home-refused')[1]?.fields, { retryInS: 20 });
  t.same(home.calls, [], 'still never home');
  t.equal(m.mn.registration.state, 'registered');
});

void t.test('relayed into the home link by a router there: hop limit < 255, refused', async (t) => {
  const { w, m, home } = await away();
  // Routed traffic reaches the HA through its home-link interface (the home link's router).
  w.haUdp6.routedIfindex = HA_HOME_LINK_INDEX;
  evilTwin(w, true);
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }, WLAN];
  m.careOf.changed();
  await w.until(() => m.events.some((e) => e.event === 'home-refused'), 3000);
  t.match(m.events.find((e) => e.event === 'home-refused')?.fields, { status: 129 });
  t.ok(w.ha.drops.get('home-not-on-link') >= 1, 'right interface, but it crossed a router');
  t.same(home.calls, []);
  t.equal(m.mn.registration.state, 'registered');
});

void t.test('an evil twin that answers nothing: no BA, the MN stays away', async (t) => {
  const { w, m, home } = await away();
  const twin = evilTwin(w, false);
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }, WLAN];
  m.careOf.changed();
  const took = await w.until(() => m.events.some((e) => e.event === 'home-refused'), 5000);
  t.ok(took >= 0, `given up after ${took} ms`);
  t.equal(twin.seen, 3, 'three tries on the link');
  t.match(m.events.find((e) => e.event === 'home-refused')?.fields, { status: -1 });
  t.equal(m.mn.registration.state, 'registered');
  t.same(home.calls, []);
  t.ok(w.ha.cache.get(HOA), 'binding kept');
});

void t.test('the HA: hop limit 255 on a link that is not its home link is refused', async (t) => {
  const { w, m, home } = await away();
  // The HA's socket is also on another link (a DMZ, index 5), and so is the MN.
  w.net.attach(w.haUdp6, 'dmz', { ifindex: 5, linkLocal: 'fe80::1' });
  w.net.attach(m.udp6, 'dmz', { ifindex: 11, linkLocal: 'fe80::10' });
  m.careOf.candidates = [
    { family: 4, localAddress: MN4 },
    { ...WLAN, homeLinkIndex: 11 },
  ];
  m.careOf.changed();
  await w.until(() => m.events.some((e) => e.event === 'home-refused'), 3000);
  t.match(m.events.find((e) => e.event === 'home-refused')?.fields, { status: 129 });
  t.ok(w.ha.drops.get('home-not-on-link') >= 1);
  t.same(home.calls, []);
  t.equal(m.mn.registration.state, 'registered');
});

void t.test('the real home link: proven, the HoA moves only after the BA', async (t) => {
  const { w, m, home } = await away();
  w.net.attach(m.udp6, HOME_LINK, { ifindex: 7, linkLocal: 'fe80::10' });
  // Meanwhile the IPv4 link went away: the proof does not need it.
  m.careOf.candidates = [{ ...WLAN, homeLink: 'eth0', homeLinkIndex: 7 }];
  m.careOf.changed();
  await w.until(() => home.calls.length >= 2, 3000);
  t.same(home.calls, ['enter eth0', 'announce eth0'], 'HoA onto the link, then the NAs');
  const order = m.events.map((e) => e.event);
  t.ok(order.indexOf('deregistered') < order.indexOf('home'), 'BA first, then the move');
  t.equal(w.ha.cache.get(HOA), undefined, 'binding deleted');
  t.notOk(w.homeLink.bound.has(HOA), 'proxy ND withdrawn');
  t.equal(w.ha.drops.get('home-not-on-link'), 0);
});

void t.test('starting at home: the handshake and the BU go out of the home link', async (t) => {
  const { w, m, home } = await member({ link: HOME_LINK, ifindex: 7 });
  m.careOf.candidates = [{ ...WLAN, homeLink: 'eth0', homeLinkIndex: 7 }];
  m.mn.start();
  const took = await w.until(() => home.calls.includes('enter eth0'), 5000);
  t.ok(took >= 0, `home ${took} ms after start`);
  t.equal(m.mn.registration.state, 'deregistered');
  t.equal(w.ha.cache.size, 0, 'no binding at the HA (BA 0 with nothing to delete)');
});

void t.test('return_home off: a home candidate is ignored, nothing is sent on it', async (t) => {
  const { w, m, home } = await away({ returnHome: false });
  const twin = evilTwin(w, true);
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }, WLAN];
  m.careOf.changed();
  await w.run(3000, 10);
  t.equal(twin.seen, 0, 'nothing on the hotel link');
  t.same(home.calls, []);
  t.notOk(m.events.some((e) => e.event === 'home-candidate'));
  t.equal(m.mn.registration.state, 'registered');
});
