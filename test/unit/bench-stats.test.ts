/**
 * bench/lib/stats.ts: the definitions the benchmark reports depend on, pinned so that a new
 * report stays comparable with the stored ones (bench/results/).
 */
import t from 'tap';
import { median, quantile, rankQuantile } from '../../bench/lib/stats.js';

const HUNDRED = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted

void t.test('median: the middle value, or the mean of the two middle values', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.equal(median([5]), 5);
  t.equal(median([2, NaN, 1, Infinity, 3]), 2, 'non-finite values left out');
  t.ok(Number.isNaN(median([])), 'empty: NaN');
  t.ok(Number.isNaN(median([NaN])), 'nothing finite: NaN');
});

void t.test('quantile: linear interpolation between the closest ranks', async (t) => {
  t.equal(quantile(HUNDRED, 0.99), 99.01, 'p99 of 1..100: 99 + 0.01 * (100 - 99)');
  t.equal(quantile(HUNDRED, 0.5), median(HUNDRED), 'p50 is the median');
  t.equal(quantile(HUNDRED, 0), 1);
  t.equal(quantile(HUNDRED, 1), 100);
  t.equal(quantile([10, 20], 0.25), 12.5);
});

void t.test('rankQuantile: the value at index floor(q * n) (ha-load latencies)', async (t) => {
  t.equal(rankQuantile(HUNDRED, 0.99), 100, 'p99 of 1..100: index 99');
  t.equal(rankQuantile(HUNDRED, 0.5), 51, 'p50 of an even sample: the upper middle');
  t.equal(rankQuantile([1, 2, 3], 0.5), 2);
  t.equal(rankQuantile(HUNDRED, 1), 100, 'q = 1: the largest');
  t.ok(Number.isNaN(rankQuantile([], 0.5)), 'empty: NaN');
});
