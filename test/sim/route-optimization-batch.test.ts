/**
 * The route-optimized data path is batched like the tunnel (issue 7): a TUN batch of packets for
 * a correspondent leaves in one sendDatagrams call (one batch AEAD seal, one sendmmsg), in both
 * directions (HAO MN -> CN, RH2 CN -> MN), and what arrives directly is written to the TUN in
 * batches, not one write per packet. A staging slab that fills up mid-batch is flushed in order.
 * HA + CN + MN over fakes, the real role code (test/helpers/world.ts).
 */
import t from 'tap';
import type { OutgoingDatagrams, PacketSpans } from '../../src/io/types.js';
import { verifyUpperLayerChecksum } from '../../src/wire/checksum.js';
import { decodePacket } from '../../src/wire/packet.js';
import { T0 } from '../helpers/crypto.js';
import type { FakeTun } from '../helpers/fake-tun.js';
import type { FakeUdpEndpoint } from '../helpers/fake-network.js';
import { World } from '../helpers/world.js';
import { echo } from '../helpers/packets.js';

const MN_HOA = '2001:db8:100::10';
const CN_HOA = '2001:db8:100::20';
const CN4 = '203.0.113.130';
const MN4 = '192.0.2.10';

async function setup() {
  const w = await World.create();
  w.routeHomePrefix();
  const cn = w.correspondent({ homeAddress: CN_HOA, address4: CN4, address6: '2001:db8:4::10' });
  cn.careOf.candidates = [{ family: 4, localAddress: CN4 }];
  cn.mn.start();
  const mn = w.mobileNode({
    homeAddress: MN_HOA,
    address4: MN4,
    address6: '2001:db8:3::10',
    peerRoles: ['ha', 'cn', 'mn'],
    routeOptimization: {
      respond: false,
      correspondents: [
        { address: CN_HOA, underlay4: CN4, port: 4191, publicKey: cn.key.publicKey, enabled: true },
      ],
    },
  });
  mn.careOf.candidates = [{ family: 4, localAddress: MN4 }];
  mn.mn.start();
  const up = await w.until(() => mn.ro?.registration(CN_HOA)?.routeOptimized === true, 5000);
  const atCn: Uint8Array[] = [];
  const atMn: Uint8Array[] = [];
  cn.tun.onKernelReceive((p) => atCn.push(p));
  mn.tun.onKernelReceive((p) => atMn.push(p));
  return { w, cn, mn, up, atCn, atMn };
}

/** Records the size of every sendDatagrams call towards `to`. */
function spySends(udp: FakeUdpEndpoint, to: string): number[] {
  const calls: number[] = [];
  const real = udp.sendDatagrams.bind(udp);
  udp.sendDatagrams = (b: OutgoingDatagrams): number => {
    const dst = `${b.dstAddrs[0]}.${b.dstAddrs[1]}.${b.dstAddrs[2]}.${b.dstAddrs[3]}`;
    if (dst === to) calls.push(b.count);
    return real(b);
  };
  return calls;
}

/** Records the size of every writePackets call. */
function spyTunWrites(tun: FakeTun): number[] {
  const calls: number[] = [];
  const real = tun.writePackets.bind(tun);
  tun.writePackets = (p: PacketSpans): number => {
    calls.push(p.count);
    return real(p);
  };
  return calls;
}

function sequences(ps: Uint8Array[]): number[] {
  return ps.map((p) => {
    const m = decodePacket(p).icmpv6;
    return m?.kind === 'echoRequest' ? m.sequence : -1;
  });
}

void t.test('a TUN batch to a correspondent: one seal + send, one batched TUN write', async (t) => {
  const { w, cn, mn, up, atCn, atMn } = await setup();
  t.ok(up >= 0, 'route optimized');
  const mnSends = spySends(mn.udp4, CN4);
  const cnSends = spySends(cn.udp4, MN4);
  const cnWrites = spyTunWrites(cn.tun);
  const mnWrites = spyTunWrites(mn.tun);

  mn.tun.inject(Array.from({ length: 20 }, (_, i) => echo(MN_HOA, CN_HOA, i + 1)));
  await w.until(() => atCn.length >= 20, 1000);
  t.same(mnSends, [20], 'MN -> CN: the 20 packets left in one sendDatagrams call');
  t.same(
    sequences(atCn),
    Array.from({ length: 20 }, (_, i) => i + 1),
    'all arrived, in order',
  );
  for (const p of atCn) {
    const d = decodePacket(p);
    if (d.source !== MN_HOA || d.homeAddress !== undefined || !verifyUpperLayerChecksum(p)) {
      t.fail(`CN got a packet not restored to the HoA: ${JSON.stringify(d.source)}`);
    }
  }
  t.ok(
    cnWrites.length < 20 && cnWrites.reduce((a, b) => a + b, 0) === 20,
    `CN wrote them to its TUN in ${cnWrites.length} batch(es): ${cnWrites.join(',')}`,
  );

  cn.tun.inject(Array.from({ length: 20 }, (_, i) => echo(CN_HOA, MN_HOA, 100 + i)));
  await w.until(() => atMn.length >= 20, 1000);
  t.same(cnSends, [20], 'CN -> MN (RH2): one sendDatagrams call');
  t.same(
    sequences(atMn),
    Array.from({ length: 20 }, (_, i) => 100 + i),
    'all arrived, in order',
  );
  for (const p of atMn) {
    const d = decodePacket(p);
    if (d.destination !== MN_HOA || d.routingHomeAddress !== undefined) {
      t.fail('MN got a packet with its RH2 still in');
    }
  }
  t.ok(
    mnWrites.length < 20 && mnWrites.reduce((a, b) => a + b, 0) === 20,
    `MN wrote them to its TUN in ${mnWrites.length} batch(es): ${mnWrites.join(',')}`,
  );
  t.equal(mn.ro!.packets(CN_HOA)!.directOut, 20);
  t.equal(mn.ro!.packets(CN_HOA)!.directIn, 20);
  t.same(mn.ro!.drops.byReason, {}, 'no drops on the MN side');
});

void t.test('a staging slab that fills up mid-batch is sent first, in order', async (t) => {
  const { w, mn, atCn } = await setup();
  const sends = spySends(mn.udp4, CN4);
  const ro = mn.ro!;
  // 300 packets of ~1.3 KB: more than the 256 KiB staging slab holds, as one "batch".
  const n = 300;
  const now = T0 + w.clock.now();
  let taken = 0;
  for (let i = 0; i < n; i++) {
    const p = echo(MN_HOA, CN_HOA, i, 1200);
    const buf = new Uint8Array(p.length + 64);
    buf.set(p, 32);
    if (ro.fromTun(buf, 32, p.length, now)) taken++;
    buf.fill(0); // the caller's buffer is reused at once: fromTun must have copied it
  }
  t.equal(taken, n, 'every packet taken for the direct path');
  ro.flushDirect(now);
  t.ok(sends.length >= 2, `sent in ${sends.length} batches: ${sends.join(',')}`);
  t.equal(
    sends.reduce((a, b) => a + b, 0),
    n,
    'every packet sent',
  );
  await w.until(() => atCn.length >= n, 2000);
  t.same(
    sequences(atCn),
    Array.from({ length: n }, (_, i) => i),
    'all arrived, in order',
  );
  t.same(ro.drops.byReason, {}, 'no drops');
});

void t.test('poll() flushes what a caller staged without flushing', async (t) => {
  const { w, mn, atCn } = await setup();
  const ro = mn.ro!;
  const p = echo(MN_HOA, CN_HOA, 5);
  const buf = new Uint8Array(p.length + 64);
  buf.set(p, 32);
  t.equal(ro.fromTun(buf, 32, p.length, T0 + w.clock.now()), true);
  await w.until(() => atCn.length >= 1, 1000);
  t.same(sequences(atCn), [5], 'delivered by the next timer tick');
});
