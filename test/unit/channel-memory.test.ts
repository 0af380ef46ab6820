/**
 * What a channel keeps per peer, made smaller for a home agent of 100 000 members (issue 17):
 * flat keys, a certificate's bytes kept once as a string (its fields copied out on read), both
 * transport keys in one buffer (the handshake's copies wiped, its hash not kept) that know their
 * session, a peer key kept only as the string the sessions Map holds (its 32 bytes, one per char), drop counters shared until the
 * first drop, initiation timestamps as 12-character strings. Each must keep its old meaning.
 */
import t from 'tap';
import { DataKind } from '../../src/crypto/aead.js';
import {
  certificateHoldsAt,
  certificateIs,
  certificateSignature,
  decodeCertificate,
  parseIpv6,
} from '../../src/crypto/certificate.js';
import { CHANNEL_REPLAY_POOL } from '../../src/crypto/replay-window.js';
import { CHANNEL_KEY_POOL, NO_DROPS, type Keypair } from '../../src/crypto/session.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { byteString, bytesOfString } from '../../src/util/bytes.js';
import { toHex } from '../../src/wire/hex.js';
import { authority, cert, endpoint, ipv6Packet, memberKey, T0 } from '../helpers/crypto.js';

await initCrypto();
const ca = authority();
const haKey = memberKey(1);
const mnKey = memberKey(2);
const HA = { name: 'ha1', role: 'ha' as const, key: haKey, addresses: ['2001:db8:1::1'] };
const MN = { name: 'laptop', role: 'mn' as const, key: mnKey, addresses: ['2001:db8:1::10'] };

/** An HA and an MN endpoint after one handshake: both sides' results. */
function connected() {
  const ha = endpoint(ca, HA, ['mn']);
  const mn = endpoint(ca, MN, ['ha']);
  const r = ha.receive(mn.connect(haKey.publicKey, T0), T0);
  if (r.kind !== 'established' || !r.reply) throw new Error('handshake');
  const back = mn.receive(r.reply, T0);
  if (back.kind !== 'established') throw new Error('initiator');
  return { ha, mn, r, back };
}

void t.test('toHex: the same text as byte by byte, for short and long input', async (t) => {
  const slow = (b: Uint8Array): string =>
    Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  t.equal(toHex(all), slow(all), 'every byte value');
  const long = Uint8Array.from({ length: 20_000 }, (_, i) => (i * 131 + 7) & 0xff);
  t.equal(toHex(long), slow(long), 'longer than one chunk (8192)');
  t.equal(toHex(long, 8000, 500), slow(long.subarray(8000, 8500)), 'offset and length');
  t.equal(toHex(new Uint8Array(0)), '');
});

void t.test('byteString: one char per byte, back to the same bytes', async (t) => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const s = byteString(all);
  t.equal(s.length, 256);
  t.same(bytesOfString(s), all, 'every byte value');
  const long = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 131 + 7) & 0xff);
  t.same(bytesOfString(byteString(long)), long, 'longer than one chunk (4096)');
  t.equal(byteString(long, 5000, 300), byteString(long.subarray(5000, 5300)), 'offset, length');
  t.same(bytesOfString(s, 10, 20), all.subarray(10, 20), 'a part');
  t.ok(byteString(Uint8Array.of(1, 2)) < byteString(Uint8Array.of(1, 3)), 'orders as the bytes');
});

void t.test(
  'a decoded certificate: its bytes kept once, as a string; copies made on read',
  async (t) => {
    const c = cert(ca, { ...MN, addresses: ['2001:db8:1::10', '2001:db8:2::/64'] });
    const wire = c.raw.slice();
    const d = decodeCertificate(wire);
    const kept = Object.values(d).filter((v) => v instanceof Uint8Array);
    t.same(kept, [], 'no Uint8Array kept (no view, no buffer of its own)');
    t.equal((d as unknown as { bytes: string }).bytes.length, wire.length, 'one char per byte');
    t.not(d.raw, d.raw, 'raw: a new copy on each read');
    t.not(d.raw.buffer, wire.buffer, 'not the input buffer');
    t.same(d.raw, wire);
    t.same(d.publicKey, mnKey.publicKey);
    d.publicKey.fill(0);
    d.raw.fill(0);
    t.same(d.publicKey, mnKey.publicKey, 'a copy: writing to it changes nothing');
    t.notOk(Object.hasOwn(d, 'addresses'), 'the addresses are read from the bytes, not kept');
    t.same(d.addresses[0]!.address, parseIpv6('2001:db8:1::10'));
    t.equal(d.addresses[1]!.prefixLength, 64);
    t.same(certificateSignature(d), certificateSignature(c));
    t.ok(certificateIs(d, wire), 'the same bytes');
    wire[wire.length - 1] = wire[wire.length - 1]! ^ 1;
    t.notOk(certificateIs(d, wire), 'one bit differs');
    t.notOk(certificateIs(d, wire.subarray(1)), 'another length');
    wire.fill(0);
    t.same(d.publicKey, mnKey.publicKey, 'unaffected when the input is overwritten');
  },
);

void t.test(
  'certificateHoldsAt: the same answer from the kept string as from the bytes',
  async (t) => {
    const c = cert(ca, {
      ...MN,
      addresses: ['2001:db8:1::10', '2001:db8:2::/64', '2001:db8:3::/61'],
    });
    const d = decodeCertificate(c.raw);
    const plain = { ...c, raw: c.raw }; // a signed (not decoded) certificate: the byte path
    const probes = [
      '2001:db8:1::10',
      '2001:db8:1::11',
      '2001:db8:2::99',
      '2001:db8:3:7::1',
      '2001:db8:3:8::1',
      'fd00::1',
      '::',
    ];
    for (const text of probes) {
      const buf = new Uint8Array(20);
      buf.set(parseIpv6(text)!, 4);
      for (const offset of [4, -1, 10, 12]) {
        t.equal(
          certificateHoldsAt(d, buf, offset),
          certificateHoldsAt(plain, buf, offset),
          `${text} at ${offset}`,
        );
      }
    }
    const narrow = decodeCertificate(cert(ca, { ...MN, addresses: ['2001:db8:1::10'] }).raw);
    const buf = new Uint8Array(16);
    buf.set(parseIpv6('2001:db8:1::10')!);
    t.ok(certificateHoldsAt(narrow, buf, 0));
    t.notOk(certificateHoldsAt(narrow, buf.subarray(0, 15), 0), 'fewer than 16 bytes left');
  },
);

void t.test(
  'keys in one buffer; drops shared until the first; timestamps as strings',
  async (t) => {
    const { ha, mn, r, back } = connected();
    const kp = (r.session as unknown as { current: Record<string, unknown> }).current;
    const keypair = kp as unknown as Keypair;
    const base = CHANNEL_KEY_POOL.baseOf(keypair.slot);
    const slot = CHANNEL_KEY_POOL.chunkOf(keypair.slot).subarray(base, base + 64);
    t.ok(
      keypair.sendKey.some((b) => b !== 0),
      'keys made',
    );
    t.same(slot.subarray(0, 32), keypair.sendKey, 'the send key in the first half of one slot');
    t.same(slot.subarray(32, 64), keypair.receiveKey, 'the receive key in its second half');
    t.notOk(Object.hasOwn(kp, 'sendKey'), 'no view per key kept: the keys are read from the slot');
    t.notOk(Object.hasOwn(kp, 'receiveKey'));
    t.equal(kp['keys'], undefined, 'no handshake hash or key object kept');
    t.equal(kp['session'], r.session, 'the keys know their session (no SPI-map entry object)');
    t.same(r.session.peerPublicKey, mnKey.publicKey);
    t.equal(r.session.peerKey, byteString(mnKey.publicKey), 'the key kept as a byteString');
    t.equal(r.session.peerKey.length, 32, 'one char per byte');
    const sessions = (ha as unknown as { st: { sessions: Map<string, unknown> } }).st.sessions;
    t.equal(sessions.get(r.session.peerKey), r.session, "the sessions Map's key");
    t.notOk(
      Object.values(r.session).some((v) => v instanceof Uint8Array),
      'no key bytes kept by the session',
    );
    const pkt = ipv6Packet(parseIpv6('2001:db8:1::10')!, 16);
    t.equal(ha.receive(mn.seal(back.session, pkt, T0, DataKind.PAYLOAD)!, T0).kind, 'data');
    // Each AEAD call copies its key into the endpoint's scratch and zeroes it after.
    for (const e of [ha, mn]) {
      const scratch = (e as unknown as { st: { scratch: { key: Uint8Array } } }).st.scratch.key;
      t.ok(
        scratch.every((b) => b === 0),
        'no key left in the scratch after a seal or an open',
      );
    }

    t.equal(r.session.stats.drops, NO_DROPS, 'no drops yet: the shared counters');
    t.ok(Object.isFrozen(NO_DROPS));
    const replay = mn.seal(back.session, pkt, T0 + 1, DataKind.PAYLOAD)!;
    t.equal(ha.receive(replay.slice(), T0 + 1).kind, 'data');
    t.same(ha.receive(replay, T0 + 1), { kind: 'drop', reason: 'replay' });
    t.not(r.session.stats.drops, NO_DROPS, 'its own counters from the first drop');
    t.equal(r.session.stats.drops.replay, 1);
    t.equal(NO_DROPS.replay, 0, 'the shared ones untouched');
    const other = endpoint(ca, { ...MN, name: 'other', key: memberKey(3) }, ['ha']);
    const r2 = ha.receive(other.connect(haKey.publicKey, T0 + 2), T0 + 2);
    t.equal(r2.kind === 'established' && r2.session.stats.drops, NO_DROPS, 'a new session: shared');

    const stamps = (ha as unknown as { st: { peerTimestamps: Map<string, unknown> } }).st
      .peerTimestamps;
    const stamp = r.session.acceptedTimestamp;
    t.equal(typeof stamp, 'string', 'the timestamp as a string');
    t.equal(stamp!.length, 12, 'one character per byte');
    t.notOk(stamps.has(byteString(mnKey.publicKey)), 'kept by the open session, not in the Map');
    t.equal(r.session.stats, r.session, "the counters are the session's own fields");
    // Ordering as the bytes: an older initiation is refused, a newer one accepted.
    const older = mn.connect(haKey.publicKey, T0 + 3);
    const newer = mn.connect(haKey.publicKey, T0 + 4);
    t.equal(ha.receive(newer, T0 + 4).kind, 'established');
    t.same(ha.receive(older, T0 + 4), { kind: 'drop', reason: 'stale-timestamp' });
    // Closed: the timestamp goes to the Map; a recorded initiation replayed then is refused
    // too, and makes no session.
    const newest = r.session.acceptedTimestamp;
    t.ok(newest! > stamp!, 'the newer one remembered');
    ha.closeSession(r.session);
    t.equal(stamps.get(byteString(mnKey.publicKey)), newest, 'moved to the Map on close');
    t.same(ha.receive(newer, T0 + 5), { kind: 'drop', reason: 'stale-timestamp' });
    t.equal(ha.session(mnKey.publicKey), undefined, 'the replay made no session');
    // A new initiation: a new session keeps it, the Map entry goes.
    const fresh = ha.receive(mn.connect(haKey.publicKey, T0 + 6), T0 + 6);
    t.equal(fresh.kind, 'established');
    t.notOk(stamps.has(byteString(mnKey.publicKey)), 'the new session keeps it');
    t.ok(fresh.kind === 'established' && fresh.session.acceptedTimestamp! > newest!);
  },
);

void t.test('keys take their replay window from the shared pool and give it back', async (t) => {
  const before = CHANNEL_REPLAY_POOL.inUse;
  const keysBefore = CHANNEL_KEY_POOL.inUse;
  const { ha, mn, r, back } = connected();
  t.equal(CHANNEL_REPLAY_POOL.inUse, before + 2, 'one window per side');
  t.equal(CHANNEL_KEY_POOL.inUse, keysBefore + 2, 'one key slot per side');
  const kp = (r.session as unknown as { current: Keypair }).current;
  const pkt = ipv6Packet(parseIpv6('2001:db8:1::10')!, 16);
  const late = mn.seal(back.session, pkt, T0, DataKind.PAYLOAD)!;
  const slot = kp.slot;
  const slotBytes = (): Uint8Array => {
    const base = CHANNEL_KEY_POOL.baseOf(slot);
    return CHANNEL_KEY_POOL.chunkOf(slot).subarray(base, base + 64);
  };
  const key = kp.sendKey;
  t.ok(
    key.some((b) => b !== 0),
    'a copy of the send key',
  );
  key[0] = key[0]! ^ 0xff;
  t.not(kp.sendKey[0], key[0], 'a copy: changing it changes nothing in the slot');
  ha.closeSession(r.session);
  t.equal(CHANNEL_REPLAY_POOL.inUse, before + 1, 'closing the session released its window');
  t.equal(CHANNEL_KEY_POOL.inUse, keysBefore + 1, 'and its key slot');
  t.equal(kp.slot, -1, 'the keypair holds no slot');
  t.ok(
    slotBytes().every((b) => b === 0),
    'the slot was zeroed',
  );
  // The next keys take the freed slot: the wiped keypair must not read them.
  const again = connected();
  t.ok(
    slotBytes().some((b) => b !== 0),
    'the slot holds new keys now',
  );
  t.ok(
    kp.sendKey.every((b) => b === 0) && kp.receiveKey.every((b) => b === 0),
    "a wiped keypair's keys read zeros, not the slot's next keys",
  );
  again.ha.close();
  again.mn.close();
  t.same(ha.receive(late, T0).kind, 'drop', 'nothing opens under the released keys');
  mn.close();
  t.equal(CHANNEL_REPLAY_POOL.inUse, before, 'all given back');
});

void t.test('SPIs of 2^31 and up: the keys answer to them and carry them', async (t) => {
  const ha = endpoint(ca, HA, ['mn'], { spi: () => 0xfedc_ba98 });
  const mn = endpoint(ca, MN, ['ha'], { spi: () => 0x8000_0001 });
  const r = ha.receive(mn.connect(haKey.publicKey, T0), T0);
  if (r.kind !== 'established' || !r.reply) throw new Error('handshake');
  const back = mn.receive(r.reply, T0);
  if (back.kind !== 'established') throw new Error('initiator');
  const kp = (s: unknown) => (s as { current: { remoteSpi: number; localSpi: number } }).current;
  t.equal(kp(back.session).remoteSpi, 0xfedc_ba98, "the initiator's keys carry the HA's SPI");
  t.equal(kp(r.session).remoteSpi, 0x8000_0001, "the HA's keys carry the member's");
  const pkt = ipv6Packet(parseIpv6('2001:db8:1::10')!, 16);
  const sealed = mn.seal(back.session, pkt, T0, DataKind.PAYLOAD)!;
  t.equal(ha.receive(sealed, T0).kind, 'data', 'found by its SPI, opened');
  const reply = ha.seal(r.session, pkt, T0, DataKind.PAYLOAD)!;
  t.equal(mn.receive(reply, T0).kind, 'data', 'and the other way');
});
