/**
 * Per-source rate limit for handshake messages, checked before any cryptography (the job of
 * wireguard-go's `ratelimiter/`): a token bucket per source IP address (not port, so a flood
 * cannot dodge it by changing ports), HANDSHAKES_PER_SECOND tokens per second up to
 * HANDSHAKE_BURST. Cookies (src/crypto/handshake.ts) bound the Diffie-Hellman work of floods from
 * many spoofed sources; this bounds what one source costs, so a single flooding host cannot
 * saturate the daemon with MAC1 checks and cookie replies and crowd out honest handshakes.
 *
 * Memory: at most MAX_TRACKED_SOURCES buckets. Full buckets (idle sources) are swept when the
 * table is full; if it is still full, new sources are refused until the next sweep frees room
 * (an honest initiator retransmits). Pure: `now` in, verdict out.
 */

/** Sustained handshake messages per second from one IP address (wireguard-go: 20). */
export const HANDSHAKES_PER_SECOND = 20;
/** Burst allowance per IP address (wireguard-go: 5); mip6 allows a few more for NATs. */
export const HANDSHAKE_BURST = 10;
/** Bound on the table (each entry is a string key and two numbers). */
export const MAX_TRACKED_SOURCES = 65_536;

interface Bucket {
  tokens: number;
  at: number;
}

export class HandshakeRateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #max: number;

  constructor(rate = HANDSHAKES_PER_SECOND, burst = HANDSHAKE_BURST, max = MAX_TRACKED_SOURCES) {
    this.#rate = rate;
    this.#burst = burst;
    this.#max = max;
  }

  /** Number of sources tracked (for tests and status). */
  get size(): number {
    return this.#buckets.size;
  }

  /** True when a handshake message from `sourceAddress` may be processed at `now` (ms). */
  allow(sourceAddress: string, now: number): boolean {
    let b = this.#buckets.get(sourceAddress);
    if (b === undefined) {
      if (this.#buckets.size >= this.#max) this.#sweep(now);
      if (this.#buckets.size >= this.#max) return false;
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(sourceAddress, b);
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) * this.#rate) / 1000);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forgets sources whose bucket has refilled completely (they cost nothing to recreate). */
  #sweep(now: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) * this.#rate) / 1000 >= this.#burst) this.#buckets.delete(k);
    }
  }
}
