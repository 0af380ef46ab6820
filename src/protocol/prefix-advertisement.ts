/**
 * Home agent: when to send each registered member a Mobile Prefix Advertisement (RFC 6275
 * §10.6.2, §11.4.3). Sans-IO: the driver tells it about bindings and changes, calls `poll(now)`
 * at `nextDeadline()` and sends one MPA per returned action, built from its current discovery
 * configuration with the action's identifier.
 *
 * Two reasons to send unsolicited:
 *   - a change (a reloaded ha.toml changed the prefixes or the home agents list): `advertise`
 *     sends at once to every member and retransmits with the same identifier after
 *     PREFIX_ADV_TIMEOUT, doubling, at most PREFIX_ADV_RETRIES times, until the member's next BU
 *     acknowledges it (`onBindingUpdate`) or its binding goes (`forget`);
 *   - the periodic schedule: after each MPA to a member (solicited, unsolicited or periodic)
 *     the next one is due at now + RandomDelay, where
 *       MaxScheduleDelay = min(MaxMobPfxAdvInterval, the home prefix's preferred lifetime)
 *       RandomDelay      = MinMobPfxAdvInterval + random * |MaxScheduleDelay - MinMobPfxAdvInterval|
 *     so members hear from the HA at least every MaxMobPfxAdvInterval and MPAs to one member are
 *     at least MinMobPfxAdvInterval apart; the jitter comes from the injected random source.
 *     A periodic MPA is unsolicited too and is retransmitted the same way until acknowledged.
 */
import { DeadlineHeap } from '../util/deadline-heap.js';
import type { SizedOwnerStore } from '../util/owner-store.js';
import { systemRandom, type RandomSource } from '../util/random-source.js';
import {
  MAX_MOBPFX_ADV_INTERVAL_S,
  MIN_MOBPFX_ADV_INTERVAL_S,
  PREFIX_ADV_RETRIES,
  PREFIX_ADV_TIMEOUT_MS,
} from './constants.js';

export interface PrefixAdvertiserOptions {
  /** Jitter of the periodic schedule and MPA identifiers (default systemRandom). */
  random?: RandomSource | undefined;
  /** MinMobPfxAdvInterval in seconds (default 600, RFC 6275 §13). */
  minIntervalSeconds?: number | undefined;
  /** MaxMobPfxAdvInterval in seconds (default 86 400, RFC 6275 §13). */
  maxIntervalSeconds?: number | undefined;
  /**
   * Where each member's schedule is kept, by binding key (default: a Map of the advertiser's
   * own; a home agent keeps it on the binding entry, issue 17).
   */
  store?: SizedOwnerStore<string, PrefixAdvertisementState> | undefined;
}

/** One MPA to send: to the member of binding `key`, with this identifier. */
export interface PrefixAdvertisementAction {
  key: string;
  identifier: number;
  why: 'change' | 'periodic' | 'retransmission';
}

/** What the advertiser keeps per member (opaque to its users; see PrefixAdvertiserOptions.store). */
export interface PrefixAdvertisementState {
  /** When the next periodic MPA is due: whole ms, relative to the advertiser's first such time
   *  (a small integer, not a boxed double per member, issue 17); PrefixAdvertiser.#at. */
  mpaAt: number;
  /** An unsolicited MPA not yet acknowledged by a BU. */
  mpaPending: { identifier: number; sent: number; timeoutMs: number; nextAt: number } | undefined;
}

export class PrefixAdvertiser {
  readonly #random: RandomSource;
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #members: SizedOwnerStore<string, PrefixAdvertisementState>;
  /**
   * Each member's next deadline (its periodic MPA or a retransmission): poll and nextDeadline
   * look at the members due, not at all of them (100 000 bindings, issue 17). Lazy: a member's
   * entry is live while its time is the member's current deadline.
   */
  readonly #heap = new DeadlineHeap<string>();
  readonly #live = (key: string, at: number): boolean => {
    const m = this.#members.get(key);
    return m !== undefined && this.#deadlineOf(m) === at;
  };
  /** The home prefix's preferred lifetime (s): caps the periodic interval (§10.6.2). */
  #preferredLifetimeS = Infinity;

  constructor(opts: PrefixAdvertiserOptions = {}) {
    this.#random = opts.random ?? systemRandom;
    this.#members = opts.store ?? new Map();
    this.#minMs = (opts.minIntervalSeconds ?? MIN_MOBPFX_ADV_INTERVAL_S) * 1000;
    this.#maxMs = (opts.maxIntervalSeconds ?? MAX_MOBPFX_ADV_INTERVAL_S) * 1000;
  }

  /** The advertised home prefix's preferred lifetime in seconds (0xffffffff = infinite). */
  setPreferredLifetime(seconds: number): void {
    this.#preferredLifetimeS = seconds >= 0xffff_ffff ? Infinity : seconds;
  }

  /** Delay to the next periodic MPA of a member (RFC 6275 §10.6.2 RandomDelay), in ms. */
  randomDelay(): number {
    const maxSchedule = Math.min(this.#maxMs, this.#preferredLifetimeS * 1000);
    return this.#minMs + Math.floor(this.#random() * Math.abs(maxSchedule - this.#minMs));
  }

  /** The first periodic time (mpaAt is relative to it). */
  #base = NaN;

  /** mpaAt of the next periodic MPA after `now`: whole ms (never sooner than the random delay),
   *  relative to #base. */
  #periodicFrom(now: number): number {
    const at = Math.ceil(now + this.randomDelay());
    if (Number.isNaN(this.#base)) this.#base = at;
    return at - this.#base;
  }

  /** When the member's next periodic MPA is due. */
  #at(m: PrefixAdvertisementState): number {
    return m.mpaAt + this.#base;
  }

  /** When a member has work next: its periodic MPA, or the retransmission of a pending one. */
  #deadlineOf(m: PrefixAdvertisementState): number {
    return Math.min(this.#at(m), m.mpaPending?.nextAt ?? Infinity);
  }

  /** A 16-bit MPA identifier. */
  identifier(): number {
    return Math.floor(this.#random() * 0x10000) & 0xffff;
  }

  /** A member's binding exists (created or refreshed): it joins the periodic schedule. */
  onRegistered(key: string, now: number): void {
    if (this.#members.get(key) === undefined) {
      const m: PrefixAdvertisementState = {
        mpaAt: this.#periodicFrom(now),
        mpaPending: undefined,
      };
      this.#members.set(key, m);
      this.#schedule(key, m);
    }
  }

  /**
   * A BU of the member was accepted: it acknowledges an outstanding unsolicited MPA (RFC 6275
   * §11.4.3). Returns true when there was one.
   */
  onBindingUpdate(key: string, now: number): boolean {
    const m = this.#members.get(key);
    this.onRegistered(key, now);
    if (m?.mpaPending === undefined) return false;
    m.mpaPending = undefined;
    this.#schedule(key, m);
    return true;
  }

  /** A solicited MPA went to the member: the periodic one is rescheduled from now. */
  onSolicitedSent(key: string, now: number): void {
    const m = this.#members.get(key);
    if (m === undefined) return;
    m.mpaAt = this.#periodicFrom(now);
    this.#schedule(key, m);
  }

  /** Pushes the member's current deadline (its older entries go stale). */
  #schedule(key: string, m: PrefixAdvertisementState): void {
    this.#heap.push(this.#deadlineOf(m), key);
    if (this.#heap.size > 2 * this.#members.size + 64) this.#heap.compact(this.#live);
  }

  /** The member's binding is gone: nothing more for it. */
  forget(key: string): void {
    this.#members.delete(key);
  }

  /** Outstanding unsolicited MPA of a member (for status and tests). */
  pending(key: string): boolean {
    return this.#members.get(key)?.mpaPending !== undefined;
  }

  /** A change to announce: an unsolicited MPA to every member in `keys`, now. */
  advertise(keys: Iterable<string>, now: number): PrefixAdvertisementAction[] {
    const out: PrefixAdvertisementAction[] = [];
    for (const key of keys) {
      this.onRegistered(key, now);
      // A store may keep state only for members it knows (a home agent: its bindings).
      const m = this.#members.get(key);
      if (m !== undefined) out.push(this.#unsolicited(key, m, now, 'change'));
    }
    return out;
  }

  #unsolicited(
    key: string,
    m: PrefixAdvertisementState,
    now: number,
    why: 'change' | 'periodic',
  ): PrefixAdvertisementAction {
    const identifier = this.identifier();
    m.mpaPending = {
      identifier,
      sent: 0,
      timeoutMs: PREFIX_ADV_TIMEOUT_MS,
      nextAt: now + PREFIX_ADV_TIMEOUT_MS,
    };
    m.mpaAt = this.#periodicFrom(now);
    this.#schedule(key, m);
    return { key, identifier, why };
  }

  /** Retransmissions and periodic MPAs due at `now`. */
  poll(now: number): PrefixAdvertisementAction[] {
    const out: PrefixAdvertisementAction[] = [];
    const done = new Set<string>();
    while (this.#heap.peekLive(this.#live) <= now) {
      const key = this.#heap.pop();
      const m = this.#members.get(key);
      if (m === undefined || done.has(key)) continue;
      done.add(key);
      const p = m.mpaPending;
      if (p !== undefined && now >= p.nextAt) {
        if (p.sent >= PREFIX_ADV_RETRIES) {
          m.mpaPending = undefined; // given up; the periodic schedule tries again later
        } else {
          p.sent++;
          p.timeoutMs *= 2;
          p.nextAt = now + p.timeoutMs;
          out.push({ key, identifier: p.identifier, why: 'retransmission' });
        }
      }
      if (now >= this.#at(m) && m.mpaPending === undefined) {
        out.push(this.#unsolicited(key, m, now, 'periodic'));
      } else if (now >= this.#at(m)) {
        m.mpaAt = this.#periodicFrom(now); // a change MPA is still being retransmitted
      }
    }
    // After the loop: a deadline still at or before `now` waits for the next poll.
    for (const key of done) {
      const m = this.#members.get(key);
      if (m !== undefined) this.#heap.push(this.#deadlineOf(m), key);
    }
    return out;
  }

  nextDeadline(): number {
    return this.#heap.peekLive(this.#live);
  }
}
