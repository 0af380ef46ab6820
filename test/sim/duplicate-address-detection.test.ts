/**
 * Duplicate Address Detection at the home agent (RFC 6275 §10.3.1), over fakes: a binding that
 * a BU creates on a home agent with a real home link waits for DAD before its BA; a home
 * address another node on the link holds gets BA 134 (and no binding, no route, no proxy
 * entry); with the L flag the link-local address with the same interface identifier is
 * checked and defended too; refreshes and moves of an existing binding run no DAD. The lab
 * (test/lab/home-agent.test.ts) runs the real probe against a real second host.
 */
import t from 'tap';
import { BA_STATUS, bindingUpdateFlags } from '../../src/wire/types.js';
import { encodeMobilityPacket } from '../../src/wire/packet.js';
import { T0 } from '../helpers/crypto.js';
import { echo } from '../helpers/packets.js';
import { rawMember } from '../helpers/raw-member.js';
import { World, HA_HOME_ADDRESS, HOME_LINK, RecordingHomeAddress } from '../helpers/world.js';

const HOA = '2001:db8:100::10';
const MN4 = '203.0.113.10';

void t.test('a new binding waits for DAD; refreshes and moves do not', async (t) => {
  const w = await World.create();
  const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  await w.until(() => m.mn.registration.state === 'registered');
  t.same(w.homeLink.detections, [[HOA]], 'DAD for the home address, once');
  t.ok(w.homeLink.bound.has(HOA), 'proxied after DAD');
  t.same(w.homeLink.defended.get(HOA), [], 'no L flag from mip6: the home address alone');

  m.careOf.candidates = [{ family: 4, localAddress: '203.0.113.12' }];
  m.careOf.changed();
  await w.until(() => w.ha.cache.get(HOA)?.careOfAddress.endsWith('203.0.113.12') === true);
  t.equal(w.homeLink.detections.length, 1, 'a move of an existing binding runs no DAD');
});

void t.test('the home address is taken on the home link: BA 134, nothing installed', async (t) => {
  const w = await World.create();
  w.homeLink.taken.add(HOA);
  const m = w.mobileNode({ homeAddress: HOA, address4: MN4, address6: '2001:db8:3::10' });
  m.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  m.mn.start();
  const took = await w.until(() => m.events.some((e) => e.event === 'failed'), 3000);
  t.ok(took >= 0, `refused after ${took} ms`);
  t.same(
    m.events.find((e) => e.event === 'failed')?.fields,
    { status: BA_STATUS.DAD_FAILED, statusName: 'Duplicate Address Detection failed' },
    'BA 134',
  );
  t.equal(m.mn.registration.state === 'registered', false, 'not registered');
  t.equal(w.ha.cache.get(HOA), undefined, 'no binding');
  t.notOk(w.homeLink.bound.has(HOA), 'no route, no proxy entry');
  t.equal(w.ha.counters.dadFailed, 1, 'counted');
});

void t.test('L flag: the link-local address is checked and defended too', async (t) => {
  const w = await World.create();
  const hoa = '2001:db8:100::66';
  const linkLocal = 'fe80::66';
  const m = await rawMember(w, { homeAddress: hoa, address4: '203.0.113.66' });
  t.ok(m.ready, 'channel up');
  const bu = (sequence: number) =>
    encodeMobilityPacket({
      source: '::ffff:203.0.113.66',
      destination: HA_HOME_ADDRESS,
      homeAddress: hoa,
      message: {
        kind: 'bindingUpdate',
        sequence,
        flags: bindingUpdateFlags({ A: true, H: true, L: true }),
        lifetimeUnits: 50,
        options: [],
      },
    });
  m.send(bu(1));
  await w.until(() => m.got.some((p) => p.mobility?.kind === 'bindingAcknowledgement'));
  t.same(w.homeLink.detections, [[hoa, linkLocal]], 'DAD for both addresses');
  t.same(w.homeLink.defended.get(hoa), [linkLocal], 'proxy ND for the link-local too');
  t.match(m.got.find((p) => p.mobility?.kind === 'bindingAcknowledgement')?.mobility, {
    status: 0,
  });

  // Another member whose link-local is taken on the link: 134 for it.
  const w2 = await World.create();
  w2.homeLink.taken.add(linkLocal);
  const m2 = await rawMember(w2, { homeAddress: hoa, address4: '203.0.113.66' });
  m2.send(bu(1));
  await w2.until(() => m2.got.some((p) => p.mobility?.kind === 'bindingAcknowledgement'));
  t.match(m2.got.find((p) => p.mobility?.kind === 'bindingAcknowledgement')?.mobility, {
    status: BA_STATUS.DAD_FAILED,
    lifetimeUnits: 0,
  });
  t.equal(w2.ha.cache.get(hoa), undefined, 'no binding');
});

void t.test('while DAD runs nothing is forwarded for the binding, and BUs wait', async (t) => {
  const w = await World.create();
  w.homeLink.holdDetections = true;
  const hoa = '2001:db8:100::67';
  const m = await rawMember(w, { homeAddress: hoa, address4: '203.0.113.67' });
  const bu = (sequence: number) =>
    encodeMobilityPacket({
      source: '::ffff:203.0.113.67',
      destination: HA_HOME_ADDRESS,
      homeAddress: hoa,
      message: {
        kind: 'bindingUpdate',
        sequence,
        flags: bindingUpdateFlags({ A: true, H: true }),
        lifetimeUnits: 50,
        options: [],
      },
    });
  m.send(bu(1));
  await w.run(20);
  t.ok(w.ha.cache.get(hoa), 'the binding exists, its DAD runs');
  const bas = () => m.got.filter((p) => p.mobility?.kind === 'bindingAcknowledgement');
  t.equal(bas().length, 0, 'no BA yet');
  const before = w.ha.counters.tunnelPacketsIn;
  m.sendPayload(echo(hoa, '2001:db8:100::5', 1));
  m.send(bu(2));
  await w.run(20);
  t.equal(w.ha.counters.tunnelPacketsIn, before, 'its data is not forwarded');
  t.equal(w.ha.drops.get('dad-pending'), 2, 'the packet and the second BU: counted');
  t.notOk(w.homeLink.bound.has(hoa), 'no route or proxy entry yet');

  w.homeLink.releaseDetections();
  await w.until(() => bas().length === 1);
  t.match(bas()[0]?.mobility, { status: 0, sequence: 1 }, 'the BA of the first BU');
  t.ok(w.homeLink.bound.has(hoa), 'route and proxy entry before the BA');
  m.sendPayload(echo(hoa, '2001:db8:100::5', 2));
  await w.run(20);
  t.equal(w.ha.counters.tunnelPacketsIn, before + 1, 'forwarded now');
});

void t.test(
  'L flag on a binding that skips DAD (the member left home again): its link-local is not proxied',
  async (t) => {
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
    // Home: its deregistration arrives on the home link (the HA notes it went home).
    w.net.attach(m.udp6, HOME_LINK, { ifindex: 7, linkLocal: 'fe80::10' });
    m.careOf.candidates = [{ family: 6, localAddress: HOA, homeLink: 'home0', homeLinkIndex: 7 }];
    m.careOf.changed();
    t.ok(
      (await w.until(() => home.calls.length >= 2 && w.ha.cache.get(HOA) === undefined, 3000)) >= 0,
      'deregistered from the home link',
    );
    const seq = m.mn.registration.status(0).sequence ?? 0;
    const closing = m.mn.close(10);
    await w.run(100);
    await closing;
    // The same member key (the World's first, 0x40) leaves again with a BU carrying L, which
    // mip6's MN never sets: the HA skips DAD for the home address (the member itself held it)
    // and must not start answering for fe80::<IID> that nobody checked.
    const raw = await rawMember(w, {
      homeAddress: HOA,
      address4: '203.0.113.77',
      keySeed: 0x40,
      wallClock: () => T0 + 1000, // a newer handshake timestamp than the MN's last
    });
    t.ok(raw.ready, 'channel up');
    raw.send(
      encodeMobilityPacket({
        source: '::ffff:203.0.113.77',
        destination: HA_HOME_ADDRESS,
        homeAddress: HOA,
        message: {
          kind: 'bindingUpdate',
          sequence: (seq + 1) & 0xffff,
          flags: bindingUpdateFlags({ A: true, H: true, L: true }),
          lifetimeUnits: 50,
          options: [],
        },
      }),
    );
    await w.until(() => raw.got.some((p) => p.mobility?.kind === 'bindingAcknowledgement'));
    t.match(raw.got.find((p) => p.mobility?.kind === 'bindingAcknowledgement')?.mobility, {
      status: 0,
    });
    t.same(w.homeLink.detections, [[HOA]], 'no DAD for the new binding (went-home branch)');
    t.ok(w.homeLink.bound.has(HOA), 'the home address is proxied');
    t.same(w.homeLink.defended.get(HOA), [], 'its link-local is not');
  },
);

void t.test(
  'a deregistration while DAD runs is answered at once; the held BA never leaves',
  async (t) => {
    const w = await World.create();
    w.homeLink.holdDetections = true;
    const hoa = '2001:db8:100::68';
    const m = await rawMember(w, { homeAddress: hoa, address4: '203.0.113.68' });
    const bu = (sequence: number, lifetimeUnits: number) =>
      encodeMobilityPacket({
        source: '::ffff:203.0.113.68',
        destination: HA_HOME_ADDRESS,
        homeAddress: hoa,
        message: {
          kind: 'bindingUpdate',
          sequence,
          flags: bindingUpdateFlags({ A: true, H: true }),
          lifetimeUnits,
          options: [],
        },
      });
    const bas = () => m.got.filter((p) => p.mobility?.kind === 'bindingAcknowledgement');
    m.send(bu(1, 50));
    await w.run(20);
    t.ok(w.ha.cache.get(hoa), 'DAD runs');
    m.send(bu(2, 0));
    await w.until(() => bas().length === 1);
    t.match(bas()[0]?.mobility, { status: 0, sequence: 2, lifetimeUnits: 0 }, 'deregistered');
    t.equal(w.ha.cache.get(hoa), undefined, 'binding gone');
    w.homeLink.releaseDetections();
    await w.run(50);
    t.equal(bas().length, 1, 'no BA for the first BU after all');
    t.notOk(w.homeLink.bound.has(hoa), 'nothing installed');
  },
);
