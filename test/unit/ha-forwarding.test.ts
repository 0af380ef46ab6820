/**
 * HA-to-HA forwarding decisions on a virtual home network (issue 18,
 * src/protocol/ha-forwarding.ts): which live home agent a packet is sealed for, which
 * certificates make a channel a cluster peer's, and what such a channel may deliver.
 */
import t from 'tap';
import {
  acceptForwarded,
  isClusterPeer,
  peerLocator,
  servingPeer,
  type ClusterPeer,
} from '../../src/protocol/ha-forwarding.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { parsePrefix } from '../../src/wire/address.js';
import { authority, cert, memberKey } from '../helpers/crypto.js';

const HOME = parsePrefix('2001:db8:100::/64');
const ha2: ClusterPeer = {
  member: 'ha2',
  publicKey: new Uint8Array(32).fill(2),
  address4: '198.51.100.2',
  address6: '2001:db8:ff::2',
  port: 4191,
};
const peers = new Map([['ha2', ha2]]);
const both = { v4: true, v6: true };

void t.test(
  'servingPeer: the home agent etcd names, never from a peer, never ourselves',
  async (t) => {
    const decide = (servingHa: string | undefined, fromPeer = false, families = both) =>
      servingPeer({ servingHa, self: 'ha1', peers, families, fromPeer });
    t.same(decide('ha2'), { kind: 'forward', peer: ha2 }, 'served by a live peer: forwarded');
    t.same(decide(undefined), { kind: 'unregistered' }, 'no binding in the cluster: unregistered');
    t.same(decide('ha1'), { kind: 'unregistered' }, 'etcd names us (stale): unregistered, no loop');
    t.same(decide('ha2', true), { kind: 'ha-forward-loop' }, 'came from a peer: never sent on');
    t.same(decide('ha3'), { kind: 'ha-forward-peer-unknown' }, 'serving HA not live');
    t.same(
      decide('ha2', false, { v4: false, v6: false }),
      { kind: 'ha-forward-peer-unknown' },
      'no socket of a family the peer has',
    );
    t.same(decide(undefined, true), { kind: 'unregistered' }, 'from a peer, nobody serves it');
  },
);

void t.test('peerLocator: IPv6 when both sides have it, else IPv4', async (t) => {
  t.same(peerLocator(ha2, both), { address: '2001:db8:ff::2', port: 4191, family: 6 });
  t.same(peerLocator(ha2, { v4: true, v6: false }), {
    address: '198.51.100.2',
    port: 4191,
    family: 4,
  });
  t.same(peerLocator({ ...ha2, address6: undefined }, both)?.family, 4);
  t.equal(peerLocator({ ...ha2, address4: undefined }, { v4: true, v6: false }), undefined);
});

void t.test('isClusterPeer: role ha and a prefix holding our whole home prefix', async (t) => {
  await initCrypto();
  const ca = authority();
  const key = memberKey(0x31);
  const c = (role: 'ha' | 'mn' | 'cn', addresses: string[]) =>
    cert(ca, { name: 'x', role, key, addresses });
  t.ok(isClusterPeer(c('ha', ['2001:db8:100::/64']), HOME), 'an HA of our prefix');
  t.ok(isClusterPeer(c('ha', ['2001:db8:100::/48']), HOME), 'an HA of a covering prefix');
  t.notOk(isClusterPeer(c('ha', ['2001:db8:200::/64']), HOME), 'an HA of another prefix');
  t.notOk(isClusterPeer(c('ha', ['2001:db8:100::/80']), HOME), 'an HA of part of our prefix');
  t.notOk(isClusterPeer(c('ha', ['2001:db8:100::2']), HOME), 'an HA holding one address');
  t.notOk(isClusterPeer(c('mn', ['2001:db8:100::/64']), HOME), 'a member, even with the prefix');
  t.notOk(isClusterPeer(c('cn', ['2001:db8:100::/64']), HOME), 'a correspondent');
  t.notOk(isClusterPeer(null, HOME), 'no certificate');
});

void t.test('acceptForwarded: only data for a member served here', async (t) => {
  const ok = {
    peerOfPrefix: true,
    ownSignaling: false,
    ipv6: true,
    servedHere: true,
    signal: undefined,
  } as const;
  t.equal(acceptForwarded(ok), 'accept');
  t.equal(acceptForwarded({ ...ok, signal: 'rr' }), 'accept', 'HoTI / HoT pass as from the TUN');
  t.equal(acceptForwarded({ ...ok, servedHere: false }), 'ha-forward-not-served');
  t.equal(acceptForwarded({ ...ok, peerOfPrefix: false }), 'ha-forward-other-prefix');
  t.equal(acceptForwarded({ ...ok, ownSignaling: true }), 'ha-forward-signaling-kind');
  t.equal(acceptForwarded({ ...ok, ipv6: false }), 'ha-forward-not-ipv6');
  for (const signal of ['mh', 'discovery', 'redirect'] as const) {
    t.equal(acceptForwarded({ ...ok, signal }), 'ha-forward-signaling', `${signal} dropped`);
  }
  // servedHere is asked last: a getter that throws shows it is not read for earlier drops.
  const lazy = {
    ...ok,
    ownSignaling: true,
    get servedHere(): boolean {
      throw new Error('looked up');
    },
  };
  t.equal(acceptForwarded(lazy), 'ha-forward-signaling-kind');
});
