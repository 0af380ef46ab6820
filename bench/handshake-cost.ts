/**
 * CPU cost of one handshake on the responder (the home agent's side of a registration): a
 * SecureEndpoint receives initiations made beforehand by many initiators and answers each
 * (MAC1, Noise IK read + write, certificate decode and Ed25519 check, new keys). Reports the
 * median over RUNS of process CPU time (user + system) per initiation, which a busy shared
 * machine inflates less than wall time; and the same for the initiator side.
 * Not part of `npm test`.
 *
 *   node --import tsx bench/handshake-cost.ts [SRC_DIR]
 *
 * SRC_DIR (default: this tree's src/) lets the same bench run against another checkout's
 * sources, e.g. `git archive HEAD~1 src | tar -x -C /tmp/old` for a before/after comparison.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { median } from './lib/stats.js';

const SRC = resolve(process.argv[2] ?? new URL('../src', import.meta.url).pathname);
const RUNS = 5;
const PER_RUN = 200;

type Mod = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const load = (p: string): Promise<Mod> =>
  import(pathToFileURL(resolve(SRC, p)).href) as Promise<Mod>;
const { initCrypto } = await load('crypto/sodium.ts');
const { SecureEndpoint } = await load('crypto/endpoint.ts');
const { signCertificate, parseAllowedPrefix } = await load('crypto/certificate.ts');
const { generateAuthority, generateMember } = await load('crypto/keys.ts');
await initCrypto();

const ca = generateAuthority();
const nowS = Math.floor(Date.now() / 1000);
function endpoint(
  name: string,
  role: string,
  address: string,
  peers: string[],
): { ep: Mod; key: Mod } {
  const key = generateMember();
  const certificate = signCertificate(
    {
      name,
      role,
      publicKey: key.publicKey,
      addresses: [parseAllowedPrefix(address)],
      notBefore: nowS - 60,
      notAfter: nowS + 3600,
    },
    ca.secretKey,
  );
  return {
    key,
    ep: new SecureEndpoint({
      staticKey: key,
      certificate,
      authorityPublicKey: ca.publicKey,
      allowedPeerRoles: peers,
    }),
  };
}
const ha = endpoint('ha', 'ha', '2001:db8:100::/64', ['mn']);
const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const responder: number[] = [];
const initiator: number[] = [];
let t = Date.now();
for (let r = 0; r < RUNS + 1; r++) {
  const mns = Array.from({ length: PER_RUN }, (_, i) =>
    endpoint(`m${r}-${i}`, 'mn', `2001:db8:100::${(r * PER_RUN + i + 16).toString(16)}`, ['ha']),
  );
  let c0 = cpuUs();
  const inits = mns.map((m) => m.ep.connect(ha.key.publicKey, (t += 1)));
  const initCost = cpuUs() - c0;
  c0 = cpuUs();
  const replies = inits.map((msg) => {
    const res = ha.ep.receive(msg, (t += 1), false, '192.0.2.1:4191');
    if (res.kind !== 'established') throw new Error(`responder: ${res.kind} ${res.reason ?? ''}`);
    return res.reply as Uint8Array;
  });
  const respCost = cpuUs() - c0;
  c0 = cpuUs();
  replies.forEach((reply, i) => {
    const res = mns[i]!.ep.receive(reply, (t += 1));
    if (res.kind !== 'established') throw new Error(`initiator: ${res.kind}`);
  });
  const finishCost = cpuUs() - c0;
  if (r === 0) continue; // warm-up
  responder.push(respCost / PER_RUN);
  initiator.push((initCost + finishCost) / PER_RUN);
}
console.log(
  JSON.stringify({
    src: SRC,
    responderUsPerHandshake: Math.round(median(responder)),
    initiatorUsPerHandshake: Math.round(median(initiator)),
    responderRuns: responder.map(Math.round),
  }),
);
