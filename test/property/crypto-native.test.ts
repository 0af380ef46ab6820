/**
 * The OpenSSL (node:crypto) backends of src/crypto/noise.ts against libsodium, the reference:
 * X25519 and HMAC-BLAKE2b must give the same bytes on random inputs, refuse the same low-order
 * points, and generated key pairs must be consistent (public = X25519 base multiplication of the
 * private key, as libsodium computes it).
 */
import fc from 'fast-check';
import t from 'tap';
import {
  BLOCK_LEN,
  concat,
  dh,
  generateX25519,
  hkdf,
  hmac,
  x25519FromPrivate,
} from '../../src/crypto/noise.js';
import { randomBytes, randomUint32 } from '../../src/crypto/random.js';
import { initCrypto, lib } from '../../src/crypto/sodium.js';

await initCrypto();
const s = lib();
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** RFC 2104 HMAC written out over libsodium's BLAKE2b-512 (B = 128). */
function referenceHmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  const k = new Uint8Array(BLOCK_LEN);
  k.set(key.length > BLOCK_LEN ? s.crypto_generichash(64, key, null) : key);
  const ipad = k.map((x) => x ^ 0x36);
  const opad = k.map((x) => x ^ 0x5c);
  const inner = s.crypto_generichash(64, concat(ipad, data), null);
  return s.crypto_generichash(64, concat(opad, inner), null);
}

/** Low-order points and non-canonical encodings libsodium blacklists (has_small_order). */
const LOW_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

void t.test('X25519: OpenSSL equals libsodium on random keys', async (t) => {
  fc.assert(
    fc.property(bytes(32), bytes(32), (priv, peer) => {
      const own = x25519FromPrivate(priv);
      let want: Uint8Array | null;
      try {
        want = s.crypto_scalarmult(priv, peer);
      } catch {
        want = null;
      }
      let got: Uint8Array | null;
      try {
        got = dh(own, peer);
      } catch {
        got = null;
      }
      return (want === null) === (got === null) && (want === null || hex(want) === hex(got!));
    }),
    { numRuns: 300 },
  );
  // Peer keys that are real public keys (the common case), and the key object cache: the same
  // key pair used twice gives the same result.
  for (let i = 0; i < 50; i++) {
    const a = generateX25519();
    const b = generateX25519();
    const ab = dh(a, b.publicKey);
    t.equal(hex(ab), hex(s.crypto_scalarmult(a.privateKey, b.publicKey)));
    t.equal(hex(dh(b, a.publicKey)), hex(ab));
    t.equal(hex(dh(a, b.publicKey)), hex(ab));
  }
});

void t.test('X25519: both refuse low-order points, with or without the top bit', async (t) => {
  const own = generateX25519();
  for (const p of LOW_ORDER) {
    for (const top of [0, 0x80]) {
      const point = Uint8Array.from(Buffer.from(p, 'hex'));
      point[31] = point[31]! | top;
      t.throws(() => s.crypto_scalarmult(own.privateKey, point), `libsodium ${p} ${top}`);
      t.throws(() => dh(own, point), `OpenSSL ${p} ${top}`);
    }
  }
});

void t.test('generated key pairs: public key = libsodium base multiplication', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) {
    const kp = generateX25519();
    t.equal(kp.privateKey.length, 32);
    t.equal(hex(kp.publicKey), hex(s.crypto_scalarmult_base(kp.privateKey)));
    seen.add(hex(kp.privateKey));
  }
  t.equal(seen.size, 100, 'no repeated private key');
});

void t.test('HMAC-BLAKE2b and HKDF: OpenSSL equals RFC 2104 over libsodium', async (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }),
      (key, data) => hex(hmac(key, data)) === hex(referenceHmac(key, data)),
    ),
    { numRuns: 500 },
  );
  // Key lengths around the block size, where padding turns into hashing.
  for (const n of [0, 1, 63, 64, 65, 127, 128, 129, 256]) {
    const key = randomBytes(n);
    const data = randomBytes(n + 7);
    t.equal(hex(hmac(key, data)), hex(referenceHmac(key, data)), `key of ${n} bytes`);
    t.equal(
      hex(hmac(key, data.subarray(0, 3), data.subarray(3))),
      hex(referenceHmac(key, data)),
      `split data, key of ${n} bytes`,
    );
  }
  fc.assert(
    fc.property(bytes(64), fc.uint8Array({ maxLength: 64 }), (ck, ikm) => {
      const [o1, o2, o3] = hkdf(ck, ikm, 3);
      const temp = referenceHmac(ck, ikm);
      const r1 = referenceHmac(temp, Uint8Array.of(1));
      const r2 = referenceHmac(temp, concat(r1, Uint8Array.of(2)));
      const r3 = referenceHmac(temp, concat(r2, Uint8Array.of(3)));
      return hex(o1!) === hex(r1) && hex(o2!) === hex(r2) && hex(o3!) === hex(r3);
    }),
    { numRuns: 200 },
  );
});

void t.test('random: fresh bytes and 32-bit values', async (t) => {
  t.equal(randomBytes(24).length, 24);
  t.not(hex(randomBytes(32)), hex(randomBytes(32)));
  const values = new Set<number>();
  let inRange = true;
  for (let i = 0; i < 2000; i++) {
    const v = randomUint32();
    inRange &&= Number.isInteger(v) && v >= 0 && v < 2 ** 32;
    values.add(v);
  }
  t.ok(inRange, 'every value is a 32-bit unsigned integer');
  t.ok(values.size > 1990, 'no pool reuse');
});
