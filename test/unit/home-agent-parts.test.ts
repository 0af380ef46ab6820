/**
 * Pieces the home agent driver delegates to: the per-member BU rate limit
 * (binding-update-list.ts), which certificate addresses get a BRR after a handshake
 * (home-agent-registration.ts unboundHomeAddresses), the data-path pre-filters, and what a BU
 * result logs and counts (roles/ha/registration-log.ts).
 */
import t from 'tap';
import { BindingCache } from '../../src/protocol/binding-cache.js';
import { PerMemberRateLimiter } from '../../src/protocol/binding-update-list.js';
import {
  processHomeBindingUpdate,
  unboundHomeAddresses,
} from '../../src/protocol/home-agent-registration.js';
import { mayCarryMobilityHeader } from '../../src/protocol/mobility-header-check.js';
import { isDiscoveryRequest } from '../../src/roles/ha/home-agent-prefixes.js';
import { registrationReport } from '../../src/roles/ha/registration-log.js';
import { BindingPaths } from '../../src/roles/ha/binding-paths.js';
import type { BindingCacheEntry } from '../../src/protocol/binding-cache.js';
import type { PeerSession } from '../../src/crypto/endpoint.js';
import { PATH_CHALLENGE_MAX_SENDS, PathValidator } from '../../src/protocol/path-validation.js';
import { HaChannel, validationStore } from '../../src/roles/ha/ha-channel.js';
import type { MemberCertificate } from '../../src/crypto/certificate.js';
import { parseIpv6, parsePrefix } from '../../src/wire/address.js';
import { encodeIcmpv6Packet, encodeMobilityPacket } from '../../src/wire/packet.js';
import { bindingUpdateFlags, type BindingUpdate } from '../../src/wire/types.js';

const HA = '2001:db8:100::1';
const HOA = '2001:db8:100::5';
const CONFIG = {
  homePrefix: '2001:db8:100::/64',
  homeAgentAddress: HA,
  maxLifetimeSeconds: 600,
  natKeepaliveSeconds: 25,
  maxBindings: 10,
};

void t.test('PerMemberRateLimiter: a limit per member, idle members pruned', async (t) => {
  const r = new PerMemberRateLimiter(2, 1000, 2);
  t.same(
    [r.allow('a', 0), r.allow('a', 10), r.allow('a', 20), r.allow('b', 20)],
    [true, true, false, true],
  );
  t.equal(r.allow('a', 1000), true, 'a new window');
  t.equal(r.size, 2);
  t.equal(r.allow('c', 5000), true);
  t.equal(r.size, 1, 'a and b idle for a window: pruned when c arrived');
  t.equal(r.allow('d', 5000), true);
  t.equal(r.size, 2);
  // No new member: a BU of a known one prunes the idle (issue 17: a stable membership).
  t.equal(r.allow('c', 7000), true, 'c after two idle windows: a fresh limit');
  t.equal(r.size, 1, 'd pruned on the BU of c, which starts anew');
  t.same([r.allow('c', 7001), r.allow('c', 7002)], [true, false], 'the limit still holds');
  // Below sweepAbove, and no BU at all: the driver's timer sweeps (nextDeadline).
  const q = new PerMemberRateLimiter(2, 1000);
  t.equal(q.nextDeadline(), Infinity, 'nothing kept: no deadline');
  for (let i = 0; i < 500; i++) q.allow(`m${i}`, 10_000);
  q.sweep(10_000);
  t.equal(q.size, 500, 'within their window: kept');
  t.equal(q.nextDeadline(), 11_000, 'a window after the sweep');
  q.sweep(10_999);
  t.equal(q.size, 500, 'not before');
  q.sweep(11_000);
  t.equal(q.size, 0, 'idle for a window: no limiter kept');
  t.equal(q.nextDeadline(), Infinity);
});

void t.test(
  'unboundHomeAddresses: /128s on the home prefix without a binding, at most 4',
  async (t) => {
    const addr = (a: string, prefixLength = 128) => ({ address: parseIpv6(a), prefixLength });
    const cert = {
      addresses: [
        addr(HOA),
        addr('2001:db8:100::6'),
        addr('2001:db8:100::', 64),
        addr('2001:db8:999::1'),
        ...[7, 8, 9, 10].map((i) => addr(`2001:db8:100::${i}`)),
      ],
    } as unknown as MemberCertificate;
    const cache = new BindingCache();
    processHomeBindingUpdate(
      cache,
      {
        bu: bu(),
        innerSource: HOA,
        innerDestination: HA,
        locator: { address: '198.51.100.7', port: 4191 },
        peer: { name: 'm', publicKey: new Uint8Array(32), allowsHomeAddress: () => true },
        config: CONFIG,
      },
      0,
    );
    t.same(unboundHomeAddresses(cert, parsePrefix('2001:db8:100::/64'), cache), [
      '2001:db8:100::6',
      '2001:db8:100::7',
      '2001:db8:100::8',
      '2001:db8:100::9',
    ]);
  },
);

function bu(
  options: BindingUpdate['options'] = [{ type: 'ipv4CareOfAddress', address: '198.51.100.7' }],
): BindingUpdate {
  return {
    kind: 'bindingUpdate',
    sequence: 1,
    flags: bindingUpdateFlags({ A: true, H: true }),
    lifetimeUnits: 10,
    options,
  };
}

void t.test('data-path pre-filters', async (t) => {
  const mh = encodeMobilityPacket({ source: HOA, destination: HA, message: bu([]) });
  t.equal(mayCarryMobilityHeader(mh, 0), true);
  const withHao = encodeMobilityPacket({
    source: '2001:db8:3::1',
    destination: HA,
    homeAddress: HOA,
    message: bu([]),
  });
  t.equal(mayCarryMobilityHeader(withHao, 0), true, 'behind a HAO');
  const mps = encodeIcmpv6Packet({
    source: HOA,
    destination: HA,
    message: { kind: 'mobilePrefixSolicitation', identifier: 1 },
  });
  t.equal(mayCarryMobilityHeader(mps, 0), false);
  t.equal(isDiscoveryRequest(mps, 0, mps.length), true);
  t.equal(isDiscoveryRequest(mh, 0, mh.length), false);
  t.equal(isDiscoveryRequest(mps, 0, 40), false, 'no room for the type');
});

void t.test('registrationReport: events and counters per result', async (t) => {
  const locator = { address: '198.51.100.7', port: 4191 };
  const cache = new BindingCache();
  const input = {
    bu: bu(),
    innerSource: HOA,
    innerDestination: HA,
    locator,
    peer: { name: 'm', publicKey: new Uint8Array(32), allowsHomeAddress: (h: string) => h === HOA },
    config: CONFIG,
  };
  const created = processHomeBindingUpdate(cache, input, 0);
  const r1 = registrationReport(created, input.bu, 'm', HOA, locator);
  t.equal(r1?.event, 'registration');
  t.equal(r1?.drop, undefined);
  t.equal(r1?.level, 'info');
  const refreshed = processHomeBindingUpdate(
    cache,
    { ...input, bu: { ...input.bu, sequence: 2 } },
    5,
  );
  const rr = registrationReport(refreshed, input.bu, 'm', HOA, locator);
  t.equal(rr?.event, 'refresh');
  t.equal(rr?.level, 'debug', 'a refresh (same locator) is a debug line');
  t.equal(
    registrationReport(refreshed, input.bu, 'm', HOA, locator, (l) => l !== 'debug'),
    undefined,
    'not built when debug is not logged',
  );
  t.equal(
    registrationReport(created, input.bu, 'm', HOA, locator, (l) => l !== 'debug')?.event,
    'registration',
    'a registration still is',
  );
  // Same locator, but the IPv4 care-of address the MN reports changed (a NAT appeared in
  // front of it): not a plain refresh, an info line with both care-of addresses.
  const natBu = bu([{ type: 'ipv4CareOfAddress', address: '10.0.0.5' }]);
  const natted = processHomeBindingUpdate(cache, { ...input, bu: { ...natBu, sequence: 3 } }, 6);
  t.equal(natted.entry?.natDetected, true);
  const ru = registrationReport(natted, natBu, 'm', HOA, locator, (l) => l !== 'debug');
  t.equal(ru?.event, 'update', 'a changed care-of address is an update');
  t.equal(ru?.level, 'info');
  t.match(ru?.fields, { careOf: '::ffff:10.0.0.5', fromCareOf: '::ffff:198.51.100.7', nat: true });
  const again = processHomeBindingUpdate(cache, { ...input, bu: { ...natBu, sequence: 4 } }, 7);
  t.equal(registrationReport(again, natBu, 'm', HOA, locator)?.event, 'refresh', 'then refreshes');
  const other = processHomeBindingUpdate(
    cache,
    {
      ...input,
      bu: { ...input.bu, sequence: 5 },
      peer: { ...input.peer, publicKey: new Uint8Array(32).fill(1) },
    },
    10,
  );
  const r2 = registrationReport(other, input.bu, 'x', HOA, locator);
  t.equal(r2?.event, 'bu-rejected');
  t.equal(r2?.level, 'warn');
  t.equal(r2?.drop, 'binding-owner-mismatch');
  const dropped = processHomeBindingUpdate(
    cache,
    { ...input, bu: { ...input.bu, flags: bindingUpdateFlags({ A: true }) } },
    20,
  );
  t.equal(registrationReport(dropped, input.bu, 'm', HOA, locator)?.drop, 'bu-notHomeRegistration');
  const dereg = processHomeBindingUpdate(
    cache,
    { ...input, bu: { ...input.bu, sequence: 6, lifetimeUnits: 0 } },
    30,
  );
  t.equal(dereg.change, 'deleted');
  t.equal(
    registrationReport(dereg, input.bu, 'm', HOA, locator),
    undefined,
    'logged by the removal',
  );
});

void t.test(
  'BindingPaths: our source for a member moves only on an answered challenge',
  async (t) => {
    // One binding 'k': the cache's entry (its locator the last BU's), where the path is kept.
    const e = { key: 'k', locator: at('198.51.100.2'), path: undefined };
    const paths = new BindingPaths((key) =>
      key === 'k' ? (e as unknown as BindingCacheEntry) : undefined,
    );
    const session = { currentKeysCreatedAt: 0 } as unknown as PeerSession;
    function at(local: string) {
      return { address: '192.0.2.77', port: 40000, local };
    }
    const entry = (local: string) => {
      e.locator = at(local);
      return e as unknown as BindingCacheEntry;
    };
    const first = paths.bind(entry('198.51.100.2'), session, 100, 0);
    t.ok(first !== undefined, 'a new locator is challenged');
    t.ok(paths.onResponse(session, first!.token)?.keys.includes('k'), 'and validated');
    const bound = paths.get('k')!;
    t.equal(bound.locator.local, '198.51.100.2');

    // Authenticated data (or a BU) from that locator at our other address: a challenge from
    // there, the source unchanged until it is answered.
    const c = paths.reachedAt(bound, at('198.51.100.1'), 10);
    t.equal(c?.to.local, '198.51.100.1', 'the challenge leaves from the new address');
    t.equal(c?.to.address, '192.0.2.77', 'to the bound locator');
    t.equal(bound.locator.local, '198.51.100.2', 'nothing moved yet');
    t.equal(paths.reachedAt(bound, at('198.51.100.1'), 20), undefined, 'no challenge per datagram');
    t.equal(paths.bind(entry('198.51.100.1'), session, 100, 30), undefined, 'a BU there: pending');
    t.equal(paths.get('k')!.locator.local, '198.51.100.2', 'a BU there moves nothing either');
    t.equal(paths.onResponse(session, new Uint8Array(8)), undefined, 'a wrong token: nothing');
    const done = paths.onResponse(session, c!.token);
    t.same(done, { locator: '192.0.2.77:40000', keys: ['k'], source: '198.51.100.1' });
    t.equal(paths.get('k')!.locator.local, '198.51.100.1', 'answered: the source moves');
    t.equal(paths.get('k')!.data, paths.get('k')!.locator, 'data still goes there');

    // Unanswered (the member's NAT drops what comes from the other address): a few sends, given
    // up; the source stays. A later datagram there starts again (nothing remembered).
    const back = paths.bind(entry('198.51.100.2'), session, 100, 1000);
    t.equal(back?.to.local, '198.51.100.2', 'a refresh BU at the old address: challenged too');
    let sends = 1;
    for (let now = 1000; now < 10_000; now += 50) sends += paths.poll(now).length;
    t.equal(sends, PATH_CHALLENGE_MAX_SENDS, 'sent at most PATH_CHALLENGE_MAX_SENDS times');
    t.equal(paths.get('k')!.locator.local, '198.51.100.1', 'unanswered: unchanged');
    t.equal(paths.nextDeadline(), Infinity, 'given up');
    t.ok(paths.reachedAt(paths.get('k')!, at('198.51.100.2'), 10_000), 'a new datagram: again');
    t.equal(paths.reachedAt(paths.get('k')!, at('2001:db8::1'), 10_000), undefined, 'other family');
    const bound2 = paths.get('k')!;
    t.equal(bound2.locator, bound2, 'the bound path is its own locator (one object)');
    t.equal(e.path, bound2, "kept on the binding's entry");
    paths.remove(e as unknown as BindingCacheEntry);
    t.equal(e.path, undefined, 'removed from the entry');
    t.equal(paths.nextDeadline(), Infinity, 'the binding gone: its challenge too');
  },
);

void t.test('path validation state in the channel record: the same answers as a Map', async (t) => {
  const tokens = (n: number) => new Uint8Array(n).fill(7);
  const inRecord = new PathValidator<PeerSession>(tokens, validationStore);
  const inMap = new PathValidator<PeerSession>(tokens);
  const a = { driverState: undefined } as unknown as PeerSession;
  const b = { driverState: undefined } as unknown as PeerSession;
  const steps: [string, (v: PathValidator<PeerSession>, s: PeerSession) => unknown][] = [
    ['unknown', (v, s) => v.isValidated(s, 'x:1')],
    ['a BU', (v, s) => v.onBindingUpdate(s, 'x:1', 0)?.locator],
    ['pending', (v, s) => v.pendingLocator(s)],
    ['a wrong token', (v, s) => v.onResponse(s, new Uint8Array(8))],
    ['the answer', (v, s) => v.onResponse(s, tokens(8))],
    ['validated', (v, s) => v.isValidated(s, 'x:1')],
    ['a second locator', (v, s) => v.onBindingUpdate(s, 'y:2', 10)?.locator],
    ['marked', (v, s) => v.markValidated(s, 'y:2')],
    ['both', (v, s) => [v.isValidated(s, 'x:1'), v.isValidated(s, 'y:2')]],
    ['forgotten', (v, s) => (v.forget(s), v.isValidated(s, 'y:2'))],
  ];
  for (const [what, step] of steps) t.same(step(inRecord, a), step(inMap, b), what);
  const c = a.driverState as HaChannel;
  t.ok(c instanceof HaChannel, 'kept in the channel record');
  t.notOk(Object.values(c).some((v) => v !== null && typeof v === 'object' && 'validated' in v));
  inRecord.markValidated(a, 'z:3');
  t.equal(c.validated, 'z:3', "the state is the record's own fields");
});

void t.test(
  'BindingPaths: a source change on the previous validated locator reaches the path that was bound there',
  async (t) => {
    // Review of f403692: data keeps going to the previous validated locator while a move is
    // validated; the channel's path MTU probes still go to the path that was bound there.
    const e = {
      key: 'k',
      locator: { address: '192.0.2.77', port: 40000, local: '198.51.100.2' },
      path: undefined,
    };
    const paths = new BindingPaths((key) =>
      key === 'k' ? (e as unknown as BindingCacheEntry) : undefined,
    );
    const session = { currentKeysCreatedAt: 0 } as unknown as PeerSession;
    const first = paths.bind(e as unknown as BindingCacheEntry, session, 100, 0);
    t.ok(paths.onResponse(session, first!.token)?.keys.includes('k'), 'L1 validated');
    const b1 = paths.get('k')!; // what the HA keeps as the channel's path MTU path
    e.locator = { address: '192.0.2.77', port: 40001, local: '198.51.100.2' };
    t.ok(paths.bind(e as unknown as BindingCacheEntry, session, 100, 10), 'L2 challenged');
    const b2 = paths.get('k')!;
    t.equal(b2.data?.port, 40000, 'data still to L1');
    const c = paths.reachedAt(
      b2,
      { address: '192.0.2.77', port: 40000, local: '198.51.100.1' },
      20,
    );
    t.ok(c !== undefined, 'data from L1 at our other address: challenged from there');
    t.equal(paths.onResponse(session, c!.token)?.source, '198.51.100.1', 'answered');
    t.equal(b2.data?.local, '198.51.100.1', 'data to L1 leaves from the new source');
    t.equal(b1.locator.local, '198.51.100.1', 'and so do the probes to L1 (its path object)');
    // A third locator while L2 is still unvalidated: data stays on L1, no chain of paths.
    e.locator = { address: '192.0.2.77', port: 40002, local: '198.51.100.1' };
    paths.bind(e as unknown as BindingCacheEntry, session, 100, 30);
    const b3 = paths.get('k')!;
    t.equal(b3.data, b1, 'still the validated L1 path');
    t.equal(b1.data, b1, 'which holds no previous one');
  },
);
