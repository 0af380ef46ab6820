// The addon's batched ChaCha20-Poly1305 against libsodium's
// crypto_aead_chacha20poly1305_ietf with the channel format's nonce and AAD, both directions,
// plus per-packet tamper detection. Needs only the built addon (no root).
import { existsSync } from 'node:fs';
import t from 'tap';
import sodium from 'libsodium-wrappers';
import { NativeBatchAead } from '../../src/io/native-aead.js';
import type { BatchAead } from '../../src/io/types.js';
import { REPO_ROOT } from '../helpers/netns.js';

const skip = existsSync(`${REPO_ROOT}build/Release/mip6.node`)
  ? false
  : 'needs the addon built (npm install / npx node-gyp rebuild)';

const HDR = 16;
const TAG = 16;

/** Deterministic bytes so failures reproduce. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function header(spi: number, counter: bigint): Uint8Array {
  const h = new Uint8Array(HDR);
  const v = new DataView(h.buffer);
  h[0] = 4;
  v.setUint32(4, spi, false);
  v.setBigUint64(8, counter, true);
  return h;
}

function nonceOf(h: Uint8Array): Uint8Array {
  const n = new Uint8Array(12);
  n.set(h.subarray(8, 16), 4);
  return n;
}

// Sizes cover empty, odd, block boundaries and an MTU-sized packet.
const SIZES = [0, 1, 15, 16, 63, 64, 65, 100, 1280, 1420];
const COUNTERS = [0n, 1n, 255n, 0x0102030405060708n, 0xffffffffffffffffn];

void t.test('sealBatch output equals libsodium encrypt, in place', { skip }, async (t) => {
  await sodium.ready;
  const aead: BatchAead = new NativeBatchAead();
  const key = bytes(32, 7);
  const n = SIZES.length * COUNTERS.length;
  const slot = 2048;
  const buf = new Uint8Array(n * slot + 8);
  const offsets = new Uint32Array(n);
  const lengths = new Uint32Array(n);
  const expected: Uint8Array[] = [];
  let i = 0;
  for (const size of SIZES) {
    for (const counter of COUNTERS) {
      const h = header(0x11223344 + i, counter);
      const pt = bytes(size, 100 + i);
      const off = i * slot + (i % 3); // unaligned offsets too
      buf.set(h, off);
      buf.set(pt, off + HDR);
      offsets[i] = off;
      lengths[i] = size;
      const ct = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(pt, h, null, nonceOf(h), key);
      const msg = new Uint8Array(HDR + ct.length);
      msg.set(h);
      msg.set(ct, HDR);
      expected.push(msg);
      i++;
    }
  }
  aead.sealBatch(key, buf, offsets, lengths, n);
  for (let k = 0; k < n; k++) {
    const off = offsets[k]!;
    const got = buf.subarray(off, off + HDR + lengths[k]! + TAG);
    if (Buffer.compare(got, expected[k]!) !== 0)
      t.fail(`message ${k} (${lengths[k]} bytes) differs`);
  }
  t.pass(`${n} messages byte-identical to libsodium`);
});

void t.test(
  'openBatch accepts libsodium ciphertexts and flags tampering per packet',
  { skip },
  async (t) => {
    await sodium.ready;
    const aead = new NativeBatchAead();
    const key = bytes(32, 9);
    const n = 24;
    const slot = 1600;
    const buf = new Uint8Array(n * slot);
    const offsets = new Uint32Array(n);
    const lengths = new Uint32Array(n);
    const plain: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const h = header(42, BigInt(1000 + i));
      const pt = bytes((i * 61) % 1500, 300 + i);
      plain.push(pt);
      const ct = sodium.crypto_aead_chacha20poly1305_ietf_encrypt(pt, h, null, nonceOf(h), key);
      buf.set(h, i * slot);
      buf.set(ct, i * slot + HDR);
      offsets[i] = i * slot;
      lengths[i] = HDR + ct.length;
    }
    // Tamper: 3 in the ciphertext/tag region, 5 in the header (AAD), 7 in the tag, 11 too short.
    const flip = (i: number, at: number): void => {
      buf[offsets[i]! + at] = (buf[offsets[i]! + at] ?? 0) ^ 0x01;
    };
    flip(3, HDR + 1 > lengths[3]! - TAG ? lengths[3]! - 1 : HDR + 1);
    flip(5, 2);
    flip(7, lengths[7]! - 1);
    lengths[11] = 31;
    const results = new Uint8Array(n).fill(7);
    aead.openBatch(key, buf, offsets, lengths, n, results);
    const bad = new Set([3, 5, 7, 11]);
    for (let i = 0; i < n; i++) {
      if (bad.has(i)) {
        t.equal(results[i], 0, `message ${i} rejected`);
        continue;
      }
      t.equal(results[i], 1, `message ${i} verified`);
      const got = buf.subarray(offsets[i]! + HDR, offsets[i]! + lengths[i]! - TAG);
      if (Buffer.compare(got, plain[i]!) !== 0) t.fail(`message ${i} plaintext differs`);
    }
    const zeroed = buf.subarray(offsets[3]! + HDR, offsets[3]! + lengths[3]! - TAG);
    t.ok(
      zeroed.every((b) => b === 0),
      'a rejected message leaves no unauthenticated plaintext behind',
    );
  },
);

void t.test(
  'native seal then libsodium decrypt, and a wrong key is rejected',
  { skip },
  async (t) => {
    await sodium.ready;
    const aead = new NativeBatchAead();
    const key = bytes(32, 11);
    const pt = bytes(777, 5);
    const h = header(7, 99n);
    const buf = new Uint8Array(HDR + pt.length + TAG);
    buf.set(h);
    buf.set(pt, HDR);
    aead.sealBatch(key, buf, Uint32Array.of(0), Uint32Array.of(pt.length), 1);
    const dec = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
      null,
      buf.subarray(HDR),
      h,
      nonceOf(h),
      key,
    );
    t.same(Buffer.from(dec), Buffer.from(pt), 'libsodium opens what the addon sealed');
    const res = new Uint8Array(1);
    aead.openBatch(bytes(32, 12), buf, Uint32Array.of(0), Uint32Array.of(buf.length), 1, res);
    t.equal(res[0], 0, 'wrong key fails');
  },
);

void t.test(
  'programmer errors throw instead of touching memory out of bounds',
  { skip },
  async (t) => {
    const aead = new NativeBatchAead();
    const key = new Uint8Array(32);
    const buf = new Uint8Array(64);
    t.throws(() => aead.sealBatch(key, buf, Uint32Array.of(40), Uint32Array.of(10), 1), RangeError);
    t.throws(
      () => aead.sealBatch(new Uint8Array(16), buf, Uint32Array.of(0), Uint32Array.of(1), 1),
      RangeError,
    );
    t.throws(() => aead.sealBatch(key, buf, Uint32Array.of(0), Uint32Array.of(1), 2), RangeError);
    t.throws(
      () => aead.openBatch(key, buf, Uint32Array.of(0), Uint32Array.of(65), 1, new Uint8Array(1)),
      RangeError,
    );
    t.throws(
      () => aead.openBatch(key, buf, Uint32Array.of(0), Uint32Array.of(64), 1, new Uint8Array(0)),
      RangeError,
    );
  },
);

void t.test('interchangeable with the libsodium BatchAead of src/crypto', { skip }, async (t) => {
  const { SodiumBatchAead } = await import('../../src/crypto/aead.js');
  const { initCrypto } = await import('../../src/crypto/sodium.js');
  await initCrypto();
  // Both directions of assignability: the two interfaces are structurally the same.
  const native: import('../../src/crypto/aead.js').BatchAead = new NativeBatchAead();
  const reference: BatchAead = new SodiumBatchAead();
  const key = bytes(32, 21);
  const n = 8;
  const slot = 1600;
  const make = (): {
    buf: Uint8Array;
    offsets: Uint32Array;
    plain: Uint32Array;
    whole: Uint32Array;
  } => {
    const buf = new Uint8Array(n * slot);
    const offsets = Uint32Array.from({ length: n }, (_, i) => i * slot);
    const plain = Uint32Array.from({ length: n }, (_, i) => i * 170);
    for (let i = 0; i < n; i++) {
      buf.set(header(5, BigInt(i * 1000)), i * slot);
      buf.set(bytes(plain[i]!, 50 + i), i * slot + HDR);
    }
    const whole = plain.map((l) => l + HDR + TAG);
    return { buf, offsets, plain, whole };
  };
  const a = make();
  const b = make();
  native.sealBatch(key, a.buf, a.offsets, a.plain, n);
  reference.sealBatch(key, b.buf, b.offsets, b.plain, n);
  t.same(Buffer.from(a.buf), Buffer.from(b.buf), 'same ciphertexts and tags');
  const ra = new Uint8Array(n);
  const rb = new Uint8Array(n);
  reference.openBatch(key, a.buf, a.offsets, a.whole, n, ra);
  native.openBatch(key, b.buf, b.offsets, b.whole, n, rb);
  t.same([...ra], new Array(n).fill(1), 'libsodium opens the native batch');
  t.same([...rb], new Array(n).fill(1), 'the addon opens the libsodium batch');
  t.same(Buffer.from(a.buf), Buffer.from(b.buf), 'same plaintexts');
});

// The addon keeps one cipher context per direction between calls (native/aead.c): every call
// must use its own key, whatever the call before it did (another key, a failed tag).
void t.test('calls one after another: each uses its own key', { skip }, async (t) => {
  await sodium.ready;
  const aead = new NativeBatchAead();
  const keys = [bytes(32, 21), bytes(32, 22), bytes(32, 23)];
  const pt = bytes(64, 9);
  const sealed = (k: number, counter: bigint): Uint8Array => {
    const buf = new Uint8Array(HDR + pt.length + TAG);
    buf.set(header(3, counter));
    buf.set(pt, HDR);
    aead.sealBatch(keys[k]!, buf, Uint32Array.of(0), Uint32Array.of(pt.length), 1);
    return buf;
  };
  const opens = (k: number, buf: Uint8Array): boolean => {
    const res = new Uint8Array(1);
    const copy = buf.slice();
    aead.openBatch(keys[k]!, copy, Uint32Array.of(0), Uint32Array.of(copy.length), 1, res);
    return res[0] === 1 && Buffer.from(copy.subarray(HDR, HDR + pt.length)).equals(pt);
  };
  const order = [0, 1, 0, 2, 2, 1, 0];
  const msgs = order.map((k, i) => sealed(k, BigInt(i)));
  for (let i = 0; i < order.length; i++) {
    const h = msgs[i]!.subarray(0, HDR);
    const dec = sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
      null,
      msgs[i]!.subarray(HDR),
      h,
      nonceOf(h),
      keys[order[i]!]!,
    );
    t.ok(Buffer.from(dec).equals(pt), `seal ${i} used key ${order[i]}`);
  }
  const tampered = msgs[0]!.slice();
  tampered[HDR + 3] = tampered[HDR + 3]! ^ 1;
  t.notOk(opens(0, tampered), 'a tampered message fails');
  t.ok(opens(0, msgs[0]!), 'the next call with the same key opens the right one');
  t.notOk(opens(1, msgs[0]!), 'and with another key it fails');
  t.ok(opens(1, msgs[1]!), 'then key 1 opens its own message');
  t.ok(opens(2, msgs[3]!), 'and key 2 its own');
});
