/**
 * The real Clock: performance.now() milliseconds and one re-armable timer.
 *
 * The drivers re-arm their timer after every batch of packets, almost always to the same or a
 * later deadline. Replacing a Node timer each time (clearTimeout + setTimeout + a closure) was
 * measurable per packet (issue #16, a lone packet's latency), so the armed Node timer is kept
 * while it fires no later than the new deadline: it wakes, sees the deadline moved, and waits
 * again. Only an earlier deadline replaces it.
 */
import { performance } from 'node:perf_hooks';
import type { Clock } from './types.js';

/** Longest single setTimeout delay Node accepts; longer waits re-arm in steps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class SystemClock implements Clock {
  #timer: NodeJS.Timeout | undefined;
  /** When the armed Node timer fires (performance.now() ms). */
  #armedFor = Infinity;
  /** The deadline the caller asked for, and its callback. */
  #at = Infinity;
  #cb: (() => void) | undefined;
  #unref: boolean;

  /** `unref`: the armed timer does not keep the process alive on its own. */
  constructor(options: { unref?: boolean } = {}) {
    this.#unref = options.unref ?? false;
  }

  now(): number {
    return performance.now();
  }

  setTimer(at: number, cb: () => void): void {
    this.#at = at;
    this.#cb = cb;
    // The armed timer fires early enough: keep it (#fire waits again if it is early).
    if (this.#timer !== undefined && this.#armedFor <= at) return;
    this.#arm();
  }

  clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    this.#at = Infinity;
    this.#cb = undefined;
  }

  #arm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const now = this.now();
    const step = Math.min(Math.max(0, this.#at - now), MAX_TIMEOUT_MS);
    this.#armedFor = now + step;
    this.#timer = setTimeout(this.#fire, step);
    if (this.#unref) this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    if (this.now() + 1 < this.#at) {
      this.#arm(); // woke before the deadline (it moved later, or a long wait in steps)
      return;
    }
    const cb = this.#cb;
    this.#at = Infinity;
    this.#cb = undefined;
    cb?.();
  };
}
