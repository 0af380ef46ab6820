/**
 * The wall clock: Unix milliseconds, read at every use. Certificate validity and handshake
 * timestamps need real time as it is now, after any NTP step; timers run on the monotonic clock
 * (io/clock.ts) instead. Cores take a `() => number` so tests inject a fake one.
 */
export type WallClock = () => number;

/** The system's wall clock (Date.now): steps with NTP, may go backwards. */
export const systemWallClock: WallClock = () => Date.now();
