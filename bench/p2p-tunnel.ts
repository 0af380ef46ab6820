/**
 * A minimal encrypted point-to-point tunnel on the native data path, for bench/datapath.ts
 * (not a product: one peer, a fixed test key, no handshake, no replay window).
 *
 *   TUN batch -> write the 16-byte channel header into each packet's headroom -> sealBatch in
 *   place -> sendmmsg straight from the TUN slab.
 *   recvmmsg batch -> openBatch in place -> write the verified inner packets to the TUN.
 *
 * Usage (inside a netns): node --import tsx bench/p2p-tunnel.ts --family 4 --local 198.51.100.1
 *   --port 4191 --peer 198.51.100.2 --peer-port 4191 --tun-addr fd00:b::1/64 --mtu 1440
 * Prints "ready <tun name>" once configured; on SIGTERM/SIGINT prints counters as JSON and exits.
 */
import { parseArgs } from 'node:util';
import { addressBytes } from '../src/io/address-bytes.js';
import { createNativeBatchAead } from '../src/io/native-aead.js';
import { openTun } from '../src/io/tun.js';
import type { AddressFamily } from '../src/io/types.js';
import { openUdp } from '../src/io/udp.js';

const HDR = 16; // channel header: type | reserved | SPI | counter
const TAG = 16;
const TYPE_DATA = 4;
const SPI = 0x6d697036; // "mip6"
/** Fixed test key: the bench measures the data path, not key agreement. */
const KEY = new Uint8Array(32).map((_, i) => (i * 7 + 1) & 0xff);

const { values } = parseArgs({
  options: {
    family: { type: 'string', default: '4' },
    local: { type: 'string' },
    port: { type: 'string', default: '4191' },
    peer: { type: 'string' },
    'peer-port': { type: 'string', default: '4191' },
    'tun-name': { type: 'string', default: '' },
    'tun-addr': { type: 'string' },
    mtu: { type: 'string', default: '1440' },
    batch: { type: 'string', default: '64' },
    txqueuelen: { type: 'string', default: '500' },
  },
});
if (values.local === undefined || values.peer === undefined || values['tun-addr'] === undefined) {
  throw new Error('needs --local, --peer and --tun-addr');
}
const family = Number(values.family) as AddressFamily;
const maxBatch = Number(values.batch);
const aead = createNativeBatchAead();

const tun = await openTun({
  name: values['tun-name'] ?? '',
  mtu: Number(values.mtu),
  addresses: [values['tun-addr']],
  maxBatch,
  headroom: HDR,
  tailroom: TAG,
  txQueueLength: Number(values.txqueuelen),
});
const udp = openUdp({
  family,
  address: values.local,
  port: Number(values.port),
  maxBatch,
  slotSize: Number(values.mtu) + HDR + TAG + 64,
});

// Outbound: every datagram goes to the one peer; destination arrays are filled once.
const peer = addressBytes(family, values.peer);
const out = {
  count: 0,
  buf: new Uint8Array(0) as Uint8Array,
  offsets: new Uint32Array(maxBatch),
  lengths: new Uint32Array(maxBatch),
  dstAddrs: new Uint8Array(maxBatch * 16),
  dstPorts: new Uint16Array(maxBatch).fill(Number(values['peer-port'])),
};
for (let i = 0; i < maxBatch; i++) out.dstAddrs.set(peer, i * 16);
const plainLengths = new Uint32Array(maxBatch);
let counterLo = 0;
let counterHi = 0;

tun.onPackets((b) => {
  const buf = b.buf;
  for (let i = 0; i < b.count; i++) {
    const o = (b.offsets[i] ?? 0) - HDR; // the header goes into the headroom
    buf[o] = TYPE_DATA;
    buf[o + 1] = 0;
    buf[o + 2] = 0;
    buf[o + 3] = 0;
    buf[o + 4] = SPI >>> 24;
    buf[o + 5] = (SPI >>> 16) & 0xff;
    buf[o + 6] = (SPI >>> 8) & 0xff;
    buf[o + 7] = SPI & 0xff;
    buf[o + 8] = counterLo & 0xff;
    buf[o + 9] = (counterLo >>> 8) & 0xff;
    buf[o + 10] = (counterLo >>> 16) & 0xff;
    buf[o + 11] = counterLo >>> 24;
    buf[o + 12] = counterHi & 0xff;
    buf[o + 13] = (counterHi >>> 8) & 0xff;
    buf[o + 14] = (counterHi >>> 16) & 0xff;
    buf[o + 15] = counterHi >>> 24;
    if (++counterLo === 0x100000000) {
      counterLo = 0;
      counterHi++;
    }
    const len = b.lengths[i] ?? 0;
    out.offsets[i] = o;
    plainLengths[i] = len;
    out.lengths[i] = HDR + len + TAG;
  }
  aead.sealBatch(KEY, buf, out.offsets, plainLengths, b.count);
  out.buf = buf;
  out.count = b.count;
  udp.sendDatagrams(out);
});

// Inbound: open in place, then write the inner packets (offset + 16, length - 32).
const results = new Uint8Array(maxBatch);
const inner = {
  count: 0,
  buf: new Uint8Array(0) as Uint8Array,
  offsets: new Uint32Array(maxBatch),
  lengths: new Uint32Array(maxBatch),
};
let badTag = 0;
udp.onDatagrams((b) => {
  aead.openBatch(KEY, b.buf, b.offsets, b.lengths, b.count, results);
  let n = 0;
  for (let i = 0; i < b.count; i++) {
    if (results[i] !== 1) {
      badTag++;
      continue;
    }
    inner.offsets[n] = (b.offsets[i] ?? 0) + HDR;
    inner.lengths[n] = (b.lengths[i] ?? 0) - HDR - TAG;
    n++;
  }
  inner.buf = b.buf;
  inner.count = n;
  if (n > 0) tun.writePackets(inner);
});

function stop(): void {
  const cpu = process.cpuUsage();
  const report = {
    tun: tun.counters(),
    udp: udp.counters(),
    offloads: { tun: tun.offloads?.(), udp: udp.offloads?.() },
    badTag,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
  };
  tun.close();
  udp.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdout.write(`ready ${tun.name} ${udp.localPort}\n`);
