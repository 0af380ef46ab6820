/**
 * The roles' path MTU glue (src/roles/tunnel-mtu.ts) with real channel endpoints, a FakeTun
 * and a socket stub that hands out MTU reports as native/udp.c would: which reports count
 * (quoting a datagram this node really sealed lately, to the peer's current locator), what a
 * forged one does (nothing), the inner Packet Too Big written into the TUN and its rate limit,
 * probes answered and acks matched.
 */
import t from 'tap';
import { DataKind } from '../../src/crypto/aead.js';
import { type PeerSession, type SecureEndpoint } from '../../src/crypto/endpoint.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import type { MtuReport, UdpEndpoint } from '../../src/io/types.js';
import type { Locator } from '../../src/protocol/locator.js';
import {
  BASE_INNER,
  CONFIRM_INTERVAL_MS,
  decodePathMtuMessage,
  encodeProbe,
  encodeProbeAck,
} from '../../src/protocol/path-mtu.js';
import { DropCounters, type NodeEnvironment } from '../../src/roles/common.js';
import {
  MTU_REPORTS_PER_SECOND,
  RATE_LIMITED_PEERS_MAX,
  TOO_BIG_PER_SECOND,
  TunnelMtu,
} from '../../src/roles/tunnel-mtu.js';
import { Logger } from '../../src/util/log.js';
import { parseIpv6 } from '../../src/wire/address.js';
import { authority, endpoint, ipv6Packet, memberKey, T0 } from '../helpers/crypto.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FakeTun } from '../helpers/fake-tun.js';

await initCrypto();

const ca = authority();
const haKey = memberKey(1);
const HA = { name: 'ha1', role: 'ha' as const, key: haKey, addresses: ['2001:db8:1::1'] };
const MN = {
  name: 'laptop',
  role: 'mn' as const,
  key: memberKey(2),
  addresses: ['2001:db8:1::10'],
};
const HA_LOCATOR = { address: '198.51.100.1', port: 4191, family: 4 as const };

/** A socket that only hands out the reports it is given (the rest is never called here). */
class ReportingSocket {
  readonly reports: MtuReport[] = [];
  #count = 0;
  push(r: MtuReport): void {
    this.reports.push(r);
    this.#count++;
  }
  mtuReportCount(): number {
    return this.#count;
  }
  takeMtuReports(): MtuReport[] {
    return this.reports.splice(0);
  }
}

function setup(parkAt?: Locator & { family: 4 | 6 }): {
  mn: SecureEndpoint;
  session: PeerSession;
  tun: FakeTun;
  drops: DropCounters;
  mtu: TunnelMtu<PeerSession>;
  sock: ReportingSocket;
  seal: () => Uint8Array;
} {
  const ha = endpoint(ca, HA, ['mn']);
  const mn = endpoint(ca, MN, ['ha']);
  const r1 = ha.receive(mn.connect(haKey.publicKey, T0), T0);
  if (r1.kind !== 'established' || !r1.reply) throw new Error('handshake');
  const r2 = mn.receive(r1.reply, T0);
  if (r2.kind !== 'established') throw new Error('handshake');
  const tun = new FakeTun({ mtu: 1396 });
  const env: NodeEnvironment = {
    endpoint: mn,
    tun,
    clock: new FakeClock(),
    epochOffsetMs: T0,
    log: new Logger({ sink: { write: () => undefined }, clock: () => T0 }),
  };
  const drops = new DropCounters();
  const mtu = new TunnelMtu<PeerSession>(env, drops, {
    underlayMtu: 1500,
    icmpSource6: () => '2001:db8:1::1',
    // With `parkAt`: idle finished paths are parked, as the home agent's are.
    ...(parkAt !== undefined ? { parking: { pathOf: () => parkAt, park: () => true } } : {}),
  });
  const session = r2.session;
  const src = parseIpv6('2001:db8:1::10')!;
  const seal = (): Uint8Array => mn.seal(session, ipv6Packet(src, 1300), T0, DataKind.PAYLOAD)!;
  return { mn, session, tun, drops, mtu, sock: new ReportingSocket(), seal };
}

function report(quote: Uint8Array, mtu: number, to = HA_LOCATOR, local = false): MtuReport {
  return {
    address: to.address,
    port: to.port,
    mtu,
    quote: quote.slice(0, 16),
    quotedLength: quote.length,
    local,
  };
}

void t.test(
  'a report quoting our datagram to the peer lowers the path; forged ones do not',
  (t) => {
    const { mn, session, mtu, sock, seal, drops } = setup();
    const state = mtu.path(session, HA_LOCATOR, T0);
    // The ceiling probe comes back: the path carries the tunnel's full size.
    const [probe] = mtu.poll(T0);
    t.ok(probe);
    mtu.onMessage(session, encodeProbeAck(probe!.id, probe!.size), 0, 7, T0 + 10, () => true);
    t.equal(state.maxInner, 1396);
    const sockets = [sock as unknown as UdpEndpoint];
    const take = (now: number): void => mtu.takeReports(sockets, mn, (s) => s, now);

    // Forgeries: a made-up SPI and counter; our SPI with a counter not used yet; a datagram of
    // ours but about another locator; too short to say anything.
    const ours = seal();
    const wrongSpi = ours.slice();
    wrongSpi[4] = wrongSpi[4]! ^ 0xff;
    const future = ours.slice();
    future[15] = 0x01; // counter 2^56: never sent
    sock.push(report(wrongSpi, 576));
    sock.push(report(future, 576));
    sock.push(report(ours, 576, { ...HA_LOCATOR, address: '203.0.113.99' }));
    sock.push(report(ours.subarray(0, 8), 576));
    t.ok(mtu.reportsWaiting(sockets));
    take(T0 + 20);
    t.notOk(mtu.reportsWaiting(sockets), 'all taken');
    t.equal(mtu.counters.reportsRejected, 4, 'every forgery refused');
    t.equal(drops.get('mtu-report-unmatched'), 4);
    t.equal(state.maxInner, 1396, 'the path is untouched');

    // The real thing: the router says 1400 about a datagram we sealed.
    sock.push(report(seal(), 1400));
    take(T0 + 30);
    t.equal(mtu.counters.reportsAccepted, 1);
    t.equal(state.maxInner, 1400 - 60, 'lowered to exactly what passes');
    t.equal(state.source, 'icmp');
    // A matched report cannot push it below the base, nor raise it.
    sock.push(report(seal(), 576));
    sock.push(report(seal(), 9000));
    take(T0 + 40);
    t.equal(state.maxInner, BASE_INNER, 'never below 1280');
    t.end();
  },
);

void t.test('too big: a Packet Too Big into the TUN with the path size, rate-limited', (t) => {
  const { tun, mtu, drops, session } = setup();
  const big = ipv6Packet(parseIpv6('2001:db8:1::10')!, 1400 - 40);
  const buf = new Uint8Array(big.length + 32);
  buf.set(big, 16);
  for (let i = 0; i < TOO_BIG_PER_SECOND + 5; i++)
    mtu.tooBig(session, buf, 16, big.length, 1340, T0);
  t.equal(drops.get('too-big'), TOO_BIG_PER_SECOND + 5, 'every packet dropped and counted');
  t.equal(tun.written.length, TOO_BIG_PER_SECOND, 'at most TOO_BIG_PER_SECOND errors a second');
  const ptb = tun.written[0]!;
  t.equal(ptb[0]! >> 4, 6);
  t.equal(ptb[6], 58, 'ICMPv6');
  t.equal(ptb[40], 2, 'Packet Too Big');
  const m = ((ptb[44]! << 24) | (ptb[45]! << 16) | (ptb[46]! << 8) | ptb[47]!) >>> 0;
  t.equal(m, 1340, 'announces the path size');
  t.same([...ptb.subarray(24, 40)], [...big.subarray(8, 24)], 'back to the sender');
  mtu.tooBig(session, buf, 16, big.length, 1340, T0 + 1000);
  t.equal(tun.written.length, TOO_BIG_PER_SECOND + 1, 'the next second: again');
  t.end();
});

void t.test(
  'an inner IPv4 packet without DF: dropped and counted, no Fragmentation Needed',
  (t) => {
    const { tun, mtu, drops, session } = setup();
    const p = new Uint8Array(1400);
    p.set([
      0x45,
      0,
      1400 >> 8,
      1400 & 0xff,
      0,
      1,
      0x40,
      0,
      64,
      17,
      0,
      0,
      10,
      99,
      0,
      7,
      192,
      0,
      2,
      80,
    ]);
    mtu.tooBig(session, p, 0, p.length, 1340, T0);
    t.equal(tun.written.length, 1, 'with DF: Fragmentation Needed');
    t.equal(tun.written[0]![20], 3);
    t.equal(tun.written[0]![21], 4);
    p[6] = 0; // DF clear
    for (let i = 0; i < 5; i++) mtu.tooBig(session, p, 0, p.length, 1340, T0);
    t.equal(tun.written.length, 1, 'without DF: none (RFC 1191 §3)');
    t.equal(drops.get('too-big-not-df'), 5, 'counted apart');
    t.equal(drops.get('too-big'), 1);
    t.end();
  },
);

void t.test('the Packet Too Big limit is per peer: one small path does not starve another', (t) => {
  const { tun, mtu, session, drops } = setup();
  const other = {} as PeerSession; // another member's channel (only its identity counts here)
  const big = ipv6Packet(parseIpv6('2001:db8:1::10')!, 1400 - 40);
  for (let i = 0; i < 10 * TOO_BIG_PER_SECOND; i++)
    mtu.tooBig(session, big, 0, big.length, 1340, T0);
  t.equal(tun.written.length, TOO_BIG_PER_SECOND, 'the busy peer: its own limit');
  mtu.tooBig(other, big, 0, big.length, 1340, T0);
  t.equal(tun.written.length, TOO_BIG_PER_SECOND + 1, 'the other peer still gets its error');
  t.equal(drops.get('too-big'), 10 * TOO_BIG_PER_SECOND + 1);
  // Bounded: many peers keep at most RATE_LIMITED_PEERS_MAX limiters.
  for (let i = 0; i < RATE_LIMITED_PEERS_MAX + 10; i++) {
    mtu.tooBig({} as PeerSession, big, 0, big.length, 1340, T0 + 2000);
  }
  t.equal(mtu.rateLimitedPeers, RATE_LIMITED_PEERS_MAX, 'the oldest forgotten');
  mtu.forget(other);
  t.end();
});

void t.test('a forged report flood does not use up the budget of genuine reports', (t) => {
  const { mn, session, mtu, sock, seal, drops } = setup();
  const state = mtu.path(session, HA_LOCATOR, T0);
  const [probe] = mtu.poll(T0);
  mtu.onMessage(session, encodeProbeAck(probe!.id, probe!.size), 0, 7, T0 + 10, () => true);
  t.equal(state.maxInner, 1396);
  const sockets = [sock as unknown as UdpEndpoint];
  // Many times the budget of forgeries (a made-up SPI), within one second.
  const forged = seal();
  forged[4] = forged[4]! ^ 0xff;
  for (let i = 0; i < 4 * MTU_REPORTS_PER_SECOND; i++) {
    sock.push(report(forged, 576));
    mtu.takeReports(sockets, mn, (s) => s, T0 + 20);
  }
  t.equal(mtu.counters.reportsRejected, 4 * MTU_REPORTS_PER_SECOND, 'all refused');
  t.equal(drops.get('mtu-report-rate-limited'), 0, 'none charged to a budget');
  // The genuine one, in the same second: acted on.
  sock.push(report(seal(), 1400));
  mtu.takeReports(sockets, mn, (s) => s, T0 + 30);
  t.equal(mtu.counters.reportsAccepted, 1, 'the genuine report is accepted');
  t.equal(state.maxInner, 1400 - 60);
  // Matched reports are charged to their peer: past its budget they are dropped.
  for (let i = 0; i < MTU_REPORTS_PER_SECOND + 5; i++) sock.push(report(seal(), 1400));
  mtu.takeReports(sockets, mn, (s) => s, T0 + 40);
  t.equal(drops.get('mtu-report-rate-limited'), 6, 'the budget counts matched reports only');
  t.end();
});

void t.test('probes are answered with their id and size; unmatched acks are counted', (t) => {
  const { session, mtu, drops } = setup();
  const probe = encodeProbe(0x01020304, 1300);
  const replies: Uint8Array[] = [];
  mtu.onMessage(session, probe, 0, probe.length, T0, (m) => {
    replies.push(m);
    return true;
  });
  t.equal(replies.length, 1);
  t.same(decodePathMtuMessage(replies[0]!, 0, replies[0]!.length), {
    type: 'ack',
    id: 0x01020304,
    size: 1300,
  });
  t.equal(mtu.counters.probesAnswered, 1);
  const stray = encodeProbeAck(77, 1300);
  mtu.onMessage(session, stray, 0, stray.length, T0, () => true);
  t.equal(drops.get('pmtu-ack-unmatched'), 1);
  mtu.onMessage(session, Uint8Array.of(0x13, 1), 0, 2, T0, () => true);
  t.equal(drops.get('pmtu-malformed'), 1);
  t.end();
});

void t.test('a parked path takes reports as its state did, made back only when one counts', (t) => {
  const { mn, session, mtu, sock, drops } = setup(HA_LOCATOR);
  mtu.path(session, HA_LOCATOR, T0);
  const [probe] = mtu.poll(T0);
  mtu.onMessage(session, encodeProbeAck(probe!.id, probe!.size), 0, 7, T0 + 10, () => true);
  mtu.poll(T0 + 10); // the search ends at the ceiling
  t.same(mtu.poll(T0 + 10 + CONFIRM_INTERVAL_MS), [], 'idle: no confirmation');
  t.ok(mtu.table.isParked(session), 'parked: only its size kept');
  const sockets = [sock as unknown as UdpEndpoint];
  const take = (now: number): void => mtu.takeReports(sockets, mn, (s) => s, now);
  const src = parseIpv6('2001:db8:1::10')!;
  const now = T0 + 20 + CONFIRM_INTERVAL_MS;
  const seal = (): Uint8Array => mn.seal(session, ipv6Packet(src, 1300), now, DataKind.PAYLOAD)!;
  // About another locator: refused, and the path stays parked.
  sock.push(report(seal(), 1400, { ...HA_LOCATOR, address: '203.0.113.99' }));
  take(now);
  t.equal(drops.get('mtu-report-unmatched'), 1, 'refused');
  t.ok(mtu.table.isParked(session), 'still parked');
  // One above the path's size changes nothing: parked again.
  sock.push(report(seal(), 1500));
  take(now);
  t.equal(mtu.counters.reportsAccepted, 0);
  t.ok(mtu.table.isParked(session), 'parked again after a report that changed nothing');
  // The router says 1400 about a datagram we sealed: lowered, as before parking.
  sock.push(report(seal(), 1400));
  take(now + 1);
  t.equal(mtu.counters.reportsAccepted, 1);
  t.notOk(mtu.table.isParked(session));
  t.equal(mtu.table.get(session)?.maxInner, 1400 - 60, 'lowered to exactly what passes');
  t.equal(mtu.table.get(session)?.source, 'icmp');
  t.end();
});
