/**
 * Binding Update sequence numbers and lifetime units.
 *
 * Sequence numbers are a 16-bit free-running counter compared modulo 2^16 (RFC 6275 §9.5.1,
 * the "serial number" comparison UMIP and KAME write as `(int16_t)(s - l) > 0`): a value `s`
 * is newer than the last accepted `l` iff (s - l) mod 65536 lies in 1..32767. The other half of
 * the circle (including `s == l` and the exact opposite point 32768) counts as old.
 *
 * Lifetimes travel in units of 4 seconds (RFC 6275 §6.1.7 BU, §6.1.8 BA, §6.2.4 refresh advice).
 */

/** Sequence numbers wrap at 2^16. */
export const SEQUENCE_MODULUS = 0x10000; // RFC 6275 §6.1.7: 16-bit Sequence #
/** Half the circle: the width of the "newer" window plus one. */
export const SEQUENCE_HALF = 0x8000; // RFC 6275 §9.5.1: "less than 32768" window
/** Seconds per lifetime unit on the wire. */
export const LIFETIME_UNIT_SECONDS = 4; // RFC 6275 §6.1.7: one time unit is 4 seconds
/** Largest Lifetime field value. */
export const MAX_LIFETIME_UNITS = 0xffff; // RFC 6275 §6.1.7: 16-bit Lifetime field

function check16(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) {
    throw new RangeError(`${name} must be an integer in 0..65535, got ${v}`);
  }
}

/** (a - b) mod 65536, in 0..65535. */
export function seqDistance(a: number, b: number): number {
  check16('sequence', a);
  check16('sequence', b);
  return (a - b + SEQUENCE_MODULUS) % SEQUENCE_MODULUS;
}

/**
 * True when `s` is newer than `last` in 16-bit serial arithmetic: (s - last) mod 65536 is in
 * 1..32767 (RFC 6275 §9.5.1). Throws RangeError for values outside 0..65535 (programmer error).
 */
export function seqNewer(s: number, last: number): boolean {
  const d = seqDistance(s, last);
  return d >= 1 && d < SEQUENCE_HALF;
}

/** The sequence number after `s`, wrapping 65535 -> 0. */
export function seqNext(s: number): number {
  check16('sequence', s);
  return (s + 1) % SEQUENCE_MODULUS;
}

/** `s + n` modulo 2^16 (n may be negative). */
export function seqAdd(s: number, n: number): number {
  check16('sequence', s);
  return (((s + n) % SEQUENCE_MODULUS) + SEQUENCE_MODULUS) % SEQUENCE_MODULUS;
}

/**
 * Seconds -> 4-second lifetime units for a BU or BA (RFC 6275 §6.1.7). Rounds down, so a
 * granted lifetime never exceeds what was asked, but a positive lifetime never becomes 0 (which
 * would mean deregistration); clamps to the 16-bit field (262 140 s).
 */
export function secondsToLifetimeUnits(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds <= 0) return 0;
  const units = Math.floor(seconds / LIFETIME_UNIT_SECONDS);
  return Math.min(MAX_LIFETIME_UNITS, Math.max(1, units));
}

/** 4-second lifetime units -> seconds (RFC 6275 §6.1.7). */
export function lifetimeUnitsToSeconds(units: number): number {
  check16('lifetime units', units);
  return units * LIFETIME_UNIT_SECONDS;
}
