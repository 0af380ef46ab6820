/**
 * What the data path keeps between packets so that a packet allocates nothing (issue #16):
 * a datagram batch's remote address texts (SlabDatagramBatch.remoteAddress, direct-mapped by
 * the address's last bytes and zone), the binding key of the last address (LastKey), and the
 * ICMPv6 shortcut of mobilitySignal. Each must give exactly what making the value afresh gives,
 * whatever came before: colliding slots, zones, link-local and global addresses, malformed
 * headers.
 */
import t from 'tap';
import { allocDatagramBatch } from '../../src/io/batch.js';
import { ADDR_SLOT_LEN, readAddress } from '../../src/io/address-bytes.js';
import { keyOf, LastKey } from '../../src/protocol/binding-cache.js';
import { mobilitySignal } from '../../src/wire/mobility-signal.js';
import { upperLayer } from '../../src/wire/rewrite.js';
import { IPPROTO } from '../../src/wire/types.js';

/** A small deterministic generator (xorshift32): the same cases every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** RFC 4007 §11: a link-local source names its link; others stand alone. */
function expectedText(family: 4 | 6, bytes: Uint8Array, at: number, zone: number): string {
  const text = readAddress(family, bytes, at);
  const linkLocal = family === 6 && bytes[at] === 0xfe && (bytes[at + 1]! & 0xc0) === 0x80;
  return linkLocal && zone !== 0 ? `${text}%${zone}` : text;
}

for (const family of [4, 6] as const) {
  void t.test(`IPv${family} remote address texts are the addresses, batch after batch`, (t) => {
    const next = rng(family * 7919);
    const batch = allocDatagramBatch(family, 32, 64);
    // A small pool of addresses so that texts repeat; many share their last two bytes (one
    // cache slot) and differ before them, or differ only in the zone.
    const pool: { bytes: Uint8Array; zone: number }[] = [];
    for (let p = 0; p < 40; p++) {
      const bytes = new Uint8Array(ADDR_SLOT_LEN);
      const n = family === 4 ? 4 : 16;
      for (let k = 0; k < n; k++) bytes[k] = next() & 0xff;
      if (p % 4 === 0) {
        bytes[n - 1] = 7; // the same last two bytes: the same slot for every fourth address
        bytes[n - 2] = 9;
      }
      if (family === 6 && p % 5 === 0) {
        bytes[0] = 0xfe; // link-local: the zone is part of the text
        bytes[1] = 0x80;
      }
      pool.push({ bytes, zone: family === 6 && p % 3 === 0 ? (p % 2) + 2 : 0 });
    }
    let checked = 0;
    let wrong = 0;
    for (let round = 0; round < 300; round++) {
      const count = 1 + (next() % 32);
      for (let i = 0; i < count; i++) {
        const a = pool[next() % pool.length]!;
        batch.remoteAddrs.set(a.bytes, i * ADDR_SLOT_LEN);
        batch.ifindexes[i] = a.zone;
      }
      batch.count = count;
      for (let i = 0; i < count; i++) {
        const want = expectedText(
          family,
          batch.remoteAddrs,
          i * ADDR_SLOT_LEN,
          batch.ifindexes[i]!,
        );
        if (batch.remoteAddress(i) !== want) wrong++;
        checked++;
      }
    }
    t.equal(wrong, 0, `${checked} texts, each the address of its own datagram`);
    t.end();
  });
}

void t.test('the same link-local address on two links keeps two texts', (t) => {
  const batch = allocDatagramBatch(6, 4, 64);
  const ll = new Uint8Array(16);
  ll[0] = 0xfe;
  ll[1] = 0x80;
  ll[15] = 1;
  batch.remoteAddrs.set(ll, 0);
  batch.remoteAddrs.set(ll, 16);
  batch.ifindexes[0] = 3;
  batch.ifindexes[1] = 4;
  batch.count = 2;
  t.equal(batch.remoteAddress(0), 'fe80::1%3');
  t.equal(batch.remoteAddress(1), 'fe80::1%4');
  t.equal(batch.remoteAddress(0), 'fe80::1%3', 'and again, from the first link');
  t.end();
});

void t.test('LastKey gives keyOf of the bytes it is shown, repeated or not', (t) => {
  const next = rng(4242);
  const last = new LastKey();
  const buf = new Uint8Array(64);
  const seen: Uint8Array[] = [];
  let wrong = 0;
  for (let i = 0; i < 2_000; i++) {
    const off = next() % 48;
    if (seen.length > 0 && next() % 3 !== 0) {
      buf.set(seen[next() % seen.length]!, off); // an address shown before
    } else {
      const a = new Uint8Array(16);
      for (let k = 0; k < 16; k++) a[k] = next() & 0xff;
      if (next() % 2 === 0) a[15] = (a[15]! + 1) & 0xff; // near a known one: one byte apart
      seen.push(a);
      buf.set(a, off);
    }
    if (last.at(buf, off) !== keyOf(buf, off)) wrong++;
  }
  t.equal(wrong, 0);
  // All zero (the first key it can be asked for) is a key like any other.
  t.equal(new LastKey().at(new Uint8Array(16), 0), keyOf(new Uint8Array(16), 0));
  t.end();
});

/** mobilitySignal as it was: always through upperLayer's walk. */
function walked(buf: Uint8Array, off: number, len: number): string | undefined {
  const nh = buf[off + 6];
  if (nh === IPPROTO.TCP || nh === IPPROTO.UDP) return undefined;
  const u = upperLayer(buf, off, len);
  if (u === undefined || u.offset >= len) return undefined;
  const at = off + u.offset;
  if (u.protocol === IPPROTO.MH) {
    if (u.offset + 2 >= len) return 'mh';
    const type = buf[at + 2];
    return type === 1 || type === 3 ? 'rr' : 'mh';
  }
  if (u.protocol === IPPROTO.ICMPV6) {
    const type = buf[at]!;
    if (type >= 144 && type <= 147) return 'discovery';
    if (type === 137) return 'redirect';
  }
  return undefined;
}

void t.test('ICMPv6 right after the header: the shortcut says what the walk says', (t) => {
  const next = rng(99);
  let checked = 0;
  let wrong = 0;
  for (let i = 0; i < 20_000; i++) {
    const len = 30 + (next() % 40); // around the 40-byte header: truncated ones too
    const buf = new Uint8Array(len + (next() % 3)); // sometimes a tail past the packet
    const off = buf.length - len;
    for (let k = 0; k < buf.length; k++) buf[k] = next() & 0xff;
    buf[off] = next() % 8 === 0 ? 0x40 : 0x60; // now and then not IPv6
    buf[off + 6] = IPPROTO.ICMPV6;
    const types = [128, 129, 137, 143, 144, 145, 146, 147, 148, 135, 136];
    if (len > 40) buf[off + 40] = types[next() % types.length]!;
    const payload = next() % 4 === 0 ? next() & 0xffff : Math.max(0, len - 40 - (next() % 3));
    buf[off + 4] = payload >> 8;
    buf[off + 5] = payload & 0xff;
    if (mobilitySignal(buf, off, len) !== walked(buf, off, len)) wrong++;
    checked++;
  }
  t.equal(wrong, 0, `${checked} packets`);
  t.end();
});

void t.test('addresses that share a slot keep their own texts', (t) => {
  // The slot is (last byte) ^ (second last << 3) ^ zone, mod 256: these pairs collide.
  const batch = allocDatagramBatch(6, 4, 64);
  const at = (text: number[], zone: number, i: number): void => {
    const a = new Uint8Array(16);
    a.set(text);
    batch.remoteAddrs.set(a, i * 16);
    batch.ifindexes[i] = zone;
  };
  const g = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  const ll = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  at([...g, 0x00, 0x08], 0, 0); // slot 8
  at([...g, 0x01, 0x00], 0, 1); // slot 8 too, the same first 14 bytes
  at([...ll, 0x00, 0x01], 3, 2); // slot 2
  at([...ll, 0x00, 0x01], 259, 3); // slot 2 too: the same address on link 259
  batch.count = 4;
  const want = ['2001:db8::8', '2001:db8::100', 'fe80::1%3', 'fe80::1%259'];
  for (let round = 0; round < 3; round++) {
    t.same(
      [0, 1, 2, 3].map((i) => batch.remoteAddress(i)),
      want,
      `round ${round}`,
    );
    t.same(
      [3, 2, 1, 0].map((i) => batch.remoteAddress(i)),
      [...want].reverse(),
    );
  }
  t.end();
});
