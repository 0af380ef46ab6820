/**
 * SecureEndpoint: two in-memory peers, handshake + data, and every rejection path with the
 * exact drop counter it must bump. Time is injected (T0 = 2026-01-01).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import {
  DATA_HEADER_LEN,
  DATA_OVERHEAD,
  DataKind,
  readSpi,
  SodiumBatchAead,
  writeDataHeader,
} from '../../src/crypto/aead.js';
import { certificateToText, parseIpv6, signCertificate } from '../../src/crypto/certificate.js';
import {
  DEFAULT_MAX_HANDSHAKES_PER_SECOND,
  OpenResult,
  SecureEndpoint,
  type PeerSession,
} from '../../src/crypto/endpoint.js';
import { mac1Key, tai64n, writeMacs } from '../../src/crypto/handshake.js';
import { x25519FromPrivate } from '../../src/crypto/noise.js';
import { sourceAllowed } from '../../src/crypto/selector.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { CHANNEL_KEY_POOL, type Keypair } from '../../src/crypto/session.js';
import {
  authority,
  cert,
  endpoint,
  fixedBytes,
  ipv6Packet,
  memberKey,
  T0,
} from '../helpers/crypto.js';

await initCrypto();
const KAT = JSON.parse(
  readFileSync(new URL('./vectors/crypto-handshake-kat.json', import.meta.url), 'utf8'),
) as { initiation: string; response: string };

const ca = authority();
const haKey = memberKey(1);
const mnKey = memberKey(2);
const HA = { name: 'ha1', role: 'ha' as const, key: haKey, addresses: ['2001:db8:1::1'] };
const MN = { name: 'laptop', role: 'mn' as const, key: mnKey, addresses: ['2001:db8:1::10'] };
const HOA = parseIpv6('2001:db8:1::10')!;
const SEC = Math.floor(T0 / 1000);

function pair(haExtra = {}, mnExtra = {}) {
  return { ha: endpoint(ca, HA, ['mn', 'cn'], haExtra), mn: endpoint(ca, MN, ['ha'], mnExtra) };
}

function handshake(ha: SecureEndpoint, mn: SecureEndpoint, now = T0) {
  const init = mn.connect(haKey.publicKey, now);
  const r1 = ha.receive(init, now);
  if (r1.kind !== 'established' || !r1.reply) throw new Error(`responder: ${JSON.stringify(r1)}`);
  const r2 = mn.receive(r1.reply, now);
  if (r2.kind !== 'established') throw new Error(`initiator: ${JSON.stringify(r2)}`);
  return { haSession: r1.session, mnSession: r2.session, init, response: r1.reply };
}

function nonZeroDrops(ep: SecureEndpoint): Record<string, number> {
  return Object.fromEntries(Object.entries(ep.drops).filter(([, v]) => v !== 0));
}

void t.test('two peers complete the handshake and exchange data both ways', async (t) => {
  const { ha, mn } = pair();
  const { haSession, mnSession, init, response } = handshake(ha, mn);
  t.equal(init[0], 1);
  t.equal(response[0], 2);
  t.equal(haSession.peerName, 'laptop');
  t.equal(mnSession.peerName, 'ha1');
  t.equal(haSession.peerCertificate?.role, 'mn');
  t.ok(haSession.established);
  t.ok(mnSession.established);

  const pkt = ipv6Packet(HOA, 100);
  const msg = mn.seal(mnSession, pkt, T0 + 1, DataKind.PAYLOAD)!;
  t.equal(msg.length, pkt.length + DATA_OVERHEAD);
  t.equal(msg[0], 4);
  const r = ha.receive(msg, T0 + 2);
  t.equal(r.kind, 'data');
  if (r.kind !== 'data') return;
  t.equal(r.offset, DATA_HEADER_LEN);
  t.same(msg.subarray(r.offset, r.offset + r.length), pkt);
  t.equal(sourceAllowed(r.session.peerCertificate!, msg, r.offset, r.length), true);

  const back = ha.seal(haSession, pkt, T0 + 3, DataKind.PAYLOAD)!;
  t.equal(mn.receive(back, T0 + 4).kind, 'data');
  t.equal(haSession.stats.packetsIn, 1);
  t.equal(haSession.stats.packetsOut, 1);
  t.equal(mnSession.stats.bytesOut, pkt.length);
  t.same(nonZeroDrops(ha), {});
  t.same(nonZeroDrops(mn), {});
});

void t.test(
  'handshake known answer: fixed keys, ephemerals, timestamps and SPIs give fixed bytes',
  async (t) => {
    const run = () => {
      let e = 0x40;
      const hooks = (spi: number) => ({
        ephemeral: () => x25519FromPrivate(fixedBytes(e++)),
        timestamp: (now: number) => tai64n(now),
        spi: () => spi,
      });
      const { ha, mn } = pair(hooks(0x0000_0a0a), hooks(0x0000_0b0b));
      return handshake(ha, mn);
    };
    const a = run();
    const b = run();
    t.same(a.init, b.init, 'initiation is deterministic');
    t.same(a.response, b.response, 'response is deterministic');
    const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');
    // Recorded from this implementation (regression vector; the Noise core itself is checked
    // against noise-c's vector in crypto-noise.test.ts). Header fields are checked explicitly.
    t.equal(hex(a.init.subarray(0, 8)), '0100000000000b0b', 'type 1, sender SPI');
    t.equal(hex(a.response.subarray(0, 12)), '020000000000 0a0a00000b0b'.replace(' ', ''));
    t.equal(hex(a.init), KAT.initiation, 'initiation bytes');
    t.equal(hex(a.response), KAT.response, 'response bytes');
  },
);

void t.test('certificate checks during the handshake', async (t) => {
  const cases: {
    name: string;
    reason: string;
    mn: () => SecureEndpoint;
    ha?: () => SecureEndpoint;
  }[] = [
    {
      name: 'wrong authority',
      reason: 'bad-certificate',
      mn: () => endpoint(authority(0xb0), MN, ['ha']),
    },
    {
      name: 'expired certificate',
      reason: 'expired-certificate',
      mn: () => endpoint(ca, { ...MN, notBefore: SEC - 100, notAfter: SEC - 1 }, ['ha']),
    },
    {
      name: 'not yet valid certificate',
      reason: 'certificate-not-yet-valid',
      mn: () => endpoint(ca, { ...MN, notBefore: SEC + 60, notAfter: SEC + 1000 }, ['ha']),
    },
    {
      name: 'wrong role (a ha talking to a ha that accepts only mn)',
      reason: 'wrong-role',
      mn: () => endpoint(ca, { ...MN, role: 'ha' }, ['ha']),
      ha: () => endpoint(ca, HA, ['mn']),
    },
    {
      name: 'tampered certificate (name changed after signing)',
      reason: 'bad-certificate',
      mn: () => {
        const ep = endpoint(ca, MN, ['ha']);
        const c = cert(ca, MN);
        const raw = c.raw.slice();
        raw[57] = 'x'.charCodeAt(0); // first byte of the name
        (ep as unknown as { opts: { certificate: { raw: Uint8Array } } }).opts.certificate = {
          ...c,
          raw,
        };
        return ep;
      },
    },
    {
      name: 'valid certificate for another key',
      reason: 'key-mismatch',
      mn: () => {
        const ep = endpoint(ca, MN, ['ha']);
        const other = cert(ca, { ...MN, key: memberKey(9) });
        (ep as unknown as { opts: { certificate: unknown } }).opts.certificate = other;
        return ep;
      },
    },
  ];
  for (const c of cases) {
    const ha = c.ha ? c.ha() : endpoint(ca, HA, ['mn', 'cn']);
    const mn = c.mn();
    const r = ha.receive(mn.connect(haKey.publicKey, T0), T0);
    t.same(r, { kind: 'drop', reason: c.reason }, c.name);
    t.same(nonZeroDrops(ha), { [c.reason]: 1 }, `${c.name}: counted once`);
    t.equal(ha.allSessions().length, 0, `${c.name}: no session created`);
  }

  // The initiator checks the responder the same way.
  const rogueHa = endpoint(authority(0xb0), HA, ['mn']);
  const mn = endpoint(ca, MN, ['ha']);
  const rr = rogueHa.receive(mn.connect(haKey.publicKey, T0), T0);
  t.equal(rr.kind, 'drop', 'rogue HA rejects our MN (different authority)');
  const rogueHa2 = new SecureEndpoint({
    staticKey: haKey,
    certificate: cert(authority(0xb0), HA),
    authorityPublicKey: ca.publicKey,
    allowedPeerRoles: ['mn'],
    wallClock: () => T0,
  });
  const r1 = rogueHa2.receive(mn.connect(haKey.publicKey, T0), T0);
  if (r1.kind !== 'established' || !r1.reply) throw new Error('expected established');
  t.same(mn.receive(r1.reply, T0), { kind: 'drop', reason: 'bad-certificate' });
  t.equal(mn.session(haKey.publicKey)?.stats.drops['bad-certificate'], 1);
  t.equal(mn.session(haKey.publicKey)?.established, false);
});

void t.test('data path rejections', async (t) => {
  const { ha, mn } = pair();
  const { mnSession } = handshake(ha, mn);
  const pkt = ipv6Packet(HOA, 64);
  const seal = (now = T0) => mn.seal(mnSession, pkt, now, DataKind.PAYLOAD)!;

  const tampered = (pos: (m: Uint8Array) => number) => {
    const m = seal();
    m[pos(m)]! ^= 0x01;
    return ha.receive(m, T0);
  };
  t.same(
    tampered(() => 20),
    { kind: 'drop', reason: 'bad-tag' },
    'ciphertext',
  );
  t.same(
    tampered((m) => m.length - 1),
    { kind: 'drop', reason: 'bad-tag' },
    'tag',
  );
  t.same(
    tampered(() => 8),
    { kind: 'drop', reason: 'bad-tag' },
    'header counter (AAD)',
  );
  t.same(
    tampered(() => 7),
    { kind: 'drop', reason: 'unknown-spi' },
    'header SPI',
  );
  t.same(
    tampered(() => 2),
    { kind: 'drop', reason: 'malformed' },
    'header reserved byte',
  );
  t.same(ha.receive(new Uint8Array(20).fill(0).fill(4, 0, 1), T0), {
    kind: 'drop',
    reason: 'malformed',
  });

  const m1 = seal();
  const copy = m1.slice();
  t.equal(ha.receive(m1, T0).kind, 'data');
  t.same(ha.receive(copy, T0), { kind: 'drop', reason: 'replay' }, 'replayed data packet');

  // Reordering within the window is accepted; older than the window is not.
  const msgs: Uint8Array[] = [];
  for (let i = 0; i < 2100; i++) msgs.push(seal());
  t.equal(ha.receive(msgs[2099]!, T0).kind, 'data');
  t.equal(ha.receive(msgs[2099 - 2000]!, T0).kind, 'data', 'reordered by 2000: accepted');
  t.equal(ha.receive(msgs[2098]!, T0).kind, 'data', 'reordered by 1: accepted');
  t.same(ha.receive(msgs[0]!, T0), { kind: 'drop', reason: 'too-old' }, 'older than the window');

  const s = ha.session(mnKey.publicKey)!;
  t.same(nonZeroDrops(ha), {
    'bad-tag': 3,
    'unknown-spi': 1,
    malformed: 2,
    replay: 1,
    'too-old': 1,
  });
  t.equal(s.stats.drops['bad-tag'], 3);
  t.equal(s.stats.drops.replay, 1);
  t.equal(s.stats.drops['too-old'], 1);
  t.equal(s.stats.packetsIn, 4);
  // The window was not moved by forged packets: a forged high counter did not shift it.
  const forged = seal();
  forged.set([0xff, 0xff, 0xff, 0x0f], 8);
  t.same(ha.receive(forged, T0), { kind: 'drop', reason: 'bad-tag' });
  t.equal(ha.receive(msgs[2097]!, T0).kind, 'data', 'window unchanged by a forgery');
});

void t.test('replayed handshake initiation is rejected (timestamp must increase)', async (t) => {
  const { ha, mn } = pair();
  const init = mn.connect(haKey.publicKey, T0);
  t.equal(ha.receive(init.slice(), T0).kind, 'established');
  t.same(ha.receive(init.slice(), T0 + 10), { kind: 'drop', reason: 'stale-timestamp' });
  t.equal(ha.session(mnKey.publicKey)?.stats.drops['stale-timestamp'], 1);
  // Still rejected after the session was closed (timestamps outlive sessions).
  ha.closeSession(ha.session(mnKey.publicKey)!);
  t.same(ha.receive(init.slice(), T0 + 20), { kind: 'drop', reason: 'stale-timestamp' });
  t.equal(ha.allSessions().length, 0, 'no session re-created by the replay');
  t.equal(ha.drops['stale-timestamp'], 2);
  // A new initiation (later timestamp) is accepted.
  t.equal(ha.receive(mn.connect(haKey.publicKey, T0 + 1000), T0 + 1000).kind, 'established');
  // Even within the same millisecond, the initiator's timestamps strictly increase.
  t.equal(ha.receive(mn.connect(haKey.publicKey, T0 + 1000), T0 + 1000).kind, 'established');
});

void t.test('MAC1 and the cookie exchange under load', async (t) => {
  const { ha, mn } = pair();
  const init = mn.connect(haKey.publicKey, T0);
  const badMac = init.slice();
  badMac[badMac.length - 20]! ^= 1;
  t.same(ha.receive(badMac, T0), { kind: 'drop', reason: 'bad-mac1' });
  const body = init.slice();
  body[40]! ^= 1; // MAC1 no longer matches either
  t.same(ha.receive(body, T0), { kind: 'drop', reason: 'bad-mac1' });

  const src = '203.0.113.7:4191';
  const r = ha.receive(init, T0, true, src);
  t.equal(r.kind, 'reply', 'under load: cookie reply instead of DH');
  if (r.kind !== 'reply') return;
  t.equal(r.data[0], 3);
  t.equal(r.data.length, 64);
  t.equal(ha.drops['cookie-required'], 1);
  t.equal(ha.allSessions().length, 0, 'no state kept for the sender');

  const c = mn.receive(r.data, T0 + 5);
  t.equal(c.kind, 'cookie');
  const p = mn.poll(T0 + 5);
  t.equal(p.send.length, 1, 'retransmitted at once with MAC2');
  t.same(
    p.send[0]!.data.subarray(0, init.length - 16),
    init.subarray(0, init.length - 16),
    'the same initiation, MAC2 added',
  );
  t.notSame(p.send[0]!.data.subarray(init.length - 16), new Uint8Array(16), 'MAC2 set');
  const again = ha.receive(p.send[0]!.data, T0 + 6, true, src);
  t.equal(again.kind, 'established', 'MAC2 accepted under load');
  // From another locator the cookie does not match.
  const p2 = mn.connect(haKey.publicKey, T0 + 7);
  const r3 = ha.receive(p2, T0 + 7, true, '198.51.100.9:4191');
  t.equal(r3.kind, 'reply');
  if (r3.kind !== 'reply') return;
  // A forged cookie reply, or one for a handshake no longer pending, is dropped.
  const forged = r3.data.slice();
  forged[40]! ^= 1;
  t.same(mn.receive(forged, T0 + 8), { kind: 'drop', reason: 'bad-cookie' });
  t.same(mn.receive(r.data, T0 + 8), { kind: 'drop', reason: 'unknown-spi' });
  t.equal(mn.receive(r3.data, T0 + 8).kind, 'cookie');
});

void t.test('retransmission, timeout and deadlines via poll()', async (t) => {
  const { mn } = pair();
  const first = mn.connect(haKey.publicKey, T0);
  const p0 = mn.poll(T0 + 1000);
  t.equal(p0.send.length, 0);
  t.equal(p0.nextDeadline, T0 + 5000);
  const p1 = mn.poll(T0 + 5000);
  t.equal(p1.send.length, 1);
  t.not(Buffer.from(p1.send[0]!.data).toString('hex'), Buffer.from(first).toString('hex'));
  let now = T0 + 5000;
  let sent = 1;
  while (now < T0 + 100_000) {
    now += 5000;
    sent += mn.poll(now).send.length;
  }
  const s = mn.session(haKey.publicKey)!;
  t.equal(s.stats.handshakeTimeouts, 1, 'gave up after REKEY_ATTEMPT_TIME');
  t.equal(sent, 17, 'a retransmission every REKEY_TIMEOUT until 90 s after the first');
  t.equal(mn.poll(now).nextDeadline, Infinity);
});

void t.test('rekey by count and by time; old keys kept for packets in flight', async (t) => {
  const { ha, mn } = pair({}, { timers: { rekeyAfterMessages: 3 } });
  const { mnSession, haSession } = handshake(ha, mn);
  const pkt = ipv6Packet(HOA, 16);
  const inflight: Uint8Array[] = [];
  for (let i = 0; i < 3; i++) inflight.push(mn.seal(mnSession, pkt, T0, DataKind.PAYLOAD)!);
  const haOld = ha.seal(haSession, pkt, T0, DataKind.PAYLOAD)!;
  const p = mn.poll(T0 + 1);
  t.equal(p.send.length, 1, 'count reached: new handshake');
  const r1 = ha.receive(p.send[0]!.data, T0 + 1);
  t.equal(r1.kind, 'established');
  if (r1.kind !== 'established') return;
  // Until the MN uses the new keys, the HA keeps sending with the old ones.
  const haStillOld = ha.seal(haSession, pkt, T0 + 1, DataKind.PAYLOAD)!;
  t.equal(mn.receive(r1.reply!, T0 + 1).kind, 'established');
  const newMsg = mn.seal(mnSession, pkt, T0 + 2, DataKind.PAYLOAD)!;
  t.not(newMsg.subarray(4, 8).join(), inflight[0]!.subarray(4, 8).join(), 'new SPI');
  t.equal(
    newMsg.subarray(8, 16).every((b) => b === 0),
    true,
    'counter restarts with new keys',
  );
  for (const m of inflight) t.equal(ha.receive(m, T0 + 2).kind, 'data', 'in-flight old packet');
  t.equal(ha.receive(newMsg, T0 + 2).kind, 'data', 'new keys confirmed');
  t.equal(mn.receive(haOld, T0 + 2).kind, 'data', 'MN still opens old-key packets');
  t.equal(mn.receive(haStillOld, T0 + 2).kind, 'data');
  const haNew = ha.seal(haSession, pkt, T0 + 3, DataKind.PAYLOAD)!;
  t.not(haNew.subarray(4, 8).join(), haOld.subarray(4, 8).join(), 'HA switched keys');
  t.equal(mn.receive(haNew, T0 + 3).kind, 'data');

  // By time: not by time alone (the next deadline is the keys' expiry), but on the first
  // payload the initiator sends past REKEY_AFTER_TIME.
  const deadline = mn.poll(T0 + 3).nextDeadline;
  t.equal(deadline, T0 + 180_000, 'next timer work: the expiry of the old keys');
  t.same(mn.poll(T0 + 1 + 120_000).send, [], 'REKEY_AFTER_TIME alone starts nothing');
  t.ok(mn.seal(mnSession, pkt, T0 + 1 + 120_000, DataKind.PAYLOAD), 'sent under the old keys');
  t.equal(mn.pollWanted, true, 'the send asked for a rekey');
  t.equal(mn.poll(T0 + 1 + 120_000).send.length, 1, 'a busy channel rekeys');
  // Old keys are wiped after REJECT_AFTER_TIME.
  t.same(ha.receive(inflight[0]!.slice(), T0 + 181_000).kind, 'drop');
});

void t.test(
  'an idle channel costs no handshakes; its expired keys are never used; its next send handshakes once',
  async (t) => {
    const { ha, mn } = pair();
    const { haSession, mnSession } = handshake(ha, mn);
    const pkt = ipv6Packet(HOA, 16);
    // Ten idle minutes, polled every second by both: not one handshake, on either side.
    let sent = 0;
    for (let now = T0; now <= T0 + 600_000; now += 1000) {
      sent += mn.poll(now).send.length + ha.poll(now).send.length;
    }
    t.equal(sent, 0, 'no handshake while idle');
    t.equal(mnSession.established, false, 'the MN wiped its keys at REJECT_AFTER_TIME');
    t.equal(haSession.established, false, 'so did the HA');
    t.equal(ha.poll(T0 + 600_000).nextDeadline, Infinity, 'nothing left to do on the HA');

    // Expired keys are not used even before the poll that wipes them.
    const late = endpointPair();
    const sealedEarly = late.mn.seal(late.mnSession, pkt, T0 + 179_999, DataKind.PAYLOAD)!;
    t.equal(late.mn.canSeal(late.mnSession, T0 + 179_999), true);
    t.equal(late.mn.canSeal(late.mnSession, T0 + 180_000), false, 'at REJECT_AFTER_TIME: none');
    t.equal(late.mn.seal(late.mnSession, pkt, T0 + 180_000, DataKind.SIGNALING), null, 'no seal');
    t.same(
      late.ha.receive(sealedEarly, T0 + 180_000),
      { kind: 'drop', reason: 'expired-keys' },
      'a message under keys past REJECT_AFTER_TIME is refused',
    );
    t.same(late.ha.allSessions()[0]!.stats.packetsIn, 0);

    // Signaling finds no keys: nothing sealed, and no handshake for it (path MTU confirmations
    // must not revive an idle channel; the MN connects itself for a BU).
    const at = T0 + 700_000;
    t.equal(mn.seal(mnSession, pkt, at, DataKind.SIGNALING), null, 'no keys: nothing sealed');
    t.equal(mn.pollWanted, false, 'signaling asks for no handshake');
    t.equal(ha.seal(haSession, pkt, at, DataKind.SIGNALING), null);
    t.same(ha.poll(at).send, [], 'nor at the HA');
    // Payload on the old idle channel: one handshake, however often it is retried.
    t.equal(mn.seal(mnSession, pkt, at, DataKind.PAYLOAD), null, 'no keys: nothing sealed');
    t.equal(mn.seal(mnSession, pkt, at + 1, DataKind.PAYLOAD), null);
    const hs = mn.poll(at + 1).send;
    t.equal(hs.length, 1, 'one handshake');
    t.equal(mn.seal(mnSession, pkt, at + 2, DataKind.PAYLOAD), null, 'still pending');
    t.same(mn.poll(at + 2).send, [], 'no second handshake while one is in flight');
    const r = ha.receive(hs[0]!.data, at + 3);
    t.equal(r.kind, 'established');
    if (r.kind !== 'established' || !r.reply) return;
    t.equal(mn.receive(r.reply, at + 3).kind, 'established');
    const bu = mn.seal(mnSession, pkt, at + 4, DataKind.SIGNALING)!;
    t.equal(ha.receive(bu, at + 4).kind, 'data', 'the BU goes under the new keys');
    t.equal(mnSession.stats.handshakes, 2);
    t.equal(haSession.stats.handshakes, 2);
  },
);

/** A fresh pair with its sessions (for tests that need a second one). */
function endpointPair() {
  const { ha, mn } = pair();
  return { ha, mn, ...handshake(ha, mn) };
}

void t.test(
  'signaling never rekeys by time; payload does, on the side that keeps the channel up',
  async (t) => {
    const { ha, mn } = pair();
    const { haSession, mnSession } = handshake(ha, mn);
    const pkt = ipv6Packet(HOA, 16);
    const at = T0 + 150_000; // past REKEY_AFTER_TIME, before REJECT_AFTER_TIME
    // Refresh BUs (the NAT keepalives too) and the HA's BAs ride on the keys they find.
    const bu = mn.seal(mnSession, pkt, at, DataKind.SIGNALING)!;
    t.equal(ha.receive(bu, at).kind, 'data');
    const ba = ha.seal(haSession, pkt, at, DataKind.SIGNALING)!;
    t.equal(mn.receive(ba, at).kind, 'data');
    t.same(mn.poll(at).send, [], 'the MN does not rekey for signaling');
    // The HA, the responder, sends payload under old keys: it never rekeys by time.
    const down = ha.seal(haSession, pkt, at + 1, DataKind.PAYLOAD)!;
    t.same(ha.poll(at + 1).send, [], 'the responder does not rekey by time');
    // ... and the MN receiving payload under keys younger than REJECT - 3 REKEY_TIMEOUT: not yet.
    t.equal(mn.receive(down, at + 1).kind, 'data');
    t.same(mn.poll(at + 1).send, [], 'payload received at 150 s: no rekey yet');
    // Payload received at REJECT_AFTER_TIME - 3 REKEY_TIMEOUT (165 s): the initiator rekeys, so a
    // download-only flow gets new keys before the old ones are rejected.
    const down2 = ha.seal(haSession, pkt, T0 + 165_000, DataKind.PAYLOAD)!;
    const ba2 = ha.seal(haSession, pkt, T0 + 165_000, DataKind.SIGNALING)!;
    t.equal(mn.receive(ba2, T0 + 165_000).kind, 'data');
    t.equal(mn.pollWanted, false, 'a BA at 165 s does not ask for a rekey');
    t.equal(mn.receive(down2, T0 + 165_000).kind, 'data');
    t.equal(mn.poll(T0 + 165_000).send.length, 1, 'payload at 165 s does');
    t.same(ha.poll(T0 + 165_000).send, [], 'and the HA never did');
  },
);

void t.test('payload sent past REKEY_AFTER_TIME rekeys the initiator, once', async (t) => {
  const { ha, mn } = pair();
  const { mnSession } = handshake(ha, mn);
  const pkt = ipv6Packet(HOA, 16);
  t.ok(mn.seal(mnSession, pkt, T0 + 119_999, DataKind.PAYLOAD));
  t.same(mn.poll(T0 + 119_999).send, [], 'before REKEY_AFTER_TIME: nothing');
  for (let i = 0; i < 5; i++) t.ok(mn.seal(mnSession, pkt, T0 + 120_000 + i, DataKind.PAYLOAD));
  const p = mn.poll(T0 + 120_005).send;
  t.equal(p.length, 1, 'one rekey for five sends');
  const r = ha.receive(p[0]!.data, T0 + 120_006);
  if (r.kind !== 'established' || !r.reply) throw new Error('responder');
  t.equal(mn.receive(r.reply, T0 + 120_006).kind, 'established');
  t.ok(mn.seal(mnSession, pkt, T0 + 120_007, DataKind.PAYLOAD));
  t.same(mn.poll(T0 + 120_007).send, [], 'new keys: no further rekey');
});

void t.test('keys are wiped on close', async (t) => {
  const { ha, mn } = pair();
  const { mnSession } = handshake(ha, mn);
  const kp = (mnSession as unknown as { current: Keypair }).current;
  const slot = kp.slot;
  const base = CHANNEL_KEY_POOL.baseOf(slot);
  const inPool = CHANNEL_KEY_POOL.chunkOf(slot).subarray(base, base + 64);
  t.equal(
    inPool.some((b) => b !== 0),
    true,
  );
  mn.close();
  t.equal(
    inPool.every((b) => b === 0),
    true,
    'both keys zeroed in their slot',
  );
  t.equal(kp.slot, -1);
  t.equal(
    kp.sendKey.every((b) => b === 0),
    true,
    'the send key reads zeros',
  );
  t.equal(mnSession.established, false);
  t.equal(mn.seal(mnSession, new Uint8Array(40), T0, DataKind.PAYLOAD), null);
});

void t.test('batch seal and open; the channel never depends on the underlay address', async (t) => {
  const { ha, mn } = pair();
  const { mnSession } = handshake(ha, mn);
  const n = 5;
  const sizes = [64, 512, 1400, 40, 0];
  const offsets = new Uint32Array(n);
  const lengths = new Uint32Array(n);
  let total = 0;
  for (const s of sizes) total += s + DATA_OVERHEAD;
  const buf = new Uint8Array(total);
  let o = 0;
  sizes.forEach((s, i) => {
    offsets[i] = o;
    lengths[i] = s;
    for (let j = 0; j < s; j++) buf[o + DATA_HEADER_LEN + j] = (i + j) & 0xff;
    o += s + DATA_OVERHEAD;
  });
  t.equal(mn.sealBatch(mnSession, buf, offsets, lengths, n, T0), n);
  const recvLengths = Uint32Array.from(sizes.map((s) => s + DATA_OVERHEAD));
  // Packet 1 is a duplicate of packet 0's bytes (replay inside one batch), packet 3 tampered.
  buf[offsets[3]! + 20]! ^= 1;
  const out = { results: new Uint8Array(n + 1), sessions: [] as (PeerSession | undefined)[] };
  const dup = buf.slice(offsets[0]!, offsets[0]! + recvLengths[0]!);
  const big = new Uint8Array(total + dup.length + 1);
  big.set(buf);
  big.set(dup, total);
  big[total + dup.length] = 1; // a 1-byte "handshake" message
  const offs = Uint32Array.from([...offsets, total, total + dup.length]);
  const lens = Uint32Array.from([...recvLengths, dup.length, 1]);
  const accepted = ha.openBatch(big, offs, lens, n + 2, T0, {
    results: (out.results = new Uint8Array(n + 2)),
    sessions: out.sessions,
  });
  t.equal(accepted, 4);
  t.same([...out.results], [1, 1, 1, 0, 1, 0, OpenResult.NOT_DATA]);
  t.same(nonZeroDrops(ha), { 'bad-tag': 1, replay: 1 });
  t.equal(out.sessions[2]?.peerName, 'laptop');
  const third = big.subarray(offsets[2]! + DATA_HEADER_LEN, offsets[2]! + DATA_HEADER_LEN + 1400);
  t.equal(
    third.every((b, j) => b === ((2 + j) & 0xff)),
    true,
    'decrypted in place',
  );
});

void t.test('constructor refuses a certificate for another key', async (t) => {
  t.throws(
    () =>
      new SecureEndpoint({
        staticKey: mnKey,
        certificate: cert(ca, HA),
        authorityPublicKey: ca.publicKey,
        allowedPeerRoles: ['ha'],
      }),
    { code: 'ERR_CERT_KEY_MISMATCH' },
  );
  t.ok(certificateToText(signCertificate({ ...cert(ca, MN) }, ca.secretKey)).startsWith('mip6-'));
});

void t.test(
  'default under-load threshold: DEFAULT_MAX_HANDSHAKES_PER_SECOND (500) a second, then cookies',
  async (t) => {
    t.equal(DEFAULT_MAX_HANDSHAKES_PER_SECOND, 500);
    const { ha, mn } = pair();
    const src = '192.0.2.51:4191';
    let established = 0;
    let now = T0;
    for (let i = 0; i < DEFAULT_MAX_HANDSHAKES_PER_SECOND; i++) {
      now = T0 + Math.floor(i / 2); // all within one second
      if (ha.receive(mn.connect(haKey.publicKey, now), now, undefined, src).kind === 'established')
        established++;
    }
    t.equal(established, DEFAULT_MAX_HANDSHAKES_PER_SECOND, 'all answered with Diffie-Hellman');
    const r = ha.receive(mn.connect(haKey.publicKey, now), now, undefined, src);
    t.equal(r.kind, 'reply', 'the next one in the same second gets a cookie reply');
    const later = T0 + 1000;
    t.equal(
      ha.receive(mn.connect(haKey.publicKey, later), later, undefined, src).kind,
      'established',
      'a new second: no cookie',
    );
  },
);

void t.test('the endpoint switches to cookies by itself above its handshake rate', async (t) => {
  const { ha, mn } = pair({ maxHandshakesPerSecond: 2 });
  const src = '192.0.2.50:4191';
  t.equal(ha.receive(mn.connect(haKey.publicKey, T0), T0, undefined, src).kind, 'established');
  t.equal(
    ha.receive(mn.connect(haKey.publicKey, T0 + 1), T0 + 1, undefined, src).kind,
    'established',
  );
  const r = ha.receive(mn.connect(haKey.publicKey, T0 + 2), T0 + 2, undefined, src);
  t.equal(r.kind, 'reply', 'third in the same second: cookie reply');
  if (r.kind !== 'reply') return;
  t.equal(ha.drops['cookie-required'], 1);
  t.equal(mn.receive(r.data, T0 + 3).kind, 'cookie');
  const again = mn.poll(T0 + 3).send[0]!.data;
  t.equal(ha.receive(again, T0 + 3, undefined, src).kind, 'established', 'with MAC2');
  t.equal(ha.receive(mn.connect(haKey.publicKey, T0 + 1500), T0 + 1500).kind, 'established');
  t.equal(ha.sessionByName('laptop')?.peerName, 'laptop');
  t.equal(ha.sessionByName('nobody'), undefined);
});

void t.test('hostile handshakes never throw: low-order ephemeral, random junk', async (t) => {
  const { ha, mn } = pair();
  const init = mn.connect(haKey.publicKey, T0);
  const evil = init.slice();
  evil.fill(0, 8, 40); // all-zero ephemeral key: X25519 output would be all zero
  writeMacs(evil, mac1Key(haKey.publicKey), null); // MAC1 is computable by anyone
  t.same(ha.receive(evil, T0), { kind: 'drop', reason: 'bad-handshake' });
  const { mnSession } = handshake(ha, mn);
  const resp = mn.connect(haKey.publicKey, T0 + 1);
  const r = ha.receive(resp, T0 + 1);
  if (r.kind !== 'established' || !r.reply) throw new Error('expected established');
  const evilResp = r.reply.slice();
  evilResp.fill(0, 12, 44);
  writeMacs(evilResp, mac1Key(mnKey.publicKey), null);
  t.same(mn.receive(evilResp, T0 + 1), { kind: 'drop', reason: 'bad-handshake' });
  t.ok(mnSession.established, 'existing keys unaffected');
  let seed = 1;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let i = 0; i < 2000; i++) {
    const len = rnd() + (i % 3) * 200;
    const junk = Uint8Array.from({ length: len }, rnd);
    if (len > 0) junk[0] = 1 + (i % 5);
    if (len > 3) junk.fill(0, 1, 4);
    const res = ha.receive(junk, T0 + 2);
    if (res.kind !== 'drop') t.fail(`junk ${i} not dropped: ${res.kind}`);
  }
  t.pass('2000 random datagrams dropped without throwing');
});

void t.test('timers with many sessions: each key pair expires at its own time', async (t) => {
  const ha = endpoint(ca, HA, ['mn']);
  const mns: { mn: SecureEndpoint; at: number }[] = [];
  // 40 members, handshakes 1 s apart, in shuffled order of time.
  const order = Array.from({ length: 40 }, (_, i) => (i * 17) % 40);
  for (const [n, i] of order.entries()) {
    const key = x25519FromPrivate(fixedBytes(100 + n));
    const mn = endpoint(
      ca,
      { name: `m${n}`, role: 'mn', key, addresses: [`2001:db8:1::${100 + n}`] },
      ['ha'],
    );
    const at = T0 + i * 1000;
    handshake(ha, mn, at);
    mns.push({ mn, at });
  }
  const first = Math.min(...mns.map((m) => m.at));
  // Responder keys are wiped at REJECT_AFTER_TIME (180 s) after their handshake, no earlier.
  t.equal(ha.poll(T0 + 50_000).nextDeadline, first + 180_000, 'earliest expiry');
  const pkt = ipv6Packet(HOA, 16);
  const probe = (m: { mn: SecureEndpoint }, now: number): string => {
    const s = m.mn.allSessions()[0]!;
    const msg = m.mn.seal(s, pkt, T0 + 1, DataKind.PAYLOAD)!;
    return ha.receive(msg, now).kind;
  };
  const cut = T0 + 20_500 + 180_000; // between the 21st and 22nd expiry
  const { nextDeadline } = ha.poll(cut);
  t.equal(nextDeadline, T0 + 21_000 + 180_000, 'next expiry after the cut');
  let expired = 0;
  for (const m of mns) {
    const kind = probe(m, cut);
    if (m.at + 180_000 <= cut) {
      t.equal(kind, 'drop', 'expired key pair is gone');
      expired++;
    } else {
      t.equal(kind, 'data', 'live key pair still opens');
    }
  }
  t.equal(expired, 21);
  t.equal(ha.drops['unknown-spi'], 21, 'retired by poll, not merely too old');
});

void t.test(
  'a rekey of the responder stops once the initiator confirms its own new keys',
  async (t) => {
    const { ha, mn } = pair();
    const { haSession, mnSession } = handshake(ha, mn);
    const pkt = ipv6Packet(HOA, 16);
    // The HA's keys expired (an idle spell); it has payload for the MN: it starts a handshake.
    const late = T0 + 190_000;
    t.equal(ha.seal(haSession, pkt, late, DataKind.PAYLOAD), null, 'no usable keys');
    const haInit = ha.poll(late).send;
    t.equal(haInit.length, 1, 'HA starts its own handshake');
    // The MN's own handshake (its payload, no keys either) completes first.
    t.equal(mn.seal(mnSession, pkt, late, DataKind.PAYLOAD), null);
    const mnInit = mn.poll(late).send;
    t.equal(mnInit.length, 1, 'MN starts one too');
    const r = ha.receive(mnInit[0]!.data, late + 1);
    t.equal(r.kind, 'established');
    if (r.kind !== 'established') return;
    t.equal(mn.receive(r.reply!, late + 2).kind, 'established');
    t.equal(
      ha.receive(mn.seal(mnSession, pkt, late + 3, DataKind.PAYLOAD)!, late + 3).kind,
      'data',
    );
    // No retransmission of the HA's now pointless handshake, ever.
    t.same(ha.poll(late + 5_001).send, [], 'no retransmission after REKEY_TIMEOUT');
    t.same(ha.poll(late + 60_000).send, []);
    t.equal(haSession.established, true);
  },
);

void t.test(
  'rekey with the same certificate: validity and role still checked; other bytes fully verified',
  async (t) => {
    let wall = T0; // the HA's wall clock: certificates are checked against it
    const ha = endpoint(ca, HA, ['mn'], { wallClock: () => wall });
    const notAfter = SEC + 600;
    const mnSpec = { ...MN, notBefore: SEC - 60, notAfter };
    const mn = endpoint(ca, mnSpec, ['ha']);
    handshake(ha, mn, T0);
    // The same certificate again (a rekey): accepted without a new signature check.
    t.equal(ha.receive(mn.connect(haKey.publicKey, T0 + 1000), T0 + 1000).kind, 'established');
    // Past notAfter the same bytes are refused.
    const late = (notAfter + 1) * 1000;
    wall = late;
    const r = ha.receive(mn.connect(haKey.publicKey, late), late);
    t.same(r, { kind: 'drop', reason: 'expired-certificate' });
    // Same key, certificate bytes with a broken signature: fully verified, refused.
    const good = cert(ca, mnSpec);
    const raw = good.raw.slice();
    raw[raw.length - 1] = raw[raw.length - 1]! ^ 1;
    const forged = new SecureEndpoint({
      staticKey: mnKey,
      certificate: { ...good, raw },
      authorityPublicKey: ca.publicKey,
      allowedPeerRoles: ['ha'],
      wallClock: () => T0,
    });
    const r2 = ha.receive(forged.connect(haKey.publicKey, T0 + 2000), T0 + 2000);
    t.same(r2, { kind: 'drop', reason: 'bad-certificate' });
  },
);

void t.test(
  'keys the peer initiated (a restarted HA): idle, nobody rekeys; payload of the MN rekeys',
  async (t) => {
    const { ha, mn } = pair();
    const { mnSession } = handshake(ha, mn); // the MN connect()ed
    // The HA starts over (issue 20: a restart re-initiates the stored members' channels).
    const at = T0 + 10;
    const r = mn.receive(ha.initiate(mnKey.publicKey, at), at);
    t.equal(r.kind, 'established', 'the MN answers its HA');
    if (r.kind !== 'established' || !r.reply) return;
    const back = ha.receive(r.reply, at);
    t.equal(back.kind, 'established');
    if (back.kind !== 'established') return;
    const brr = ha.seal(back.session, ipv6Packet(HOA, 16), at, DataKind.SIGNALING)!;
    t.equal(mn.receive(brr, at).kind, 'data', 'its first message confirms the new keys');
    const bu = mn.seal(mnSession, ipv6Packet(HOA, 16), at + 1, DataKind.SIGNALING)!;
    t.equal(ha.receive(bu, at + 1).kind, 'data', 'the BU it asked for');
    // Idle: no rekey by time on either side, ever.
    let sent = 0;
    for (let now = at; now < at + 130_000; now += 5_000) {
      sent += mn.poll(now).send.length + ha.poll(now).send.length;
    }
    t.equal(sent, 0, 'no handshake while idle, past REKEY_AFTER_TIME');
    // The MN sends payload past REKEY_AFTER_TIME under the HA's keys: it rekeys (it connect()ed).
    const t2 = at + 130_000;
    t.ok(mn.seal(mnSession, ipv6Packet(HOA, 16), t2, DataKind.PAYLOAD));
    t.equal(mn.poll(t2).send.length, 1, 'the MN rekeys on its payload');
    t.same(ha.poll(t2).send, [], 'the HA does not');
  },
);

void t.test(
  'keys retired earlier in the same batch open nothing, not even under the zeros they read',
  async (t) => {
    // The HA holds K0 (previous), K1 (current), K2 (next). One batch: a packet under K2 (it
    // confirms K2, so K1 becomes previous and K0 is retired and wiped), then a packet forged
    // under the all-zero key with K0's SPI, staged before the retirement. A wiped keypair's key
    // reads zeros, which anyone can seal with: it must be dropped as expired keys without an
    // AEAD call, not opened and stopped only by its released replay window.
    const { ha, mn } = pair({}, { timers: { rekeyAfterMessages: 3 } });
    const { mnSession } = handshake(ha, mn);
    const pkt = ipv6Packet(HOA, 16);
    const k0Msg = mn.seal(mnSession, pkt, T0, DataKind.PAYLOAD)!;
    t.equal(ha.receive(k0Msg, T0).kind, 'data');
    let now = T0;
    for (const round of [1, 2]) {
      for (let i = 0; i < 3; i++) mn.seal(mnSession, pkt, now, DataKind.PAYLOAD);
      const p = mn.poll(++now);
      t.equal(p.send.length, 1, `rekey ${round} starts`);
      const r = ha.receive(p.send[0]!.data, now);
      if (r.kind !== 'established' || r.reply === undefined) throw new Error('rekey');
      t.equal(mn.receive(r.reply, now).kind, 'established', `rekey ${round} done`);
      if (round === 1) {
        const k1 = mn.seal(mnSession, pkt, ++now, DataKind.PAYLOAD)!;
        t.equal(ha.receive(k1, now).kind, 'data', 'K1 confirmed: K0 is previous');
      }
    }
    const k2 = mn.seal(mnSession, pkt, ++now, DataKind.PAYLOAD)!;
    // The forgery: K0's SPI, a fresh counter, sealed with 32 zero bytes.
    const forged = new Uint8Array(DATA_OVERHEAD + pkt.length);
    forged.set(pkt, DATA_HEADER_LEN);
    writeDataHeader(forged, 0, readSpi(k0Msg, 0), 1000);
    new SodiumBatchAead().sealBatch(
      new Uint8Array(32),
      forged,
      new Uint32Array([0]),
      new Uint32Array([pkt.length]),
      1,
    );
    const big = new Uint8Array(k2.length + forged.length);
    big.set(k2);
    big.set(forged, k2.length);
    let calls = 0;
    const backend = new SodiumBatchAead();
    ha.setAead({
      sealBatch: (...a: Parameters<SodiumBatchAead['sealBatch']>) => backend.sealBatch(...a),
      openBatch: (...a: Parameters<SodiumBatchAead['openBatch']>) => {
        calls++;
        return backend.openBatch(...a);
      },
    });
    const out = { results: new Uint8Array(2), sessions: [] as (PeerSession | undefined)[] };
    const before = { ...ha.drops };
    const accepted = ha.openBatch(
      big,
      new Uint32Array([0, k2.length]),
      new Uint32Array([k2.length, forged.length]),
      2,
      now,
      out,
    );
    t.equal(accepted, 1, 'the K2 packet only');
    t.same([...out.results], [OpenResult.DATA, OpenResult.DROPPED]);
    t.equal(ha.drops['expired-keys'] - (before['expired-keys'] ?? 0), 1, 'dropped: expired keys');
    t.equal(calls, 1, 'one AEAD call: the K2 run; none under the wiped keys');
  },
);
