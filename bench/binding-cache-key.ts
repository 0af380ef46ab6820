/**
 * How cheap is the binding-cache data-path lookup? Compares `keyOf` (16 bytes -> latin1
 * string) + Map.get against formatting the address as RFC 5952 text + Map.get, over packets
 * whose destination is one of N registered home addresses. Not part of `npm test`.
 * Run: node --import tsx bench/binding-cache-key.ts
 */
import { bindingUpdateFlags } from '../src/wire/types.js';
import { BindingCache, keyOf } from '../src/protocol/binding-cache.js';
import { formatIpv6, parseIpv6 } from '../src/wire/address.js';

const N = 5000;
const PACKETS = 1024;
const ROUNDS = 2000;
const FLAGS = bindingUpdateFlags({ A: true, H: true });

const cache = new BindingCache();
const byText = new Map<string, number>();
for (let i = 0; i < N; i++) {
  const hoa = formatIpv6(parseIpv6(`2001:db8:100::${(i + 2).toString(16)}`));
  cache.set(
    {
      homeAddress: hoa,
      careOfAddress: '::ffff:198.51.100.7',
      locator: { address: '198.51.100.7', port: 4191 },
      lifetimeSeconds: 600,
      expiresAt: 600_000,
      sequence: 1,
      flags: FLAGS,
      homeRegistration: true,
      peerName: `mn${i}`,
      ownerKey: new Uint8Array(32).fill(i & 0xff),
      natDetected: false,
      udpEncapsulationRequired: false,
      refreshTime: 0,
      refreshAdviceSeconds: 0,
    },
    0,
  );
  byText.set(hoa, i);
}
// A batch of 1024 fake IPv6 headers (40 bytes each), destination at offset 24.
const batch = new Uint8Array(PACKETS * 40);
for (let p = 0; p < PACKETS; p++) {
  batch.set(parseIpv6(`2001:db8:100::${(((p * 7919) % N) + 2).toString(16)}`), p * 40 + 24);
}

function time(label: string, fn: () => number): void {
  fn(); // warm-up
  const t0 = process.hrtime.bigint();
  const hits = fn();
  const ns = Number(process.hrtime.bigint() - t0);
  const per = ns / (PACKETS * ROUNDS);
  console.log(
    `${label}: ${per.toFixed(1)} ns/lookup (${(1e9 / per / 1e6).toFixed(1)} M lookups/s), hits ${hits}`,
  );
}

time('keyOf + Map.get', () => {
  let hits = 0;
  for (let r = 0; r < ROUNDS; r++) {
    for (let p = 0; p < PACKETS; p++)
      if (cache.getByKey(keyOf(batch, p * 40 + 24)) !== undefined) hits++;
  }
  return hits;
});
time('formatIpv6 + Map.get', () => {
  let hits = 0;
  for (let r = 0; r < ROUNDS; r++) {
    for (let p = 0; p < PACKETS; p++)
      if (byText.get(formatIpv6(batch, p * 40 + 24)) !== undefined) hits++;
  }
  return hits;
});
