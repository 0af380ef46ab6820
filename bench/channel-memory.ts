/**
 * Heap per member channel at the home agent (issue 17): a responder SecureEndpoint completes a
 * handshake with each of N members and opens one data message from each (its keys confirmed),
 * as a registration leaves it; the members' own endpoints are dropped. Reports the HA
 * endpoint's heap growth per session after full garbage collections, and the same for the
 * decoded certificate alone. Not part of `npm test`.
 *
 *   node --expose-gc --import tsx bench/channel-memory.ts [--n 5000]
 */
import { parseArgs } from 'node:util';
import { DataKind } from '../src/crypto/aead.js';
import { parseAllowedPrefix, signCertificate } from '../src/crypto/certificate.js';
import { SecureEndpoint } from '../src/crypto/endpoint.js';
import { generateAuthority, generateMember } from '../src/crypto/keys.js';
import { initCrypto } from '../src/crypto/sodium.js';

const { values: a } = parseArgs({ options: { n: { type: 'string', default: '5000' } } });
const N = Number(a.n);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');
await initCrypto();
const ca = generateAuthority();
const nowS = Math.floor(Date.now() / 1000);
const make = (name: string, role: 'ha' | 'mn', address: string, peers: ('ha' | 'mn')[]) => {
  const key = generateMember();
  const certificate = signCertificate(
    {
      name,
      role,
      publicKey: key.publicKey,
      addresses: [parseAllowedPrefix(address)!],
      notBefore: nowS - 60,
      notAfter: nowS + 3600,
    },
    ca.secretKey,
  );
  return new SecureEndpoint({
    staticKey: key,
    certificate,
    authorityPublicKey: ca.publicKey,
    allowedPeerRoles: peers,
  });
};
const heap = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const ha = make('ha', 'ha', '2001:db8:100::/64', ['mn']);
// The HA's public key: what members connect to.
const haKey = (ha as unknown as { opts: { staticKey: { publicKey: Uint8Array } } }).opts.staticKey
  .publicKey;
const packet = new Uint8Array(60);
packet[0] = 0x60;
let now = Date.now();
const step = (i: number): void => {
  const mn = make(`m${i}`, 'mn', `2001:db8:100::${(i + 16).toString(16)}`, ['ha']);
  const r = ha.receive(mn.connect(haKey, now), now, false, '192.0.2.1:4191');
  if (r.kind !== 'established' || !r.reply) throw new Error(`handshake ${r.kind}`);
  const back = mn.receive(r.reply, now);
  if (back.kind !== 'established') throw new Error('initiator');
  const msg = mn.seal(back.session, packet, now, DataKind.SIGNALING);
  if (msg === null || ha.receive(msg, now).kind !== 'data') throw new Error('data');
  mn.close();
  now += 1;
};
for (let i = 0; i < 200; i++) step(i); // warm-up: code, scratch, maps' first growth
const h0 = heap();
for (let i = 200; i < 200 + N; i++) step(i);
const h1 = heap();
console.log(
  JSON.stringify({
    n: N,
    sessions: ha.allSessions().length,
    heapPerSessionBytes: Math.round((h1 - h0) / N),
  }),
);
