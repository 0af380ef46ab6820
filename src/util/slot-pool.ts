/**
 * Fixed-size slots of many owners in shared typed-array chunks (issue 17: a home agent holds
 * per member a replay window and a pair of transport keys, and a typed array of its own costs
 * each one an ArrayBuffer and a separate backing store besides its bytes). A slot is an index:
 * its elements are chunkOf(slot)[baseOf(slot) .. baseOf(slot) + slotLength). Released slots are
 * zeroed at once and reused; chunks are never freed (the pool keeps its peak size).
 */
export class SlotPool<A extends Uint8Array | Uint32Array> {
  /** Elements per slot. */
  readonly slotLength: number;
  readonly #perChunk: number;
  readonly #make: (length: number) => A;
  readonly #chunks: A[] = [];
  readonly #free: number[] = [];
  #next = 0;

  /** `make(n)`: a zeroed typed array of n elements (a chunk of `perChunk` slots). */
  constructor(slotLength: number, perChunk: number, make: (length: number) => A) {
    this.slotLength = slotLength;
    this.#perChunk = perChunk;
    this.#make = make;
  }

  /** A zeroed slot. */
  take(): number {
    const slot = this.#free.pop();
    if (slot !== undefined) return slot;
    if (this.#next === this.#chunks.length * this.#perChunk) {
      this.#chunks.push(this.#make(this.#perChunk * this.slotLength));
    }
    return this.#next++;
  }

  /** The chunk holding `slot`; its elements start at `baseOf(slot)`. */
  chunkOf(slot: number): A {
    return this.#chunks[Math.floor(slot / this.#perChunk)]!;
  }

  baseOf(slot: number): number {
    return (slot % this.#perChunk) * this.slotLength;
  }

  /** Gives `slot` back, zeroed. Call once per taken slot. */
  release(slot: number): void {
    const base = this.baseOf(slot);
    this.chunkOf(slot).fill(0, base, base + this.slotLength);
    this.#free.push(slot);
  }

  /** Slots in use. */
  get inUse(): number {
    return this.#next - this.#free.length;
  }
}
