/** The RFC 6479 window agrees with a naive set-based model on random counter sequences. */
import t from 'tap';
import fc from 'fast-check';
import { ReplayBitmapPool, ReplayWindow } from '../../src/crypto/replay-window.js';

void t.test('replay window == naive model', async (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom(2, 4, 64),
      fc.array(
        fc.oneof(
          fc.nat(300), // dense small values
          fc.nat(5000), // jumps beyond the window
          fc.integer({ min: 2 ** 40, max: 2 ** 40 + 3000 }), // large counters
        ),
        { maxLength: 400 },
      ),
      fc.boolean(),
      (words, seq, pooled) => {
        // Pooled: a neighbour on each side in the same chunk, used too, must not interfere.
        const pool = pooled ? new ReplayBitmapPool(words) : undefined;
        const before = pool ? new ReplayWindow(words, pool) : undefined;
        const w = new ReplayWindow(words, pool);
        const after = pool ? new ReplayWindow(words, pool) : undefined;
        for (const n of [before, after]) for (let c = 0; c < 5000; c += 7) n?.update(c);
        const size = (words - 1) * 32;
        const seen = new Set<number>();
        let max = -1;
        for (const c of seq) {
          const expect =
            c > max ? 'ok' : max - c >= size ? 'too-old' : seen.has(c) ? 'replay' : 'ok';
          if (w.check(c) !== expect) return false;
          if (w.update(c) !== expect) return false;
          if (expect === 'ok') {
            seen.add(c);
            if (c > max) max = c;
          }
          if (w.highest !== max) return false;
        }
        return true;
      },
    ),
    { numRuns: 500 },
  );
  t.pass('500 random sequences agree (own bitmap or pooled between busy neighbours)');
});

void t.test('window size and edge cases', async (t) => {
  const w = new ReplayWindow();
  t.equal(w.size, 2016, 'default window >= 1024');
  t.equal(w.update(0), 'ok');
  t.equal(w.update(0), 'replay');
  t.equal(w.update(3000), 'ok');
  t.equal(w.check(3000 - 2016), 'too-old');
  t.equal(w.check(3000 - 2015), 'ok');
  t.equal(w.update(2999), 'ok', 'reordered inside the window');
  t.throws(() => new ReplayWindow(3), RangeError);
});

void t.test('pooled windows: slots reused zeroed, a released window refuses all', async (t) => {
  const pool = new ReplayBitmapPool();
  const windows = Array.from({ length: 130 }, () => new ReplayWindow(64, pool));
  t.equal(pool.inUse, 130, 'three chunks of 64');
  const a = windows[5]!;
  for (let c = 0; c < 100; c++) a.update(c);
  a.release();
  t.equal(pool.inUse, 129);
  t.equal(a.check(1_000_000), 'too-old', 'released: refuses every counter');
  t.equal(a.update(1_000_000), 'too-old');
  a.release();
  t.equal(pool.inUse, 129, 'a second release gives nothing back twice');
  const b = new ReplayWindow(64, pool);
  t.equal(pool.inUse, 130, 'the slot is reused');
  const base = pool.baseOf(5);
  t.ok(
    pool
      .chunkOf(5)
      .subarray(base, base + 64)
      .every((w) => w === 0),
    'the released slot (5) was zeroed',
  );
  b.update(200);
  for (let c = 100; c < 200; c++) t.equal(b.check(c), 'ok', `counter ${c}: not seen by b`);
  b.update(150);
  a.reset(); // a's old slot is b's now: resetting the released window must not touch it
  t.equal(b.check(150), 'replay', "a released window's reset leaves the slot's new owner alone");
  t.equal(a.check(0), 'too-old', 'and the released window still refuses every counter');
  const c2 = new ReplayWindow(64, pool);
  t.equal(pool.inUse, 131, 'a fresh slot, not the reused one again');
  b.update(7);
  t.equal(c2.check(7), 'ok', 'windows sharing a chunk are independent');
  t.throws(() => new ReplayWindow(32, pool), RangeError, 'window and pool sizes must agree');
});
