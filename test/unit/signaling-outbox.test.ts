/**
 * SignalingOutbox (src/roles/common.ts): what a home agent seals while it works through a
 * receive batch (a BA per BU) leaves in one batched send per socket, each message sealed in
 * place in the socket's reused slab. Checked over the in-memory network with a real channel:
 * every message arrives once, in order, opens at the peer as our signaling with its bytes intact,
 * from the local address asked for; the slab and its arrays grow past their first size; a
 * session without keys queues nothing.
 */
import t from 'tap';
import { SignalingOutbox } from '../../src/roles/common.js';
import type { SecureEndpoint } from '../../src/crypto/endpoint.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { authority, endpoint, memberKey, T0 } from '../helpers/crypto.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FakeNetwork } from '../helpers/fake-network.js';

await initCrypto();

const ca = authority();
const haKey = memberKey(1);
const HA = { name: 'ha1', role: 'ha' as const, key: haKey, addresses: ['2001:db8:1::1'] };
const MN = { name: 'laptop', role: 'mn' as const, key: memberKey(2) };

function channel(): { ha: SecureEndpoint; mn: SecureEndpoint } {
  const ha = endpoint(ca, HA, ['mn']);
  const mn = endpoint(ca, MN, ['ha']);
  const r1 = ha.receive(mn.connect(haKey.publicKey, T0), T0);
  if (r1.kind !== 'established' || !r1.reply) throw new Error('no handshake');
  if (mn.receive(r1.reply, T0).kind !== 'established') throw new Error('no handshake');
  return { ha, mn };
}

/** Packet i: its index in the first two bytes, then a length that varies (24 to ~1 000 B). */
function packet(i: number): Uint8Array {
  const p = new Uint8Array(24 + ((i * 97) % 977));
  for (let k = 0; k < p.length; k++) p[k] = (i + k) & 0xff;
  p[0] = i >> 8;
  p[1] = i & 0xff;
  return p;
}

void t.test('held messages leave in one batch at release, intact and in order', async (t) => {
  const { ha, mn } = channel();
  const session = ha.allSessions()[0]!;
  const clock = new FakeClock();
  const net = new FakeNetwork(clock, { delayMs: 1 });
  const haSocket = net.endpoint({ addresses: ['2001:db8::1', '2001:db8::2'], port: 4191 });
  const mnSocket = net.endpoint({ address: '2001:db8:ffff::9', maxBatch: 1024 });
  const got: { index: number; from: string; ok: boolean; signaling: boolean }[] = [];
  mnSocket.onDatagrams((b) => {
    for (let i = 0; i < b.count; i++) {
      const datagram = b.packet(i).slice(); // opened in place
      const r = mn.receive(datagram, T0);
      if (r.kind !== 'data') {
        got.push({ index: -1, from: b.remoteAddress(i), ok: false, signaling: false });
        continue;
      }
      const bytes = datagram.subarray(r.offset, r.offset + r.length);
      const index = (bytes[0]! << 8) | bytes[1]!;
      got.push({
        index,
        from: b.remoteAddress(i),
        ok: Buffer.from(bytes).equals(Buffer.from(packet(index))),
        signaling: r.signaling,
      });
    }
  });
  const to = { address: '2001:db8:ffff::9', port: mnSocket.localPort };
  const outbox = new SignalingOutbox();
  outbox.hold();
  const n = 300; // past the first 64 slots and the first 16 KiB of slab
  for (let i = 0; i < n; i++) {
    const local = i % 3 === 0 ? { local: '2001:db8::2' } : {};
    t.equal(outbox.seal(ha, session, packet(i), haSocket, { ...to, ...local }, T0), true);
  }
  clock.advance(5);
  t.equal(got.length, 0, 'nothing sent while holding');
  t.equal(outbox.release(), 0, 'none refused');
  clock.advance(5);
  t.equal(got.length, n);
  t.same(
    got.map((g) => g.index),
    Array.from({ length: n }, (_, i) => i),
    'every message once, in order',
  );
  t.ok(
    got.every((g) => g.ok && g.signaling),
    'each opens as our signaling with its bytes',
  );
  t.ok(
    got.every((g) => g.from === (g.index % 3 === 0 ? '2001:db8::2' : '2001:db8::1')),
    'from the local address asked for, else the socket first one',
  );

  // Once released, a message goes at once; a session without keys sends nothing.
  t.equal(outbox.seal(ha, session, packet(7), haSocket, to, T0), true);
  clock.advance(5);
  t.equal(got.length, n + 1);
  t.equal(got.at(-1)?.index, 7);
  outbox.hold();
  ha.closeSession(session);
  t.equal(outbox.seal(ha, session, packet(8), haSocket, to, T0), false, 'no keys: refused');
  t.equal(outbox.release(), 0);
  clock.advance(5);
  t.equal(got.length, n + 1, 'nothing queued for it');
});

void t.test('a release with nothing queued sends nothing, and the next hold queues again', (t) => {
  const { ha, mn } = channel();
  const session = ha.allSessions()[0]!;
  const clock = new FakeClock();
  const net = new FakeNetwork(clock, { delayMs: 1 });
  const haSocket = net.endpoint({ address: '2001:db8::1', port: 4191 });
  const mnSocket = net.endpoint({ address: '2001:db8:ffff::9' });
  const got: number[] = [];
  mnSocket.onDatagrams((b) => {
    for (let i = 0; i < b.count; i++) {
      const r = mn.receive(b.packet(i).slice(), T0);
      got.push(r.kind === 'data' ? 1 : 0);
    }
  });
  const to = { address: '2001:db8:ffff::9', port: mnSocket.localPort };
  const outbox = new SignalingOutbox();
  for (let round = 0; round < 3; round++) {
    outbox.hold();
    t.equal(outbox.release(), 0, `round ${round}: an empty release refuses nothing`);
    clock.advance(5);
    t.equal(got.length, round * 2, 'and sends nothing');
    outbox.hold();
    t.equal(outbox.seal(ha, session, packet(round), haSocket, to, T0), true);
    t.equal(outbox.seal(ha, session, packet(round + 1), haSocket, to, T0), true);
    clock.advance(5);
    t.equal(got.length, round * 2, 'held');
    t.equal(outbox.release(), 0);
    clock.advance(5);
    t.same(got.slice(round * 2), [1, 1], 'both queued messages leave at the release');
  }
  t.end();
});
