/**
 * The lab's userspace impairment core (test/lab/impair.ts) on a fake clock: constant delay
 * in FIFO order and never early, seeded reproducibility, loss/duplication rates, held-back
 * packets being overtaken (and counted as reordered), the queue cap, classification by
 * prefix and family, and refusal of bad configurations.
 */
import t from 'tap';
import { ImpairmentCore, SeededRandom, type ImpairmentConfig } from '../../test/lab/impair.js';

/** A minimal IPv4 or IPv6 header with the given addresses and a 2-byte tag after it. */
function packet(src: string, dst: string, tag: number): Uint8Array {
  if (src.includes('.')) {
    const p = new Uint8Array(22);
    p[0] = 0x45;
    p.set(src.split('.').map(Number), 12);
    p.set(dst.split('.').map(Number), 16);
    p[20] = tag >> 8;
    p[21] = tag & 0xff;
    return p;
  }
  const p = new Uint8Array(42);
  p[0] = 0x60;
  // Only the last group matters for these tests: 2001:db8::X.
  p.set([0x20, 0x01, 0x0d, 0xb8], 8);
  p[23] = Number.parseInt(src.split(':').pop() ?? '0', 16);
  p.set([0x20, 0x01, 0x0d, 0xb8], 24);
  p[39] = Number.parseInt(dst.split(':').pop() ?? '0', 16);
  p[40] = tag >> 8;
  p[41] = tag & 0xff;
  return p;
}
const tagOf = (p: Uint8Array): number => ((p[p.length - 2] ?? 0) << 8) | (p[p.length - 1] ?? 0);

/** Admits `n` packets 1 ms apart from t = 0 and drains until everything left; returns tags. */
function run(cfg: ImpairmentConfig, n: number, src = '203.0.113.10') {
  const core = new ImpairmentCore(cfg);
  const out: { tag: number; at: number }[] = [];
  for (let now = 0; now < n + 200; now++) {
    if (now < n) core.admit(packet(src, '198.51.100.1', now), now);
    for (const p of core.release(now)) out.push({ tag: tagOf(p), at: now });
  }
  return { core, out, stats: core.stats() };
}

void t.test('constant delay: FIFO, never early, one due time per head', async (t) => {
  const core = new ImpairmentCore({ rules: [{ name: 'all', src: '0.0.0.0/0', delayMs: 10 }] });
  core.admit(packet('192.0.2.1', '192.0.2.2', 1), 0);
  core.admit(packet('192.0.2.1', '192.0.2.2', 2), 3);
  t.equal(core.nextDue(), 10, 'the timer is armed for the head');
  t.same(core.release(9.99), [], 'nothing leaves early');
  t.same(core.release(10).map(tagOf), [1]);
  t.equal(core.nextDue(), 13);
  t.same(core.release(20).map(tagOf), [2]);
  t.equal(core.nextDue(), undefined, 'idle: no timer');
  const s = core.stats().rules['all'];
  t.equal(s?.forwarded, 2);
  t.equal(s?.delayMaxMs, 17, 'sojourn measured at release');
});

void t.test('the same seed gives the same decisions', async (t) => {
  const cfg: ImpairmentConfig = {
    seed: 42,
    rules: [{ name: 'r', src: '0.0.0.0/0', loss: 0.1, duplicate: 0.1, reorder: 0.1 }],
  };
  const a = run(cfg, 500);
  const b = run(cfg, 500);
  t.same(a.out, b.out, 'identical output sequence');
  t.same(a.stats, b.stats);
  const c = run({ ...cfg, seed: 43 }, 500);
  t.not(JSON.stringify(c.out), JSON.stringify(a.out), 'another seed, other decisions');
});

void t.test('loss and duplication rates follow the configuration', async (t) => {
  const { stats, out } = run(
    { seed: 5, rules: [{ name: 'r', src: '0.0.0.0/0', loss: 0.03, duplicate: 0.02 }] },
    10_000,
  );
  const r = stats.rules['r']!;
  t.equal(r.packets, 10_000);
  t.ok(r.lost > 200 && r.lost < 400, `${r.lost} lost of 10000 (3%)`);
  t.ok(r.duplicated > 120 && r.duplicated < 280, `${r.duplicated} duplicated (2%)`);
  t.equal(r.forwarded, 10_000 - r.lost + r.duplicated);
  t.equal(out.length, r.forwarded, 'every forwarded packet was released');
  t.equal(r.reordered, 0, 'no reordering configured, none seen');
});

void t.test('held-back packets are overtaken and counted as reordered', async (t) => {
  const { stats, out } = run(
    {
      seed: 11,
      rules: [{ name: 'r', src: '0.0.0.0/0', delayMs: 2, reorder: 0.1, reorderMs: 5 }],
    },
    1000,
  );
  const r = stats.rules['r']!;
  t.ok(r.heldBack > 50, `${r.heldBack} held back`);
  let inversions = 0;
  let max = -1;
  for (const { tag } of out) {
    if (tag < max) inversions++;
    else max = tag;
  }
  t.equal(r.reordered, inversions, 'the counter equals the inversions in the output');
  t.ok(r.reordered > 0 && r.reordered <= r.heldBack);
  t.equal(out.length, 1000, 'reordering loses nothing');
});

void t.test('the queue cap drops and counts', async (t) => {
  const core = new ImpairmentCore({
    queueCap: 3,
    rules: [{ name: 'r', src: '0.0.0.0/0', delayMs: 5 }],
  });
  for (let i = 0; i < 5; i++) core.admit(packet('192.0.2.1', '192.0.2.2', i), 0);
  const s = core.stats();
  t.equal(s.queued, 3);
  t.equal(s.rules['r']?.queueFull, 2);
  t.same(core.release(5).map(tagOf), [0, 1, 2]);
});

void t.test('classification by prefix and family; unmatched passes at once', async (t) => {
  const core = new ImpairmentCore({
    rules: [
      { name: 'to-mn', dst: '203.0.113.0/25', delayMs: 1 },
      { name: 'v6', src: '2001:db8::/32', delayMs: 1 },
    ],
  });
  core.admit(packet('198.51.100.1', '203.0.113.10', 1), 0);
  core.admit(packet('203.0.113.10', '198.51.100.1', 2), 0);
  core.admit(packet('2001:db8::1', '2001:db8::2', 3), 0);
  core.admit(new Uint8Array([0x45, 0]), 0); // too short to classify: passed on
  t.same(
    core.release(0).map((p) => p.length),
    [22, 2],
    'unmatched ones leave at once',
  );
  t.same(core.release(1).map(tagOf).sort(), [1, 3]);
  const s = core.stats();
  t.equal(s.unmatched, 2);
  t.equal(s.rules['to-mn']?.packets, 1);
  t.equal(s.rules['v6']?.packets, 1);
});

void t.test('counters survive a reconfiguration; bad configurations are refused', async (t) => {
  const core = new ImpairmentCore({ rules: [{ name: 'r', src: '0.0.0.0/0', delayMs: 5 }] });
  core.admit(packet('192.0.2.1', '192.0.2.2', 1), 0);
  core.configure({ rules: [{ name: 'r', src: '0.0.0.0/0' }] });
  core.admit(packet('192.0.2.1', '192.0.2.2', 2), 1);
  t.same(core.release(1).map(tagOf), [2], 'the new rule (no delay) applies at once');
  t.same(core.release(4.9).map(tagOf), [], 'a queued packet keeps its due time');
  t.same(core.release(5).map(tagOf), [1]);
  t.equal(core.stats().rules['r']?.packets, 2);
  t.throws(() => core.configure({ rules: [{ name: 'x', loss: 1.5 }] }), RangeError);
  t.throws(() => core.configure({ rules: [{ name: 'x', delayMs: -1 }] }), RangeError);
  t.throws(
    () =>
      core.configure({
        rules: [
          { name: 'x', src: '0.0.0.0/0' },
          { name: 'x', src: '::/0' },
        ],
      }),
    RangeError,
  );
  t.throws(() => core.configure({ rules: [{ name: 'x', src: '0.0.0.0/0', dst: '::/0' }] }));
  t.throws(() => core.configure({ rules: [{ name: 'x', src: 'nonsense/8' }] }));
});

void t.test('SeededRandom is uniform enough and deterministic', async (t) => {
  const a = new SeededRandom(1);
  const b = new SeededRandom(1);
  let sum = 0;
  let differ = 0;
  let outside = 0;
  for (let i = 0; i < 10_000; i++) {
    const x = a.next();
    if (x !== b.next()) differ++;
    if (x < 0 || x >= 1) outside++;
    sum += x;
  }
  t.equal(differ, 0, 'two generators with one seed agree');
  t.equal(outside, 0, 'every draw in [0, 1)');
  t.ok(Math.abs(sum / 10_000 - 0.5) < 0.02, `mean ${sum / 10_000}`);
});
