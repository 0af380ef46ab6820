/**
 * The home agent's IPv4 home addresses (RFC 5555 §3.1.1 / §3.2.1; issue #15): grants from the
 * pool and from the member's certificate, the status of every refusal, leases kept across a
 * release, the data-path lookup, and the certificate rule (only ::ffff:0:0/96 prefixes).
 */
import t from 'tap';
import {
  certificateAllowsIpv4,
  IPV4_ACK_STATUS as S,
  ipv4AckStatusName,
  Ipv4HomeAddresses,
} from '../../src/protocol/ipv4-home-addresses.js';
import { parsePrefix } from '../../src/wire/address.js';
import { ipv4Summary } from '../../src/wire/ipv4.js';

const auto = { address: '0.0.0.0', prefixLength: 32, requestPrefix: false };
const fixed = (address: string) => ({ address, prefixLength: 32, requestPrefix: false });
const none = (): boolean => false;

void t.test('dynamic grants, leases and release', async (t) => {
  const p = new Ipv4HomeAddresses('10.99.0.0/29'); // .2 .. .6 assignable, .1 the HA's
  t.equal(p.gateway, '10.99.0.1');
  t.same(p.request('A', auto, none), { status: 0, address: '10.99.0.2', prefixLength: 32 });
  t.same(p.request('B', auto, none).address, '10.99.0.3');
  t.same(p.request('A', auto, none).address, '10.99.0.2', 'a refresh keeps it');
  t.same(p.request('A', fixed('10.99.0.2'), none).status, 0, 'asking for its own by value');
  p.release('A');
  t.equal(p.addressOf('A'), undefined, 'released');
  t.equal(p.request('C', auto, none).address, '10.99.0.4', "A's lease is not handed out");
  t.same(p.request('A', fixed('10.99.0.2'), none).status, 0, 'after release: its lease by value');
  p.release('A');
  t.same(p.request('A', auto, none).address, '10.99.0.2', 'after release: its lease again');
  t.equal(p.activeCount, 3);
  for (const k of ['D', 'E']) t.equal(p.request(k, auto, none).status, 0);
  t.same(p.request('F', auto, none), {
    status: S.DYNAMIC_NOT_AVAILABLE,
    address: '0.0.0.0',
    prefixLength: 0,
  });
  p.release('B');
  t.equal(p.request('F', auto, none).address, '10.99.0.3', "the oldest unused lease (B's)");
  t.equal(
    p.request('B', fixed('10.99.0.3'), none).status,
    S.INCORRECT_HOME_ADDRESS,
    'now F holds it',
  );
});

void t.test('fixed addresses: only the certificate or an own lease', async (t) => {
  const p = new Ipv4HomeAddresses('10.99.0.0/24');
  const cert50 = (a: string): boolean => a === '10.99.0.50';
  t.equal(p.request('A', fixed('10.99.0.50'), none).status, S.INCORRECT_HOME_ADDRESS, 'not given');
  t.equal(p.activeCount, 0, 'nothing granted');
  t.same(p.request('A', fixed('10.99.0.50'), cert50).address, '10.99.0.50', 'certified');
  t.equal(
    p.request('B', fixed('10.99.0.50'), cert50).status,
    S.INCORRECT_HOME_ADDRESS,
    'held by another binding: refused even with a certificate for it',
  );
  t.equal(p.addressOf('A'), '10.99.0.50', 'A keeps it');
  t.equal(
    p.request('C', fixed('192.0.2.7'), () => true).status,
    S.INCORRECT_HOME_ADDRESS,
    'outside the pool',
  );
  t.equal(p.request('C', fixed('10.99.0.1'), () => true).status, S.INVALID_ADDRESS, "the HA's own");
  t.equal(p.request('C', fixed('10.99.0.255'), () => true).status, S.INVALID_ADDRESS, 'broadcast');
  t.equal(p.request('C', fixed('10.99.0.0'), () => true).status, S.INVALID_ADDRESS, 'network');
  t.equal(p.request('C', fixed('224.0.0.1'), () => true).status, S.INVALID_ADDRESS, 'multicast');
  t.equal(p.request('C', fixed('127.0.0.1'), () => true).status, S.INVALID_ADDRESS, 'loopback');
  t.equal(p.request('C', fixed('not-an-address'), () => true).status, S.INVALID_ADDRESS);
  t.equal(
    p.request('C', { ...auto, requestPrefix: true }, () => true).status,
    S.PREFIX_UNAUTHORIZED,
    'P (a prefix for a mobile router) is not offered',
  );
  t.equal(p.activeCount, 1, 'none of the refusals granted anything');
  p.release('A');
  t.same(p.request('B', fixed('10.99.0.50'), cert50).status, 0, 'free again once A is gone');
  t.equal(
    new Ipv4HomeAddresses(undefined).request('A', auto, () => true).status,
    S.ADMINISTRATIVELY_PROHIBITED,
    'no pool: 129',
  );
  t.equal(ipv4AckStatusName(130), 'Incorrect IPv4 home address');
  t.equal(ipv4AckStatusName(7), 'unknown (7)');
  t.throws(() => new Ipv4HomeAddresses('2001:db8::/64'), RangeError);
  t.throws(() => new Ipv4HomeAddresses('10.0.0.0/31'), RangeError);
});

void t.test('data path: binding key by the 4 address bytes, active only', async (t) => {
  const p = new Ipv4HomeAddresses('10.99.0.0/24');
  p.request('A', auto, none);
  const pkt = new Uint8Array(20);
  pkt.set([10, 99, 0, 2], 12);
  t.equal(p.bindingKeyAt(pkt, 12), 'A');
  pkt.set([10, 99, 0, 3], 12);
  t.equal(p.bindingKeyAt(pkt, 12), undefined);
  p.release('A');
  pkt.set([10, 99, 0, 2], 12);
  t.equal(p.bindingKeyAt(pkt, 12), undefined, 'a released address maps to nobody');
  t.ok(p.contains('10.99.0.77'));
  t.notOk(p.contains('10.98.0.1'));
});

void t.test('certificate: the IPv4-mapped address inside ::ffff:0:0/96 only', async (t) => {
  const cert = (...texts: string[]) =>
    texts.map((x) => {
      const p = parsePrefix(x);
      return { address: p.address, prefixLength: p.length };
    });
  t.ok(certificateAllowsIpv4(cert('::ffff:10.99.0.50/128'), '10.99.0.50'));
  t.notOk(certificateAllowsIpv4(cert('::ffff:10.99.0.50/128'), '10.99.0.51'));
  t.ok(certificateAllowsIpv4(cert('2001:db8:100::10/128', '::ffff:10.99.0.0/120'), '10.99.0.9'));
  t.notOk(
    certificateAllowsIpv4(cert('::/0'), '10.99.0.9'),
    'a whole-IPv6 certificate is no IPv4 grant',
  );
  t.notOk(certificateAllowsIpv4(cert('::ffff:0:0/95'), '10.99.0.9'), 'wider than the mapped range');
  t.notOk(certificateAllowsIpv4(cert('::ffff:10.99.0.50/128'), 'x'));
});

void t.test('mip6 decode: an inner IPv4 packet shows its header (wire/ipv4.ts)', async (t) => {
  const p = Uint8Array.from(
    Buffer.from('4500002000004000401100000a630002cb007182000900090000000000000000', 'hex'),
  );
  t.same(ipv4Summary(p), {
    version: 4,
    headerLength: 20,
    totalLength: 32,
    ttl: 64,
    protocol: 17,
    source: '10.99.0.2',
    destination: '203.0.113.130',
  });
  t.equal(ipv4Summary(p.subarray(0, 19)), undefined, 'shorter than a header');
  const v6 = new Uint8Array(40);
  v6[0] = 0x60;
  t.equal(ipv4Summary(v6), undefined, 'an IPv6 packet');
});
