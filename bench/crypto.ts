/**
 * Channel micro-benchmark: handshakes/s and seal+open throughput at 64, 512 and 1400 bytes
 * through SecureEndpoint with the libsodium reference BatchAead (batches of 64 packets).
 * Median of several timed runs; every loop is bounded in count and time.
 *
 * Run (Node 20, no build step; tap's TypeScript loader is already installed):
 *   TS_NODE_TRANSPILE_ONLY=1 node --import=@tapjs/typescript/import bench/crypto.ts [--json]
 *
 * Not part of `npm test` (DESIGN.md §9).
 */
import { SodiumBatchAead, DATA_HEADER_LEN, DATA_OVERHEAD } from '../src/crypto/aead.js';
import { parseAllowedPrefix, signCertificate, type Role } from '../src/crypto/certificate.js';
import { SecureEndpoint, type PeerSession } from '../src/crypto/endpoint.js';
import { generateAuthority } from '../src/crypto/keys.js';
import { generateX25519, type KeyPair } from '../src/crypto/noise.js';
import { initCrypto } from '../src/crypto/sodium.js';
import { median } from './lib/stats.js';

const RUNS = 5;
const RUN_MS = 600; // per timed run
const BATCH = 64;
const SIZES = [64, 512, 1400];

await initCrypto();
const ca = generateAuthority();
const now = Date.now();

function member(name: string, role: Role, key: KeyPair, address: string): SecureEndpoint {
  const certificate = signCertificate(
    {
      name,
      role,
      publicKey: key.publicKey,
      addresses: [parseAllowedPrefix(address)!],
      notBefore: Math.floor(now / 1000) - 60,
      notAfter: Math.floor(now / 1000) + 86_400,
    },
    ca.secretKey,
  );
  return new SecureEndpoint({
    staticKey: key,
    certificate,
    authorityPublicKey: ca.publicKey,
    allowedPeerRoles: role === 'ha' ? ['mn'] : ['ha'],
  });
}

const haKey = generateX25519();
const ha = member('ha', 'ha', haKey, '2001:db8:1::1');
const mn = member('mn', 'mn', generateX25519(), '2001:db8:1::10');

function handshakeOnce(t: number): { mnSession: PeerSession; haSession: PeerSession } {
  const r1 = ha.receive(mn.connect(haKey.publicKey, t), t, false); // measure the DH path
  if (r1.kind !== 'established' || !r1.reply) throw new Error('handshake failed (responder)');
  const r2 = mn.receive(r1.reply, t);
  if (r2.kind !== 'established') throw new Error('handshake failed (initiator)');
  return { mnSession: r2.session, haSession: r1.session };
}

// ---- handshakes/s (both sides: initiation, response, certificate checks, key derivation) ----
const hsRates: number[] = [];
let clock = now;
for (let r = 0; r < RUNS; r++) {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < RUN_MS && n < 100_000) {
    handshakeOnce((clock += 1));
    n++;
  }
  hsRates.push(n / ((performance.now() - start) / 1000));
}
const { mnSession } = handshakeOnce((clock += 1));

// ---- seal + open throughput (batches of BATCH packets, in place) ----
const throughput: { size: number; gbps: number; mpps: number }[] = [];
mn.setAead(new SodiumBatchAead());
ha.setAead(new SodiumBatchAead());
for (const size of SIZES) {
  const stride = size + DATA_OVERHEAD;
  const buf = new Uint8Array(stride * BATCH);
  const offsets = new Uint32Array(BATCH);
  const plainLengths = new Uint32Array(BATCH).fill(size);
  const wireLengths = new Uint32Array(BATCH).fill(stride);
  for (let i = 0; i < BATCH; i++) offsets[i] = i * stride;
  const out = {
    results: new Uint8Array(BATCH),
    sessions: new Array<PeerSession | undefined>(BATCH),
  };
  const rates: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    let packets = 0;
    const start = performance.now();
    while (performance.now() - start < RUN_MS && packets < 50_000_000) {
      for (let i = 0; i < BATCH; i++) buf[offsets[i]! + DATA_HEADER_LEN] = i; // "new" plaintext
      if (mn.sealBatch(mnSession, buf, offsets, plainLengths, BATCH, clock) !== BATCH) {
        throw new Error('seal failed');
      }
      if (ha.openBatch(buf, offsets, wireLengths, BATCH, clock, out) !== BATCH) {
        throw new Error('open failed');
      }
      packets += BATCH;
    }
    rates.push(packets / ((performance.now() - start) / 1000));
  }
  const pps = median(rates);
  throughput.push({ size, mpps: pps / 1e6, gbps: (pps * size * 8) / 1e9 });
}

const result = {
  node: process.version,
  runs: RUNS,
  runMs: RUN_MS,
  handshakesPerSecond: Math.round(median(hsRates)),
  sealOpen: throughput.map((x) => ({
    bytes: x.size,
    packetsPerSecond: Math.round(x.mpps * 1e6),
    gbitPerSecond: Number(x.gbps.toFixed(3)),
  })),
};
if (process.argv.includes('--json')) {
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
} else {
  process.stdout.write(
    `handshakes/s (both sides, median of ${RUNS}): ${result.handshakesPerSecond}\n`,
  );
  for (const x of result.sealOpen) {
    process.stdout.write(
      `seal+open ${String(x.bytes).padStart(4)} B: ${x.packetsPerSecond} pkt/s, ${x.gbitPerSecond} Gbit/s of plaintext\n`,
    );
  }
}
mn.close();
ha.close();
