/**
 * Anti-replay sliding window, RFC 6479 ("IPsec Anti-Replay Algorithm without Bit Shifting").
 *
 * The bitmap is a ring of 32-bit words. Advancing the window clears whole words instead of
 * shifting the bitmap; one word is always the partly filled "current" block, so the usable
 * window is (words - 1) * 32 counters (RFC 6479 §2). With the default 64 words that is 2016
 * packets, above the 1024 DESIGN.md §4 asks for.
 *
 * Flow on receive (channel.ts): `check(counter)` before decryption (cheap rejection of
 * replays, costs no AEAD work), then `update(counter)` only after the tag verified, so forged
 * packets can never move the window. `update` re-checks, which catches a duplicate that arrived
 * twice in the same batch.
 */
import { SlotPool } from '../util/slot-pool.js';

/** Default ring size in 32-bit words (power of two). */
export const REPLAY_WINDOW_WORDS = 64;

const WORD_BITS = 32;

/** Outcome of a window check; 'ok' means "not seen yet and inside the window". */
export type ReplayVerdict = 'ok' | 'replay' | 'too-old';

/** Windows per pool chunk (64 of 64 words: 16 KiB). */
const WINDOWS_PER_CHUNK = 64;

/**
 * Bitmaps of many windows in shared chunks (issue 17, util/slot-pool.ts): a home agent holds a
 * window per member's keys, and a Uint32Array of its own costs each one a typed array, an
 * ArrayBuffer and a separate backing store besides its 256 bytes. A pooled window is a slot in
 * a chunk of WINDOWS_PER_CHUNK.
 */
export class ReplayBitmapPool extends SlotPool<Uint32Array> {
  constructor(words: number = REPLAY_WINDOW_WORDS) {
    super(words, WINDOWS_PER_CHUNK, (n) => new Uint32Array(n));
  }

  /** Words per window. */
  get words(): number {
    return this.slotLength;
  }
}

/** The pool the channel's keys take their windows from (one per process). */
export const CHANNEL_REPLAY_POOL = new ReplayBitmapPool();

/**
 * `slot` of a released window (pooled or not): it refuses every counter. A mark of its own, not a
 * highest counter of Infinity: one window holding a double would make V8 box that field in
 * every window (16 B each, per member at a home agent, issue 17).
 */
const RELEASED = -2;

export class ReplayWindow {
  /** Number of counters below the highest seen that are still tracked. */
  readonly size: number;
  /** Own bitmap, or the pool chunk holding this window's words from `base` on. */
  private readonly bitmap: Uint32Array;
  private readonly base: number;
  private readonly mask: number;
  private readonly pool: ReplayBitmapPool | undefined;
  /** The pool slot, -1 when own, RELEASED once released. */
  private slot: number;
  /**
   * Highest counter accepted so far (-1 before the first) is `state[lastAt]`: a double in memory
   * the native express lane reads and writes too (a keypair's slot in CHANNEL_KEY_POOL, issue
   * 16), so both paths see one window; an array of its own when none is given.
   */
  private readonly state: Float64Array;
  private readonly lastAt: number;

  constructor(
    words: number = REPLAY_WINDOW_WORDS,
    pool?: ReplayBitmapPool,
    state?: Float64Array,
    lastAt = 0,
  ) {
    if (words < 2 || (words & (words - 1)) !== 0) {
      throw new RangeError(`replay window words must be a power of two >= 2, got ${words}`);
    }
    if (pool !== undefined && pool.words !== words) {
      throw new RangeError(`replay pool of ${pool.words} words for a window of ${words}`);
    }
    this.pool = pool;
    if (pool === undefined) {
      this.slot = -1;
      this.bitmap = new Uint32Array(words);
      this.base = 0;
    } else {
      this.slot = pool.take();
      this.bitmap = pool.chunkOf(this.slot);
      this.base = pool.baseOf(this.slot);
    }
    this.mask = words - 1;
    this.size = (words - 1) * WORD_BITS;
    this.state = state ?? new Float64Array(1);
    this.lastAt = lastAt;
    this.state[lastAt] = -1;
  }

  /** The bitmap's words and where this window's start (the native express lane's view). */
  get words(): { bitmap: Uint32Array; base: number } {
    return { bitmap: this.bitmap, base: this.base };
  }

  /** Highest accepted counter (-1 if none). */
  get highest(): number {
    // Released: the state slot is zeroed, maybe another window's by now.
    return this.slot === RELEASED ? -1 : this.state[this.lastAt]!;
  }

  /** Would `counter` be accepted? Does not change state. `counter` is a non-negative integer. */
  check(counter: number): ReplayVerdict {
    if (this.slot === RELEASED) return 'too-old';
    const last = this.state[this.lastAt]!;
    if (counter > last) return 'ok';
    if (counter + this.size <= last) return 'too-old';
    const word = this.base + (Math.floor(counter / WORD_BITS) & this.mask);
    const bit = 1 << (counter % WORD_BITS);
    return (this.bitmap[word]! & bit) !== 0 ? 'replay' : 'ok';
  }

  /** Marks `counter` as seen (call only after the packet authenticated). Returns the verdict
   *  that applied: anything other than 'ok' means the packet must be dropped. */
  update(counter: number): ReplayVerdict {
    const verdict = this.check(counter);
    if (verdict !== 'ok') return verdict;
    const block = Math.floor(counter / WORD_BITS);
    const words = this.mask + 1;
    const last = this.state[this.lastAt]!;
    if (counter > last) {
      const lastBlock = last < 0 ? -1 : Math.floor(last / WORD_BITS);
      let diff = block - lastBlock;
      if (diff > words) diff = words;
      for (let i = 1; i <= diff; i++) this.bitmap[this.base + ((lastBlock + i) & this.mask)] = 0;
      this.state[this.lastAt] = counter;
    }
    const word = this.base + (block & this.mask);
    this.bitmap[word] = (this.bitmap[word]! | (1 << (counter % WORD_BITS))) >>> 0;
    return 'ok';
  }

  /**
   * Forgets everything (new keys start a new window). A released window stays released: its
   * slot may be another window's now, and its keys are gone.
   */
  reset(): void {
    if (this.slot === RELEASED) return;
    this.bitmap.fill(0, this.base, this.base + this.mask + 1);
    this.state[this.lastAt] = -1;
  }

  /**
   * The keys are gone: a pooled window gives its slot back (once; later calls do nothing) and
   * refuses every counter from then on ('too-old'), so a stale reference can never read or mark
   * another window's words.
   */
  release(): void {
    if (this.pool !== undefined && this.slot >= 0) this.pool.release(this.slot);
    this.slot = RELEASED;
  }
}
