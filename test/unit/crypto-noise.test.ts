/**
 * Noise_IK_25519_ChaChaPoly_BLAKE2b known-answer test.
 * Source: noise-c, tests/vector/noise-c-basic.txt (rweather/noise-c at commit
 * cfe25410979a87391bb9ac8d4d4bef64e9f268c6), the "Noise_IK_25519_ChaChaPoly_BLAKE2b" entry:
 * prologue "Prologue123", fixed static and ephemeral keys, two handshake messages, the
 * handshake hash and the first transport message in each direction.
 */
import t from 'tap';
import {
  aeadEncrypt,
  IkInitiator,
  IkResponder,
  x25519FromPrivate,
} from '../../src/crypto/noise.js';
import { initCrypto } from '../../src/crypto/sodium.js';

await initCrypto();

const h = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const V = {
  prologue: h('50726f6c6f677565313233'),
  initStatic: h('e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1'),
  initEphemeral: h('893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a'),
  respStatic: h('4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893'),
  respStaticPublic: h('31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62'),
  respEphemeral: h('bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b'),
  payloadA: h('4c756477696720766f6e204d69736573'),
  messageA: h(`ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944
    ba83a447b38c83e327ad936929812f624884847b7831e95e197b2f797088efdd232fe541af156ec6d0657602902a8c3e
    e64e470f4b6fcd9298ce0b56fe20f86e60d9d933ec6e103ffb09e6001d6abb64`),
  payloadB: h('4d757272617920526f746862617264'),
  messageB: h(`95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843
    9f069b267a06b3de3ecb1043bcb09807c6cd101f3826192a65f11ef3fe4317`),
  handshakeHash: h(`00e51d2aac81a9b8ebe441d6af3e1c8efc0f030cc608332edcb42588ff6a0ce2
    6415ddc106e95277a5e6d54132f1e5245976b89caf96d262f1fe5a7f0c55c078`),
  transportI: h('462e20412e20486179656b'),
  transportICt: h('cd54383060e7a28434cca27fb1cc524cfbabeb18181589df219d07'),
  transportR: h('4361726c204d656e676572'),
  transportRCt: h('a856d3bf0246bfc476c655009cd1ed677b8dcc5b349ae8ef2a05f2'),
};

void t.test('IK initiator and responder reproduce the noise-c vector', async (t) => {
  const initiator = new IkInitiator(
    x25519FromPrivate(V.initStatic.slice()),
    V.respStaticPublic,
    V.prologue,
    x25519FromPrivate(V.initEphemeral.slice()),
  );
  const responder = new IkResponder(
    x25519FromPrivate(V.respStatic.slice()),
    V.prologue,
    x25519FromPrivate(V.respEphemeral.slice()),
  );
  t.same(x25519FromPrivate(V.respStatic).publicKey, V.respStaticPublic);

  const a = initiator.writeMessageA(V.payloadA);
  t.same(Buffer.from(a).toString('hex'), Buffer.from(V.messageA).toString('hex'), 'message A');
  const readA = responder.readMessageA(a)!;
  t.ok(readA, 'responder reads A');
  t.same(readA.payload, V.payloadA);
  t.same(readA.remoteStatic, x25519FromPrivate(V.initStatic).publicKey);

  const b = responder.writeMessageB(V.payloadB);
  t.same(
    Buffer.from(b.message).toString('hex'),
    Buffer.from(V.messageB).toString('hex'),
    'message B',
  );
  const readB = initiator.readMessageB(b.message)!;
  t.ok(readB, 'initiator reads B');
  t.same(readB.payload, V.payloadB);
  t.same(readB.keys.handshakeHash, V.handshakeHash, 'handshake hash (initiator)');
  t.same(b.keys.handshakeHash, V.handshakeHash, 'handshake hash (responder)');
  t.same(readB.keys.sendKey, b.keys.receiveKey);
  t.same(readB.keys.receiveKey, b.keys.sendKey);

  // First transport message each way: nonce 0, empty associated data.
  t.same(aeadEncrypt(readB.keys.sendKey, 0, new Uint8Array(0), V.transportI), V.transportICt);
  t.same(aeadEncrypt(b.keys.sendKey, 0, new Uint8Array(0), V.transportR), V.transportRCt);
});

void t.test('a flipped bit in either message fails authentication', async (t) => {
  const mk = () => ({
    i: new IkInitiator(x25519FromPrivate(V.initStatic.slice()), V.respStaticPublic, V.prologue),
    r: new IkResponder(x25519FromPrivate(V.respStatic.slice()), V.prologue),
  });
  const { i, r } = mk();
  const a = i.writeMessageA(V.payloadA);
  for (const pos of [0, 40, a.length - 1]) {
    const bad = a.slice();
    bad[pos]! ^= 1;
    t.equal(mk().r.readMessageA(bad), null, `A byte ${pos}`);
  }
  t.ok(r.readMessageA(a));
  const b = r.writeMessageB(V.payloadB).message;
  b[b.length - 1]! ^= 1;
  t.equal(i.readMessageB(b), null, 'B tag');
});
