/**
 * FakeClock: deterministic time for simulations. One timeline, any number of per-node Clock
 * views (each with its own single re-armable timer, as the Clock interface says), plus
 * one-shot scheduling for other fakes (FakeNetwork deliveries). Nothing runs until
 * advance(): due events run in order of (time, arming order), with now() equal to the
 * event's time while it runs; events armed while advancing run too if they fall due.
 */
import type { Clock } from '../../src/io/types.js';

interface TimelineEvent {
  at: number;
  seq: number;
  cb: () => void;
  cancelled: boolean;
}

/** One node's view of a FakeClock: its own single timer on the shared timeline. */
class ClockView implements Clock {
  #owner: FakeClock;
  #event: TimelineEvent | undefined;

  constructor(owner: FakeClock) {
    this.#owner = owner;
  }

  now(): number {
    return this.#owner.now();
  }

  setTimer(at: number, cb: () => void): void {
    this.clearTimer();
    const ev = this.#owner.scheduleEvent(at, () => {
      if (this.#event === ev) this.#event = undefined;
      cb();
    });
    this.#event = ev;
  }

  clearTimer(): void {
    if (this.#event !== undefined) this.#event.cancelled = true;
    this.#event = undefined;
  }

  /** The armed deadline, or undefined. */
  get deadline(): number | undefined {
    return this.#event?.at;
  }
}

export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #events: TimelineEvent[] = [];
  #own: ClockView;

  constructor(start = 0) {
    this.#now = start;
    this.#own = new ClockView(this);
  }

  now(): number {
    return this.#now;
  }

  /** This clock's own single timer (for code that takes the FakeClock itself as its Clock). */
  setTimer(at: number, cb: () => void): void {
    this.#own.setTimer(at, cb);
  }

  clearTimer(): void {
    this.#own.clearTimer();
  }

  /** A Clock for another node on the same timeline, with its own single timer. */
  createClock(): Clock & { readonly deadline: number | undefined } {
    return new ClockView(this);
  }

  /** One-shot callback at `at` (past times run at the next advance); returns a cancel function. */
  schedule(at: number, cb: () => void): () => void {
    const ev = this.scheduleEvent(at, cb);
    return () => {
      ev.cancelled = true;
    };
  }

  /** @internal shared by the views. */
  scheduleEvent(at: number, cb: () => void): TimelineEvent {
    const ev: TimelineEvent = {
      at: Math.max(at, this.#now),
      seq: this.#seq++,
      cb,
      cancelled: false,
    };
    // Keep sorted by (at, seq): insert after every event with at <= ev.at.
    let lo = 0;
    let hi = this.#events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#events[mid]?.at ?? 0) <= ev.at) lo = mid + 1;
      else hi = mid;
    }
    this.#events.splice(lo, 0, ev);
    return ev;
  }

  /** Number of pending (not cancelled) events. */
  get pending(): number {
    return this.#events.filter((e) => !e.cancelled).length;
  }

  /** Time of the next pending event, or undefined. */
  nextDeadline(): number | undefined {
    return this.#events.find((e) => !e.cancelled)?.at;
  }

  /**
   * Moves time forward by `ms`, running every event that falls due, in order. Throws after
   * `maxEvents` events (a timer re-arming itself at the same instant forever).
   */
  advance(ms: number, maxEvents = 1_000_000): void {
    if (!(ms >= 0)) throw new RangeError(`advance(ms) needs ms >= 0, got ${ms}`);
    const target = this.#now + ms;
    let ran = 0;
    for (;;) {
      const ev = this.#events[0];
      if (ev === undefined || ev.at > target) break;
      this.#events.shift();
      if (ev.cancelled) continue;
      if (++ran > maxEvents) throw new Error(`FakeClock.advance: more than ${maxEvents} events`);
      this.#now = ev.at;
      ev.cb();
    }
    this.#now = target;
  }

  /** Advances to each next event until none is left within `limitMs`; returns time spent. */
  runUntilIdle(limitMs = 3_600_000): number {
    const start = this.#now;
    for (;;) {
      const next = this.nextDeadline();
      if (next === undefined || next - start > limitMs) break;
      this.advance(next - this.#now);
    }
    return this.#now - start;
  }
}
