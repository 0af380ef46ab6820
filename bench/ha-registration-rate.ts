/**
 * Home agent signaling cost: Binding Updates processed per second by processHomeBindingUpdate
 * with N bindings in the cache (create, then refresh rounds), and heap use per binding.
 * Not part of `npm test`. Run: node --import tsx bench/ha-registration-rate.ts [N]
 */
import { BindingCache } from '../src/protocol/binding-cache.js';
import {
  processHomeBindingUpdate,
  type HomeRegistrationInput,
} from '../src/protocol/home-agent-registration.js';
import { type BindingUpdate, bindingUpdateFlags } from '../src/wire/types.js';

const N = Number(process.argv[2] ?? 10_000);
const HA = '2001:db8:100::1';
const config = {
  homePrefix: '2001:db8:100::/64',
  homeAgentAddress: HA,
  maxLifetimeSeconds: 600,
  natKeepaliveSeconds: 25,
  maxBindings: N + 1,
};
const peer = { name: 'bench', publicKey: new Uint8Array(32), allowsHomeAddress: () => true };
const FLAGS = bindingUpdateFlags({ A: true, H: true });
const hoas = Array.from({ length: N }, (_, i) => `2001:db8:100::${(i + 0x10).toString(16)}`);

function input(i: number, seq: number): HomeRegistrationInput {
  const bu: BindingUpdate = {
    kind: 'bindingUpdate',
    sequence: seq,
    flags: FLAGS,
    lifetimeUnits: 150,
    options: [{ type: 'ipv4CareOfAddress', address: `10.${(i >> 8) & 255}.${i & 255}.1` }],
  };
  return {
    bu,
    innerSource: hoas[i]!,
    innerDestination: HA,
    locator: { address: '203.0.113.9', port: 1024 + (i % 60000) },
    peer,
    config,
  };
}

const heap0 = process.memoryUsage().heapUsed;
const cache = new BindingCache();
let t0 = performance.now();
for (let i = 0; i < N; i++) processHomeBindingUpdate(cache, input(i, 1), 0);
let ms = performance.now() - t0;
globalThis.gc?.();
const heap1 = process.memoryUsage().heapUsed;
console.log(`create ${N} bindings: ${((N / ms) * 1000).toFixed(0)} BU/s`);
console.log(
  `heap per binding: ~${((heap1 - heap0) / N).toFixed(0)} bytes${globalThis.gc ? '' : ' (run with --expose-gc for a cleaner number)'}`,
);
t0 = performance.now();
for (let r = 2; r < 7; r++)
  for (let i = 0; i < N; i++) processHomeBindingUpdate(cache, input(i, r), r * 1000);
ms = performance.now() - t0;
console.log(`refresh: ${(((5 * N) / ms) * 1000).toFixed(0)} BU/s`);
t0 = performance.now();
let dl = 0;
for (let i = 0; i < 100_000; i++) dl += cache.nextDeadline();
console.log(
  `nextDeadline: ${(((performance.now() - t0) * 1e3) / 100_000).toFixed(2)} us/call (${dl > 0 ? 'ok' : ''})`,
);
