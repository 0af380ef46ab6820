/**
 * Micro-benchmark of the batched AEAD alone (not a test): `node --import tsx bench/aead-micro.ts`.
 * Seals and opens batches of 64 packets in place and reports CPU time per packet, so the
 * cipher's share of the data path cost can be told apart from system calls.
 */
import { createNativeBatchAead } from '../src/io/native-aead.js';

const aead = createNativeBatchAead();
const key = new Uint8Array(32).fill(3);
for (const size of [64, 1440]) {
  const n = 64;
  const slot = size + 64;
  const buf = new Uint8Array(n * slot);
  const offsets = Uint32Array.from({ length: n }, (_, i) => i * slot);
  const plain = new Uint32Array(n).fill(size);
  const whole = new Uint32Array(n).fill(size + 32);
  const results = new Uint8Array(n);
  for (let i = 0; i < n; i++) buf[i * slot] = 4;
  const rounds = Math.round(2e8 / (size * n));
  const t0 = process.cpuUsage();
  for (let r = 0; r < rounds; r++) aead.sealBatch(key, buf, offsets, plain, n);
  const t1 = process.cpuUsage(t0);
  const t2 = process.cpuUsage();
  for (let r = 0; r < rounds; r++) {
    aead.sealBatch(key, buf, offsets, plain, n);
    aead.openBatch(key, buf, offsets, whole, n, results);
  }
  const t3 = process.cpuUsage(t2);
  const sealUs = (t1.user + t1.system) / (rounds * n);
  const openUs = (t3.user + t3.system) / (rounds * n) - sealUs;
  console.log(
    `${size} B: seal ${sealUs.toFixed(3)} us/packet (${((size * 8) / sealUs / 1000).toFixed(2)} Gbit/s), ` +
      `open ${openUs.toFixed(3)} us/packet, all ok: ${results.every((x) => x === 1)}`,
  );
}
