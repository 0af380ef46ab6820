/**
 * Route optimization over fakes: HA + CN + MN running the real role code (MobileNode with the
 * RouteOptimization module), the real channel and codecs. The HA host's kernel is modelled by
 * World.routeHomePrefix (packets for the home prefix go back into the HA's TUN).
 */
import t from 'tap';
import { formatStatus } from '../../src/cli/status.js';
import { verifyUpperLayerChecksum } from '../../src/wire/checksum.js';
import { decodePacket, encodeIcmpv6Packet } from '../../src/wire/packet.js';
import type { MobileNodeOptions } from '../../src/roles/mn/mobile-node.js';
import { HOME_LINK, World, type MnHandle } from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const MN_HOA = '2001:db8:100::10';
const CN_HOA = '2001:db8:100::20';
const CN4 = '203.0.113.130';
const CN6 = '2001:db8:4::10';

async function setup(
  opts: { ro?: boolean; requestAck?: boolean; options?: Partial<MobileNodeOptions> } = {},
) {
  const w = await World.create();
  const routed = w.routeHomePrefix();
  const cn = w.correspondent({ homeAddress: CN_HOA, address4: CN4, address6: CN6 });
  cn.careOf.candidates = [{ family: 4, localAddress: CN4 }];
  cn.mn.start();
  const mn = w.mobileNode({
    homeAddress: MN_HOA,
    address4: '192.0.2.10',
    address6: '2001:db8:3::10',
    peerRoles: ['ha', 'cn', 'mn'],
    ...(opts.options ? { options: opts.options } : {}),
    routeOptimization: {
      respond: false,
      correspondents: [
        {
          address: CN_HOA,
          underlay4: CN4,
          underlay6: CN6,
          port: 4191,
          publicKey: cn.key.publicKey,
          enabled: opts.ro ?? true,
          ...(opts.requestAck !== undefined ? { requestAck: opts.requestAck } : {}),
        },
      ],
    },
  });
  mn.careOf.candidates = [{ family: 4, localAddress: '192.0.2.10' }];
  mn.mn.start();
  const reg = await w.until(
    () => mn.mn.registration.state === 'registered' && cn.mn.registration.state === 'registered',
  );
  const atCn: Uint8Array[] = [];
  const atMn: Uint8Array[] = [];
  cn.tun.onKernelReceive((p) => atCn.push(p));
  mn.tun.onKernelReceive((p) => atMn.push(p));
  return { w, cn, mn, routed, reg, atCn, atMn };
}

function roUp(mn: MnHandle): boolean {
  return mn.ro?.registration(CN_HOA)?.routeOptimized === true;
}

void t.test('RR through HA and direct, BU/BA, then data MN <-> CN bypasses the HA', async (t) => {
  const { w, cn, mn, reg, atCn, atMn } = await setup();
  t.ok(reg >= 0, 'both registered at the HA');
  const took = await w.until(() => roUp(mn), 5000);
  t.ok(took >= 0, `route optimized after ${took} ms`);
  const st = mn.ro!.registration(CN_HOA)!.status(0);
  t.ok(st.lastHomeTest > 0 && st.lastCareOfTest > 0 && st.lastBindingAck > 0, 'HoT, CoT, BA seen');
  const b = cn.ro!.bindings!.get(MN_HOA);
  t.equal(b?.careOfAddress, '::ffff:192.0.2.10', 'CN bound the IPv4-mapped CoA');

  const haIn = w.ha.counters.tunnelPacketsIn;
  const haOut = w.ha.counters.tunnelPacketsOut;
  for (let i = 1; i <= 5; i++) mn.tun.inject(echo(MN_HOA, CN_HOA, i));
  for (let i = 1; i <= 5; i++) cn.tun.inject(echo(CN_HOA, MN_HOA, 100 + i));
  await w.until(() => atCn.length >= 5 && atMn.length >= 5, 1000);
  t.equal(atCn.length, 5, 'CN got every packet');
  t.equal(atMn.length, 5, 'MN got every packet');
  for (const p of atCn) {
    const d = decodePacket(p);
    t.equal(d.source, MN_HOA, 'CN sees the HoA as source');
    t.equal(d.homeAddress, undefined, 'HAO stripped');
    t.equal(verifyUpperLayerChecksum(p), true, 'checksum valid, never recomputed');
  }
  for (const p of atMn) {
    const d = decodePacket(p);
    t.equal(d.destination, MN_HOA);
    t.equal(d.routingHomeAddress, undefined, 'RH2 removed');
    t.equal(verifyUpperLayerChecksum(p), true);
  }
  t.equal(w.ha.counters.tunnelPacketsIn, haIn, 'HA received no data packets');
  t.equal(w.ha.counters.tunnelPacketsOut, haOut, 'HA sent no data packets');
  const pk = mn.ro!.packets(CN_HOA)!;
  t.equal(pk.directOut, 5);
  t.equal(pk.directIn, 5);
  const status = mn.mn.status();
  const entry = status.bindingUpdateList.find((e) => e.kind === 'correspondent');
  t.equal(entry?.routeOptimization, 'direct');
  t.ok(entry?.returnRoutability?.homeTest && entry.returnRoutability.bindingAck, 'RR timestamps');
  const text = formatStatus(JSON.parse(JSON.stringify(status)));
  t.match(text, /route optimization \(1; RR times UTC\)/, 'mip6 status shows the section');
  t.match(text, /2001:db8:100::20\s+direct\s+5\/5\s+0\/0/, 'RO state and direct/tunnel counts');
  const cs = cn.mn.status();
  t.equal(cs.role, 'cn');
  t.equal(cs.bindings?.[0]?.homeAddress, MN_HOA);
});

void t.test('RO off: the same traffic goes through the HA', async (t) => {
  const { w, cn, mn, routed, atCn, atMn } = await setup({ ro: false });
  await w.run(2000);
  t.equal(mn.ro?.registration(CN_HOA), undefined, 'no registration towards the CN');
  const haIn = w.ha.counters.tunnelPacketsIn;
  for (let i = 1; i <= 3; i++) mn.tun.inject(echo(MN_HOA, CN_HOA, i));
  for (let i = 1; i <= 3; i++) cn.tun.inject(echo(CN_HOA, MN_HOA, 50 + i));
  await w.until(() => atCn.length >= 3 && atMn.length >= 3, 1000);
  t.equal(atCn.length, 3);
  t.equal(atMn.length, 3);
  t.equal(w.ha.counters.tunnelPacketsIn - haIn, 6, 'HA decapsulated all six');
  t.ok(routed.routed >= 6, 'and its kernel routed them');
  t.equal(cn.ro!.bindings!.size, 0, 'no correspondent binding');
});

void t.test('move: traffic keeps flowing via the HA, RR + BU redone, RO back', async (t) => {
  const { w, cn, mn, atCn } = await setup();
  await w.until(() => roUp(mn), 5000);
  const cotBefore = mn.ro!.registration(CN_HOA)!.status(0).lastCareOfTest;
  w.net.move(mn.udp4, '198.51.100.99');
  mn.careOf.candidates = [{ family: 4, localAddress: '198.51.100.99' }];
  mn.careOf.changed();
  await w.until(() => !roUp(mn), 1000);
  t.notOk(roUp(mn), 'tunnel right after the move');
  // Traffic during the re-registration goes through the HA.
  let seq = 0;
  const sent: number[] = [];
  const took = await w.until(() => {
    if (w.clock.now() % 5 === 0) {
      seq++;
      sent.push(seq);
      mn.tun.inject(echo(MN_HOA, CN_HOA, seq & 0xff));
    }
    return roUp(mn) && cn.ro!.bindings!.get(MN_HOA)?.careOfAddress === '::ffff:198.51.100.99';
  }, 5000);
  t.ok(took >= 0, `RO re-established ${took} ms after the move`);
  const st = mn.ro!.registration(CN_HOA)!.status(0);
  t.ok(st.lastCareOfTest > cotBefore, 'CoT redone');
  t.equal(
    st.lastHomeTestInit < st.lastCareOfTestInit,
    true,
    'fresh home token reused (no new HoTI)',
  );
  await w.run(200);
  t.ok(
    atCn.length >= sent.length - 2,
    `CN got ${atCn.length} of ${sent.length} sent across the move`,
  );
});

void t.test('direct path fails: back to the tunnel within a second, RR retried', async (t) => {
  const { w, mn, atCn } = await setup();
  await w.until(() => roUp(mn), 5000);
  // Blackhole MN -> CN direct datagrams (the HA path stays up).
  const send = mn.udp4.send.bind(mn.udp4);
  let blocked = true;
  mn.udp4.send = (data, address, port, src) =>
    blocked && address === CN4 ? true : send(data, address, port, src);
  const start = w.clock.now();
  let seq = 0;
  const fell = await w.until(() => {
    if (w.clock.now() % 10 === 0) mn.tun.inject(echo(MN_HOA, CN_HOA, ++seq & 0xff));
    return !roUp(mn);
  }, 3000);
  t.ok(fell >= 0 && fell <= 1000, `fell back to the tunnel after ${fell} ms`);
  const before = atCn.length;
  mn.tun.inject(echo(MN_HOA, CN_HOA, 200));
  await w.until(() => atCn.length > before, 500);
  t.ok(atCn.length > before, 'traffic reaches the CN through the HA');
  blocked = false;
  const back = await w.until(() => roUp(mn), 40_000, 5);
  t.ok(back >= 0, `RO retried and back ${w.clock.now() - start} ms after the failure`);
});

void t.test('CN restart loses the binding: HAO -> Binding Error 1 -> MN redoes RR', async (t) => {
  const { w, cn, mn, atCn } = await setup();
  await w.until(() => roUp(mn), 5000);
  // The CN forgets its bindings (as after a restart): delete through its own poll at expiry.
  const b = cn.ro!.bindings!.get(MN_HOA)!;
  b.expiresAt = 0;
  cn.ro!.poll(w.clock.now() + 1);
  t.equal(cn.ro!.bindings!.size, 0);
  mn.tun.inject(echo(MN_HOA, CN_HOA, 1));
  await w.until(() => !roUp(mn), 500);
  t.notOk(roUp(mn), 'MN stopped using the HAO after the Binding Error');
  t.equal(atCn.length, 0, 'the HAO packet without binding was dropped');
  t.ok((cn.ro!.drops.get('hao-without-binding') ?? 0) >= 1);
  const again = await w.until(() => roUp(mn), 5000);
  t.ok(again >= 0, 'RR + BU redone');
});

void t.test('both mobile: two members optimize routes to each other, then one moves', async (t) => {
  const w = await World.create();
  w.routeHomePrefix();
  const A = '2001:db8:100::31';
  const B = '2001:db8:100::32';
  const mk = (hoa: string, v4: string): MnHandle => {
    const h = w.mobileNode({
      homeAddress: hoa,
      address4: v4,
      address6: `2001:db8:3::${hoa.slice(-2)}`,
      port: 4191,
      role: 'cn',
      peerRoles: ['ha', 'mn', 'cn'],
      routeOptimization: { respond: true, correspondents: [] },
    });
    h.careOf.candidates = [{ family: 4, localAddress: v4 }];
    return h;
  };
  const a = mk(A, '192.0.2.31');
  const b = mk(B, '192.0.2.32');
  a.ro!.addCorrespondent({
    address: B,
    underlay4: '192.0.2.32',
    port: 4191,
    publicKey: b.key.publicKey,
    enabled: true,
  });
  b.ro!.addCorrespondent({
    address: A,
    underlay4: '192.0.2.31',
    port: 4191,
    publicKey: a.key.publicKey,
    enabled: true,
  });
  a.mn.start();
  b.mn.start();
  const up = (): boolean =>
    a.ro!.registration(B)!.routeOptimized && b.ro!.registration(A)!.routeOptimized;
  const took = await w.until(up, 5000);
  t.ok(took >= 0, `both directions optimized after ${took} ms`);
  const atA: Uint8Array[] = [];
  const atB: Uint8Array[] = [];
  a.tun.onKernelReceive((p) => atA.push(p));
  b.tun.onKernelReceive((p) => atB.push(p));
  const haIn = w.ha.counters.tunnelPacketsIn;
  a.tun.inject(echo(A, B, 1));
  b.tun.inject(echo(B, A, 2));
  await w.until(() => atA.length >= 1 && atB.length >= 1, 500);
  t.equal(atB.length, 1);
  t.equal(atA.length, 1);
  t.equal(w.ha.counters.tunnelPacketsIn, haIn, 'nothing through the HA');
  // A moves; its own CN half keeps answering B, and both redo RR.
  w.net.move(a.udp4, '198.51.100.31');
  a.careOf.candidates = [{ family: 4, localAddress: '198.51.100.31' }];
  a.careOf.changed();
  await w.until(() => !a.ro!.registration(B)!.routeOptimized, 500);
  const again = await w.until(
    () => up() && b.ro!.bindings!.get(A)?.careOfAddress === '::ffff:198.51.100.31',
    5000,
  );
  t.ok(again >= 0, `after A's move, RO back in ${again} ms`);
  b.tun.inject(echo(B, A, 3));
  await w.until(() => atA.length >= 2, 500);
  t.equal(atA.length, 2, "B reaches A's new locator directly");
});

void t.test('returning home: correspondent binding deregistered, RO stops', async (t) => {
  const homeLink = {
    enter: (): Promise<void> => Promise.resolve(),
    leave: (): Promise<void> => Promise.resolve(),
  };
  const { w, cn, mn } = await setup({ options: { homeLink } });
  await w.until(() => roUp(mn), 5000);
  t.ok(cn.ro!.bindings!.get(MN_HOA), 'bound while away');
  w.net.attach(mn.udp6, HOME_LINK, { ifindex: 7, linkLocal: 'fe80::10' });
  mn.careOf.candidates = [
    { family: 4, localAddress: '192.0.2.10' },
    { family: 6, localAddress: MN_HOA, homeLink: 'eth0', homeLinkIndex: 7 },
  ];
  mn.careOf.changed();
  const took = await w.until(() => cn.ro!.bindings!.get(MN_HOA) === undefined, 3000);
  t.ok(took >= 0, `CN binding deleted ${took} ms after coming home`);
  t.notOk(roUp(mn), 'no route optimization at home');
  t.equal(mn.ro!.registration(CN_HOA)!.state, 'idle');
});

void t.test('ICMPv6 Parameter Problem about the HAO from the CN: RO stops', async (t) => {
  const { w, cn, mn, atMn } = await setup();
  await w.until(() => roUp(mn), 5000);
  // The CN's stack (as one without MIPv6 would) rejects the Home Address option.
  cn.tun.inject(
    encodeIcmpv6Packet({
      source: CN_HOA,
      destination: MN_HOA,
      message: { kind: 'parameterProblem', code: 2, pointer: 46, invoking: new Uint8Array(48) },
    }),
  );
  await w.until(() => !roUp(mn), 500);
  t.notOk(roUp(mn), 'tunnel again');
  t.equal(mn.ro!.registration(CN_HOA)!.state, 'disabled');
  t.equal(atMn.length, 1, 'the error itself still reaches the MN stack');
  const before = w.ha.counters.tunnelPacketsIn;
  mn.tun.inject(echo(MN_HOA, CN_HOA, 1));
  await w.until(() => w.ha.counters.tunnelPacketsIn > before, 500);
  t.equal(w.ha.counters.tunnelPacketsIn, before + 1, 'data goes through the HA');
});

void t.test('one-way traffic: liveness probes keep a silent CN direct', async (t) => {
  const { w, cn, mn, atCn } = await setup();
  await w.until(() => roUp(mn), 5000);
  // The CN's stack never answers (FakeTun has no kernel): only the channel probes come back.
  let n = 0;
  await w.until(() => {
    if (w.clock.now() % 20 === 0) mn.tun.inject(echo(MN_HOA, CN_HOA, ++n & 0xff));
    return !roUp(mn) || n >= 150;
  }, 5000);
  t.ok(roUp(mn), `still direct after ${n} one-way packets over 3 s`);
  t.ok(atCn.length >= n - 1, 'all delivered directly');
  t.equal(cn.ro!.bindings!.get(MN_HOA)?.careOfAddress, '::ffff:192.0.2.10');
});

void t.test(
  'selector check on the direct channel: a source the CN certificate lacks is dropped',
  async (t) => {
    const { w, cn, mn, atMn } = await setup();
    await w.until(() => roUp(mn), 5000);
    cn.tun.inject(echo('2001:db8:100::99', MN_HOA, 1)); // not the CN's home address
    cn.tun.inject(echo(CN_HOA, MN_HOA, 2));
    await w.until(() => atMn.length >= 1, 500);
    await w.run(50);
    t.equal(atMn.length, 1, 'only the packet from the CN home address arrives');
    t.equal(decodePacket(atMn[0]!).source, CN_HOA);
    t.equal(mn.ro!.drops.get('selector'), 1, 'the other one counted as a selector drop');
  },
);
