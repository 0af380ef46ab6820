import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseIpv6 } from '../../src/wire/address.js';
import { fixUpperLayerChecksum, verifyUpperLayerChecksum } from '../../src/wire/checksum.js';
import { encodeOptionsHeader } from '../../src/wire/ext-headers.js';
import { toHex } from '../../src/wire/hex.js';
import { encodeIpv6Header } from '../../src/wire/ipv6.js';
import { decodePacket } from '../../src/wire/packet.js';
import {
  REWRITE_GROWTH,
  RewriteError,
  addHomeAddressOption,
  addType2RoutingHeader,
  findHomeAddressOption,
  removeHomeAddressOption,
  removeType2RoutingHeader,
  upperLayer,
} from '../../src/wire/rewrite.js';
import { IPPROTO } from '../../src/wire/types.js';

const HOA = '2001:db8:100::5';
const COA = '2001:db8:5::20';
const COA4 = '::ffff:198.51.100.20';
const CN = '2001:db8:4::10';
const HEADROOM = 64;

function upper(proto: number, payload: number): Uint8Array {
  const body = Uint8Array.from({ length: payload }, (_, i) => (i * 7 + 3) & 0xff);
  switch (proto) {
    case IPPROTO.TCP: {
      const h = new Uint8Array(20 + payload);
      h.set([0xc3, 0x50, 0x00, 0x16, 1, 2, 3, 4, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff], 0);
      h.set(body, 20);
      return h;
    }
    case IPPROTO.UDP: {
      const h = new Uint8Array(8 + payload);
      h.set([0x13, 0x88, 0x00, 0x35, (8 + payload) >> 8, (8 + payload) & 0xff, 0, 0], 0);
      h.set(body, 8);
      return h;
    }
    default: {
      const h = new Uint8Array(8 + payload);
      h.set([128, 0, 0, 0, 0x12, 0x34, 0, 1], 0); // Echo Request
      h.set(body, 8);
      return h;
    }
  }
}

/** A packet with valid checksum at HEADROOM inside a larger buffer. */
function packet(
  src: string,
  dst: string,
  proto: number,
  payload = 100,
  hopByHop = false,
): { buf: Uint8Array; len: number } {
  const u = upper(proto, payload);
  const hbh = hopByHop
    ? encodeOptionsHeader(proto, [{ type: 'unknown', optionType: 0x05, data: new Uint8Array(2) }])
    : new Uint8Array(0);
  const hdr = encodeIpv6Header({
    payloadLength: hbh.length + u.length,
    nextHeader: hopByHop ? IPPROTO.HOPOPTS : proto,
    source: src,
    destination: dst,
  });
  const len = 40 + hbh.length + u.length;
  const buf = new Uint8Array(HEADROOM + len + 16);
  buf.set(hdr, HEADROOM);
  buf.set(hbh, HEADROOM + 40);
  buf.set(u, HEADROOM + 40 + hbh.length);
  fixUpperLayerChecksum(buf.subarray(HEADROOM, HEADROOM + len));
  return { buf, len };
}

const PROTOS = [
  ['TCP', IPPROTO.TCP],
  ['UDP', IPPROTO.UDP],
  ['ICMPv6', IPPROTO.ICMPV6],
] as const;

const forScapy: string[] = [];

void t.test(
  'MN -> CN: HAO in, CN strips it; checksums valid throughout, bytes restored',
  async (t) => {
    for (const [name, proto] of PROTOS) {
      for (const hbh of [false, true]) {
        for (const coa of [COA, COA4]) {
          const { buf, len } = packet(HOA, CN, proto, 333, hbh);
          const original = buf.slice(HEADROOM, HEADROOM + len);
          const off = addHomeAddressOption(buf, HEADROOM, len, parseIpv6(coa));
          t.equal(off, HEADROOM - REWRITE_GROWTH, `${name}${hbh ? '+HBH' : ''}: grew by 24`);
          const out = buf.subarray(off, off + len + REWRITE_GROWTH);
          const d = decodePacket(out);
          t.equal(d.source, coa, 'source is the CoA');
          t.equal(d.homeAddress, HOA, 'HAO carries the HoA');
          t.equal(d.payloadLength, len - 40 + 24);
          t.equal(verifyUpperLayerChecksum(out), true, `${name}: checksum still valid, untouched`);
          if (hbh) t.equal(d.extensionHeaders[0]?.kind, 'hopByHop', 'HBH stays first');
          forScapy.push(toHex(out));
          const hao = findHomeAddressOption(buf, off, len + REWRITE_GROWTH);
          t.same(buf.subarray(hao, hao + 16), parseIpv6(HOA));
          const back = removeHomeAddressOption(buf, off, len + REWRITE_GROWTH, hao);
          t.equal(back, HEADROOM);
          t.same(buf.subarray(back, back + len), original, 'CN sees the original packet');
        }
      }
    }
  },
);

void t.test('CN -> MN: RH2 in, MN validates and removes it', async (t) => {
  const home = parseIpv6(HOA);
  for (const [name, proto] of PROTOS) {
    for (const hbh of [false, true]) {
      const { buf, len } = packet(CN, HOA, proto, 200, hbh);
      const original = buf.slice(HEADROOM, HEADROOM + len);
      const off = addType2RoutingHeader(buf, HEADROOM, len, parseIpv6(COA4));
      t.equal(off, HEADROOM - REWRITE_GROWTH);
      const out = buf.subarray(off, off + len + REWRITE_GROWTH);
      const d = decodePacket(out);
      t.equal(d.destination, COA4);
      t.equal(d.routingHomeAddress, HOA);
      t.equal(verifyUpperLayerChecksum(out), true, `${name}: checksum valid with RH2`);
      forScapy.push(toHex(out));
      t.equal(
        removeType2RoutingHeader(buf, off, len + 24, parseIpv6('2001:db8:100::6')),
        RewriteError.NOT_OWN_HOME_ADDRESS,
        'RH2 for another home address: refused, never forwarded',
      );
      const back = removeType2RoutingHeader(buf, off, len + 24, home);
      t.equal(back, HEADROOM);
      t.same(buf.subarray(back, back + len), original);
    }
  }
});

void t.test('refusals leave the packet unchanged', async (t) => {
  const home = parseIpv6(HOA);
  const { buf, len } = packet(HOA, CN, IPPROTO.UDP, 10);
  t.equal(addHomeAddressOption(buf, 10, len, parseIpv6(COA)), RewriteError.MALFORMED);
  const tight = buf.slice(HEADROOM - 8, HEADROOM + len);
  t.equal(addHomeAddressOption(tight, 8, len, parseIpv6(COA)), RewriteError.NO_HEADROOM);
  t.equal(findHomeAddressOption(buf, HEADROOM, len), RewriteError.ABSENT);
  t.equal(removeType2RoutingHeader(buf, HEADROOM, len, home), RewriteError.ABSENT);
  // Segments Left 0 -> discard (RFC 6275 §6.4.1).
  const p = packet(CN, HOA, IPPROTO.UDP, 10);
  const off = addType2RoutingHeader(p.buf, HEADROOM, p.len, parseIpv6(COA));
  p.buf[off + 40 + 3] = 0;
  const before = p.buf.slice();
  t.equal(removeType2RoutingHeader(p.buf, off, p.len + 24, home), RewriteError.BAD_RH2);
  t.same(p.buf, before, 'unchanged');
  // A second RH2 is refused.
  p.buf[off + 40 + 3] = 1;
  t.equal(
    addType2RoutingHeader(p.buf, off, p.len + 24, parseIpv6(COA)),
    RewriteError.UNSUPPORTED_CHAIN,
  );
  // A HAO rewrite of a packet that already has a Destination Options header is refused.
  const q = packet(HOA, CN, IPPROTO.UDP, 10);
  const o1 = addHomeAddressOption(q.buf, HEADROOM, q.len, parseIpv6(COA));
  t.equal(
    addHomeAddressOption(q.buf, o1, q.len + 24, parseIpv6(COA)),
    RewriteError.UNSUPPORTED_CHAIN,
  );
  // Truncated: Payload Length beyond the bytes.
  const r = packet(HOA, CN, IPPROTO.UDP, 10);
  t.equal(addHomeAddressOption(r.buf, HEADROOM, 50, parseIpv6(COA)), RewriteError.MALFORMED);
  // HAO in a header with another option: the option becomes padding, the header stays.
  const s = packet(HOA, CN, IPPROTO.UDP, 10);
  const dst = encodeOptionsHeader(IPPROTO.UDP, [
    { type: 'unknown', optionType: 0x1e, data: new Uint8Array(4) },
    { type: 'homeAddress', address: HOA },
  ]);
  const u = s.buf.slice(HEADROOM + 40, HEADROOM + s.len);
  const withOpt = new Uint8Array(HEADROOM + s.len + dst.length);
  withOpt.set(
    encodeIpv6Header({
      payloadLength: dst.length + u.length,
      nextHeader: IPPROTO.DSTOPTS,
      source: COA,
      destination: CN,
    }),
    HEADROOM,
  );
  withOpt.set(dst, HEADROOM + 40);
  withOpt.set(u, HEADROOM + 40 + dst.length);
  const total = s.len + dst.length;
  const hao = findHomeAddressOption(withOpt, HEADROOM, total);
  t.ok(hao > 0);
  t.equal(removeHomeAddressOption(withOpt, HEADROOM, total, hao), HEADROOM, 'same length');
  const d = decodePacket(withOpt.subarray(HEADROOM, HEADROOM + total));
  t.equal(d.source, HOA);
  t.equal(d.homeAddress, undefined);
  t.equal(verifyUpperLayerChecksum(withOpt.subarray(HEADROOM, HEADROOM + total)), true);
});

void t.test('upperLayer walks HBH/RH/DstOpts without allocating a decode', async (t) => {
  const { buf, len } = packet(HOA, CN, IPPROTO.TCP, 10, true);
  t.same(upperLayer(buf, HEADROOM, len), { protocol: IPPROTO.TCP, offset: 48 });
  const off = addHomeAddressOption(buf, HEADROOM, len, parseIpv6(COA));
  t.same(upperLayer(buf, off, len + 24), { protocol: IPPROTO.TCP, offset: 72 });
  t.equal(upperLayer(buf, off, 30), undefined, 'truncated');
});

const PYTHON = '/usr/bin/python3';
const here = dirname(fileURLToPath(import.meta.url));

void t.test(
  'scapy recomputes the same checksums on the rewritten packets',
  { skip: existsSync(PYTHON) ? false : `${PYTHON} not present` },
  async (t) => {
    t.ok(forScapy.length >= 18, 'packets collected from the tests above');
    const r = spawnSync(PYTHON, [join(here, '..', 'interop', 'rewrite-scapy.py')], {
      input: JSON.stringify(forScapy),
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (r.status !== 0 && /No module named 'scapy'/.test(r.stderr)) {
      t.comment(`skipped: ${PYTHON} lacks scapy (install python3-scapy)`);
      return;
    }
    t.equal(r.status, 0, r.stderr);
    const results = JSON.parse(r.stdout) as {
      ok: boolean;
      hoa: string | null;
      rh: string | null;
    }[];
    t.equal(results.length, forScapy.length);
    results.forEach((x, i) => t.ok(x.ok, `packet ${i}: scapy agrees (hoa ${x.hoa}, rh ${x.rh})`));
    t.ok(results.some((x) => x.hoa === HOA) && results.some((x) => x.rh === HOA));
  },
);
