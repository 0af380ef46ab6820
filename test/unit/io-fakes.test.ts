// The in-memory I/O fakes (FakeClock, FakeTun, FakeNetwork) that the simulations build on,
// plus the address-slot helpers and the real SystemClock.
import t from 'tap';
import { addressBytes, readAddress } from '../../src/io/address-bytes.js';
import { OutgoingDatagramBatch, packetSpans } from '../../src/io/batch.js';
import { SystemClock } from '../../src/io/clock.js';
import type { Datagram } from '../../src/io/types.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { FakeNetwork } from '../helpers/fake-network.js';
import { FakeTun } from '../helpers/fake-tun.js';

void t.test('address slots round-trip in RFC 5952 form', async (t) => {
  const cases: [4 | 6, string, string][] = [
    [4, '192.0.2.33', '192.0.2.33'],
    [6, '2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    [6, '2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    [6, '2001:db8::', '2001:db8::'],
    [6, '::', '::'],
    [6, '::1', '::1'],
    [6, '2001:db8:1:1:1:1:1:1', '2001:db8:1:1:1:1:1:1'],
    [6, '2001:0:0:1::1', '2001:0:0:1::1'],
    [6, '::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    [6, 'fe80::1%eth0', 'fe80::1'],
  ];
  for (const [f, text, want] of cases)
    t.equal(readAddress(f, addressBytes(f, text), 0), want, text);
  t.throws(() => addressBytes(4, '2001:db8::1'), TypeError);
  t.throws(() => addressBytes(6, '192.0.2.1'), TypeError);
});

void t.test('FakeClock runs timers in order, re-arms and clears', async (t) => {
  const clock = new FakeClock(1000);
  const a = clock.createClock();
  const b = clock.createClock();
  const log: string[] = [];
  a.setTimer(1030, () => log.push(`a@${clock.now()}`));
  b.setTimer(1010, () => {
    log.push(`b@${clock.now()}`);
    b.setTimer(1020, () => log.push(`b2@${clock.now()}`)); // armed while advancing
  });
  a.setTimer(1025, () => log.push(`a'@${clock.now()}`)); // replaces the 1030 arming
  clock.setTimer(990, () => log.push(`past@${clock.now()}`)); // past: at the next advance
  t.same(log, [], 'nothing runs synchronously');
  clock.advance(0);
  t.same(log, ['past@1000']);
  clock.advance(40);
  t.same(log, ['past@1000', 'b@1010', 'b2@1020', "a'@1025"]);
  t.equal(clock.now(), 1040);
  a.setTimer(1050, () => log.push('never'));
  a.clearTimer();
  clock.advance(100);
  t.equal(log.length, 4, 'cleared timer does not fire');
  t.throws(() => clock.advance(-1), RangeError);
});

void t.test('SystemClock fires its single timer once', async (t) => {
  const clock = new SystemClock();
  const start = clock.now();
  let fired = 0;
  await new Promise<void>((resolve) => {
    clock.setTimer(start + 1000, () => (fired += 100)); // replaced below
    clock.setTimer(start + 15, () => {
      fired++;
      resolve();
    });
  });
  t.equal(fired, 1);
  t.ok(clock.now() - start >= 14, 'not early');
  clock.clearTimer();
});

void t.test('SystemClock keeps its Node timer when a deadline moves later', async (t) => {
  const clock = new SystemClock();
  const created: number[] = [];
  const real = globalThis.setTimeout;
  // Counts the Node timers the clock creates (issue #16: no timer churn per packet batch).
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    created.push(ms ?? 0);
    return real(fn, ms);
  }) as typeof setTimeout;
  t.teardown(() => {
    globalThis.setTimeout = real;
    clock.clearTimer();
  });
  const start = clock.now();
  const fired: string[] = [];
  await new Promise<void>((resolve) => {
    clock.setTimer(start + 20, () => fired.push('first'));
    for (let i = 0; i < 100; i++) clock.setTimer(start + 20 + i / 10, () => fired.push('moved'));
    t.equal(created.length, 1, 'a later deadline re-uses the armed timer');
    clock.setTimer(start + 60, () => {
      fired.push('last');
      resolve();
    });
  });
  t.same(fired, ['last'], 'only the latest callback runs, once');
  t.ok(clock.now() - start >= 59, 'not before the moved deadline');
  t.equal(created.length, 2, 'one early wake-up re-armed once for the rest');

  created.length = 0;
  const t0 = clock.now();
  await new Promise<void>((resolve) => {
    clock.setTimer(t0 + 5_000, () => fired.push('late'));
    clock.setTimer(t0 + 10, () => resolve()); // earlier: replaces the armed timer
  });
  t.ok(clock.now() - t0 < 1_000, 'an earlier deadline fires early');
  t.equal(created.length, 2);
  t.same(fired, ['last'], 'the replaced callback never runs');
});

void t.test(
  'FakeTun delivers injected packets in batches with headroom and records writes',
  async (t) => {
    const tun = new FakeTun({ maxBatch: 4, headroom: 16, tailroom: 16, mtu: 1280 });
    const packets = Array.from({ length: 10 }, (_, i) => new Uint8Array(40 + i).fill(i));
    tun.inject(packets.slice(0, 3)); // no handler yet: queued
    const sizes: number[] = [];
    const seen: number[] = [];
    tun.onPackets((b) => {
      sizes.push(b.count);
      for (let i = 0; i < b.count; i++) {
        t.ok((b.offsets[i] ?? 0) >= b.headroom);
        seen.push(b.packet(i)[0] ?? -1);
      }
    });
    tun.pause();
    tun.inject(packets.slice(3));
    t.same(sizes, [3], 'paused: nothing more delivered');
    tun.resume();
    t.same(sizes, [3, 4, 3]);
    t.same(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    t.equal(tun.counters().rxPackets, 10);
    tun.inject(new Uint8Array(2000));
    t.equal(tun.counters().rxErrors, 1, 'oversized packet dropped and counted');

    const heard: Uint8Array[] = [];
    tun.onKernelReceive((p) => heard.push(p));
    t.equal(tun.writePackets(packetSpans([Uint8Array.of(1), Uint8Array.of(2, 3)])), 2);
    tun.kernelQueueFull = true;
    t.equal(tun.writePacket(Uint8Array.of(9)), false);
    t.same(
      tun.written.map((p) => [...p]),
      [[1], [2, 3]],
    );
    t.equal(heard.length, 2);
    t.equal(tun.counters().txDrops, 1);
    tun.close();
    t.throws(() => tun.writePacket(Uint8Array.of(1)), { code: 'ERR_CLOSED' });
  },
);

void t.test('FakeNetwork delivers batches with addresses, source selection, delay', async (t) => {
  const clock = new FakeClock();
  const net = new FakeNetwork(clock, { delayMs: 5 });
  const server = net.endpoint({ addresses: ['2001:db8::1', '2001:db8::2'], port: 4191 });
  const client = net.endpoint({ address: '2001:db8:ffff::9' });
  const got: Datagram[] = [];
  const batches: number[] = [];
  server.onDatagrams((b) => {
    batches.push(b.count);
    for (const d of b.datagrams()) got.push({ ...d, data: d.data.slice() });
    // Answer from the address the datagram was sent to.
    for (let i = 0; i < b.count; i++) {
      server.send(b.packet(i), b.remoteAddress(i), b.remotePort(i), b.localAddress(i));
    }
  });
  const replies: Datagram[] = [];
  client.onDatagrams((b) =>
    replies.push(...b.datagrams().map((d) => ({ ...d, data: d.data.slice() }))),
  );
  const out = new OutgoingDatagramBatch(6, 8);
  out.push(Uint8Array.of(1), '2001:db8::1', 4191);
  out.push(Uint8Array.of(2), '2001:db8::2', 4191);
  out.push(Uint8Array.of(3), '2001:db8::2', 4191);
  t.equal(client.sendDatagrams(out), 3);
  clock.advance(4);
  t.equal(got.length, 0, 'not before the delay');
  clock.advance(1);
  t.same(batches, [3], 'one batch for datagrams arriving together');
  t.same(
    got.map((d) => [d.data[0], d.localAddress, d.remoteAddress, d.remotePort]),
    [
      [1, '2001:db8::1', '2001:db8:ffff::9', client.localPort],
      [2, '2001:db8::2', '2001:db8:ffff::9', client.localPort],
      [3, '2001:db8::2', '2001:db8:ffff::9', client.localPort],
    ],
  );
  clock.advance(5);
  t.same(
    replies.map((d) => [d.data[0], d.remoteAddress]),
    [
      [1, '2001:db8::1'],
      [2, '2001:db8::2'],
      [3, '2001:db8::2'],
    ],
    'replies come from the chosen source',
  );
  t.ok(server.send(Uint8Array.of(4), '2001:db8:ffff::9', client.localPort, '2001:db8::7'));
  t.equal(
    server.counters().txSourceFallbacks,
    1,
    'a source the endpoint does not own: sent from its first address, counted',
  );
  t.equal(server.counters().txErrors, 0);
  clock.advance(5);
  t.same(
    [replies.at(-1)?.data[0], replies.at(-1)?.remoteAddress],
    [4, '2001:db8::1'],
    'from the first address',
  );
  t.throws(() => net.endpoint({ address: '2001:db8::1', port: 4191 }), { code: 'ERR_UDP_BIND' });
});

void t.test('FakeNetwork loss and duplication are seeded and roughly as configured', async (t) => {
  const run = (seed: number): { got: number; stats: FakeNetwork['stats'] } => {
    const clock = new FakeClock();
    const net = new FakeNetwork(clock, { seed, loss: 0.2, duplicate: 0.1 });
    const a = net.endpoint({ address: '192.0.2.1' });
    const b = net.endpoint({ address: '192.0.2.2', port: 9 });
    let got = 0;
    b.onDatagrams((batch) => (got += batch.count));
    for (let i = 0; i < 2000; i++) a.send(Uint8Array.of(i & 0xff), '192.0.2.2', 9);
    clock.advance(0);
    return { got, stats: { ...net.stats } };
  };
  const r1 = run(42);
  const r2 = run(42);
  t.same(r1, r2, 'same seed, same outcome');
  t.ok(r1.stats.lost > 300 && r1.stats.lost < 560, `lost ${r1.stats.lost} of ~2200`);
  t.ok(r1.stats.duplicated > 130 && r1.stats.duplicated < 270, `duplicated ${r1.stats.duplicated}`);
  t.equal(r1.got, r1.stats.delivered);
  t.equal(r1.got + r1.stats.lost, 2000 + r1.stats.duplicated);
  t.not(run(43).got, r1.got, 'another seed differs');
});

void t.test('FakeNetwork move: in-flight datagrams to the old address are lost', async (t) => {
  const clock = new FakeClock();
  const net = new FakeNetwork(clock, { delayMs: 10 });
  const ha = net.endpoint({ address: '198.51.100.1', port: 4191 });
  const mn = net.endpoint({ address: '192.0.2.10', port: 5000 });
  const mnGot: string[] = [];
  mn.onDatagrams((b) => mnGot.push(...b.datagrams().map((d) => d.localAddress)));
  const haSaw: string[] = [];
  ha.onDatagrams((b) =>
    haSaw.push(...b.datagrams().map((d) => `${d.remoteAddress}:${d.remotePort}`)),
  );
  ha.send(Uint8Array.of(1), '192.0.2.10', 5000);
  net.move(mn, '203.0.113.7');
  clock.advance(10);
  t.same(mnGot, [], 'lost: the MN left that address');
  t.equal(net.stats.unroutable, 1);
  mn.send(Uint8Array.of(2), '198.51.100.1', 4191);
  clock.advance(10);
  t.same(haSaw, ['203.0.113.7:5000'], 'the HA sees the new address');
  ha.send(Uint8Array.of(3), '203.0.113.7', 5000);
  clock.advance(10);
  t.same(mnGot, ['203.0.113.7']);
  t.equal(mn.localAddress, '203.0.113.7');
});

void t.test(
  'FakeNetwork NAT rewrites sources, forwards replies, rebinds and filters',
  async (t) => {
    const clock = new FakeClock();
    const net = new FakeNetwork(clock);
    const ha = net.endpoint({ address: '198.51.100.1', port: 4191 });
    const stranger = net.endpoint({ address: '198.51.100.66' });
    const mn = net.endpoint({ address: '192.0.2.10', port: 5000 });
    const nat = net.nat({ publicAddress: '203.0.113.1', filtering: 'address-dependent' });
    net.setNat(mn, nat);
    const seen: string[] = [];
    ha.onDatagrams((b) =>
      seen.push(...b.datagrams().map((d) => `${d.remoteAddress}:${d.remotePort}`)),
    );
    const mnGot: string[] = [];
    mn.onDatagrams((b) =>
      mnGot.push(...b.datagrams().map((d) => `${d.remoteAddress}>${d.localAddress}`)),
    );
    mn.send(Uint8Array.of(1), '198.51.100.1', 4191);
    clock.advance(0);
    const port1 = nat.mappedPort(mn);
    t.same(seen, [`203.0.113.1:${port1}`], 'source rewritten to the public mapping');
    ha.send(Uint8Array.of(2), '203.0.113.1', port1 ?? 0);
    stranger.send(Uint8Array.of(3), '203.0.113.1', port1 ?? 0);
    ha.send(Uint8Array.of(4), '192.0.2.10', 5000);
    clock.advance(0);
    t.same(
      mnGot,
      ['198.51.100.1>192.0.2.10'],
      'reply forwarded; stranger filtered; private address unreachable',
    );
    nat.rebind();
    const port2 = nat.mappedPort(mn);
    t.not(port2, port1, 'rebinding changes the public port');
    ha.send(Uint8Array.of(5), '203.0.113.1', port1 ?? 0);
    clock.advance(0);
    t.equal(mnGot.length, 1, 'old mapping is dead');
    mn.send(Uint8Array.of(6), '198.51.100.1', 4191);
    clock.advance(0);
    t.equal(seen[1], `203.0.113.1:${port2}`);
  },
);

void t.test('FakeUdpEndpoint pause, close', async (t) => {
  const clock = new FakeClock();
  const net = new FakeNetwork(clock);
  const a = net.endpoint({ address: '192.0.2.1' });
  const b = net.endpoint({ address: '192.0.2.2', port: 7, maxBatch: 2 });
  const sizes: number[] = [];
  b.onDatagrams((batch) => sizes.push(batch.count));
  b.pause();
  for (let i = 0; i < 5; i++) a.send(Uint8Array.of(i), '192.0.2.2', 7);
  clock.advance(0);
  t.same(sizes, []);
  b.resume();
  t.same(sizes, [2, 2, 1], 'batches bounded by maxBatch');
  b.close();
  a.send(Uint8Array.of(9), '192.0.2.2', 7);
  clock.advance(0);
  t.equal(net.stats.unroutable, 1);
  t.throws(() => b.send(Uint8Array.of(1), '192.0.2.1', a.localPort), { code: 'ERR_CLOSED' });
});
