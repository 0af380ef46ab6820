/**
 * The real Clock: performance.now() milliseconds and one re-armable setTimeout.
 */
import { performance } from 'node:perf_hooks';
import type { Clock } from './types.js';

/** Longest single setTimeout delay Node accepts; longer waits re-arm in steps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class SystemClock implements Clock {
  #timer: NodeJS.Timeout | undefined;
  #unref: boolean;

  /** `unref`: the armed timer does not keep the process alive on its own. */
  constructor(options: { unref?: boolean } = {}) {
    this.#unref = options.unref ?? false;
  }

  now(): number {
    return performance.now();
  }

  setTimer(at: number, cb: () => void): void {
    this.clearTimer();
    const delay = Math.max(0, at - this.now());
    const step = Math.min(delay, MAX_TIMEOUT_MS);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.now() + 1 < at) this.setTimer(at, cb);
      else cb();
    }, step);
    if (this.#unref) this.#timer.unref();
  }

  clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
