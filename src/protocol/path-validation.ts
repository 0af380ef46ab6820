/**
 * Path validation of a member's locator (DESIGN.md §4: "a locator changes only on an
 * authenticated BU ... an unauthenticated packet from a new address never redirects traffic").
 *
 * An authenticated BU proves who sent it, not where that member can be reached: a member holds
 * its channel keys and can send a BU from a spoofed outer source (a third party's IP:port), and
 * the home agent would then stream the member's traffic at that third party. So a locator only
 * carries data once the member has shown that it receives what is sent there: the home agent
 * sends a PATH_CHALLENGE (a fresh random token, sealed in the member's channel as the HA's own
 * signaling) to the new locator, and switches the binding's data path when the PATH_RESPONSE
 * echoing that token comes back on the same channel (from wherever: the token is the proof).
 * QUIC's path validation (RFC 9000 §8.2) works the same way. Until then the driver may send at
 * most UNVALIDATED_BUDGET_FACTOR times the bytes it received from that locator there (QUIC's
 * anti-amplification limit, RFC 9000 §8.1, so a real move loses no round trip of data), then
 * falls back to the previously validated locator, if any; signaling replies (the BA, the
 * challenge) go to the BU's source, being no larger than what arrived from there. A locator
 * is also validated by the channel handshake itself: its response went there, and data under
 * the new keys proves it was received (markValidated).
 *
 * Messages (channel payload of kind SIGNALING, not an IPv6 packet: byte 0 has no version 6):
 *   PATH_CHALLENGE: 0x10 | token (8)      PATH_RESPONSE: 0x11 | token (8)
 *
 * Sans-IO: the driver feeds BUs, responses and the time; this returns tokens to send and says
 * which locator was validated. Owners (channel sessions) remember their last few validated
 * locators, so refreshes and moves back to a known network cost nothing.
 */
import { constantTimeEqual } from '../util/bytes.js';
import type { OwnerStore } from '../util/owner-store.js';

/** Channel payload type of a path challenge (home agent -> member). */
export const PATH_CHALLENGE = 0x10;
/** Channel payload type of a path response (member -> home agent). */
export const PATH_RESPONSE = 0x11;
/** Token length: 64 random bits, as QUIC's PATH_CHALLENGE (RFC 9000 §19.17). */
export const PATH_TOKEN_LEN = 8;
/** Type byte + token. */
export const PATH_MESSAGE_LEN = 1 + PATH_TOKEN_LEN;
/** First wait for a challenge's response before sending it again (ms), doubling after that. */
export const PATH_CHALLENGE_RETRY_MS = 250;
/**
 * Sends of one challenge at most: a spoofed BU gets its victim the BA and these few small
 * datagrams, never more than UNVALIDATED_BUDGET_FACTOR times the BU's size. Unanswered, the
 * challenge is abandoned one more wait after the last send; the member's next BU (or the
 * Binding Refresh Request its data from the new locator brings) starts again.
 */
export const PATH_CHALLENGE_MAX_SENDS = 3;
/** Bytes that may go to an unvalidated locator per byte received from it (RFC 9000 §8.1). */
export const UNVALIDATED_BUDGET_FACTOR = 3;
/** Validated locators remembered per owner (its most recent networks). */
export const VALIDATED_PER_OWNER = 4;

export interface PathMessage {
  type: typeof PATH_CHALLENGE | typeof PATH_RESPONSE;
  token: Uint8Array;
}

/** Encodes a path challenge or response. */
export function encodePathMessage(type: PathMessage['type'], token: Uint8Array): Uint8Array {
  if (token.length !== PATH_TOKEN_LEN) throw new RangeError('path token must be 8 bytes');
  const out = new Uint8Array(PATH_MESSAGE_LEN);
  out[0] = type;
  out.set(token, 1);
  return out;
}

/** The path message at buf[off, off + len), or undefined when it is not one. */
export function decodePathMessage(
  buf: Uint8Array,
  off: number,
  len: number,
): PathMessage | undefined {
  if (len !== PATH_MESSAGE_LEN) return undefined;
  const type = buf[off];
  if (type !== PATH_CHALLENGE && type !== PATH_RESPONSE) return undefined;
  return { type, token: buf.slice(off + 1, off + PATH_MESSAGE_LEN) };
}

interface Pending {
  locator: string;
  token: Uint8Array;
  sentAt: number;
  sends: number;
}

function retryAt(p: Pending): number {
  return p.sentAt + PATH_CHALLENGE_RETRY_MS * 2 ** (p.sends - 1);
}

/** What the validator keeps per owner (opaque to its users; see PathValidator's store). */
export interface PathValidationState {
  /** Most recent last; one locator (the usual case) as itself, not in a list (issue 17). */
  validated: string | string[] | undefined;
  pending: Pending | undefined;
}

/** True when `locator` is among the validated ones of `s`. */
function validatedHas(s: PathValidationState, locator: string): boolean {
  const v = s.validated;
  return typeof v === 'string' ? v === locator : v !== undefined && v.includes(locator);
}

/** What the driver must send: a challenge `token` for `owner` to `locator`. */
export interface ChallengeToSend<Owner> {
  owner: Owner;
  locator: string;
  token: Uint8Array;
}

export class PathValidator<Owner> {
  readonly #owners: OwnerStore<Owner, PathValidationState>;
  readonly #pendingOwners = new Set<Owner>();
  readonly #random: (n: number) => Uint8Array;

  /**
   * `random(n)`: n fresh unpredictable bytes (the tokens must not be guessable). `store`: where
   * each owner's state is kept (default: a Map of this validator's own).
   */
  constructor(
    random: (n: number) => Uint8Array,
    store: OwnerStore<Owner, PathValidationState> = new Map(),
  ) {
    this.#random = random;
    this.#owners = store;
  }

  /** True when `locator` (a locator's text form) is validated for `owner`. */
  isValidated(owner: Owner, locator: string): boolean {
    const s = this.#owners.get(owner);
    return s !== undefined && validatedHas(s, locator);
  }

  /** The locator being validated for `owner`, if any. */
  pendingLocator(owner: Owner): string | undefined {
    return this.#owners.get(owner)?.pending?.locator;
  }

  /**
   * A BU from `locator` was accepted. Returns the challenge to send now (a new one, or the
   * pending one again when it is due), or undefined when the locator is validated already or
   * the pending challenge was sent less than PATH_CHALLENGE_RETRY_MS ago.
   */
  onBindingUpdate(owner: Owner, locator: string, now: number): ChallengeToSend<Owner> | undefined {
    const s = this.#stateOf(owner);
    if (validatedHas(s, locator)) {
      // Back on a known path: whatever was being validated is no longer where the member is.
      this.#setPending(owner, s, undefined);
      return undefined;
    }
    const p = s.pending;
    if (p !== undefined && p.locator === locator) {
      if (now < retryAt(p) || p.sends >= PATH_CHALLENGE_MAX_SENDS) return undefined;
      p.sentAt = now;
      p.sends++;
      return { owner, locator, token: p.token };
    }
    const token = this.#random(PATH_TOKEN_LEN);
    this.#setPending(owner, s, { locator, token, sentAt: now, sends: 1 });
    return { owner, locator, token };
  }

  /** The owner's state, made empty if it has none. What the store gives back after `set` is
   *  the state (a store may keep the fields in a record of its own, ha-channel.ts). */
  #stateOf(owner: Owner): PathValidationState {
    const s = this.#owners.get(owner);
    if (s !== undefined) return s;
    this.#owners.set(owner, { validated: undefined, pending: undefined });
    return this.#owners.get(owner)!;
  }

  #setPending(owner: Owner, s: PathValidationState, p: Pending | undefined): void {
    s.pending = p;
    if (p === undefined) this.#pendingOwners.delete(owner);
    else this.#pendingOwners.add(owner);
  }

  /**
   * A PATH_RESPONSE from `owner`: the locator it validates, or undefined when it answers no
   * pending challenge of this owner (stale, forged or replayed: the caller counts a drop).
   */
  onResponse(owner: Owner, token: Uint8Array): string | undefined {
    const s = this.#owners.get(owner);
    const p = s?.pending;
    if (s === undefined || p === undefined || !constantTimeEqual(p.token, token)) return undefined;
    this.markValidated(owner, p.locator);
    return p.locator;
  }

  /**
   * `locator` proved reachable another way (the channel handshake whose response was sent
   * there has been confirmed by data under its keys).
   */
  markValidated(owner: Owner, locator: string): void {
    const s = this.#stateOf(owner);
    if (s.pending?.locator === locator) this.#setPending(owner, s, undefined);
    const v = s.validated;
    if (v === undefined || v === locator) {
      s.validated = locator;
      return;
    }
    // A new array of the exact length (concat): one grown by push keeps room for 17 entries,
    // ~150 B per member at a home agent of 100 000 (issue 17).
    const kept = typeof v === 'string' ? [v] : v.filter((l) => l !== locator);
    s.validated = kept.slice(Math.max(0, kept.length + 1 - VALIDATED_PER_OWNER)).concat(locator);
  }

  /** Forgets an owner (its binding and channel are gone). */
  forget(owner: Owner): void {
    this.#owners.delete(owner);
    this.#pendingOwners.delete(owner);
  }

  /** When poll() has work next (Infinity: none). O(pending challenges). */
  nextDeadline(): number {
    let d = Infinity;
    for (const owner of this.#pendingOwners) {
      const p = this.#owners.get(owner)?.pending;
      if (p !== undefined) d = Math.min(d, retryAt(p));
    }
    return d;
  }

  /** Challenges due for a resend; abandons those sent PATH_CHALLENGE_MAX_SENDS times. */
  poll(now: number): ChallengeToSend<Owner>[] {
    const out: ChallengeToSend<Owner>[] = [];
    for (const owner of [...this.#pendingOwners]) {
      const s = this.#owners.get(owner);
      const p = s?.pending;
      if (s === undefined || p === undefined) {
        this.#pendingOwners.delete(owner);
        continue;
      }
      if (now < retryAt(p)) continue;
      if (p.sends >= PATH_CHALLENGE_MAX_SENDS) {
        this.#setPending(owner, s, undefined);
        continue;
      }
      p.sentAt = now;
      p.sends++;
      out.push({ owner, locator: p.locator, token: p.token });
    }
    return out;
  }
}
