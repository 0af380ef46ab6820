/**
 * The data-message AEAD. The RFC 8439 §2.8.2 vector pins the primitive libsodium gives us;
 * a differential check then ties SodiumBatchAead (raw WASM calls, nonce and AAD built from the
 * header) to libsodium's own wrapper for the same message, and fixes the wire layout.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import {
  DATA_HEADER_LEN,
  readCounter,
  readSpi,
  SodiumBatchAead,
  TAG_LEN,
  writeDataHeader,
} from '../../src/crypto/aead.js';
import { initCrypto, lib, raw } from '../../src/crypto/sodium.js';

await initCrypto();
const h = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

void t.test('RFC 8439 §2.8.2 AEAD_CHACHA20_POLY1305 test vector', async (t) => {
  const key = h('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
  const nonce = h('070000004041424344454647');
  const aad = h('50515253c0c1c2c3c4c5c6c7');
  const pt = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const ct = h(`d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
    3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
    92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
    3ff4def08e4b7a9de576d26586cec64b6116`);
  const tag = h('1ae10b594f09e26a7e902ecbd0600691');
  const out = lib().crypto_aead_chacha20poly1305_ietf_encrypt_detached(pt, aad, null, nonce, key);
  t.same(out.ciphertext, ct);
  t.same(out.mac, tag);
});

void t.test(
  'header codec: type 4, reserved 0, SPI big-endian, counter little-endian',
  async (t) => {
    const b = new Uint8Array(16);
    writeDataHeader(b, 0, 0x01020304, 0x0a0b0c0d0e0f);
    t.same(Buffer.from(b).toString('hex'), '04000000010203040f0e0d0c0b0a0000');
    t.equal(readSpi(b, 0), 0x01020304);
    t.equal(readCounter(b, 0), 0x0a0b0c0d0e0f);
    b[15] = 0xff;
    t.equal(readCounter(b, 0), Infinity, 'counters beyond 2^53 are never valid');
  },
);

void t.test('SodiumBatchAead matches libsodium for the fixed wire format', async (t) => {
  const s = lib();
  const aead = new SodiumBatchAead();
  const key = s.randombytes_buf(32);
  const sizes = [0, 1, 64, 512, 1400, 3000];
  let total = 0;
  for (const n of sizes) total += 7 + DATA_HEADER_LEN + n + TAG_LEN;
  const buf = new Uint8Array(total);
  const offsets = new Uint32Array(sizes.length);
  const lengths = new Uint32Array(sizes.length);
  const plain: Uint8Array[] = [];
  let o = 7; // unaligned start, and gaps between messages
  sizes.forEach((n, i) => {
    offsets[i] = o;
    lengths[i] = n;
    writeDataHeader(buf, o, 0xdeadbeef, 1000 + i * 77);
    const p = s.randombytes_buf(n);
    plain.push(p);
    buf.set(p, o + DATA_HEADER_LEN);
    o += DATA_HEADER_LEN + n + TAG_LEN + 7;
  });
  aead.sealBatch(key, buf, offsets, lengths, sizes.length);
  sizes.forEach((n, i) => {
    const off = offsets[i]!;
    const header = buf.slice(off, off + DATA_HEADER_LEN);
    const nonce = new Uint8Array(12);
    nonce.set(header.subarray(8, 16), 4);
    const ref = s.crypto_aead_chacha20poly1305_ietf_encrypt(plain[i]!, header, null, nonce, key);
    t.same(buf.slice(off + DATA_HEADER_LEN, off + DATA_HEADER_LEN + n + TAG_LEN), ref, `size ${n}`);
    lengths[i] = DATA_HEADER_LEN + n + TAG_LEN;
  });
  // Tamper: ciphertext of #2, header (counter) of #3, tag of #4.
  buf[offsets[2]! + DATA_HEADER_LEN + 5]! ^= 1;
  buf[offsets[3]! + 9]! ^= 1;
  buf[offsets[4]! + lengths[4]! - 1]! ^= 1;
  const results = new Uint8Array(sizes.length);
  aead.openBatch(key, buf, offsets, lengths, sizes.length, results);
  t.same([...results], [1, 1, 0, 0, 0, 1]);
  for (const i of [0, 1, 5]) {
    const off = offsets[i]! + DATA_HEADER_LEN;
    t.same(buf.slice(off, off + sizes[i]!), plain[i], `decrypted in place, size ${sizes[i]}`);
  }
  const short = new Uint32Array([5]);
  aead.openBatch(key, buf, new Uint32Array([0]), short, 1, results);
  t.equal(results[0], 0, 'too short for header + tag');
  aead.dispose();
});

void t.test('a refused seal leaves no copy of the key in the WASM heap', async (t) => {
  const aead = new SodiumBatchAead();
  const key = Uint8Array.from(randomBytes(32)); // made outside the WASM heap
  const buf = new Uint8Array(64);
  writeDataHeader(buf, 0, 1, 1);
  t.throws(
    () => aead.sealBatch(key, buf, new Uint32Array([0, 40]), new Uint32Array([8, 8]), 2),
    RangeError,
    'the second message does not fit',
  );
  const heap = raw().HEAPU8;
  let found = -1;
  for (let i = 0; i + 32 <= heap.length && found < 0; i++) {
    if (heap[i] === key[0] && key.every((b, j) => heap[i + j] === b)) found = i;
  }
  t.equal(found, -1, 'the key is nowhere in the heap');
  aead.dispose();
});

void t.test('an open leaves no decrypted payload in the WASM heap', async (t) => {
  const aead = new SodiumBatchAead();
  const key = Uint8Array.from(randomBytes(32));
  // A payload that cannot be anywhere in the heap by chance, twice as one batch.
  const payload = Uint8Array.from(randomBytes(200));
  const buf = new Uint8Array(2 * (DATA_HEADER_LEN + 200 + TAG_LEN));
  const offsets = new Uint32Array([0, DATA_HEADER_LEN + 200 + TAG_LEN]);
  for (let i = 0; i < 2; i++) {
    writeDataHeader(buf, offsets[i]!, 7, i + 1);
    buf.set(payload, offsets[i]! + DATA_HEADER_LEN);
  }
  aead.sealBatch(key, buf, offsets, new Uint32Array([200, 200]), 2);
  const results = new Uint8Array(2);
  const total = DATA_HEADER_LEN + 200 + TAG_LEN;
  aead.openBatch(key, buf, offsets, new Uint32Array([total, total]), 2, results);
  t.same([...results], [1, 1], 'both opened');
  t.same(buf.subarray(DATA_HEADER_LEN, DATA_HEADER_LEN + 200), payload, 'to the payload');
  const heap = raw().HEAPU8;
  let found = -1;
  for (let i = 0; i + 32 <= heap.length && found < 0; i++) {
    if (heap[i] === payload[0] && payload.subarray(0, 32).every((b, j) => heap[i + j] === b)) {
      found = i;
    }
  }
  t.equal(found, -1, 'no part of the plaintext is left in the heap');
  aead.dispose();
});
