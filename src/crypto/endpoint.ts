/**
 * SecureEndpoint: the channel layer the home agent, mobile node and correspondent drive
 * (DESIGN.md §4). Sans-IO: datagrams and `now` (Unix milliseconds) in, datagrams and events out;
 * one timer per node, re-armed from `poll(now).nextDeadline`.
 *
 * Outbound flow:
 *   1. `connect(peerPublicKey, now)` -> initiation (type 1) for the caller to send. `poll(now)`
 *      retransmits it every REKEY_TIMEOUT with a fresh ephemeral key and timestamp, for up to
 *      REKEY_ATTEMPT_TIME.
 *   2. The response (type 2) comes back through `receive()` -> `{ kind: 'established' }`.
 *   3. `seal()` / `sealBatch()` write the data header (receiver SPI, next counter) and encrypt
 *      with the current send key through the BatchAead backend (settable with `setAead`).
 *   4. A payload send under keys past REKEY_AFTER_TIME (by the side that initiated them or
 *      connect()ed), any send past REKEY_AFTER_MESSAGES, payload received under keys nearing
 *      REJECT_AFTER_TIME, or a send with no usable keys makes `poll()` start a new handshake;
 *      the old keys stay as `previous` so packets still in flight decrypt, until
 *      REJECT_AFTER_TIME. Nothing rekeys an idle channel: its keys are wiped at
 *      REJECT_AFTER_TIME and its next send handshakes once (timers.ts, transport.ts).
 *
 * Inbound flow (`receive()`, or `openBatch()` for a batch of data messages):
 *   initiation: MAC1 -> (under load) MAC2 or a cookie reply -> Noise -> certificate (authority,
 *               validity, role, key = Noise static key) -> timestamp not too far ahead of our
 *               wall clock, and greater than the last one -> response, new keys installed ->
 *               `established` with the reply to send.
 *   response:   pending handshake by receiver SPI -> MAC1 -> Noise -> certificate -> keys.
 *   cookie:     decrypt the cookie, retransmit at once from `poll()` with MAC2.
 *   data:       keys by receiver SPI -> key age -> replay pre-check -> tag -> window update ->
 *               `data` (decrypted in place at offset 16). A responder's new keys become current
 *               on the first data message under them (key confirmation).
 * Every dropped input is counted by reason on the endpoint (and on the session when known);
 * nothing thrown. A handshake message changes no state before it authenticates (noise.ts reads
 * on a copy), so an injected one cannot break the genuine one that follows. Sessions are keyed
 * by the peer's public key, never by its locator: a peer's move needs no new handshake.
 *
 * Two clocks: `now` (any steady millisecond timeline) runs the timers; the wall clock
 * (`wallClock`, read at each use) is what certificate validity and TAI64N timestamps are checked
 * and made with, so an NTP step after start is seen.
 */
import { CryptoError } from '../util/errors.js';
import {
  DataKind,
  MessageType,
  readCounter,
  readSpi,
  SodiumBatchAead,
  type BatchAead,
} from './aead.js';
import { EndpointState, type EndpointOptions } from './endpoint-state.js';
import { initiate } from './handshake-initiate.js';
import { onCookieReply, onInitiation, onResponse } from './handshake-receive.js';
import type { DropCounters, PeerSession, ReceiveResult } from './session.js';
import { poll, type PollResult } from './timers.js';
import { onData, openBatch, seal, sealBatch, type OpenBatchOutput } from './transport.js';
import { lib } from './sodium.js';

export { DEFAULT_MAX_HANDSHAKES_PER_SECOND, type EndpointOptions } from './endpoint-state.js';

/** A channel's keys and limits as the express lane takes them (SecureEndpoint.expressView). */
export interface ExpressView {
  localSpi: number;
  remoteSpi: number;
  /** The keypair's slot in CHANNEL_KEY_POOL (session.ts: KEYPAIR_SLOT_BYTES) */
  keyChunk: Uint8Array;
  keyBase: number;
  /** Its replay window's words in the replay pool. */
  replayChunk: Uint32Array;
  replayBase: number;
  replayWords: number;
  rxForMs: number;
  rxLimit: number;
  txForMs: number;
  txLimit: number;
}
export { CHANNEL_PROLOGUE, MAX_TIMESTAMP_AHEAD_MS } from './handshake-initiate.js';
export {
  DROP_REASONS,
  PeerSession,
  type DropCounters,
  type DropReason,
  type ReceiveResult,
  type SessionStats,
} from './session.js';
export { DEFAULT_TIMERS, type ChannelTimers, type PollResult } from './timers.js';
export { OpenResult, type OpenBatchOutput } from './transport.js';

export class SecureEndpoint {
  readonly drops: DropCounters;
  private readonly opts: EndpointOptions;
  private readonly st: EndpointState;

  constructor(opts: EndpointOptions) {
    if (!lib().memcmp(opts.certificate.publicKey, opts.staticKey.publicKey)) {
      throw new CryptoError('ERR_CERT_KEY_MISMATCH', 'our certificate is not for our static key');
    }
    this.opts = opts;
    this.st = new EndpointState(opts);
    this.drops = this.st.drops;
  }

  /** The overlay authority's public key (what peer certificates must be signed with). */
  get authorityPublicKey(): Uint8Array {
    return this.opts.authorityPublicKey;
  }

  /** Replaces the data-path AEAD backend (the native batched one). */
  setAead(backend: BatchAead): void {
    this.st.aead = backend;
  }

  /** The session with a peer, if any. */
  session(peerPublicKey: Uint8Array): PeerSession | undefined {
    return this.st.session(peerPublicKey);
  }

  /** The session whose peer certificate carries `name`, if any. */
  sessionByName(name: string): PeerSession | undefined {
    for (const s of this.st.sessions.values()) if (s.peerName === name) return s;
    return undefined;
  }

  /** All sessions (for status output). */
  allSessions(): PeerSession[] {
    return [...this.st.sessions.values()];
  }

  /**
   * The session that sent the data message whose first bytes `quote` holds (as an ICMP error
   * quotes it), or undefined: its receiver SPI must be the peer's SPI of our current or previous
   * keys and its counter one we used among the last `window` (issue #21: an ICMP Packet Too Big
   * counts only for a datagram we really sent lately; an off-path forger knows neither).
   */
  sentRecently(quote: Uint8Array, window = 1 << 20): PeerSession | undefined {
    if (quote.length < 16 || quote[0] !== MessageType.DATA) return undefined;
    const spi = readSpi(quote, 0);
    const counter = readCounter(quote, 0);
    for (const s of this.st.sessions.values()) {
      for (const kp of [s.current, s.previous]) {
        if (kp === null || kp.remoteSpi !== spi) continue;
        if (counter < kp.sendCounter && counter + window >= kp.sendCounter) return s;
      }
    }
    return undefined;
  }

  // ---- initiator -----------------------------------------------------------------------

  /** Starts a handshake with a peer whose public key we know; returns the initiation. */
  connect(peerPublicKey: Uint8Array, now: number): Uint8Array {
    const session = this.st.sessionFor(peerPublicKey);
    session.persistent = true;
    return initiate(this.st, session, now, now);
  }

  /**
   * Starts a handshake with a peer that normally initiates itself (a home agent re-establishing
   * the channel of a stored binding after a restart, issue 20); returns the initiation. Unlike
   * `connect`, the session is not marked as ours to keep up: the peer, which connect()ed,
   * rekeys it on its own payload sends (see transport.ts sendKeys), and a handshake nobody
   * answers is retransmitted, then given up, as usual.
   */
  initiate(peerPublicKey: Uint8Array, now: number): Uint8Array {
    return initiate(this.st, this.st.sessionFor(peerPublicKey), now, now);
  }

  // ---- receive ---------------------------------------------------------------------------

  /**
   * Processes one datagram. `underLoad`: the driver's rate limiter says we are busy, so
   * initiations without a valid MAC2 get a cookie reply instead of any Diffie-Hellman. When
   * omitted, the endpoint decides itself: more than `maxHandshakesPerSecond` initiations
   * (default DEFAULT_MAX_HANDSHAKES_PER_SECOND)
   * processed in the current one-second window means under load.
   * `source` identifies the sender's locator (e.g. "203.0.113.7:4191"); the cookie is bound
   * to it. Data messages are decrypted in place inside `datagram`.
   */
  receive(datagram: Uint8Array, now: number, underLoad?: boolean, source = ''): ReceiveResult {
    if (
      datagram.length < 8 ||
      (datagram[1] !== 0 && !(datagram[0] === 4 && datagram[1] === DataKind.SIGNALING)) ||
      datagram[2] !== 0 ||
      datagram[3] !== 0
    ) {
      return this.st.drop('malformed');
    }
    const type = datagram[0]!;
    switch (type) {
      case 1:
        return onInitiation(this.st, datagram, now, underLoad, source);
      case 2:
        return onResponse(this.st, datagram, now);
      case 3:
        return onCookieReply(this.st, datagram, now);
      case 4:
        return onData(this.st, datagram, now);
      default:
        return this.st.drop('malformed');
    }
  }

  /**
   * Opens a batch of received datagrams in place: lengths[i] is the whole datagram. Consecutive
   * messages under the same keys go to the backend in one call. out.results[i] is an
   * OpenResult: DATA or SIGNALING (inner packet at offsets[i] + 16, lengths[i] - 32 bytes, peer
   * in out.sessions[i]; SIGNALING when the peer marked it as its own), DROPPED (counted) or
   * NOT_DATA (a handshake message: pass it to `receive()`). Returns the number of DATA and
   * SIGNALING results.
   */
  openBatch(
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    now: number,
    out: OpenBatchOutput,
  ): number {
    return openBatch(this.st, buf, offsets, lengths, count, now, out);
  }

  // ---- send ------------------------------------------------------------------------------

  /**
   * True when a send to `session` at `now` has keys to use: current keys, not past
   * REJECT_AFTER_TIME or REJECT_AFTER_MESSAGES (their wipe by `poll()` may not have run yet).
   * A driver queues signaling when false and starts the handshake itself (`connect`).
   */
  canSeal(session: PeerSession, now: number): boolean {
    const kp = session.current;
    const t = this.st.timers;
    return (
      kp !== null &&
      now - kp.createdAt < t.rejectAfterTimeMs &&
      kp.sendCounter < t.rejectAfterMessages
    );
  }

  /**
   * What the native express lane needs to carry `session`'s plain payload until the next JS
   * callback (issue #16, native/express.c), or undefined when this channel must stay on the JS
   * path: no current keys, a handshake pending or wanted, closed. The limits are the points
   * where this code would act on a payload message (transport.ts): past them the lane leaves
   * the message to JS. Receive: REJECT_AFTER_TIME, and for keys this side keeps up the
   * keep-fresh point (keepFreshOnReceive); REJECT_AFTER_MESSAGES. Send: REJECT_AFTER_TIME, and
   * for keys this side keeps up REKEY_AFTER_TIME; REKEY_AFTER_MESSAGES (sendKeys). Times are
   * ms from `now`.
   */
  expressView(session: PeerSession, now: number): ExpressView | undefined {
    const kp = session.current;
    if (
      kp === null ||
      kp.wiped ||
      session.closed ||
      session.pending !== null ||
      session.wantRekey ||
      this.st.touched.has(session)
    ) {
      return undefined;
    }
    const t = this.st.timers;
    const age = now - kp.createdAt;
    const keepsUp = kp.isInitiator || session.persistent;
    const rxFor = Math.min(
      t.rejectAfterTimeMs,
      keepsUp ? t.rejectAfterTimeMs - 3 * t.rekeyTimeoutMs : Infinity,
    );
    const txFor = Math.min(t.rejectAfterTimeMs, keepsUp ? t.rekeyAfterTimeMs : Infinity);
    if (age >= rxFor && age >= txFor) return undefined;
    const keys = kp.expressSlot();
    return {
      ...keys,
      localSpi: kp.localSpi,
      remoteSpi: kp.remoteSpi,
      rxForMs: Math.max(0, rxFor - age),
      rxLimit: t.rejectAfterMessages,
      txForMs: Math.max(0, txFor - age),
      txLimit: t.rekeyAfterMessages,
    };
  }

  /** Messages of `session` the express lane dropped (bad tags), counted as this code would. */
  countExpressDrops(session: PeerSession, badTags: number): void {
    if (badTags > 0) this.st.dropMany('bad-tag', session, badTags);
  }

  /**
   * True when a seal or a receive since the last `poll()` asked for a handshake (no usable keys,
   * or a rekey due): the driver should poll now rather than at its last deadline.
   */
  get pollWanted(): boolean {
    return this.st.touched.size > 0;
  }

  /**
   * Seals a batch in place: message i is at offsets[i] with lengths[i] plaintext bytes at
   * offsets[i] + 16 and room for the 16-byte tag after them. Writes headers (receiver SPI, fresh
   * counters) and encrypts. Returns `count`, or 0 when the session has no usable keys (nothing
   * written; `poll()` will run a handshake).
   */
  sealBatch(
    session: PeerSession,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    now: number,
    kind: DataKind = DataKind.PAYLOAD,
  ): number {
    return sealBatch(this.st, session, buf, offsets, lengths, count, now, kind);
  }

  /**
   * Seals one packet into a new message (header | ciphertext | tag); null without keys. `kind`
   * says whether this endpoint wrote the packet itself (SIGNALING) or forwards it (PAYLOAD).
   */
  seal(
    session: PeerSession,
    plaintext: Uint8Array,
    now: number,
    kind: DataKind,
  ): Uint8Array | null {
    return seal(this.st, session, plaintext, now, kind);
  }

  // ---- timers ----------------------------------------------------------------------------

  /**
   * Timer work: handshake retransmission (REKEY_TIMEOUT, new ephemeral each time, giving up
   * after REKEY_ATTEMPT_TIME), the handshakes the data path asked for, and wiping keys past
   * REJECT_AFTER_TIME. Returns what to
   * send (to each peer's current locator) and when to call again. Looks only at the sessions
   * whose timer is due or whose state changed since the last call: O(those), not O(sessions).
   */
  poll(now: number): PollResult {
    return poll(this.st, now);
  }

  // ---- teardown --------------------------------------------------------------------------

  /** Closes one peer's channel: keys wiped, SPIs freed. */
  closeSession(session: PeerSession): void {
    const st = this.st;
    session.closed = true;
    session.timerAt = undefined;
    st.touched.delete(session);
    st.abandonPending(session);
    for (const slot of ['previous', 'next', 'current'] as const) {
      st.retire(session[slot]);
      session[slot] = null;
    }
    st.sessions.delete(session.peerKey);
    // Its last accepted initiation stays remembered: an old one cannot be replayed later.
    if (session.acceptedTimestamp !== undefined) {
      st.peerTimestamps.set(session.peerKey, session.acceptedTimestamp);
    }
  }

  /** Closes every channel and wipes all key material held here. */
  close(): void {
    const st = this.st;
    for (const s of [...st.sessions.values()]) this.closeSession(s);
    st.cookies?.wipe();
    st.cookies = null;
    if (st.aead instanceof SodiumBatchAead && st.aead !== this.opts.aead) st.aead.dispose();
  }
}
