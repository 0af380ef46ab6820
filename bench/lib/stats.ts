/**
 * Statistics for the benchmarks (the one definition for all of bench/ and the lab tests).
 * Non-finite values (a failed run's NaN) are left out; an empty sample gives NaN.
 *
 * Which definition each report uses:
 *   - median(): every median (compare, compare-report, tree-compare, datapath, handover,
 *     ro-batch, crypto, handshake-cost, home-probe; test/lab/ro-latency), as most of them always
 *     computed it. crypto and handshake-cost took the upper middle value, the same number for
 *     their 5 runs; home-probe did too, which for its even 20 rounds was the upper of the two
 *     middle values (printed only, never stored).
 *   - quantile(): the RTT p99 of compare (bench/results/<date>.json `rttP99Ms`, the .md tables)
 *     and of tree-compare, so that the two are comparable; compare always used it.
 *   - rankQuantile(): the registration and BA latency p50 / p99 of ha-load (reported by compare
 *     and ha-scale: `registerLatencyP99Ms`, `baLatencyP99Ms`), as ha-load always computed them,
 *     so that new reports compare with the stored ones.
 */

function finiteSorted(xs: readonly number[]): number[] {
  return xs.filter(Number.isFinite).sort((a, b) => a - b);
}

/**
 * Quantile by linear interpolation between the closest ranks (R's type 7, numpy's default),
 * q in [0, 1]: position (n - 1) * q in the sorted sample.
 */
export function quantile(xs: readonly number[], q: number): number {
  const s = finiteSorted(xs);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/** Median: the middle value, or the mean of the two middle values (= quantile(xs, 0.5)). */
export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/**
 * The sorted sample's value at index floor(q * n) (the last one for q = 1): the smallest value
 * with at least floor(q * n) values before it. For p50 of an even sample, the upper middle.
 */
export function rankQuantile(xs: readonly number[], q: number): number {
  const s = finiteSorted(xs);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}
