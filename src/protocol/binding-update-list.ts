/**
 * Mobile node Binding Update List (RFC 6275 §11.1, digest §2.2): what the MN has told each
 * destination (its HA here; CN entries reuse the same shape), plus the MAX_UPDATE_RATE limiter
 * (RFC 6275 §11.8: at most 3 BUs per second to one destination).
 *
 * The list is plain data: the registration engine (mobile-node-registration.ts) owns the
 * transitions and keeps its HA entry up to date; `mip6 status` and a CN engine read it.
 */
import { MAX_UPDATE_RATE, UPDATE_RATE_WINDOW_MS } from './constants.js';

/** One Binding Update List entry (RFC 6275 §11.1). */
export interface BindingUpdateListEntry {
  /** The HA or CN the BUs go to. */
  destination: string;
  homeAddress: string;
  /** CoA last sent (IPv6, IPv4-mapped for IPv4), null when none. */
  careOfAddress: string | null;
  /** Lifetime asked for in the last BU (s). */
  requestedLifetimeSeconds: number;
  /** Lifetime of the acknowledged binding (s), 0 when none. */
  grantedLifetimeSeconds: number;
  /** Absolute expiry of the acknowledged binding (ms); 0 when none. */
  expiresAt: number;
  /** Highest Sequence # sent; the next BU must be newer (RFC 6275 §11.7.1). null before any. */
  lastSequenceSent: number | null;
  /** Time the last BU was sent (ms), null before any. */
  lastSentAt: number | null;
  /** Retransmissions in the current attempt. */
  retransmissions: number;
  /** Set when the destination said it does not speak MIPv6 (BE status 2, ICMP Parameter Problem). */
  stopSending: boolean;
}

/** Key of an entry: destination + home address. */
function keyOf(destination: string, homeAddress: string): string {
  return `${destination}|${homeAddress}`;
}

/** The list: one entry per (destination, home address). */
export class BindingUpdateList {
  readonly #entries = new Map<string, BindingUpdateListEntry>();

  /** Entry for (destination, homeAddress), or undefined. */
  get(destination: string, homeAddress: string): BindingUpdateListEntry | undefined {
    return this.#entries.get(keyOf(destination, homeAddress));
  }

  /** Inserts or replaces an entry. */
  set(entry: BindingUpdateListEntry): void {
    this.#entries.set(keyOf(entry.destination, entry.homeAddress), entry);
  }

  /** Removes an entry; true when it existed. */
  delete(destination: string, homeAddress: string): boolean {
    return this.#entries.delete(keyOf(destination, homeAddress));
  }

  /** All entries. */
  entries(): IterableIterator<BindingUpdateListEntry> {
    return this.#entries.values();
  }
}

/**
 * MAX_UPDATE_RATE limiter for one destination: at most `max` sends in any `windowMs` window
 * (RFC 6275 §11.8, §12).
 */
export class UpdateRateLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  /**
   * The last `max` send times, a ring of exactly that length (a home agent keeps one per active
   * member, issue 17): written from 0 up, then over the oldest, which is at #head once full.
   */
  readonly #sent: number[];
  #count = 0;
  #head = 0;
  /** When the owner last asked (PerMemberRateLimiter forgets members idle for a window). */
  lastAt = 0;

  /** Defaults: 3 per 1000 ms. */
  constructor(max = MAX_UPDATE_RATE, windowMs = UPDATE_RATE_WINDOW_MS) {
    this.#max = max;
    this.#windowMs = windowMs;
    this.#sent = new Array<number>(max).fill(0);
  }

  /** Earliest time a send is allowed (ms); 0 when one is allowed at any time. */
  nextAllowedAt(): number {
    if (this.#count < this.#max) return 0;
    return (this.#sent[this.#head] ?? 0) + this.#windowMs;
  }

  /** True when a send is allowed at `now`. */
  allows(now: number): boolean {
    return now >= this.nextAllowedAt();
  }

  /** Records a send at `now`. */
  record(now: number): void {
    if (this.#max <= 0) return;
    this.#sent[this.#head] = now;
    this.#head = (this.#head + 1) % this.#max;
    if (this.#count < this.#max) this.#count++;
  }
}

/**
 * One UpdateRateLimiter per member (the HA's side of RFC 6275 §11.8): `allow(member, now)`
 * records and answers whether that member's BU may be processed. Members idle for a window are
 * pruned once the map holds `sweepAbove`, at most once per window (whoever's BU comes then), so
 * its size stays bounded by the members active in the last window (or `sweepAbove`) and a sweep
 * never runs per BU.
 */
export class PerMemberRateLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #byMember = new Map<string, UpdateRateLimiter>();
  readonly #sweepAbove: number;
  #sweptAt = -Infinity;

  constructor(max: number, windowMs = UPDATE_RATE_WINDOW_MS, sweepAbove = 1024) {
    this.#max = max;
    this.#windowMs = windowMs;
    this.#sweepAbove = sweepAbove;
  }

  /** Number of members remembered. */
  get size(): number {
    return this.#byMember.size;
  }

  /**
   * Forgets the members idle for a window, at most once per window: from the driver's timer at
   * nextDeadline() (so no member keeps a limiter after its BUs stop, issue 17: memory per
   * binding), and on a BU while the map holds `sweepAbove`.
   */
  sweep(now: number): void {
    if (now - this.#sweptAt < this.#windowMs) return;
    this.#sweptAt = now;
    for (const [k, v] of this.#byMember) {
      if (now - v.lastAt >= this.#windowMs) this.#byMember.delete(k);
    }
  }

  /** When sweep() has work: a window after the last one; Infinity when no member is kept. */
  nextDeadline(): number {
    return this.#byMember.size === 0 ? Infinity : this.#sweptAt + this.#windowMs;
  }

  allow(member: string, now: number): boolean {
    if (this.#byMember.size >= this.#sweepAbove) this.sweep(now);
    let r = this.#byMember.get(member);
    if (r === undefined) {
      r = new UpdateRateLimiter(this.#max, this.#windowMs);
      this.#byMember.set(member, r);
    }
    r.lastAt = now;
    if (!r.allows(now)) return false;
    r.record(now);
    return true;
  }
}
