// native/vnet.c through its test surface (vnetSplit): a TSO/USO super-packet behind a
// virtio-net header is cut into packets with the right lengths, IPv4 identifications, TCP
// sequence numbers, flags and checksums (checked here with an independent sum); a pending
// checksum is completed; and headers with nonsense in them are dropped with their reason,
// never read past (a fuzz run of random headers over random packets).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { loadAddon } from '../../src/io/addon.js';
import { packetSpans } from '../../src/io/batch.js';
import { internetChecksum, onesComplementSum } from '../../src/wire/checksum.js';
import { ipHeaderChecksumOk, l4ChecksumOk, withUdpChecksum } from '../helpers/checksum.js';

const addon = loadAddon();
const split = addon.vnetSplit;
const skip = split === undefined ? 'the addon has no vnetSplit' : false;

const NONE = 0;
const TCPV4 = 1;
const TCPV6 = 4;
const UDP_L4 = 5;
const BAD = { type: -1, checksum: -2, headers: -3, gsoSize: -4, tooBig: -5 };

interface Hdr {
  flags?: number;
  type: number;
  gsoSize?: number;
  csumStart?: number;
  csumOffset?: number;
}
function vnet(h: Hdr, packet: Uint8Array): Uint8Array {
  const out = new Uint8Array(10 + packet.length);
  const v = new DataView(out.buffer);
  out[0] = h.flags ?? 1;
  out[1] = h.type;
  v.setUint16(4, h.gsoSize ?? 0, true);
  v.setUint16(6, h.csumStart ?? 0, true);
  v.setUint16(8, h.csumOffset ?? 0, true);
  out.set(packet, 10);
  return out;
}

/** An IPv4 or IPv6 packet with a TCP (flags) or UDP header and `payload` bytes. */
function packet(
  v6: boolean,
  udp: boolean,
  payload: number,
  tcpFlags = 0x18 | 0x01 | 0x80,
): Uint8Array {
  const ipl = v6 ? 40 : 20;
  const l4l = udp ? 8 : 32; // TCP with 12 bytes of options
  const p = new Uint8Array(ipl + l4l + payload);
  const v = new DataView(p.buffer);
  if (v6) {
    p[0] = 0x60;
    v.setUint16(4, l4l + payload);
    p[6] = udp ? 17 : 6;
    p[7] = 64;
    p.set([0xfd, 0, 0, 0x16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 8);
    p.set([0xfd, 0, 0, 0x16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], 24);
  } else {
    p[0] = 0x45;
    v.setUint16(2, p.length);
    v.setUint16(4, 0x1234);
    v.setUint16(6, 0x4000);
    p[8] = 64;
    p[9] = udp ? 17 : 6;
    p.set([10, 99, 16, 1, 10, 99, 16, 2], 12);
  }
  v.setUint16(ipl, 40000);
  v.setUint16(ipl + 2, 5201);
  if (udp) v.setUint16(ipl + 4, l4l + payload);
  else {
    v.setUint32(ipl + 4, 0xfffff000); // wraps during the cut
    v.setUint32(ipl + 8, 77);
    p[ipl + 12] = (l4l / 4) << 4;
    p[ipl + 13] = tcpFlags;
    p.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], ipl + 20);
  }
  for (let i = ipl + l4l; i < p.length; i++) p[i] = (i * 7) & 0xff;
  return p;
}

function run(input: Uint8Array, slot = 1500, max = 300): { n: number; out: Uint8Array[] } {
  const out = new Uint8Array(slot * max);
  const offsets = new Uint32Array(max);
  const lengths = new Uint32Array(max);
  const n = split!(input, out, slot, offsets, lengths);
  const pkts: Uint8Array[] = [];
  for (let i = 0; i < Math.max(0, n); i++)
    pkts.push(out.slice(offsets[i], offsets[i]! + lengths[i]!));
  return { n, out: pkts };
}

for (const v6 of [false, true]) {
  void t.test(
    `IPv${v6 ? 6 : 4} TCP super-packet cut into MSS-sized packets`,
    { skip },
    async (t) => {
      const ipl = v6 ? 40 : 20;
      const mss = 1000;
      const payload = 10 * mss + 123;
      const sp = packet(v6, false, payload);
      const r = run(
        vnet({ type: v6 ? TCPV6 : TCPV4, gsoSize: mss, csumStart: ipl, csumOffset: 16 }, sp),
      );
      t.equal(r.n, 11, 'eleven packets');
      let data = 0;
      r.out.forEach((p, i) => {
        const v = new DataView(p.buffer, p.byteOffset);
        const seg = i < 10 ? mss : 123;
        t.equal(p.length, ipl + 32 + seg, `packet ${i}: ${seg} bytes of payload`);
        if (v6) t.equal(v.getUint16(4), 32 + seg, 'IPv6 payload length');
        else {
          t.equal(v.getUint16(2), p.length, 'IPv4 total length');
          t.equal(v.getUint16(4), 0x1234 + i, 'identification + i');
          t.ok(ipHeaderChecksumOk(p), 'IPv4 header checksum');
        }
        t.equal(v.getUint32(ipl + 4), (0xfffff000 + i * mss) >>> 0, 'sequence number');
        const flags = p[ipl + 13]!;
        t.equal((flags & 0x01) !== 0, i === 10, 'FIN only on the last');
        t.equal((flags & 0x08) !== 0, i === 10, 'PSH only on the last');
        t.equal((flags & 0x80) !== 0, i === 0, 'CWR only on the first');
        t.same(p.subarray(ipl + 20, ipl + 32), sp.subarray(ipl + 20, ipl + 32), 'options kept');
        t.same(
          p.subarray(ipl + 32),
          sp.subarray(ipl + 32 + data, ipl + 32 + data + seg),
          'the right slice of payload',
        );
        t.equal(l4ChecksumOk(p), true, 'TCP checksum verifies');
        data += seg;
      });
    },
  );

  void t.test(
    `IPv${v6 ? 6 : 4} UDP super-packet (USO) and checksum completion`,
    { skip },
    async (t) => {
      const ipl = v6 ? 40 : 20;
      const sp = packet(v6, true, 3 * 700 + 5);
      const r = run(vnet({ type: UDP_L4, gsoSize: 700, csumStart: ipl, csumOffset: 6 }, sp));
      t.equal(r.n, 4);
      t.same(
        r.out.map((p) => new DataView(p.buffer, p.byteOffset).getUint16(ipl + 4)),
        [708, 708, 708, 13],
        'UDP lengths',
      );
      t.ok(
        r.out.every((p) => l4ChecksumOk(p) === true),
        'UDP checksums verify',
      );
      // A plain packet with its checksum left to us: the field holds the pseudo-header sum.
      const p = packet(v6, true, 333);
      let pseudo = onesComplementSum(p, v6 ? 8 : 12, v6 ? 32 : 8) + 17 + (p.length - ipl);
      while (pseudo > 0xffff) pseudo = (pseudo & 0xffff) + Math.floor(pseudo / 0x10000);
      new DataView(p.buffer).setUint16(ipl + 6, pseudo);
      const c = run(vnet({ type: NONE, csumStart: ipl, csumOffset: 6 }, p));
      t.equal(c.n, 1);
      t.equal(l4ChecksumOk(c.out[0]!), true, 'completed checksum verifies');
      const plain = run(vnet({ flags: 0, type: NONE }, p));
      t.same(plain.out[0], p, 'without NEEDS_CSUM: passed through untouched');
    },
  );
}

void t.test('malformed virtio-net headers are dropped with a reason', { skip }, async (t) => {
  const sp = packet(false, false, 5000);
  const ok = { type: TCPV4, gsoSize: 1000, csumStart: 20, csumOffset: 16 };
  const cases: [string, Uint8Array, number][] = [
    ['unknown gso_type 2', vnet({ ...ok, type: 2 }, sp), BAD.type],
    ['UFO (3), never asked for', vnet({ ...ok, type: 3 }, sp), BAD.type],
    ['gso_type 99', vnet({ ...ok, type: 99 }, sp), BAD.type],
    ['TCPV6 on an IPv4 packet', vnet({ ...ok, type: TCPV6 }, sp), BAD.type],
    ['UDP_L4 on a TCP packet', vnet({ ...ok, type: UDP_L4, csumOffset: 6 }, sp), BAD.type],
    ['gso_size 0', vnet({ ...ok, gsoSize: 0 }, sp), BAD.gsoSize],
    ['gso_size larger than a slot', vnet({ ...ok, gsoSize: 60000 }, sp), BAD.gsoSize],
    ['gso_size 1: 5000 pieces', vnet({ ...ok, gsoSize: 1 }, sp), BAD.gsoSize],
    ['csum_start beyond the packet', vnet({ ...ok, csumStart: 60000 }, sp), BAD.checksum],
    ['csum_start inside the IP header', vnet({ ...ok, csumStart: 10 }, sp), BAD.checksum],
    ['csum_offset not TCP checksum', vnet({ ...ok, csumOffset: 4000 }, sp), BAD.checksum],
    ['GSO with DATA_VALID, not NEEDS_CSUM: cut all the same', vnet({ ...ok, flags: 2 }, sp), 5],
    [
      'plain packet, checksum position past the end',
      vnet({ type: NONE, csumStart: 100, csumOffset: 60000 }, sp.subarray(0, 200)),
      BAD.checksum,
    ],
    ['plain packet above the slot', vnet({ flags: 0, type: NONE }, sp), BAD.tooBig],
    ['only an IP header', vnet(ok, sp.subarray(0, 20)), BAD.headers],
    ['TCP header cut short', vnet(ok, sp.subarray(0, 30)), BAD.headers],
    ['nothing after the header', vnet(ok, new Uint8Array(0)), BAD.headers],
  ];
  const doff = sp.slice();
  doff[20 + 12] = 0xf0; // data offset 60 bytes
  cases.push(['TCP data offset past the end', vnet(ok, doff.subarray(0, 70)), BAD.headers]);
  const frag = sp.slice();
  frag[6] = 0x20; // more fragments
  cases.push(['an IPv4 fragment', vnet(ok, frag), BAD.headers]);
  const ihl = sp.slice();
  ihl[0] = 0x4f; // 60-byte IPv4 header: csum_start 20 is then wrong
  cases.push(['IHL that moves the TCP header', vnet(ok, ihl), BAD.checksum]);
  for (const [what, input, reason] of cases) t.equal(run(input).n, reason, what);
  t.equal(run(vnet(ok, sp)).n, 5, 'and the header that is right: 5 pieces');
  const valid = run(vnet({ ...ok, flags: 2, csumStart: 0, csumOffset: 0 }, sp));
  t.equal(valid.n, 5, 'DATA_VALID: the checksum position is not used');
  t.ok(
    valid.out.every((p) => l4ChecksumOk(p) === true),
    'and every piece has its own full checksum',
  );
});

/**
 * A BIG TCP super-packet (issue #16: longer than 64 KiB, as Linux builds one for a device whose
 * gso_max_size is above 64 KiB): IPv4 with total length 0; IPv6 with payload length 0, bare
 * (Linux 6.18+) or after a Hop-by-Hop header holding only a Jumbo Payload option (RFC 2675 §2,
 * Linux 5.19-6.17).
 */
function bigPacket(v6: boolean, jumbo: boolean, payload: number): Uint8Array {
  const plain = packet(v6, false, payload);
  const v = new DataView(plain.buffer);
  if (!v6) {
    v.setUint16(2, 0);
    return plain;
  }
  v.setUint16(4, 0);
  if (!jumbo) return plain;
  const p = new Uint8Array(plain.length + 8);
  p.set(plain.subarray(0, 40));
  p[6] = 0; // next header: Hop-by-Hop
  p.set([6, 0, 0xc2, 4], 40); // next header TCP, 8 bytes, Jumbo Payload option, 4 bytes
  new DataView(p.buffer).setUint32(44, p.length - 40);
  p.set(plain.subarray(40), 48);
  return p;
}

for (const [v6, jumbo] of [
  [false, false],
  [true, false],
  [true, true],
] as const) {
  const what = v6 ? (jumbo ? 'IPv6 with a jumbo option' : 'IPv6, payload length 0') : 'IPv4';
  void t.test(`BIG TCP super-packet over 64 KiB (${what}) cut right`, { skip }, async (t) => {
    const ipl = v6 ? 40 : 20;
    const mss = 1388;
    const payload = 150_000; // 108 pieces, the last 88 bytes
    const sp = bigPacket(v6, jumbo, payload);
    const l4 = sp.length - 32 - payload; // where the TCP header starts
    const r = run(
      vnet({ type: v6 ? 4 : 1, gsoSize: mss, csumStart: l4, csumOffset: 16 }, sp),
      1500,
      200,
    );
    t.equal(r.n, Math.ceil(payload / mss), `${Math.ceil(payload / mss)} packets`);
    let data = 0;
    let bad = 0;
    r.out.forEach((p, i) => {
      const v = new DataView(p.buffer, p.byteOffset);
      const seg = Math.min(mss, payload - data);
      const ok =
        p.length === ipl + 32 + seg &&
        (v6
          ? p[6] === 6 && v.getUint16(4) === 32 + seg
          : v.getUint16(2) === p.length && ipHeaderChecksumOk(p)) &&
        v.getUint32(ipl + 4) === (0xfffff000 + i * mss) >>> 0 &&
        Buffer.compare(p.subarray(ipl + 32), sp.subarray(l4 + 32 + data, l4 + 32 + data + seg)) ===
          0 &&
        l4ChecksumOk(p) === true;
      if (!ok) bad++;
      data += seg;
    });
    t.equal(
      bad,
      0,
      'every piece a plain packet (no jumbo option), its own lengths, sequence number, payload slice and checksums',
    );
    t.equal(data, payload, 'the whole payload');
    t.equal(r.out[0]![ipl + 13]! & 0x09, 0, 'FIN and PSH not on the first');
    t.equal(r.out.at(-1)![ipl + 13]! & 0x09, 0x09, 'but on the last');
  });
}

void t.test('a malformed jumbo option or an oversized read is refused', { skip }, async (t) => {
  const sp = bigPacket(true, true, 100_000);
  const ok = { type: TCPV6, gsoSize: 1388, csumStart: 48, csumOffset: 16 };
  t.equal(run(vnet(ok, sp), 1500, 100).n, 73, 'the right one: 73 pieces');
  const cases: [string, (p: Uint8Array) => void][] = [
    ['payload length not 0', (p) => (p[5] = 1)],
    ["jumbo length not the packet's", (p) => (p[47] = p[47]! ^ 1)],
    ['Hop-by-Hop header longer than the option', (p) => (p[41] = 1)],
    ['another option than Jumbo Payload', (p) => (p[42] = 0x05)],
    ['option length not 4', (p) => (p[43] = 2)],
  ];
  for (const [what, change] of cases) {
    const p = sp.slice();
    change(p);
    t.equal(run(vnet(ok, p), 1500, 100).n, BAD.headers, what);
  }
  const small = bigPacket(true, true, 1000);
  t.equal(run(vnet(ok, small)).n, BAD.headers, 'a jumbo option on a packet below 64 KiB');
  const udp = sp.slice();
  udp[40] = 17;
  t.equal(
    run(vnet({ ...ok, type: UDP_L4, csumOffset: 6 }, udp), 1500, 100).n,
    BAD.headers,
    'a jumbo option on a UDP super-packet',
  );
  const tooLong = new Uint8Array(10 + 512 * 1024 + 1);
  t.throws(() => run(tooLong), RangeError, 'input longer than the addon takes');
  const many = bigPacket(false, false, 400_000);
  t.equal(
    run(vnet({ ...ok, type: TCPV4, gsoSize: 100, csumStart: 20 }, many), 1500, 10).n,
    BAD.gsoSize,
    '4000 pieces: more than 512 KiB of 256-byte pieces allows',
  );
});

void t.test(
  'random headers over random packets: no crash, a count or a reason',
  { skip },
  async (t) => {
    let kept = 0;
    let dropped = 0;
    for (let i = 0; i < 3000; i++) {
      const len = Math.floor(Math.random() * 3000);
      const body = i % 2 === 0 ? randomBytes(len) : packet(i % 4 === 1, i % 8 === 3, len);
      const h = randomBytes(10);
      h[1] = [0, 1, 3, 4, 5, 0x81, h[1]!][i % 7]!;
      const input = new Uint8Array(10 + body.length);
      input.set(h);
      input.set(body, 10);
      const r = run(input, 1500, 64);
      if (r.n >= 0) {
        kept++;
        if (r.out.some((p) => p.length > 1500)) t.fail('a piece larger than the slot');
      } else {
        dropped++;
        if (r.n < -5) t.fail(`unknown reason ${r.n}`);
      }
    }
    t.ok(dropped > 0 && kept > 0, `${kept} kept, ${dropped} dropped with a reason`);
  },
);

/** Segments of one flow as the receive side hands them to the TUN: consecutive sequence numbers. */
function flow(v6: boolean, sizes: number[], flags: number[] = []): Uint8Array[] {
  const ipl = v6 ? 40 : 20;
  let seq = 0xfffff000;
  return sizes.map((n, i) => {
    const p = packet(v6, false, n, flags[i] ?? 0x10);
    const v = new DataView(p.buffer);
    v.setUint32(ipl + 4, seq >>> 0);
    if (!v6) withIpChecksum(p, 100 + i);
    seq += n;
    return p;
  });
}

function coalesce(pkts: Uint8Array[], families = 3): { k: number; out: Uint8Array } {
  const spans = packetSpans(pkts);
  const out = new Uint8Array(138);
  const k = addon.vnetCoalesce!(
    spans.buf,
    spans.offsets,
    spans.lengths,
    spans.count,
    families,
    out,
  );
  return { k, out };
}

const skipCoalesce = addon.vnetCoalesce === undefined ? 'the addon has no vnetCoalesce' : false;

/** The GSO header vnetCoalesce wrote: NEEDS_CSUM, the type, hdr_len, gso_size (the payload size
 *  of each piece) and the checksum's position. */
function gsoHeader(
  t: Test,
  out: Uint8Array,
  type: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
): void {
  const vh = new DataView(out.buffer, out.byteOffset);
  t.equal(out[0], 1, 'NEEDS_CSUM');
  t.equal(out[1], type, 'GSO type');
  t.equal(vh.getUint16(2, true), hdrLen, 'hdr_len');
  t.equal(vh.getUint16(4, true), gsoSize, 'gso_size = the payload size of each piece');
  t.equal(vh.getUint16(6, true), csumStart, 'csum_start');
  t.equal(vh.getUint16(8, true), csumOffset, 'csum_offset');
}

for (const v6 of [false, true]) {
  void t.test(
    `IPv${v6 ? 6 : 4}: a TCP run coalesced for the TUN`,
    { skip: skipCoalesce },
    async (t) => {
      const ipl = v6 ? 40 : 20;
      const pkts = flow(v6, [1000, 1000, 1000, 400], [0x10, 0x10, 0x10, 0x18]);
      const { k, out } = coalesce(pkts);
      t.equal(k, 4, 'all four');
      gsoHeader(t, out, v6 ? TCPV6 : TCPV4, ipl + 32, 1000, ipl, 16);
      const h = out.subarray(10, 10 + ipl + 32);
      const hv = new DataView(h.buffer, h.byteOffset);
      const total = ipl + 32 + 3400;
      if (v6) t.equal(hv.getUint16(4), total - 40, 'IPv6 payload length of the whole');
      else {
        t.equal(hv.getUint16(2), total, 'IPv4 total length of the whole');
        t.ok(ipHeaderChecksumOk(h), 'IPv4 header checksum');
      }
      t.equal(h[ipl + 13], 0x18, 'PSH of the last');
      t.equal(hv.getUint32(ipl + 4), 0xfffff000, 'the first sequence number');
      // The checksum field holds the pseudo-header sum of the whole (the kernel completes it).
      let pseudo = onesComplementSum(h, v6 ? 8 : 12, v6 ? 32 : 8) + 6 + (total - ipl);
      while (pseudo > 0xffff) pseudo = (pseudo & 0xffff) + Math.floor(pseudo / 0x10000);
      t.equal(hv.getUint16(ipl + 16), pseudo, 'pseudo-header sum in the checksum field');
      t.equal(coalesce(pkts, v6 ? 1 : 2).k, 1, 'not when that family has no TSO');
    },
  );
}

/** [what, change, the run length wanted, keep: leave the checksums as the change made them] */
type RunCase = [string, (p: Uint8Array[]) => void, number, boolean?];

/** Each case on a fresh base(): the change, then (unless keep) `repair` on every packet so
 *  the checksums are right again and only the change itself can end the run. */
function runCases(
  t: Test,
  base: () => Uint8Array[],
  cases: readonly RunCase[],
  families: number,
  repair: (q: Uint8Array) => void,
): void {
  for (const [what, change, want, keep] of cases) {
    const p = base();
    change(p);
    if (keep !== true) for (const q of p) repair(q);
    t.equal(coalesce(p, families).k, want, what);
  }
}

void t.test('what ends or prevents a run', { skip: skipCoalesce }, async (t) => {
  const base = (): Uint8Array[] => flow(false, [1000, 1000, 1000]);
  // The IPv4 header checksum is made right again after each change unless `keep`.
  const cases: RunCase[] = [
    ['PSH in the middle ends the run after it', (p) => (p[1]![33] = 0x18), 2],
    ['PSH on the first: alone', (p) => (p[0]![33] = 0x18), 1],
    ['FIN: alone', (p) => (p[0]![33] = 0x11), 1],
    ['SYN in the middle', (p) => (p[1]![33] = 0x12), 1],
    ['a gap in the sequence', (p) => new DataView(p[1]!.buffer).setUint32(24, 5), 1],
    ['another port', (p) => (p[1]![21] = 9), 1],
    ['another ack number', (p) => (p[2]![31] = 1), 2],
    ['another window', (p) => (p[1]![34] = 1), 1],
    ['other TCP options', (p) => (p[1]![45] = 9), 1],
    ['another TTL', (p) => (p[1]![8] = 1), 1],
    ['IPv4 options (IHL 6)', (p) => (p[0]![0] = 0x46), 1],
    ['a fragment', (p) => (p[1]![6] = 0x20), 1],
    ['IP length not the packet length', (p) => new DataView(p[1]!.buffer).setUint16(2, 900), 1],
    ['TCP data offset past the end', (p) => (p[0]![32] = 0xf0), 1],
    ['DF clear on the second (its id would be rewritten)', (p) => (p[1]![6] = 0), 1],
    ['a wrong IPv4 header checksum on the third', (p) => flip(p[2]!, 10), 2, true],
  ];
  t.equal(coalesce(base()).k, 3, 'the untouched run');
  runCases(t, base, cases, 3, (q) => withIpChecksum(q, new DataView(q.buffer).getUint16(4)));
  t.equal(coalesce(flow(false, [1000, 400, 1000])).k, 2, 'a shorter piece is the last');
  t.equal(coalesce(flow(false, [1000, 1200])).k, 1, 'a longer piece does not join');
  t.equal(coalesce(flow(false, [0, 0])).k, 1, 'pure ACKs stay apart');
  t.equal(coalesce(flow(false, Array<number>(80).fill(1000))).k, 64, 'at most 64 packets');
  t.equal(coalesce(flow(false, Array<number>(60).fill(1400))).k, 46, 'at most 64 KiB');
  let odd = 0;
  for (let i = 0; i < 2000; i++) {
    const n = 1 + Math.floor(Math.random() * 6);
    const pkts = Array.from({ length: n }, () =>
      Math.random() < 0.5
        ? randomBytes(Math.floor(Math.random() * 200))
        : flow(i % 2 === 1, [500])[0]!,
    );
    const k = coalesce(pkts).k;
    if (k < 1 || k > n) odd++;
  }
  t.equal(odd, 0, 'random packets: always 1..count');
});

/** Gives an IPv4 packet identification `id` and a right header checksum. */
function withIpChecksum(p: Uint8Array, id: number): void {
  const v = new DataView(p.buffer, p.byteOffset);
  v.setUint16(4, id);
  v.setUint16(10, 0);
  v.setUint16(10, internetChecksum(p, 0, 20));
}

/** Datagrams of one UDP flow with right checksums (sizes: payload bytes). */
function udpFlow(v6: boolean, sizes: number[]): Uint8Array[] {
  return sizes.map((n, i) => {
    const p = packet(v6, true, n);
    if (!v6) withIpChecksum(p, 200 + i);
    p[(v6 ? 40 : 20) + 8] = i; // each datagram's own first byte
    return withUdpChecksum(p);
  });
}

for (const v6 of [false, true]) {
  void t.test(
    `IPv${v6 ? 6 : 4}: a UDP run coalesced for the TUN (USO)`,
    { skip: skipCoalesce },
    async (t) => {
      const ipl = v6 ? 40 : 20;
      const pkts = udpFlow(v6, [64, 64, 64, 64, 30]);
      t.ok(
        pkts.every((p) => l4ChecksumOk(p)),
        'the datagrams carry right checksums',
      );
      const uso = v6 ? 8 : 4;
      const { k, out } = coalesce(pkts, uso);
      t.equal(k, 5, 'all five, the shorter last included');
      gsoHeader(t, out, UDP_L4, ipl + 8, 64, ipl, 6);
      const h = out.subarray(10, 10 + ipl + 8);
      const hv = new DataView(h.buffer, h.byteOffset);
      const total = ipl + 8 + 4 * 64 + 30;
      if (v6) t.equal(hv.getUint16(4), total - 40, 'IPv6 payload length of the whole');
      else {
        t.equal(hv.getUint16(2), total, 'IPv4 total length of the whole');
        t.ok(ipHeaderChecksumOk(h), 'IPv4 header checksum');
      }
      t.equal(hv.getUint16(ipl + 4), total - ipl, 'UDP length of the whole');
      let pseudo = onesComplementSum(h, v6 ? 8 : 12, v6 ? 32 : 8) + 17 + (total - ipl);
      while (pseudo > 0xffff) pseudo = (pseudo & 0xffff) + Math.floor(pseudo / 0x10000);
      t.equal(hv.getUint16(ipl + 6), pseudo, 'pseudo-header sum in the checksum field');
      t.equal(coalesce(pkts, v6 ? 3 | 4 : 3 | 8).k, 1, 'not when that family has no USO');
      t.equal(coalesce(pkts, 3).k, 1, 'TSO alone does not merge UDP');
    },
  );
}

/** Flips one bit of a payload byte (the checksum no longer matches). */
function flip(p: Uint8Array, i: number): void {
  p[i] = p[i]! ^ 1;
}

void t.test('what ends or prevents a UDP run', { skip: skipCoalesce }, async (t) => {
  const base = (): Uint8Array[] => udpFlow(false, [100, 100, 100, 100]);
  // The checksums are made right again after each change unless `keep`.
  const cases: RunCase[] = [
    ['a wrong checksum in the middle: the run ends before it', (p) => flip(p[2]!, 30), 2, true],
    ['a wrong checksum on the first: alone', (p) => flip(p[0]!, 30), 1, true],
    ['no checksum (0) on the second', (p) => ((p[1]![26] = 0), (p[1]![27] = 0)), 1, true],
    ['another source port', (p) => (p[1]![21] = 9), 1],
    ['another destination port', (p) => (p[2]![23] = 9), 2],
    ['another TTL', (p) => (p[1]![8] = 1), 1],
    ['another destination', (p) => (p[3]![19] = 7), 3],
    ['a fragment', (p) => (p[1]![6] = 0x20), 1],
    ['UDP length not the IP length', (p) => new DataView(p[1]!.buffer).setUint16(24, 50), 1],
    ['DF clear on the third (its id would be rewritten)', (p) => (p[2]![6] = 0), 2],
    ['DF clear on the first', (p) => (p[0]![6] = 0), 1],
    ['a wrong IPv4 header checksum on the second', (p) => flip(p[1]!, 10), 1, true],
  ];
  t.equal(coalesce(base(), 4).k, 4, 'the untouched run');
  runCases(t, base, cases, 4, (q) => {
    withIpChecksum(q, new DataView(q.buffer).getUint16(4));
    withUdpChecksum(q);
  });
  t.equal(coalesce(udpFlow(false, [100, 40, 100]), 4).k, 2, 'a shorter datagram is the last');
  t.equal(coalesce(udpFlow(false, [100, 120]), 4).k, 1, 'a longer one does not join');
  t.equal(coalesce(udpFlow(false, [0, 0]), 4).k, 1, 'empty datagrams stay apart');
  t.equal(coalesce(udpFlow(true, Array<number>(80).fill(64)), 8).k, 64, 'at most 64 datagrams');
  t.equal(coalesce(udpFlow(true, Array<number>(60).fill(1400)), 8).k, 46, 'at most 64 KiB');
  const mixed = [...udpFlow(false, [100, 100]), ...flow(false, [1000, 1000])];
  t.equal(coalesce(mixed, 1 | 4).k, 2, 'a TCP packet ends a UDP run');
});
