/**
 * Channels that came up without a binding, looked at again a little later (issue 17). A member
 * that registers does its handshake and sends its BU right after it (queued until the channel is
 * up), so a Binding Refresh Request on every new channel without a binding doubled the signaling
 * of each registration for nothing. What the BRR is for is the member that believes it is
 * registered while this home agent lost its binding (a restart without [home] state, or a store
 * that missed it): that member sends no BU by itself until its next refresh. So the BRR goes only
 * when no BU has made a binding UNBOUND_GRACE_MS after the handshake.
 *
 * A FIFO: every entry waits the same time, so the queue is in deadline order. Bounded: beyond
 * MAX_WAITING the oldest entry is looked at at once (a BRR sent early costs one message; the
 * member ignores it while it is registering anyway, RFC 6275 §11.7.4).
 */
import type { PeerSession } from '../../crypto/endpoint.js';
import type { Locator } from '../../protocol/locator.js';

/** The wait: one initial BA timeout (RFC 6275 INITIAL_BINDACK_TIMEOUT, 1 s) after the handshake. */
export const UNBOUND_GRACE_MS = 1_000;
/** Channels waiting at most (~1 s of handshakes at a high registration rate). */
export const MAX_WAITING = 16_384;

interface Waiting {
  session: PeerSession;
  locator: Locator;
  at: number;
}

export class UnboundChannels {
  #queue: Waiting[] = [];
  #head = 0;

  /** Channels waiting. */
  get size(): number {
    return this.#queue.length - this.#head;
  }

  /** A channel came up with `session` at `locator` and no binding: look again later. */
  add(session: PeerSession, locator: Locator, now: number): void {
    this.#queue.push({ session, locator, at: now + UNBOUND_GRACE_MS });
    if (this.size > MAX_WAITING) this.#queue[this.#head]!.at = now;
  }

  /** When the next one is due (Infinity when none). */
  nextDeadline(): number {
    return this.size > 0 ? this.#queue[this.#head]!.at : Infinity;
  }

  /** The channels due at `now`, oldest first (closed ones left out). */
  due(now: number): { session: PeerSession; locator: Locator }[] {
    const out: { session: PeerSession; locator: Locator }[] = [];
    const q = this.#queue;
    while (this.#head < q.length && q[this.#head]!.at <= now) {
      const w = q[this.#head++]!;
      if (!w.session.closed) out.push({ session: w.session, locator: w.locator });
    }
    if (this.#head === q.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > q.length) {
      this.#queue = q.slice(this.#head);
      this.#head = 0;
    }
    return out;
  }
}
