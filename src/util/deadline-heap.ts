/**
 * Binary min-heap of (due time, item): a timer queue, so a core's `poll()` looks only at the
 * items with work due instead of at every item (a home agent holds one channel per member).
 * Pure: times are plain numbers on whatever timeline the caller uses.
 *
 * Rescheduling is lazy: push the item again with its new time and let the old entry go stale.
 * `peekLive(isLive)` drops stale entries from the top, `compact(isLive)` all of them (for a heap
 * grown well past its live items); a caller that pops checks the popped entry itself. Entries due
 * at the same time come out in an order fixed by the sequence of pushes and pops (deterministic,
 * not first-in first-out).
 */
export class DeadlineHeap<T> {
  private readonly due: number[] = [];
  private readonly items: T[] = [];

  /** Entries held, stale ones included. */
  get size(): number {
    return this.due.length;
  }

  /** The earliest time held (stale or not); Infinity when empty. */
  peek(): number {
    return this.due.length === 0 ? Infinity : this.due[0]!;
  }

  /** The earliest live time: entries on top for which `isLive(item, at)` is false are dropped. */
  peekLive(isLive: (item: T, at: number) => boolean): number {
    while (this.due.length > 0 && !isLive(this.items[0]!, this.due[0]!)) this.pop();
    return this.peek();
  }

  /** The item of the earliest entry (stale or not); undefined when empty. */
  peekItem(): T | undefined {
    return this.items[0];
  }

  /** Keeps only the entries for which `isLive(item, at)` is true, pushed again in array order. */
  compact(isLive: (item: T, at: number) => boolean): void {
    const due = this.due.splice(0);
    const items = this.items.splice(0);
    for (let i = 0; i < due.length; i++) {
      if (isLive(items[i]!, due[i]!)) this.push(due[i]!, items[i]!);
    }
  }

  push(at: number, item: T): void {
    let i = this.due.length;
    this.due.push(at);
    this.items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.due[p]! <= at) break;
      this.due[i] = this.due[p]!;
      this.items[i] = this.items[p]!;
      i = p;
    }
    this.due[i] = at;
    this.items[i] = item;
  }

  /** Removes the earliest entry and returns its item (its time is the old `peek()`). Call only
   *  when `size > 0`. */
  pop(): T {
    const top = this.items[0]!;
    const lastAt = this.due.pop()!;
    const last = this.items.pop()!;
    const n = this.due.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const c = l + 1 < n && this.due[l + 1]! < this.due[l]! ? l + 1 : l;
        if (this.due[c]! >= lastAt) break;
        this.due[i] = this.due[c]!;
        this.items[i] = this.items[c]!;
        i = c;
      }
      this.due[i] = lastAt;
      this.items[i] = last;
    }
    return top;
  }
}
