/**
 * The endpoint's two clocks (security issue #13, trust boundary): `now` runs the timers, the
 * injected wall clock is what certificate validity and TAI64N handshake timestamps use, read at
 * each handshake so an NTP step after start is seen. And the timestamp rules around clock
 * errors: an initiation too far ahead of the responder's wall clock is refused
 * ('future-timestamp') and never remembered, so a member whose clock was wrong once is not
 * locked out after it is corrected; a replay is still refused ('stale-timestamp').
 */
import t from 'tap';
import { DataKind } from '../../src/crypto/aead.js';
import { MAX_TIMESTAMP_AHEAD_MS, type SecureEndpoint } from '../../src/crypto/endpoint.js';
import { tai64n } from '../../src/crypto/handshake.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { authority, endpoint, ipv6Packet, memberKey, T0 } from '../helpers/crypto.js';

await initCrypto();

const ca = authority();
const haKey = memberKey(1);
const mnKey = memberKey(2);
const SEC = Math.floor(T0 / 1000);
const HOUR = 3_600_000;
const HA = { name: 'ha1', role: 'ha' as const, key: haKey, addresses: ['2001:db8:1::1'] };
const MN = { name: 'laptop', role: 'mn' as const, key: mnKey, addresses: ['2001:db8:1::10'] };

/** A fake wall clock: the endpoint reads `ms`; tests step it as NTP would. */
function fakeWall(ms = T0): { ms: number; read: () => number } {
  const w = { ms, read: () => w.ms };
  return w;
}

/** What one side made of a handshake message: 'established', a drop reason, or null (none). */
type Outcome = string | null;

/** Runs a handshake at `now`; the initiation and each side's outcome. */
function handshake(
  ha: SecureEndpoint,
  mn: SecureEndpoint,
  now: number,
): { init: Uint8Array; atHa: Outcome; atMn: Outcome } {
  const init = mn.connect(haKey.publicKey, now);
  const r = ha.receive(init, now);
  if (r.kind !== 'established' || !r.reply) {
    return { init, atHa: r.kind === 'drop' ? r.reason : r.kind, atMn: null };
  }
  const m = mn.receive(r.reply, now);
  return { init, atHa: r.kind, atMn: m.kind === 'drop' ? m.reason : m.kind };
}

function replay(ha: SecureEndpoint, init: Uint8Array, now: number): Outcome {
  const r = ha.receive(init.slice(), now);
  return r.kind === 'drop' ? r.reason : r.kind;
}

const BOTH = { atHa: 'established', atMn: 'established' };

void t.test(
  'an NTP step after start is seen by the certificate checks; timers keep `now`',
  async (t) => {
    // `now` starts at 0, as a node's monotonic clock does; only the wall clock says 2026.
    const haWall = fakeWall();
    const mn = endpoint(ca, { ...MN, notBefore: SEC - 60, notAfter: SEC + 3600 }, ['ha']);
    const ha = endpoint(ca, HA, ['mn'], { wallClock: haWall.read });
    t.match(handshake(ha, mn, 0), BOTH, 'valid at start');

    // NTP steps the HA's clock 2 h forward, one second later: the member's certificate (the
    // same bytes as before: only validity is checked again) has expired.
    haWall.ms = T0 + 2 * HOUR;
    t.match(handshake(ha, mn, 1000), { atHa: 'expired-certificate' }, 'rekey after the step');
    const fresh = endpoint(ca, HA, ['mn'], { wallClock: haWall.read });
    t.match(handshake(fresh, mn, 1000), { atHa: 'expired-certificate' }, 'full verification too');
    // The keys made at `now` 0 are not touched by the step: timers run on `now`.
    const pkt = ipv6Packet(new Uint8Array(16));
    const up = mn.seal(mn.session(haKey.publicKey)!, pkt, 1000, DataKind.PAYLOAD);
    t.equal(up !== null && ha.receive(up, 1000).kind, 'data', 'keys still good by `now`');

    // Stepped back before notBefore: not yet valid. Back to the right time: accepted again.
    haWall.ms = T0 - 2 * HOUR;
    t.match(handshake(ha, mn, 2000), { atHa: 'certificate-not-yet-valid' });
    haWall.ms = T0;
    t.match(handshake(ha, mn, 3000), BOTH);
    t.equal(ha.drops['expired-certificate'], 1);
    t.equal(ha.drops['certificate-not-yet-valid'], 1);

    // The initiator checks the responder's certificate against its own wall clock the same way.
    const shortHaWall = fakeWall();
    const shortHa = endpoint(ca, { ...HA, notBefore: SEC - 60, notAfter: SEC + 3600 }, ['mn'], {
      wallClock: shortHaWall.read,
    });
    const mnWall = fakeWall();
    const mn2 = endpoint(ca, MN, ['ha'], { wallClock: mnWall.read });
    t.match(handshake(shortHa, mn2, 0), BOTH);
    // Both clocks stepped (the HA's too, or it would refuse the member's timestamp as ahead).
    mnWall.ms = T0 + 2 * HOUR;
    shortHaWall.ms = T0 + 2 * HOUR;
    t.match(handshake(shortHa, mn2, 1000), { atHa: 'established', atMn: 'expired-certificate' });
    t.equal(mn2.session(haKey.publicKey)!.stats.drops['expired-certificate'], 1);
  },
);

void t.test(
  'the initiation carries a TAI64N timestamp of the wall clock, not of `now`',
  async (t) => {
    const wall = fakeWall(T0 + 123_456);
    const seen: number[] = [];
    const mn = endpoint(ca, MN, ['ha'], {
      wallClock: wall.read,
      timestamp: (ms: number) => {
        seen.push(ms);
        return tai64n(ms);
      },
    });
    mn.connect(haKey.publicKey, 5);
    wall.ms += HOUR; // stepped between the first send and the retransmission
    t.equal(mn.poll(5_005).send.length, 1, 'retransmission after REKEY_TIMEOUT');
    t.same(seen, [T0 + 123_456, T0 + 123_456 + HOUR]);
  },
);

void t.test(
  'a timestamp from the future is refused, not remembered, and does not lock the member out',
  async (t) => {
    const ha = endpoint(ca, HA, ['mn']); // wall clock at T0
    const mnWall = fakeWall(T0 + HOUR); // the member's clock is an hour ahead
    const mn = endpoint(ca, MN, ['ha'], { wallClock: mnWall.read });
    const future = handshake(ha, mn, 0);
    t.match(future, { atHa: 'future-timestamp', atMn: null });
    t.equal(ha.drops['future-timestamp'], 1, 'counted');
    t.equal(ha.allSessions().length, 0, 'no session');

    // NTP corrects the member's clock. Its next initiation starts again from its clock (counting
    // up from an hour ahead would be refused for an hour) and the HA, which never remembered
    // the future timestamp, takes it.
    mnWall.ms = T0 + 1000;
    const fixed = handshake(ha, mn, 5000);
    t.match(fixed, BOTH, 'the member gets in once its clock is right');

    // Replays are still refused.
    t.equal(replay(ha, fixed.init, 6000), 'stale-timestamp', 'replay of the accepted initiation');
    t.equal(replay(ha, future.init, 6000), 'future-timestamp', 'replay of the future one');
    t.equal(ha.session(mnKey.publicKey)!.stats.drops['stale-timestamp'], 1);
    t.equal(ha.drops['future-timestamp'], 2);
    t.match(handshake(ha, mn, 7000), BOTH, 'the next genuine initiation is accepted');
  },
);

void t.test(
  'the future bound is MAX_TIMESTAMP_AHEAD_MS of the responder`s wall clock',
  async (t) => {
    t.equal(MAX_TIMESTAMP_AHEAD_MS, 60_000);
    for (const [ahead, want] of [
      [MAX_TIMESTAMP_AHEAD_MS, 'established'],
      [MAX_TIMESTAMP_AHEAD_MS + 1, 'future-timestamp'],
    ] as const) {
      const ha = endpoint(ca, HA, ['mn']);
      const mn = endpoint(ca, MN, ['ha'], { wallClock: () => T0 + ahead });
      t.match(handshake(ha, mn, 0), { atHa: want }, `${ahead} ms ahead`);
    }
  },
);

void t.test(
  'within the bound: remembered; a member set back counts up, after a restart waits <= the bound',
  async (t) => {
    const haWall = fakeWall();
    const ha = endpoint(ca, HA, ['mn'], { wallClock: haWall.read });
    const mnWall = fakeWall(T0 + 30_000);
    const mn = endpoint(ca, MN, ['ha'], { wallClock: mnWall.read });
    t.match(handshake(ha, mn, 0), BOTH, '30 s ahead: accepted');
    mnWall.ms = T0; // set back by 30 s
    t.match(handshake(ha, mn, 1000), BOTH, 'set back: counts up from its last timestamp');

    // Restarted (no memory of its last timestamp): below the remembered one until its clock
    // passes it, 30 s at most here and never more than MAX_TIMESTAMP_AHEAD_MS.
    const restarted = endpoint(ca, MN, ['ha'], { wallClock: mnWall.read });
    mnWall.ms = T0 + 1000;
    haWall.ms = T0 + 1000;
    t.match(handshake(ha, restarted, 2000), { atHa: 'stale-timestamp' });
    mnWall.ms = T0 + 31_000;
    haWall.ms = T0 + 31_000;
    t.match(handshake(ha, restarted, 32_000), BOTH, 'in again once its clock passed it');
  },
);

void t.test(
  'our own clock set back: a timestamp remembered while it was ahead does not lock the member out',
  async (t) => {
    // Both clocks an hour ahead (one bad time source): the HA remembers T0 + 1 h.
    const haWall = fakeWall(T0 + HOUR);
    const mnWall = fakeWall(T0 + HOUR);
    const ha = endpoint(ca, HA, ['mn'], { wallClock: haWall.read });
    const mn = endpoint(ca, MN, ['ha'], { wallClock: mnWall.read });
    const old = handshake(ha, mn, 0);
    t.match(old, BOTH);

    // Both corrected. The remembered timestamp is now an hour ahead of the HA's clock: taken
    // under a wrong clock, it is forgotten rather than locking the member out for an hour.
    haWall.ms = T0;
    mnWall.ms = T0;
    const fixed = handshake(ha, mn, 1000);
    t.match(fixed, BOTH, 'the member gets in at once');
    t.equal(replay(ha, fixed.init, 2000), 'stale-timestamp', 'replay of the new initiation');
    t.equal(replay(ha, old.init, 2000), 'future-timestamp', 'replay of the old one');
    t.match(handshake(ha, mn, 3000), BOTH);
  },
);
