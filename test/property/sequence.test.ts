import t from 'tap';
import fc from 'fast-check';
import {
  lifetimeUnitsToSeconds,
  secondsToLifetimeUnits,
  seqAdd,
  seqNewer,
  seqNext,
} from '../../src/protocol/sequence.js';

const seq = fc.integer({ min: 0, max: 0xffff });

void t.test('16-bit serial-number laws', async (t) => {
  fc.assert(fc.property(seq, (s) => seqNewer(seqNext(s), s) && !seqNewer(s, seqNext(s))));
  fc.assert(fc.property(seq, (s) => !seqNewer(s, s)));
  fc.assert(
    fc.property(seq, seq, (a, b) => !(seqNewer(a, b) && seqNewer(b, a))),
    { numRuns: 2000 },
  );
  // Trichotomy except at the opposite point: exactly one of newer(a,b), newer(b,a), a==b,
  // distance 32768.
  fc.assert(
    fc.property(seq, seq, (a, b) => {
      const cases = [seqNewer(a, b), seqNewer(b, a), a === b, (a - b + 65536) % 65536 === 32768];
      return cases.filter(Boolean).length === 1;
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(seq, fc.integer({ min: 1, max: 32767 }), (s, d) => seqNewer(seqAdd(s, d), s)),
  );
  fc.assert(
    fc.property(seq, fc.integer({ min: 32768, max: 65536 }), (s, d) => !seqNewer(seqAdd(s, d), s)),
  );
  // Equivalence with the KAME/UMIP formulation (int16_t)(s - l) > 0.
  fc.assert(
    fc.property(seq, seq, (s, l) => seqNewer(s, l) === ((s - l) << 16) >> 16 > 0),
    { numRuns: 2000 },
  );
  t.pass('laws hold');
});

void t.test('lifetime unit conversion laws', async (t) => {
  const units = fc.integer({ min: 0, max: 0xffff });
  fc.assert(fc.property(units, (u) => secondsToLifetimeUnits(lifetimeUnitsToSeconds(u)) === u));
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 300000 }), (s) => {
      const u = secondsToLifetimeUnits(s);
      return u >= 1 && u <= 0xffff && (lifetimeUnitsToSeconds(u) <= s || s < 4);
    }),
  );
  t.pass('laws hold');
});
