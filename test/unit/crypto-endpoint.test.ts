import t from 'tap';
import { initCrypto } from '../../src/crypto/sodium.js';
import { parseIpv6 } from '../../src/crypto/certificate.js';
import { sourceAllowed } from '../../src/crypto/selector.js';
import { authority, endpoint, ipv6Packet, memberKey, T0 } from '../helpers/crypto.js';

await initCrypto();

const ca = authority();
const haKey = memberKey(1);
const mnKey = memberKey(2);
const HA = { name: 'ha1', role: 'ha' as const, key: haKey, addresses: ['2001:db8:1::1'] };
const MN = { name: 'laptop', role: 'mn' as const, key: mnKey, addresses: ['2001:db8:1::10'] };

function pair() {
  const ha = endpoint(ca, HA, ['mn', 'cn']);
  const mn = endpoint(ca, MN, ['ha']);
  return { ha, mn };
}

function handshake(ha: ReturnType<typeof pair>['ha'], mn: ReturnType<typeof pair>['mn'], now = T0) {
  const init = mn.connect(haKey.publicKey, now);
  const r1 = ha.receive(init, now);
  if (r1.kind !== 'established' || !r1.reply) throw new Error(`responder: ${JSON.stringify(r1)}`);
  const r2 = mn.receive(r1.reply, now);
  if (r2.kind !== 'established') throw new Error(`initiator: ${JSON.stringify(r2)}`);
  return { haSession: r1.session, mnSession: r2.session, init, response: r1.reply };
}

t.test('two peers complete the handshake and exchange data both ways', async (t) => {
  const { ha, mn } = pair();
  const { haSession, mnSession } = handshake(ha, mn);
  t.equal(haSession.peerName, 'laptop');
  t.equal(mnSession.peerName, 'ha1');
  t.ok(haSession.established && mnSession.established);

  const pkt = ipv6Packet(parseIpv6('2001:db8:1::10')!, 100);
  const msg = mn.seal(mnSession, pkt, T0 + 1)!;
  t.equal(msg.length, pkt.length + 32);
  t.equal(msg[0], 4);
  const r = ha.receive(msg, T0 + 2);
  t.equal(r.kind, 'data');
  if (r.kind !== 'data') return;
  const inner = msg.subarray(r.offset, r.offset + r.length);
  t.same(inner, pkt);
  t.ok(sourceAllowed(r.session.peerCertificate!, msg, r.offset, r.length));

  const back = ha.seal(haSession, pkt, T0 + 3)!;
  const r2 = mn.receive(back, T0 + 4);
  t.equal(r2.kind, 'data');
  t.equal(haSession.stats.packetsIn, 1);
  t.equal(haSession.stats.packetsOut, 1);
  t.equal(mnSession.stats.bytesOut, pkt.length);
});
