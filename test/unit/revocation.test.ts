/**
 * Revocation (issue 19): the endpoint's injected isRevoked predicate refuses a revoked member in
 * the handshake, in both directions, counted as 'revoked'; the revocation list's text codec;
 * `[identity] revocation_list` in ha.toml (and only there).
 */
import t from 'tap';
import { DataKind } from '../../src/crypto/aead.js';
import { parseIpv6 } from '../../src/crypto/certificate.js';
import type { SecureEndpoint } from '../../src/crypto/endpoint.js';
import {
  parseRevocationList,
  REVOCATION_LIST_HEADER,
  revocationLine,
} from '../../src/crypto/revocation-list.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { parseHaConfig, parseMnConfig } from '../../src/config/index.js';
import { readRevocationList } from '../../src/cli/ha-reload.js';
import { authority, endpoint, ipv6Packet, memberKey, T0 } from '../helpers/crypto.js';

await initCrypto();

const ca = authority();
const haKey = memberKey(1);
const mnKey = memberKey(2);
const otherKey = memberKey(3);
const HA = { name: 'ha1', role: 'ha' as const, key: haKey, addresses: ['2001:db8:1::/64'] };
const MN = { name: 'laptop', role: 'mn' as const, key: mnKey, addresses: ['2001:db8:1::10'] };
const OTHER = { name: 'phone', role: 'mn' as const, key: otherKey, addresses: ['2001:db8:1::11'] };
const HOA = parseIpv6('2001:db8:1::10')!;

function hex(k: Uint8Array): string {
  return Buffer.from(k).toString('hex');
}

/** A mutable set of revoked keys and the predicate the endpoint is given. */
function revocations() {
  const keys = new Set<string>();
  const asked: string[] = [];
  return {
    keys,
    asked,
    revoke: (k: Uint8Array) => keys.add(hex(k)),
    isRevoked: (k: Uint8Array) => {
      asked.push(hex(k));
      return keys.has(hex(k));
    },
  };
}

function initiate(ha: SecureEndpoint, mn: SecureEndpoint, now: number) {
  const init = mn.connect(haKey.publicKey, now);
  return ha.receive(init, now);
}

void t.test('the home agent refuses a revoked member in the handshake', async (t) => {
  const rev = revocations();
  const ha = endpoint(ca, HA, ['mn'], { isRevoked: rev.isRevoked });
  const mn = endpoint(ca, MN, ['ha']);
  const other = endpoint(ca, OTHER, ['ha']);

  const first = initiate(ha, mn, T0);
  t.equal(first.kind, 'established', 'not revoked: accepted');
  if (first.kind !== 'established' || !first.reply) return;
  t.equal(mn.receive(first.reply, T0).kind, 'established');
  t.same(rev.asked, [hex(mnKey.publicKey)], 'asked with the certificate key');

  rev.revoke(mnKey.publicKey);
  const again = initiate(ha, mn, T0 + 1000);
  t.same(again, { kind: 'drop', reason: 'revoked' }, 'a new handshake is refused');
  t.equal(ha.drops.revoked, 1, 'counted on the endpoint');
  t.equal(first.session.stats.drops.revoked, 1, 'and on the member session');
  t.equal(ha.drops['bad-certificate'], 0, 'the certificate itself is fine');

  // The endpoint only refuses handshakes; the caller (HomeAgent.revokeMembers) ends the
  // channel that exists. After that, the member's data has nowhere to go.
  const mnSession = mn.session(haKey.publicKey)!;
  const data = mn.seal(mnSession, ipv6Packet(HOA), T0 + 1001, DataKind.PAYLOAD)!;
  ha.closeSession(first.session);
  t.same(ha.receive(data, T0 + 1002), { kind: 'drop', reason: 'unknown-spi' });
  t.same(initiate(ha, mn, T0 + 2000), { kind: 'drop', reason: 'revoked' }, 'still refused');
  t.equal(ha.session(mnKey.publicKey), undefined, 'no session created for it');

  const ok = initiate(ha, other, T0 + 2000);
  t.equal(ok.kind, 'established', 'another member is unaffected');
});

void t.test('a member refuses a revoked home agent in the response', async (t) => {
  const rev = revocations();
  rev.revoke(haKey.publicKey);
  const ha = endpoint(ca, HA, ['mn']);
  const mn = endpoint(ca, MN, ['ha'], { isRevoked: rev.isRevoked });
  const r = initiate(ha, mn, T0);
  if (r.kind !== 'established' || !r.reply) throw new Error('responder refused');
  t.same(mn.receive(r.reply, T0), { kind: 'drop', reason: 'revoked' });
  t.equal(mn.drops.revoked, 1);
  t.notOk(mn.session(haKey.publicKey)?.established, 'no keys installed');
});

void t.test('revocation list text: parse, lines, one-line errors', async (t) => {
  const text =
    REVOCATION_LIST_HEADER +
    '\n' +
    revocationLine(mnKey.publicKey, 'laptop', new Date(T0)) +
    '\n   \n# a comment\n' +
    revocationLine(otherKey.publicKey, 'phone', new Date(T0)) +
    '\n';
  const list = parseRevocationList(text, 'revoked.txt');
  t.equal(list.size, 2);
  t.ok(list.has(mnKey.publicKey));
  t.ok(list.has(otherKey.publicKey));
  t.notOk(list.has(haKey.publicKey));
  t.same(
    list.entries.map((e) => [e.name, e.since]),
    [
      ['laptop', '2026-01-01T00:00:00.000Z'],
      ['phone', '2026-01-01T00:00:00.000Z'],
    ],
  );
  t.equal(parseRevocationList(REVOCATION_LIST_HEADER, 'r').size, 0, 'header only: empty');

  const bad: [string, RegExp][] = [
    ['laptop AAAA', /^r\.txt: line 1: expected "mip6-revoked-v1 BASE64-KEY \[NAME\]"$/],
    ['mip6-revoked-v1 !!!', /^r\.txt: line 1: the public key is not valid base64$/],
    ['# c\nmip6-revoked-v1 AAAA', /^r\.txt: line 2: a public key is 32 bytes, got 3$/],
  ];
  for (const [input, message] of bad) {
    t.throws(() => parseRevocationList(input, 'r.txt'), { code: 'ERR_REVOCATION_LIST', message });
  }
});

void t.test('[identity] revocation_list: ha.toml only, relative to the file', async (t) => {
  const identity = `[identity]
private_key = "ha.key"
certificate = "ha.cert"
authority = "ca/authority.pub"
`;
  const ha = parseHaConfig(
    `${identity}revocation_list = "ca/revoked.txt"\n[home]\nprefix = "2001:db8:1::/64"\n`,
    '/etc/mip6/ha.toml',
  );
  t.equal(ha.identity.revocationList, '/etc/mip6/ca/revoked.txt');
  const none = parseHaConfig(`${identity}[home]\nprefix = "2001:db8:1::/64"\n`, '/x/ha.toml');
  t.equal(none.identity.revocationList, undefined, 'optional');
  t.throws(
    () =>
      parseMnConfig(
        `${identity}revocation_list = "r.txt"\n[home]\naddress = "2001:db8:1::10"\nagent = "192.0.2.1"\nagent_public_key = "ha.pub"\n`,
        '/x/mn.toml',
      ),
    { code: 'ERR_CONFIG', message: /identity\.revocation_list: unknown key/ },
    'not an mn.toml key',
  );
});

void t.test('a revocation list the home agent cannot read is one line', async (t) => {
  t.throws(() => readRevocationList('/nonexistent/revoked.txt'), {
    code: 'ERR_REVOCATION_LIST',
    message: '/nonexistent/revoked.txt: cannot read the revocation list (ENOENT)',
  });
});
