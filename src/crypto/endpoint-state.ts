/**
 * What a SecureEndpoint holds, shared by its handshake (handshake-initiate.ts,
 * handshake-receive.ts), transport (transport.ts) and timer (timers.ts) code: the options, the
 * sessions and their SPI indexes, the timer queue, the anti-replay timestamps and the drop
 * counters, with the small bookkeeping every part uses (finding or making a session, counting a
 * drop, fresh SPIs, retiring keys). Not exported from endpoint.ts: the façade there is the API.
 */
import { byteString } from '../util/bytes.js';
import { DeadlineHeap } from '../util/deadline-heap.js';
import { systemWallClock, type WallClock } from '../util/wall-clock.js';
import { SodiumBatchAead, type BatchAead } from './aead.js';
import type { MemberCertificate, Role } from './certificate.js';
import { CookieChecker, mac1Key, TIMESTAMP_LEN } from './handshake.js';
import type { KeyPair } from './noise.js';
import { randomUint32 } from './random.js';
import {
  NO_DROPS,
  PeerSession,
  zeroDrops,
  type DropCounters,
  type DropReason,
  type Keypair,
  type ReceiveResult,
} from './session.js';
import { DEFAULT_TIMERS, type ChannelTimers } from './timers.js';
import { TransportScratch } from './transport.js';

export interface EndpointOptions {
  staticKey: KeyPair;
  certificate: MemberCertificate;
  authorityPublicKey: Uint8Array;
  allowedPeerRoles: readonly Role[];
  /**
   * True for a peer key that is revoked (a home agent's revocation list, reloaded on SIGHUP):
   * checked with the certificate in every handshake, so a revoked member's initiation or
   * response is dropped as 'revoked' (the caller closes its existing session). Default: none.
   */
  isRevoked?: (publicKey: Uint8Array) => boolean;
  timers?: Partial<ChannelTimers>;
  /**
   * Unix-ms wall clock for certificate validity and the TAI64N timestamps of initiations, read
   * at each use so an NTP step is seen (default systemWallClock, Date.now). Timers use `now`.
   */
  wallClock?: WallClock;
  /** Test hooks for known-answer tests: ephemeral keys, timestamps (given the wall clock), SPIs. */
  ephemeral?: () => KeyPair;
  timestamp?: (wallMs: number) => Uint8Array;
  spi?: () => number;
  /** Initiations per second processed with Diffie-Hellman before the endpoint considers
   *  itself under load (when `receive()` is not told explicitly). Default
   *  DEFAULT_MAX_HANDSHAKES_PER_SECOND. */
  maxHandshakesPerSecond?: number;
  /** Data-path AEAD backend to use from the start (e.g. one shared by many endpoints in a load
   *  generator); default: a libsodium SodiumBatchAead of this endpoint's own. */
  aead?: BatchAead;
}

/**
 * Initiations a second an endpoint answers with Diffie-Hellman before it asks for cookies
 * (issue 17; was 100). From the measured cost and the real rates of a home agent:
 * - a handshake costs the HA ~0.4 ms of CPU for the crypto alone (bench/handshake-cost.ts,
 *   responder, 2026-12-05, shared box) and ~0.8 ms with its I/O in bench/ha-scale.ts at
 *   100 000 members: 500/s is at most ~0.4 of a core, what an unauthenticated flood from many
 *   (spoofed) sources can take before cookies make it prove its locator; the per-source limit
 *   (handshake-rate-limiter.ts) bounds each source far below that;
 * - an idle home agent of 100 000 members stays below it, with no cookie round trip: nothing
 *   rekeys an idle channel, so handshakes come from refreshes that find their keys expired
 *   (REJECT_AFTER_TIME 180 s): one per refresh (0.85 x 600 s: ~200/s) or, behind a NAT, one every
 *   second keepalive BU (110 s: ~455/s);
 * - a registration storm above it (100 000 in 120 s is ~830/s) gets cookie replies: one more
 *   round trip per handshake and a 64-byte reply, no more Diffie-Hellman at the HA; the storm
 *   is limited by the handshake's CPU, not by the cookies.
 * 100 put an HA of 100 000 members under cookies all the time (~830 rekeys/s before issue 17).
 */
export const DEFAULT_MAX_HANDSHAKES_PER_SECOND = 500;

export class EndpointState {
  readonly drops: DropCounters = zeroDrops();
  readonly opts: EndpointOptions;
  readonly timers: ChannelTimers;
  readonly wallClock: WallClock;
  readonly mac1KeyOwn: Uint8Array;
  /** By the peer's static public key as a byteString (PeerSession.peerKey). */
  readonly sessions = new Map<string, PeerSession>();
  /** Keys by our (local) SPI; each knows its session. */
  readonly bySpi = new Map<number, Keypair>();
  readonly pendingBySpi = new Map<number, PeerSession>();
  cookies: CookieChecker | null = null;
  aead: BatchAead;
  lastTimestamp: Uint8Array = new Uint8Array(TIMESTAMP_LEN);
  /** Latest initiation timestamp accepted per peer key whose session is closed, its 12 bytes as
   *  a 12-character string (one char per byte: strings compare as the bytes do; ~32 bytes of
   *  heap instead of ~200 for a Uint8Array, issue 17); an open session keeps its own
   *  (PeerSession.acceptedTimestamp). Kept when a session is closed, so an old initiation cannot
   *  be replayed later; bounded by the authority's membership, since only peers with a valid
   *  certificate get an entry. */
  readonly peerTimestamps = new Map<string, string>();
  loadWindowStart = -Infinity;
  loadCount = 0;
  /** Timer queue of the sessions (an entry is live while its time is the session's `timerAt`)
   *  and the sessions changed since the last poll. */
  readonly timerHeap = new DeadlineHeap<PeerSession>();
  /** The first time a session's timer was armed at: PeerSession.timerAt is relative to it. */
  timerBase = NaN;
  /** A timerHeap entry is live while its time is still its session's `timerAt`. */
  readonly timerLive = (s: PeerSession, at: number): boolean => s.timerAt === at - this.timerBase;
  touched = new Set<PeerSession>();
  /** Scratch for the single-message and batch data paths. */
  readonly scratch = new TransportScratch();

  constructor(opts: EndpointOptions) {
    this.opts = opts;
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.wallClock = opts.wallClock ?? systemWallClock;
    this.mac1KeyOwn = mac1Key(opts.staticKey.publicKey);
    this.aead = opts.aead ?? new SodiumBatchAead();
  }

  session(peerPublicKey: Uint8Array): PeerSession | undefined {
    return this.sessions.get(byteString(peerPublicKey));
  }

  /** `key`: the key as a byteString when the caller has it (one string for both maps and the
   *  session). */
  sessionFor(peerPublicKey: Uint8Array, key = byteString(peerPublicKey)): PeerSession {
    let s = this.sessions.get(key);
    if (s === undefined) {
      s = new PeerSession(key);
      this.sessions.set(key, s);
    }
    return s;
  }

  /** Counts `n` drops of `reason` at once (what the express lane dropped, SecureEndpoint). */
  dropMany(reason: DropReason, session: PeerSession, n: number): void {
    this.drops[reason] += n;
    let d = session.drops;
    if (d === NO_DROPS) session.drops = d = zeroDrops();
    (d as DropCounters)[reason] += n;
  }

  drop(reason: DropReason, session?: PeerSession): ReceiveResult {
    this.drops[reason]++;
    if (session) {
      let d = session.drops;
      if (d === NO_DROPS) session.drops = d = zeroDrops();
      (d as DropCounters)[reason]++;
    }
    return { kind: 'drop', reason };
  }

  newSpi(): number {
    for (;;) {
      const spi = this.opts.spi ? this.opts.spi() : randomUint32();
      if (spi !== 0 && !this.bySpi.has(spi) && !this.pendingBySpi.has(spi)) return spi >>> 0;
    }
  }

  retire(kp: Keypair | null): void {
    if (kp === null) return;
    kp.wipe();
    this.bySpi.delete(kp.localSpi);
  }

  abandonPending(session: PeerSession): void {
    if (session.pending) {
      session.pending.initiator.wipe();
      this.pendingBySpi.delete(session.pending.localSpi);
      session.pending = null;
    }
  }
}
