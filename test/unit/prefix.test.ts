/**
 * wire/address.ts prefix helpers, the one prefix match of the tree (selector, care-of, config,
 * certificate and the roles use them): prefixMatches against a bit-by-bit model, its bounds, and
 * maskPrefix.
 */
import t from 'tap';
import fc from 'fast-check';
import {
  maskPrefix,
  parseIpv6,
  parsePrefix,
  prefixContains,
  prefixMatches,
} from '../../src/wire/address.js';

/** The first `length` bits of a and b at their offsets, compared one by one. */
function naive(a: Uint8Array, length: number, b: Uint8Array, off: number): boolean {
  for (let bit = 0; bit < length; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((a[bit >> 3]! & m) !== (b[off + (bit >> 3)]! & m)) return false;
  }
  return true;
}

void t.test('prefixMatches: examples', (t) => {
  const p = parseIpv6('2001:db8:8000::');
  t.ok(prefixMatches(p, 33, parseIpv6('2001:db8:ffff::1')));
  t.notOk(prefixMatches(p, 33, parseIpv6('2001:db8:7fff::1')));
  t.ok(prefixMatches(p, 32, parseIpv6('2001:db8:7fff::1')), 'a byte boundary');
  t.ok(prefixMatches(p, 0, new Uint8Array(0)), '/0 holds everything');
  t.ok(prefixMatches(p, 128, p));
  const packet = new Uint8Array(40);
  packet.set(parseIpv6('2001:db8:8000::9'), 8);
  t.ok(prefixMatches(p, 48, packet, 8), 'in place at an offset');
  t.notOk(prefixMatches(p, 48, packet, 9));
  t.end();
});

void t.test('prefixMatches: never reads past the end', (t) => {
  const p = parseIpv6('ff00::');
  t.notOk(prefixMatches(p, 9, Uint8Array.of(0xff)), 'needs 2 bytes, has 1');
  t.ok(prefixMatches(p, 8, Uint8Array.of(0xff)), '8 bits fit in 1 byte');
  t.notOk(prefixMatches(p, 8, Uint8Array.of(0xff), 1));
  t.notOk(prefixMatches(p, 8, Uint8Array.of(0xff), -1));
  t.end();
});

void t.test('prefixMatches agrees with a bit-by-bit model', (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.integer({ min: 0, max: 128 }),
      fc.integer({ min: 0, max: 128 }),
      (a, noise, common, length) => {
        // b: the first `common` bits of a, then noise.
        const keep = maskPrefix(new Uint8Array(16).fill(0xff), common);
        const b = a.map((x, i) => (x & keep[i]!) | (noise[i]! & ~keep[i]!));
        const buf = new Uint8Array(20);
        buf.set(b, 3);
        return (
          prefixMatches(a, length, b) === naive(a, length, b, 0) &&
          prefixMatches(a, length, buf, 3) === naive(a, length, buf, 3)
        );
      },
    ),
  );
  t.end();
});

void t.test('prefixContains keeps the family check', (t) => {
  const p = parsePrefix('2001:db8::/33');
  t.notOk(prefixContains(p, new Uint8Array(4)), 'an IPv4-sized address is outside any IPv6 prefix');
  t.ok(prefixContains(parsePrefix('0.0.0.0/0'), new Uint8Array(4)));
  t.end();
});

void t.test('maskPrefix clears the host bits, in a copy', (t) => {
  const a = parseIpv6('2001:db8:ffff:ffff::1');
  t.same(maskPrefix(a, 36), parseIpv6('2001:db8:f000::'));
  t.same(maskPrefix(a, 0), new Uint8Array(16));
  t.same(maskPrefix(a, 128), a);
  t.same(a, parseIpv6('2001:db8:ffff:ffff::1'), 'input untouched');
  t.same(maskPrefix(Uint8Array.of(192, 0, 2, 77), 24), Uint8Array.of(192, 0, 2, 0));
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.integer({ min: 0, max: 128 }),
      (x, len) => {
        const m = maskPrefix(x, len);
        return prefixMatches(x, len, m) && naive(m, 128, maskPrefix(m, len), 0);
      },
    ),
  );
  t.end();
});
