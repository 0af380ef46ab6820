/**
 * The DAD engine's scheduling (src/io/dad.ts) on fake timers, with a fake proxy: probes beyond
 * maxInFlight wait in the queue and start as others settle (counted); a second request for an
 * address in flight joins its probe; detect() reports the first duplicate of its addresses; a
 * failed probe counts as no answer; close() settles the rest; the proxy backend ends the probes
 * started within one bucket by one timer and one native call; the fallback (a thread per probe)
 * never has more than its cap of probes running.
 */
import t from 'tap';
import {
  BUCKET_MS,
  DuplicateAddressDetector,
  ProxyDadBackend,
  SolicitDadBackend,
  type DadBackend,
  type DadTimers,
  type ProbeOutcome,
} from '../../src/io/dad.js';
import { heldByHost } from '../../src/io/home-link.js';
import {
  PROBE_DUPLICATE,
  PROBE_OPEN,
  PROBE_OUT_DEFERRED,
  PROBE_SEND_FAILED,
} from '../../src/io/ndproxy.js';

class FakeTimers implements DadTimers {
  t = 0;
  timers: { at: number; cb: () => void; live: boolean }[] = [];
  soonQueue: (() => void)[] = [];
  now(): number {
    return this.t;
  }
  after(ms: number, cb: () => void): () => void {
    const timer = { at: this.t + ms, cb, live: true };
    this.timers.push(timer);
    return () => (timer.live = false);
  }
  soon(cb: () => void): void {
    this.soonQueue.push(cb);
  }
  /** Runs the pending soon() callbacks (one event-loop turn). */
  turn(): void {
    for (const cb of this.soonQueue.splice(0)) cb();
  }
  advance(ms: number): void {
    this.t += ms;
    for (const timer of this.timers.filter((x) => x.live && x.at <= this.t)) {
      timer.live = false;
      timer.cb();
    }
    this.turn();
  }
}

/** Settles by hand: `pending` holds what was started. */
class ManualBackend implements DadBackend {
  readonly via = 'ndproxy';
  started: string[][] = [];
  pending = new Map<string, (a: string, o: ProbeOutcome) => void>();
  readonly maxInFlight: number;
  constructor(maxInFlight: number) {
    this.maxInFlight = maxInFlight;
  }
  start(addresses: readonly string[], settle: (a: string, o: ProbeOutcome) => void): void {
    this.started.push([...addresses]);
    for (const a of addresses) this.pending.set(a, settle);
  }
  settle(a: string, o: ProbeOutcome): void {
    const s = this.pending.get(a);
    this.pending.delete(a);
    s?.(a, o);
  }
  close(): void {}
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

void t.test('cap, queue, join, first duplicate, failure, close', async (t) => {
  const timers = new FakeTimers();
  const backend = new ManualBackend(4);
  const dad = new DuplicateAddressDetector(backend, timers);
  const addrs = Array.from({ length: 10 }, (_, i) => `2001:db8::${i + 1}`);
  const results = addrs.map((a) => dad.detect([a]));
  const joined = dad.detect(['2001:db8::1', '2001:db8::2']);
  timers.turn();
  t.same(backend.started, [addrs.slice(0, 4)], 'one batch of maxInFlight started');
  t.match(dad.status(), { inFlight: 4, queued: 6, waited: 6, joined: 2, peakQueued: 10 });
  backend.settle('2001:db8::1', 'unique');
  backend.settle('2001:db8::2', 'duplicate');
  timers.turn();
  t.same(backend.started[1], addrs.slice(4, 6), 'two freed slots: the next two start');
  t.equal(await results[0], null);
  t.equal(await results[1], '2001:db8::2', 'a duplicate is reported');
  t.equal(await joined, '2001:db8::2', 'the joined request gets the shared answer');
  backend.settle('2001:db8::3', 'failed');
  t.equal(await results[2], null, 'a failed probe is no answer');
  for (const a of addrs.slice(3, 6)) backend.settle(a, 'unique');
  timers.turn();
  t.match(dad.status(), { inFlight: 4, queued: 0, unique: 4, duplicate: 1, failed: 1 });
  dad.close();
  t.same(
    await Promise.all(results.slice(6)),
    [null, null, null, null],
    'close settles the rest as no answer',
  );
  t.match(dad.status(), { inFlight: 0, queued: 0, failed: 5 });
  t.equal(await dad.detect(['2001:db8::99']), null, 'after close: no answer');
});

void t.test('proxy backend: one timer and one end call per bucket', async (t) => {
  const timers = new FakeTimers();
  const ends: string[][] = [];
  const proxy = {
    probeStart: (a: readonly string[]): Uint8Array =>
      new Uint8Array(a.map((x) => (x.endsWith('::f') ? 1 : 0))),
    probeEnd: (a: readonly string[]): Uint8Array => {
      ends.push([...a]);
      return new Uint8Array(
        a.map((x) =>
          x.endsWith('::d')
            ? PROBE_OPEN | PROBE_DUPLICATE
            : x.endsWith('::f')
              ? PROBE_OPEN | PROBE_SEND_FAILED
              : PROBE_OPEN,
        ),
      );
    },
  };
  const dad = new DuplicateAddressDetector(new ProxyDadBackend(proxy, 1000, { timers }), timers);
  timers.t = 1; // bucket of 1001..1010
  const a = dad.detect(['2001:db8::a']);
  timers.turn();
  timers.t = 6;
  const d = dad.detect(['2001:db8::d']);
  timers.turn();
  timers.t = 9;
  const f = dad.detect(['2001:db8::f']);
  timers.turn();
  timers.t = 15; // the next bucket
  const b = dad.detect(['2001:db8::b']);
  timers.turn();
  t.equal(timers.timers.length, 2, 'two buckets, two timers for four probes');
  timers.advance(1000 - 15 + 9);
  t.same(ends, [], 'nothing ends before the full window');
  timers.advance(BUCKET_MS - 8);
  t.same(ends, [['2001:db8::a', '2001:db8::d', '2001:db8::f']], 'the first bucket ends at once');
  t.equal(await a, null);
  t.equal(await d, '2001:db8::d');
  t.equal(await f, null, 'a failed send is no answer');
  timers.advance(BUCKET_MS);
  t.equal(await b, null);
  await flush();
  t.match(dad.status(), { started: 4, unique: 2, duplicate: 1, failed: 1, inFlight: 0 });
});

void t.test('proxy backend: probes the link had no room for are sent again', async (t) => {
  const timers = new FakeTimers();
  // The fake link's queue takes `room` probes per call; every later one is deferred.
  let room = 2;
  const sentAt = new Map<string, number>();
  const proxy = {
    probeStart: (a: readonly string[]): Uint8Array =>
      new Uint8Array(
        a.map((x) => {
          if (room <= 0) return PROBE_OUT_DEFERRED;
          room--;
          sentAt.set(x, timers.t);
          return 0;
        }),
      ),
    probeEnd: (a: readonly string[]): Uint8Array =>
      new Uint8Array(a.map((x) => (x.endsWith('::d') ? PROBE_OPEN | PROBE_DUPLICATE : PROBE_OPEN))),
  };
  const dad = new DuplicateAddressDetector(new ProxyDadBackend(proxy, 1000, { timers }), timers);
  const names = ['::1', '::2', '::3', '::d', '::5'].map((x) =>
    `2001:db8:${x}`.replace(':::', '::'),
  );
  const results = names.map((n) => dad.detect([n]));
  timers.turn();
  t.same([...sentAt.keys()], names.slice(0, 2), 'the first call: two left, three deferred');
  room = 2;
  timers.advance(BUCKET_MS);
  t.same([...sentAt.keys()], names.slice(0, 4), 'sent again one bucket later, as room allows');
  room = 0;
  timers.advance(BUCKET_MS);
  t.equal(sentAt.size, 4, 'no room: the last still waits');
  room = 10;
  timers.advance(BUCKET_MS);
  t.equal(sentAt.get(names[4]!), 3 * BUCKET_MS, 'the last leaves on the third retry');
  // Each probe's window starts when it left: the first two end after ~1000, the last later.
  timers.advance(1000 - 3 * BUCKET_MS); // t = 1000
  await flush();
  t.match(dad.status(), { unique: 2, inFlight: 3 }, 'the first two ended, the rest still run');
  timers.advance(3 * BUCKET_MS);
  t.same(
    await Promise.all(results),
    [null, null, null, names[3], null],
    'the deferred duplicate found',
  );
  t.match(dad.status(), { unique: 4, duplicate: 1, failed: 0 });

  // A probe that never finds room within a whole window settles as failed (no answer).
  room = 0;
  const never = dad.detect(['2001:db8::77']);
  timers.turn();
  for (let i = 0; i < 1000 / BUCKET_MS + 2; i++) timers.advance(BUCKET_MS);
  t.equal(await never, null, 'never sent: no answer');
  t.match(dad.status(), { failed: 1, inFlight: 0 });
});

void t.test('an address the host holds itself is a duplicate without a probe', async (t) => {
  const interfaces = {
    lo: [{ address: '::1', family: 'IPv6' }],
    home: [
      { address: '192.0.2.1', family: 'IPv4' },
      { address: '2001:db8:100:0:0:0:0:1', family: 'IPv6' },
      { address: 'fe80::1%home', family: 6 },
    ],
  };
  t.equal(heldByHost(['2001:db8:100::7'], interfaces), null, 'not held: null');
  t.equal(
    heldByHost(['2001:db8:100::7', '2001:db8:100::1'], interfaces),
    '2001:db8:100::1',
    'any spelling',
  );
  t.equal(heldByHost(['fe80::1'], interfaces), 'fe80::1', 'a link-local with a zone on the host');
  t.equal(heldByHost(['::ffff:192.0.2.1'], interfaces), null, 'IPv4 addresses are not compared');
});

void t.test('fallback: at most maxInFlight solicitations at once, answers mapped', async (t) => {
  const timers = new FakeTimers();
  const calls: { target: string; answer: (yes: boolean) => void; fail: () => void }[] = [];
  let running = 0;
  let peak = 0;
  const solicit = (_link: string, target: Uint8Array): Promise<boolean> => {
    if (target[15] === 0xee) throw new Error('no thread');
    running++;
    peak = Math.max(peak, running);
    return new Promise<boolean>((resolve, reject) => {
      const done = (): void => void running--;
      calls.push({
        target: Buffer.from(target).toString('hex'),
        answer: (yes) => (done(), resolve(yes)),
        fail: () => (done(), reject(new Error('ENOBUFS'))),
      });
    });
  };
  const dad = new DuplicateAddressDetector(new SolicitDadBackend(solicit, 'home', 1000, 3), timers);
  const addrs = Array.from({ length: 10 }, (_, i) => `2001:db8::${(i + 1).toString(16)}`);
  const results = addrs.map((a) => dad.detect([a]));
  const thrown = dad.detect(['2001:db8::ee']);
  timers.turn();
  t.equal(calls.length, 3, 'three of ten started');
  t.match(dad.status(), { via: 'solicit-threads', maxInFlight: 3, inFlight: 3, queued: 8 });
  calls[0]!.answer(true);
  calls[1]!.answer(false);
  calls[2]!.fail();
  await flush();
  timers.turn();
  t.equal(calls.length, 6, 'three settled, three more started');
  t.equal(await results[0], '2001:db8::1', 'an answer: duplicate');
  t.equal(await results[1], null, 'no answer: unique');
  t.equal(await results[2], null, 'a failed solicitation: no answer');
  // Answer the rest as they start (no answer: unique), a bounded number of rounds.
  for (let answered = 3, round = 0; answered < calls.length && round < 20; round++) {
    for (const c of calls.slice(answered)) c.answer(false);
    answered = calls.length;
    await flush();
    timers.turn();
  }
  t.equal(await thrown, null, 'a probe whose thread did not start: no answer');
  t.same(await Promise.all(results.slice(3)), Array(7).fill(null));
  t.equal(peak, 3, 'never more than three at once');
  t.match(dad.status(), {
    started: 11,
    duplicate: 1,
    unique: 8,
    failed: 2,
    inFlight: 0,
    queued: 0,
  });
});
