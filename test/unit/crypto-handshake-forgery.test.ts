/**
 * Forged handshake messages (security issue #13, trust boundary). MAC1 is keyed by the
 * receiver's public key, so anyone who sees an initiation can answer it with a message that
 * passes MAC1 and carries the right SPI. Such a message must be dropped as 'bad-handshake' and
 * change nothing: the genuine message that follows still completes the handshake. Before the
 * fix, `readMessageB` mixed the forged message into the initiator's state, so one injected
 * response per retransmission (every REKEY_TIMEOUT) kept a member off its home agent with
 * sniff-and-inject only.
 */
import t, { type Test } from 'tap';
import { DataKind } from '../../src/crypto/aead.js';
import { type SecureEndpoint } from '../../src/crypto/endpoint.js';
import {
  HS_SENDER_SPI_OFF,
  mac1Key,
  MACS_LEN,
  RESP_NOISE_OFF,
  RESP_RECEIVER_SPI_OFF,
  writeMacs,
} from '../../src/crypto/handshake.js';
import { IkInitiator, IkResponder, x25519FromPrivate } from '../../src/crypto/noise.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { authority, endpoint, fixedBytes, ipv6Packet, memberKey, T0 } from '../helpers/crypto.js';

await initCrypto();

const ca = authority();
const haKey = memberKey(1);
const mnKey = memberKey(2);
const HA = { name: 'ha1', role: 'ha' as const, key: haKey, addresses: ['2001:db8:1::1'] };
const MN = { name: 'laptop', role: 'mn' as const, key: mnKey, addresses: ['2001:db8:1::10'] };

/** Deterministic bytes (a linear congruential generator): the forger's garbage. */
function junk(len: number, seed: number): Uint8Array {
  let x = seed;
  return Uint8Array.from({ length: len }, () => (x = (x * 1103515245 + 12345) & 0x7fffffff) & 0xff);
}

/**
 * A response to `init` as an on-path forger builds it: the initiator's SPI as receiver SPI,
 * `noise` as the Noise part and a valid MAC1 (keyed by the initiator's public key).
 */
function forgeResponse(init: Uint8Array, noise: Uint8Array): Uint8Array {
  const msg = new Uint8Array(RESP_NOISE_OFF + noise.length + MACS_LEN);
  msg[0] = 2;
  new DataView(msg.buffer).setUint32(HS_SENDER_SPI_OFF, 0x0bad_f00d);
  msg.set(init.subarray(HS_SENDER_SPI_OFF, HS_SENDER_SPI_OFF + 4), RESP_RECEIVER_SPI_OFF);
  msg.set(noise, RESP_NOISE_OFF);
  writeMacs(msg, mac1Key(mnKey.publicKey), null);
  return msg;
}

/** The Noise part of a response (what the forger replaces). */
function noiseOf(response: Uint8Array): Uint8Array {
  return response.subarray(RESP_NOISE_OFF, response.length - MACS_LEN);
}

/** Data flows both ways over the sessions the handshake left. */
function dataFlows(t: Test, ha: SecureEndpoint, mn: SecureEndpoint, now: number): void {
  const pkt = ipv6Packet(new Uint8Array(16), 24);
  const haSession = ha.session(mnKey.publicKey)!;
  const mnSession = mn.session(haKey.publicKey)!;
  const up = mn.seal(mnSession, pkt, now, DataKind.PAYLOAD);
  t.equal(up !== null && ha.receive(up, now).kind, 'data', 'MN -> HA');
  const down = ha.seal(haSession, pkt, now, DataKind.PAYLOAD);
  t.equal(down !== null && mn.receive(down, now).kind, 'data', 'HA -> MN');
}

void t.test(
  'Noise: a message that fails to authenticate leaves the handshake state as it was',
  async (t) => {
    const prologue = new TextEncoder().encode('forgery');
    const iStatic = x25519FromPrivate(fixedBytes(0x21));
    const rStatic = x25519FromPrivate(fixedBytes(0x22));
    const run = (forgeA: Uint8Array[], forgeB: Uint8Array[]) => {
      const i = new IkInitiator(
        iStatic,
        rStatic.publicKey,
        prologue,
        x25519FromPrivate(fixedBytes(0x23)),
      );
      const r = new IkResponder(rStatic, prologue, x25519FromPrivate(fixedBytes(0x24)));
      const a = i.writeMessageA(new Uint8Array([1, 2, 3]));
      for (const f of forgeA) t.equal(r.readMessageA(f), null, 'forged A refused');
      const readA = r.readMessageA(a);
      if (readA === null) throw new Error('genuine A refused');
      const b = r.writeMessageB(new Uint8Array([4, 5]));
      for (const f of forgeB) t.equal(i.readMessageB(f), null, 'forged B refused');
      const readB = i.readMessageB(b.message);
      if (readB === null) throw new Error('genuine B refused');
      return { a, b: b.message, keys: readB.keys, responderKeys: b.keys };
    };
    const clean = run([], []);
    // The forgeries: garbage of the right length, an all-zero (low-order) ephemeral key, which
    // makes X25519 throw halfway through the read, and the genuine message with a flipped tag.
    const lowOrder = (m: Uint8Array) => {
      const x = m.slice();
      x.fill(0, 0, 32);
      return x;
    };
    const flipped = (m: Uint8Array) => {
      const x = m.slice();
      x[x.length - 1]! ^= 1;
      return x;
    };
    const forged = run(
      [junk(clean.a.length, 1), lowOrder(clean.a), flipped(clean.a)],
      [junk(clean.b.length, 2), lowOrder(clean.b), flipped(clean.b)],
    );
    t.same(forged.a, clean.a, 'same initiation');
    t.same(forged.keys, clean.keys, 'initiator: same keys and handshake hash as without forgeries');
    t.same(forged.responderKeys.handshakeHash, clean.keys.handshakeHash, 'both sides agree');
    t.same(forged.responderKeys.sendKey, clean.keys.receiveKey);
  },
);

void t.test(
  'a forged response (pending SPI, valid MAC1) arriving first does not break the genuine one',
  async (t) => {
    // Forged Noise parts: garbage; a low-order ephemeral key (X25519 throws); and the genuine
    // response of an earlier handshake re-addressed to the pending SPI (right format, right
    // responder, wrong keys: a replay).
    const variants: {
      name: string;
      noise: (genuine: Uint8Array, old: Uint8Array) => Uint8Array;
    }[] = [
      { name: 'garbage', noise: (g) => junk(g.length, 7) },
      {
        name: 'low-order ephemeral',
        noise: (g) => {
          const x = g.slice();
          x.fill(0, 0, 32);
          return x;
        },
      },
      { name: 'old genuine response, re-addressed', noise: (_g, old) => old.slice() },
    ];
    for (const v of variants) {
      const ha = endpoint(ca, HA, ['mn']);
      const mn = endpoint(ca, MN, ['ha']);
      // An earlier handshake, whose response the forger recorded.
      const init0 = mn.connect(haKey.publicKey, T0);
      const r0 = ha.receive(init0, T0);
      if (r0.kind !== 'established' || !r0.reply) throw new Error('first handshake');
      t.equal(mn.receive(r0.reply, T0).kind, 'established');

      const init = mn.connect(haKey.publicKey, T0 + 1000);
      const r = ha.receive(init, T0 + 1000);
      if (r.kind !== 'established' || !r.reply) throw new Error('responder');
      const forged = forgeResponse(init, v.noise(noiseOf(r.reply), noiseOf(r0.reply)));
      t.same(mn.receive(forged, T0 + 1000), { kind: 'drop', reason: 'bad-handshake' }, v.name);
      t.same(mn.receive(r.reply, T0 + 1001).kind, 'established', `${v.name}: genuine response`);
      t.equal(mn.drops['bad-handshake'], 1, `${v.name}: counted on the endpoint`);
      t.equal(mn.session(haKey.publicKey)!.stats.drops['bad-handshake'], 1, 'and on the session');
      t.equal(mn.session(haKey.publicKey)!.stats.handshakes, 2);
      dataFlows(t, ha, mn, T0 + 1002);
    }
  },
);

void t.test('one forged response per retransmission does not keep a member out', async (t) => {
  const ha = endpoint(ca, HA, ['mn']);
  const mn = endpoint(ca, MN, ['ha']);
  let init = mn.connect(haKey.publicKey, T0);
  let now = T0;
  // The genuine responses are lost four times; each retransmission is answered by a forger at
  // once. The fifth genuine response gets through.
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = ha.receive(init, now);
    if (r.kind !== 'established' || !r.reply) throw new Error('responder');
    const forged = forgeResponse(init, junk(noiseOf(r.reply).length, attempt + 1));
    t.same(mn.receive(forged, now), { kind: 'drop', reason: 'bad-handshake' });
    if (attempt === 4) {
      t.equal(mn.receive(r.reply, now + 1).kind, 'established', 'genuine response accepted');
      break;
    }
    now += 5_000; // REKEY_TIMEOUT
    const sent = mn.poll(now).send;
    t.equal(sent.length, 1, 'retransmitted');
    init = sent[0]!.data;
  }
  t.equal(mn.drops['bad-handshake'], 5);
  dataFlows(t, ha, mn, now + 2);
});

void t.test(
  'a forged response during a rekey leaves the current keys and the rekey intact',
  async (t) => {
    const ha = endpoint(ca, HA, ['mn']);
    const mn = endpoint(ca, MN, ['ha']);
    const r0 = ha.receive(mn.connect(haKey.publicKey, T0), T0);
    if (r0.kind !== 'established' || !r0.reply) throw new Error('first handshake');
    mn.receive(r0.reply, T0);
    // Payload past REKEY_AFTER_TIME: the rekey.
    const sent = mn.seal(mn.allSessions()[0]!, new Uint8Array(40), T0 + 120_000, DataKind.PAYLOAD);
    t.ok(sent, 'payload under the old keys');
    const rekey = mn.poll(T0 + 120_000).send;
    t.equal(rekey.length, 1, 'rekey initiation');
    const init = rekey[0]!.data;
    const r = ha.receive(init, T0 + 120_000);
    if (r.kind !== 'established' || !r.reply) throw new Error('responder');
    const forged = forgeResponse(init, junk(noiseOf(r.reply).length, 3));
    t.same(mn.receive(forged, T0 + 120_000), { kind: 'drop', reason: 'bad-handshake' });
    dataFlows(t, ha, mn, T0 + 120_001); // old keys, still current on both sides
    t.equal(mn.receive(r.reply, T0 + 120_002).kind, 'established', 'the rekey completes');
    dataFlows(t, ha, mn, T0 + 120_003);
    t.equal(mn.session(haKey.publicKey)!.stats.handshakes, 2);
  },
);

void t.test('responder: a forged initiation (valid MAC1) changes nothing', async (t) => {
  const ha = endpoint(ca, HA, ['mn']);
  const mn = endpoint(ca, MN, ['ha']);
  const init = mn.connect(haKey.publicKey, T0);
  const garbage = init.slice();
  garbage.set(junk(init.length - 8 - MACS_LEN, 9), 8);
  const lowOrder = init.slice();
  lowOrder.fill(0, 8, 40);
  for (const f of [garbage, lowOrder]) {
    writeMacs(f, mac1Key(haKey.publicKey), null);
    t.same(ha.receive(f, T0), { kind: 'drop', reason: 'bad-handshake' });
  }
  t.equal(ha.allSessions().length, 0, 'no session');
  const r = ha.receive(init, T0);
  t.equal(r.kind, 'established', 'the genuine initiation that follows is answered');
  if (r.kind !== 'established' || !r.reply) return;
  t.equal(mn.receive(r.reply, T0).kind, 'established');
  t.equal(ha.drops['bad-handshake'], 2);
  dataFlows(t, ha, mn, T0 + 1);
});
