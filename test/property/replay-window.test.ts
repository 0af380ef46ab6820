/** The RFC 6479 window agrees with a naive set-based model on random counter sequences. */
import t from 'tap';
import fc from 'fast-check';
import { ReplayWindow } from '../../src/crypto/replay-window.js';

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
      (words, seq) => {
        const w = new ReplayWindow(words);
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
  t.pass('500 random sequences agree');
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
