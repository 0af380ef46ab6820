/**
 * The home agent's CPU per refresh Binding Update, in one process on the sim World (fake clock,
 * in-memory network: no system calls, no other process), so it holds up on a busy machine
 * where bench/ha-scale.ts's wall-clock figures do not (issue 17). Not a test.
 *
 *   node --import tsx bench/ha-refresh-sim.ts [--n 2000] [--rounds 10] [--root DIR]
 *
 * N members, each with its own key, certificate and SecureEndpoint (the real Noise IK channel),
 * register at the World's HomeAgent (handshakes in waves of 200, cookies answered), answer its
 * path MTU probes as the real MN does, and then send ROUNDS refresh rounds (every member one
 * BU with the real encoding, 2 s of fake time apart: the per-member BU limit). Reported: CPU
 * time (process.cpuUsage) of the HA's receive handler per BA'd refresh BU (`haUsPerBu`, the
 * decryption, the BU's checks and binding update, the BA built, sealed and handed to the fake
 * socket), and of the whole process (members included) per BU. --root runs another tree's
 * sources (a `git archive` of an older commit) with the same script: a before/after pair.
 */
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

type World = typeof import('../test/helpers/world.js');
type Crypto = typeof import('../test/helpers/crypto.js');
type Network = typeof import('../test/helpers/fake-network.js');
type Keys = typeof import('../src/crypto/keys.js');
type Aead = typeof import('../src/crypto/aead.js');
type Packet = typeof import('../src/wire/packet.js');
type Types = typeof import('../src/wire/types.js');
type PathMtu = typeof import('../src/protocol/path-mtu.js');
type Session = import('../src/crypto/endpoint.js').PeerSession;
type Endpoint = import('../src/crypto/endpoint.js').SecureEndpoint;
type Udp = import('../test/helpers/fake-network.js').FakeUdpEndpoint;
type Batch = import('../src/io/types.js').DatagramBatch;

const { values: a } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '10' },
    root: { type: 'string', default: fileURLToPath(new URL('../', import.meta.url)) },
  },
});
const ROOT = a.root!;
const N = Number(a.n);
const ROUNDS = Number(a.rounds);
const load = <T>(path: string): Promise<T> => import(`${ROOT}/${path}`) as Promise<T>;
const { World, HA4, HA_PORT, HA_HOME_ADDRESS } = await load<World>('test/helpers/world.ts');
const { endpoint, T0 } = await load<Crypto>('test/helpers/crypto.ts');
const { FakeUdpEndpoint } = await load<Network>('test/helpers/fake-network.ts');
const { generateMember } = await load<Keys>('src/crypto/keys.ts');
const { DataKind } = await load<Aead>('src/crypto/aead.ts');
const { encodeMobilityPacket, decodePacket } = await load<Packet>('src/wire/packet.ts');
const { bindingUpdateFlags } = await load<Types>('src/wire/types.ts');
const pm = await load<PathMtu>('src/protocol/path-mtu.ts');

// The HA's receive handler, timed: its sockets are the World's endpoints at HA4 / HA6.
let haCpu = 0;
const original = FakeUdpEndpoint.prototype.onDatagrams;
FakeUdpEndpoint.prototype.onDatagrams = function (this: Udp, handler: (b: Batch) => void) {
  if (this.localPort !== HA_PORT) return original.call(this, handler);
  return original.call(this, (b: Batch) => {
    const c0 = process.cpuUsage();
    handler(b);
    const c = process.cpuUsage(c0);
    haCpu += c.user + c.system;
  });
};

const w = await World.create({ maxBindings: N + 10, maxLifetime: 3600 });
const now = (): number => T0 + w.clock.now();
interface Sim {
  hoa: string;
  addr: string;
  ep: Endpoint;
  udp: Udp;
  session: Session | undefined;
  seq: number;
}
const sims: Sim[] = [];
let acks = 0;
for (let i = 0; i < N; i++) {
  const hoa = `2001:db8:100::a:${i.toString(16)}`;
  const key = generateMember();
  const ep = endpoint(w.ca, { name: `m${i}`, role: 'mn', key, addresses: [hoa] }, ['ha']);
  const addr = `198.51.100.${(i % 254) + 1}`;
  const sim: Sim = {
    hoa,
    addr,
    ep,
    udp: w.net.endpoint({ address: addr, port: 5000 + i }),
    session: undefined,
    seq: 0,
  };
  sim.udp.onDatagrams((batch) => {
    for (let j = 0; j < batch.count; j++) {
      const copy = batch.packet(j).slice();
      const r = ep.receive(copy, now());
      if (r.kind === 'established') sim.session = r.session;
      if (r.kind === 'reply') sim.udp.send(r.data, HA4, HA_PORT);
      if (r.kind !== 'data' || sim.session === undefined) continue;
      if (pm.isPathMtuMessage(copy, r.offset)) {
        const m = pm.decodePathMtuMessage(copy, r.offset, r.length);
        if (m?.type !== 'probe') continue;
        const ack = ep.seal(
          sim.session,
          pm.encodeProbeAck(m.id, m.size),
          now(),
          DataKind.SIGNALING,
        );
        if (ack !== null) sim.udp.send(ack, HA4, HA_PORT);
        continue;
      }
      if (r.length < 40) continue; // a path challenge (the binding's locator is validated)
      const d = decodePacket(copy.subarray(r.offset, r.offset + r.length));
      if (d.mobility?.kind === 'bindingAcknowledgement') acks++;
    }
  });
  sims.push(sim);
}
const bu = (s: Sim): void => {
  const packet = encodeMobilityPacket({
    source: s.hoa,
    destination: HA_HOME_ADDRESS,
    message: {
      kind: 'bindingUpdate',
      sequence: ++s.seq,
      flags: bindingUpdateFlags({ A: true, H: true }),
      lifetimeUnits: 900,
      options: [{ type: 'ipv4CareOfAddress', address: s.addr }],
    },
  });
  const sealed = s.ep.seal(s.session!, packet, now(), DataKind.SIGNALING);
  if (sealed !== null) s.udp.send(sealed, HA4, HA_PORT);
};
// Handshakes in waves (the HA's cookie threshold), then the retransmissions a cookie asks for.
for (let k = 0; k < N; k += 200) {
  for (const s of sims.slice(k, k + 200)) {
    s.udp.send(s.ep.connect(w.haKey.publicKey, now()), HA4, HA_PORT);
  }
  await w.run(1000, 10);
}
for (let t = 0; t < 20 && !sims.every((s) => s.session?.established === true); t++) {
  for (const s of sims) for (const x of s.ep.poll(now()).send) s.udp.send(x.data, HA4, HA_PORT);
  await w.run(1000, 10);
}
if (!sims.every((s) => s.session?.established === true)) throw new Error('handshakes missing');
for (const s of sims) bu(s);
await w.until(() => acks >= N, 60_000, 10);
await w.run(5000, 50); // the path MTU searches end

let cpu = 0;
let ha = 0;
let done = 0;
for (let r = 0; r < ROUNDS; r++) {
  await w.run(2000, 100);
  const a0 = acks;
  const h0 = haCpu;
  const c0 = process.cpuUsage();
  for (const s of sims) bu(s);
  await w.until(() => acks - a0 >= N, 60_000, 1);
  const c = process.cpuUsage(c0);
  cpu += c.user + c.system;
  ha += haCpu - h0;
  done += acks - a0;
}
process.stdout.write(
  `${JSON.stringify({
    root: ROOT,
    n: N,
    bindings: w.ha.cache.size,
    refreshBus: done,
    haUsPerBu: +(ha / done).toFixed(2),
    processUsPerBu: +(cpu / done).toFixed(2),
  })}\n`,
);
process.exit(0);
