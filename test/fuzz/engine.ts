/**
 * A small mutation fuzzer for mip6's decoders (issue 9). Not coverage-guided: each execution
 * takes a seed input (a valid encoding from the target's corpus, or random bytes), applies 1-8
 * random mutations (bit flips, byte sets, "interesting" values, inserts, deletes, duplicated or
 * spliced chunks, 16/32-bit length fields set to edge values) and runs the target. A target
 * throws only when it found a bug (an exception its contract does not allow); the engine keeps
 * that input as a crash reproducer.
 *
 * Deterministic for a given seed: `xorshift128+`-style PRNG from a 32-bit seed.
 */

export interface FuzzTarget {
  /** Stable name: corpus directory and crasher file prefix. */
  readonly name: string;
  /** What the target checks (printed by `npm run fuzz`). */
  readonly description: string;
  /** Valid encodings the mutations start from. */
  corpus(): Uint8Array[];
  /** Runs one input; throws only on a contract violation (a bug). */
  run(input: Uint8Array): void;
}

/** Small fast deterministic PRNG (mulberry32). */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

const INTERESTING8 = [0, 1, 0x7f, 0x80, 0xff, 0x3b, 0x3c, 0x2b, 0x87, 0x3a, 0x06, 0x11, 0xc9];
const INTERESTING16 = [0, 1, 0x7fff, 0x8000, 0xffff, 8, 16, 24, 40, 1280, 1500];
const INTERESTING32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0xa1b2c3d4, 0xd4c3b2a1];

/** Applies 1-8 random mutations to a copy of `input` (`others`: splice sources). */
export function mutate(input: Uint8Array, rng: Rng, others: readonly Uint8Array[]): Uint8Array {
  let b = input.slice();
  const rounds = 1 + rng.int(8);
  for (let r = 0; r < rounds; r++) {
    const len = b.length;
    const at = len === 0 ? 0 : rng.int(len);
    switch (rng.int(11)) {
      case 0: // flip one bit
        if (len > 0) b[at] = b[at]! ^ (1 << rng.int(8));
        break;
      case 1: // random byte
        if (len > 0) b[at] = rng.int(256);
        break;
      case 2: // interesting byte
        if (len > 0) b[at] = rng.pick(INTERESTING8);
        break;
      case 3: // interesting 16-bit (length fields, ports)
        if (len > 1) {
          const v = rng.pick(INTERESTING16);
          const o = rng.int(len - 1);
          b[o] = v >> 8;
          b[o + 1] = v & 0xff;
        }
        break;
      case 4: // interesting 32-bit (SPIs, magic numbers, record lengths), either byte order
        if (len > 3) {
          const v = rng.pick(INTERESTING32);
          const o = rng.int(len - 3);
          const le = rng.int(2) === 0;
          for (let i = 0; i < 4; i++) b[o + i] = (v >>> (le ? 8 * i : 24 - 8 * i)) & 0xff;
        }
        break;
      case 5: {
        // insert random bytes
        const n = 1 + rng.int(16);
        const nb = new Uint8Array(len + n);
        nb.set(b.subarray(0, at));
        nb.set(rng.bytes(n), at);
        nb.set(b.subarray(at), at + n);
        b = nb;
        break;
      }
      case 6: {
        // delete a range
        if (len === 0) break;
        const n = 1 + rng.int(Math.min(16, len - at));
        const nb = new Uint8Array(len - n);
        nb.set(b.subarray(0, at));
        nb.set(b.subarray(at + n), at);
        b = nb;
        break;
      }
      case 7: {
        // duplicate a chunk in place
        if (len === 0) break;
        const n = 1 + rng.int(Math.min(32, len - at));
        const chunk = b.slice(at, at + n);
        const nb = new Uint8Array(len + n);
        nb.set(b.subarray(0, at + n));
        nb.set(chunk, at + n);
        nb.set(b.subarray(at + n), at + 2 * n);
        b = nb;
        break;
      }
      case 8: // truncate
        b = b.slice(0, at);
        break;
      case 9: {
        // splice: our head + the tail of another corpus entry
        if (others.length === 0) break;
        const o = rng.pick(others);
        const from = o.length === 0 ? 0 : rng.int(o.length);
        const nb = new Uint8Array(at + o.length - from);
        nb.set(b.subarray(0, at));
        nb.set(o.subarray(from), at);
        b = nb;
        break;
      }
      case 10: // overwrite a run with one value (zero padding, 0xff fill)
        if (len > 0) b.fill(rng.pick([0, 0xff, rng.int(256)]), at, at + 1 + rng.int(24));
        break;
    }
  }
  return b;
}

export interface Crash {
  target: string;
  input: Uint8Array;
  error: string;
}

export interface FuzzRunResult {
  target: string;
  executions: number;
  crashes: Crash[];
  elapsedMs: number;
}

export interface FuzzRunOptions {
  seed: number;
  /** Stop after this many executions... */
  maxExecutions?: number;
  /** ...or after this long, whichever comes first. */
  budgetMs?: number;
}

/** One line that identifies a failure (error name, message, first stack frame in src/). */
function signature(err: unknown): string {
  if (!(err instanceof Error)) return `non-error thrown: ${String(err)}`;
  const frame = (err.stack ?? '').split('\n').find((l) => l.includes('/src/')) ?? '';
  return `${err.name}: ${err.message} ${frame.trim()}`;
}

/**
 * Runs a target: one execution in 8 uses purely random bytes, the rest mutate a corpus entry.
 * Crashes are deduplicated by signature (the first input of each kind is kept).
 */
export function fuzzTarget(target: FuzzTarget, opts: FuzzRunOptions): FuzzRunResult {
  const rng = new Rng(opts.seed);
  const corpus = target.corpus();
  const seen = new Set<string>();
  const crashes: Crash[] = [];
  const start = Date.now();
  const budget = opts.budgetMs ?? Infinity;
  const max = opts.maxExecutions ?? Infinity;
  let executions = 0;
  // Every corpus entry itself once first: the valid encodings must pass.
  const queue: Uint8Array[] = [...corpus];
  while (executions < max) {
    if ((executions & 15) === 0 && Date.now() - start >= budget) break;
    let input: Uint8Array;
    const queued = queue.shift();
    if (queued !== undefined) input = queued;
    else if (corpus.length === 0 || rng.int(8) === 0) input = rng.bytes(rng.int(200));
    else input = mutate(rng.pick(corpus), rng, corpus);
    executions++;
    try {
      target.run(input);
    } catch (err) {
      const sig = signature(err);
      if (!seen.has(sig)) {
        seen.add(sig);
        crashes.push({ target: target.name, input, error: sig });
      }
    }
  }
  return { target: target.name, executions, crashes, elapsedMs: Date.now() - start };
}
