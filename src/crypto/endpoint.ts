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
 *   4. When the current keys reach REKEY_AFTER_TIME (initiator) or REKEY_AFTER_MESSAGES (either
 *      side), `poll()` starts a new handshake; the old keys stay as `previous` so packets still in
 *      flight decrypt, until REJECT_AFTER_TIME.
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
import { systemWallClock, type WallClock } from '../util/wall-clock.js';
import {
  DATA_HEADER_LEN,
  DATA_OVERHEAD,
  DataKind,
  MSG_KIND_OFF,
  readCounter,
  readSpi,
  SodiumBatchAead,
  TAG_LEN,
  writeDataHeader,
  type BatchAead,
} from './aead.js';
import {
  checkValidityAndRole,
  decodeCertificate,
  verifyCertificate,
  type CertificateVerdict,
  type MemberCertificate,
  type Role,
} from './certificate.js';
import {
  checkMac1,
  checkMac2,
  compareBytes,
  CookieChecker,
  COOKIE_LEN,
  COOKIE_SECRET_LIFETIME_MS,
  HS_SENDER_SPI_OFF,
  INIT_NOISE_OFF,
  MACS_LEN,
  mac1Key,
  openCookieReply,
  readMac1,
  RESP_NOISE_OFF,
  RESP_RECEIVER_SPI_OFF,
  tai64n,
  TIMESTAMP_LEN,
  writeMacs,
} from './handshake.js';
import {
  IkInitiator,
  IkResponder,
  IK_MSG_A_FIXED,
  type KeyPair,
  type TransportKeys,
} from './noise.js';
import { randomUint32 } from './random.js';
import { ReplayWindow } from './replay-window.js';
import { lib } from './sodium.js';

/** Noise prologue: binds the protocol and version of mip6's channel. */
export const CHANNEL_PROLOGUE = new TextEncoder().encode('mip6 channel v1');

/** Stable drop reasons (counters and logs). */
export const DROP_REASONS = [
  'malformed',
  'unknown-spi',
  'bad-tag',
  'replay',
  'too-old',
  'expired-keys',
  'bad-mac1',
  'cookie-required',
  'bad-cookie',
  'bad-handshake',
  'bad-certificate',
  'expired-certificate',
  'certificate-not-yet-valid',
  'wrong-role',
  'key-mismatch',
  'stale-timestamp',
  'future-timestamp',
  /** The peer's key is on the revocation list (EndpointOptions.isRevoked). */
  'revoked',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export type DropCounters = Record<DropReason, number>;
function zeroDrops(): DropCounters {
  return Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as DropCounters;
}

/**
 * Timers and limits. Names and defaults follow WireGuard (whitepaper §6.1), except the message
 * limits: counters must stay exact in a JS number (2^53), so we reject after 2^48 messages
 * instead of 2^64 - 2^13 - 1; at 10 Mpps that is ~325 days, far beyond REKEY_AFTER_TIME.
 */
export interface ChannelTimers {
  rekeyAfterTimeMs: number;
  rejectAfterTimeMs: number;
  rekeyAfterMessages: number;
  rejectAfterMessages: number;
  rekeyTimeoutMs: number;
  rekeyAttemptTimeMs: number;
}
export const DEFAULT_TIMERS: ChannelTimers = {
  rekeyAfterTimeMs: 120_000,
  rejectAfterTimeMs: 180_000,
  rekeyAfterMessages: 2 ** 47,
  rejectAfterMessages: 2 ** 48,
  rekeyTimeoutMs: 5_000,
  rekeyAttemptTimeMs: 90_000,
};

/**
 * How far an initiation's TAI64N timestamp may be ahead of our wall clock. Further ahead, the
 * initiation is dropped ('future-timestamp') and its timestamp never remembered: remembered, it
 * would lock its member out (timestamps must increase) until the member's clock caught up with
 * it, for good if that clock was wrong and gets corrected. Not a WireGuard rule (WireGuard takes
 * any greater timestamp). Within it, the worst lockout, after a member's clock is set back and
 * the member restarts (losing its own last timestamp; without a restart it keeps counting up),
 * is this long: shorter than one handshake attempt (REKEY_ATTEMPT_TIME, 90 s), so the member's
 * retransmissions of the same attempt get through. 60 s is far beyond the skew of hosts kept by
 * NTP (milliseconds) and absorbs a minute of drift on one without; a member further ahead is
 * refused, counted, rather than let in with a timestamp that would lock it out later.
 */
export const MAX_TIMESTAMP_AHEAD_MS = 60_000;

/** True when TAI64N `ts` is more than MAX_TIMESTAMP_AHEAD_MS ahead of the wall time `wallMs`. */
function tooFarAhead(ts: Uint8Array, wallMs: number): boolean {
  return compareBytes(ts, tai64n(wallMs + MAX_TIMESTAMP_AHEAD_MS)) > 0;
}

/** One direction pair of keys from one handshake (an SA pair, in IPsec terms). */
class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayWindow();
  readonly keys: TransportKeys;
  readonly localSpi: number;
  readonly remoteSpi: number;
  readonly createdAt: number;
  readonly isInitiator: boolean;
  constructor(
    keys: TransportKeys,
    localSpi: number,
    remoteSpi: number,
    createdAt: number,
    isInitiator: boolean,
  ) {
    this.keys = keys;
    this.localSpi = localSpi;
    this.remoteSpi = remoteSpi;
    this.createdAt = createdAt;
    this.isInitiator = isInitiator;
  }

  wipe(): void {
    const s = lib();
    s.memzero(this.keys.sendKey);
    s.memzero(this.keys.receiveKey);
    // Past the end of counters: a wiped keypair can never seal again.
    this.sendCounter = Infinity;
  }
}

interface PendingHandshake {
  initiator: IkInitiator;
  localSpi: number;
  firstSentAt: number;
  lastSentAt: number;
  mac1: Uint8Array;
  /** The initiation as sent; after a cookie reply it goes again with MAC2 (see onCookieReply). */
  message: Uint8Array;
  resendNow: boolean;
}

export interface SessionStats {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  handshakes: number;
  handshakeTimeouts: number;
  drops: DropCounters;
}

/** The channel with one peer (identified by its static public key). */
export class PeerSession {
  readonly peerPublicKey: Uint8Array;
  peerCertificate: MemberCertificate | null = null;
  readonly stats: SessionStats = {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    handshakes: 0,
    handshakeTimeouts: 0,
    drops: zeroDrops(),
  };
  /** @internal */ current: Keypair | null = null;
  /** @internal */ previous: Keypair | null = null;
  /** @internal */ next: Keypair | null = null;
  /** @internal */ pending: PendingHandshake | null = null;
  /** @internal */ cookie: { value: Uint8Array; at: number } | null = null;
  /** @internal we connect()ed: keep the channel up (rekey by time) */
  persistent = false;
  /** @internal a rekey was asked for by the send path */
  wantRekey = false;
  /** @internal when this session's timer work is due (its live entry in the endpoint's heap) */
  timerAt = Infinity;
  /** @internal closed: never polled again */
  closed = false;

  constructor(peerPublicKey: Uint8Array) {
    this.peerPublicKey = peerPublicKey.slice();
  }

  get peerName(): string | undefined {
    return this.peerCertificate?.name;
  }

  /** True when data can be sealed (current keys exist). */
  get established(): boolean {
    return this.current !== null;
  }

  /**
   * When the current keys were made (`now` of their handshake), or -1 without keys. Keys made
   * by us as responder become current only once a data message under them authenticates, which
   * proves the initiator received our response at the locator it was sent to.
   */
  get currentKeysCreatedAt(): number {
    return this.current?.createdAt ?? -1;
  }
}

export type ReceiveResult =
  | { kind: 'reply'; data: Uint8Array }
  | {
      kind: 'data';
      session: PeerSession;
      offset: number;
      length: number;
      /** True when the peer marked the packet as its own signaling (DataKind.SIGNALING). */
      signaling: boolean;
    }
  | { kind: 'established'; session: PeerSession; reply?: Uint8Array }
  | { kind: 'cookie'; session: PeerSession }
  | { kind: 'drop'; reason: DropReason };

/**
 * Per-packet outcome codes of `openBatch`: DATA is forwarded payload (DataKind.PAYLOAD), SIGNALING
 * a packet the peer originated itself (DataKind.SIGNALING). Both are authenticated; only the
 * second may be taken as the peer's own signaling.
 */
export const OpenResult = { DROPPED: 0, DATA: 1, NOT_DATA: 2, SIGNALING: 3 } as const;

export interface OpenBatchOutput {
  /** OpenResult per message. */
  results: Uint8Array;
  /** The peer session of each accepted message (undefined otherwise). */
  sessions: (PeerSession | undefined)[];
}

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
   *  itself under load (when `receive()` is not told explicitly). Default 100. */
  maxHandshakesPerSecond?: number;
  /** Data-path AEAD backend to use from the start (e.g. one shared by many endpoints in a load
   *  generator); default: a libsodium SodiumBatchAead of this endpoint's own. */
  aead?: BatchAead;
}

const MIN_INITIATION = INIT_NOISE_OFF + IK_MSG_A_FIXED + TIMESTAMP_LEN + TAG_LEN + MACS_LEN;
const MIN_RESPONSE = RESP_NOISE_OFF + 32 + TAG_LEN + MACS_LEN;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/**
 * Binary min-heap of (due time, session): the endpoint's timer queue, so `poll()` looks only at
 * sessions with work due instead of every session (a home agent holds one per member). An entry
 * whose time is no longer its session's `timerAt` is stale and skipped when it comes up.
 */
class TimerHeap {
  private readonly due: number[] = [];
  private readonly items: PeerSession[] = [];

  get size(): number {
    return this.due.length;
  }

  peek(): number {
    return this.due.length === 0 ? Infinity : this.due[0]!;
  }

  /** The earliest live time: stale entries on top are dropped first. */
  peekLive(): number {
    while (this.due.length > 0 && this.items[0]!.timerAt !== this.due[0]) this.pop();
    return this.peek();
  }

  push(at: number, s: PeerSession): void {
    let i = this.due.length;
    this.due.push(at);
    this.items.push(s);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.due[p]! <= at) break;
      this.due[i] = this.due[p]!;
      this.items[i] = this.items[p]!;
      i = p;
    }
    this.due[i] = at;
    this.items[i] = s;
  }

  /** Removes the earliest entry; returns its session (its time is the old peek()). */
  pop(): PeerSession {
    const top = this.items[0]!;
    const lastAt = this.due.pop()!;
    const last = this.items.pop()!;
    const n = this.due.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const c = l + 1 < n && this.due[l + 1]! < this.due[l]! ? l + 1 : l;
        if (this.due[c]! >= lastAt) break;
        this.due[i] = this.due[c]!;
        this.items[i] = this.items[c]!;
        i = c;
      }
      this.due[i] = lastAt;
      this.items[i] = last;
    }
    return top;
  }
}

export class SecureEndpoint {
  readonly drops: DropCounters = zeroDrops();
  private readonly opts: EndpointOptions;
  private readonly timers: ChannelTimers;
  private readonly wallClock: WallClock;
  private readonly mac1KeyOwn: Uint8Array;
  private readonly sessions = new Map<string, PeerSession>();
  private readonly bySpi = new Map<number, { session: PeerSession; keypair: Keypair }>();
  private readonly pendingBySpi = new Map<number, PeerSession>();
  private cookies: CookieChecker | null = null;
  private aead: BatchAead;
  private lastTimestamp: Uint8Array = new Uint8Array(TIMESTAMP_LEN);
  /** Latest initiation timestamp accepted per peer key. Kept when a session is closed, so an
   *  old initiation cannot be replayed later; bounded by the authority's membership, since only
   *  peers with a valid certificate get an entry. */
  private readonly peerTimestamps = new Map<string, Uint8Array>();
  private loadWindowStart = -Infinity;
  /** Timer queue of the sessions (see TimerHeap) and the sessions changed since the last poll. */
  private readonly timerHeap = new TimerHeap();
  private touched = new Set<PeerSession>();
  private loadCount = 0;
  // Scratch for single-message and batch paths (grown, never shrunk).
  private oneOffset = new Uint32Array(1);
  private oneLength = new Uint32Array(1);
  private oneResult = new Uint8Array(1);
  private runOffsets = new Uint32Array(64);
  private runLengths = new Uint32Array(64);
  private runIndex = new Uint32Array(64);
  private runResults = new Uint8Array(64);

  constructor(opts: EndpointOptions) {
    if (!lib().memcmp(opts.certificate.publicKey, opts.staticKey.publicKey)) {
      throw new CryptoError('ERR_CERT_KEY_MISMATCH', 'our certificate is not for our static key');
    }
    this.opts = opts;
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.wallClock = opts.wallClock ?? systemWallClock;
    this.mac1KeyOwn = mac1Key(opts.staticKey.publicKey);
    this.aead = opts.aead ?? new SodiumBatchAead();
  }

  /** Replaces the data-path AEAD backend (the native batched one). */
  setAead(backend: BatchAead): void {
    this.aead = backend;
  }

  /** The session with a peer, if any. */
  session(peerPublicKey: Uint8Array): PeerSession | undefined {
    return this.sessions.get(hex(peerPublicKey));
  }

  /** The session whose peer certificate carries `name`, if any. */
  sessionByName(name: string): PeerSession | undefined {
    for (const s of this.sessions.values()) if (s.peerName === name) return s;
    return undefined;
  }

  /** All sessions (for status output). */
  allSessions(): PeerSession[] {
    return [...this.sessions.values()];
  }

  private sessionFor(peerPublicKey: Uint8Array): PeerSession {
    const key = hex(peerPublicKey);
    let s = this.sessions.get(key);
    if (s === undefined) {
      s = new PeerSession(peerPublicKey);
      this.sessions.set(key, s);
    }
    return s;
  }

  private drop(reason: DropReason, session?: PeerSession): ReceiveResult {
    this.drops[reason]++;
    if (session) session.stats.drops[reason]++;
    return { kind: 'drop', reason };
  }

  private newSpi(): number {
    for (;;) {
      const spi = this.opts.spi ? this.opts.spi() : randomUint32();
      if (spi !== 0 && !this.bySpi.has(spi) && !this.pendingBySpi.has(spi)) return spi >>> 0;
    }
  }

  /**
   * Strictly increasing TAI64N of the wall clock (WireGuard's replay defence for initiations).
   * When the clock has gone back, we count up from the last timestamp sent while that is within
   * MAX_TIMESTAMP_AHEAD_MS of the clock (responders still take it); further ahead, counting up
   * would only give timestamps every responder refuses ('future-timestamp'): the clock again.
   */
  private nextTimestamp(): Uint8Array {
    const wall = this.wallClock();
    let ts = this.opts.timestamp ? this.opts.timestamp(wall) : tai64n(wall);
    if (compareBytes(ts, this.lastTimestamp) <= 0 && !tooFarAhead(this.lastTimestamp, wall)) {
      const dv = new DataView(this.lastTimestamp.buffer);
      const secs = dv.getBigUint64(0);
      const ns = dv.getUint32(8) + 1;
      ts = new Uint8Array(TIMESTAMP_LEN);
      const out = new DataView(ts.buffer);
      out.setBigUint64(0, ns >= 1e9 ? secs + 1n : secs);
      out.setUint32(8, ns % 1e9);
    }
    this.lastTimestamp = ts;
    return ts;
  }

  // ---- initiator -----------------------------------------------------------------------

  /** Starts a handshake with a peer whose public key we know; returns the initiation. */
  connect(peerPublicKey: Uint8Array, now: number): Uint8Array {
    const session = this.sessionFor(peerPublicKey);
    session.persistent = true;
    return this.initiate(session, now, now);
  }

  private initiate(session: PeerSession, now: number, firstSentAt: number): Uint8Array {
    this.abandonPending(session);
    const initiator = new IkInitiator(
      this.opts.staticKey,
      session.peerPublicKey,
      CHANNEL_PROLOGUE,
      this.opts.ephemeral?.(),
    );
    const localSpi = this.newSpi();
    const payload = new Uint8Array(TIMESTAMP_LEN + this.opts.certificate.raw.length);
    payload.set(this.nextTimestamp());
    payload.set(this.opts.certificate.raw, TIMESTAMP_LEN);
    const noise = initiator.writeMessageA(payload);
    const msg = new Uint8Array(INIT_NOISE_OFF + noise.length + MACS_LEN);
    msg[0] = 1;
    new DataView(msg.buffer).setUint32(HS_SENDER_SPI_OFF, localSpi);
    msg.set(noise, INIT_NOISE_OFF);
    const cookie =
      session.cookie && now - session.cookie.at < COOKIE_SECRET_LIFETIME_MS
        ? session.cookie.value
        : null;
    writeMacs(msg, mac1Key(session.peerPublicKey), cookie);
    session.pending = {
      initiator,
      localSpi,
      firstSentAt,
      lastSentAt: now,
      mac1: readMac1(msg),
      message: msg.slice(),
      resendNow: false,
    };
    this.pendingBySpi.set(localSpi, session);
    this.touched.add(session);
    return msg;
  }

  private abandonPending(session: PeerSession): void {
    if (session.pending) {
      session.pending.initiator.wipe();
      this.pendingBySpi.delete(session.pending.localSpi);
      session.pending = null;
    }
  }

  // ---- receive ---------------------------------------------------------------------------

  /**
   * Processes one datagram. `underLoad`: the driver's rate limiter says we are busy, so
   * initiations without a valid MAC2 get a cookie reply instead of any Diffie-Hellman. When
   * omitted, the endpoint decides itself: more than `maxHandshakesPerSecond` initiations
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
      return this.drop('malformed');
    }
    const type = datagram[0]!;
    switch (type) {
      case 1:
        return this.onInitiation(datagram, now, underLoad, source);
      case 2:
        return this.onResponse(datagram, now);
      case 3:
        return this.onCookieReply(datagram, now);
      case 4:
        return this.onData(datagram, now);
      default:
        return this.drop('malformed');
    }
  }

  /**
   * Checks a peer certificate carried in a handshake; a DropReason or the certificate. `known`
   * is the certificate this peer's session already holds: when a rekey presents the very same
   * bytes, their signature was verified at the earlier handshake, so only validity and role are
   * checked again (a home agent rekeys with every member every REKEY_AFTER_TIME). Validity is
   * checked at `wallMs`, the wall clock.
   */
  private checkPeerCertificate(
    bytes: Uint8Array,
    noiseStatic: Uint8Array,
    wallMs: number,
    known: MemberCertificate | null,
  ): MemberCertificate | DropReason {
    let cert: MemberCertificate;
    let verdict: CertificateVerdict;
    if (known !== null && sameBytes(bytes, known.raw)) {
      cert = known;
      verdict = checkValidityAndRole(cert, wallMs, this.opts.allowedPeerRoles);
    } else {
      try {
        cert = decodeCertificate(bytes);
      } catch {
        return 'bad-certificate';
      }
      verdict = verifyCertificate(
        cert,
        this.opts.authorityPublicKey,
        wallMs,
        this.opts.allowedPeerRoles,
      );
    }
    if (verdict !== 'ok') return verdict;
    if (!lib().memcmp(cert.publicKey, noiseStatic)) return 'key-mismatch';
    if (this.opts.isRevoked?.(cert.publicKey) === true) return 'revoked';
    return cert;
  }

  private onInitiation(
    msg: Uint8Array,
    now: number,
    underLoad: boolean | undefined,
    source: string,
  ): ReceiveResult {
    if (msg.length < MIN_INITIATION) return this.drop('malformed');
    if (!checkMac1(msg, this.mac1KeyOwn)) return this.drop('bad-mac1');
    if (now - this.loadWindowStart >= 1000) {
      this.loadWindowStart = now;
      this.loadCount = 0;
    }
    const busy = underLoad ?? this.loadCount >= (this.opts.maxHandshakesPerSecond ?? 100);
    if (busy) {
      this.cookies ??= new CookieChecker(now);
      const locator = new TextEncoder().encode(source);
      if (!checkMac2(msg, this.cookies.cookieFor(locator, now))) {
        this.drops['cookie-required']++;
        const reply = this.cookies.reply(msg, locator, this.opts.staticKey.publicKey, now);
        return { kind: 'reply', data: reply };
      }
    }
    this.loadCount++;
    const responder = new IkResponder(
      this.opts.staticKey,
      CHANNEL_PROLOGUE,
      this.opts.ephemeral?.(),
    );
    const read = responder.readMessageA(msg.subarray(INIT_NOISE_OFF, msg.length - MACS_LEN));
    if (read === null) {
      responder.wipe();
      return this.drop('bad-handshake');
    }
    const timestamp = read.payload.subarray(0, TIMESTAMP_LEN);
    const known = this.session(read.remoteStatic);
    const wall = this.wallClock();
    const cert = this.checkPeerCertificate(
      read.payload.subarray(TIMESTAMP_LEN),
      read.remoteStatic,
      wall,
      known?.peerCertificate ?? null,
    );
    if (typeof cert === 'string') {
      responder.wipe();
      return this.drop(cert, known);
    }
    if (tooFarAhead(timestamp, wall)) {
      responder.wipe();
      return this.drop('future-timestamp', known);
    }
    const peerHex = hex(read.remoteStatic);
    let last = this.peerTimestamps.get(peerHex);
    // A remembered timestamp too far ahead of our clock was taken while our clock was ahead
    // (it was within MAX_TIMESTAMP_AHEAD_MS of it then) and has been set back since: kept, it
    // would lock this member out until our clock caught up again. Forgotten instead: the state a
    // restart gives (the only way out before), where an old initiation of this member could be
    // replayed once until a new one is remembered (as after any restart, and as in WireGuard; the
    // replayer lacks the initiator's ephemeral key, so it gains no keys).
    if (last !== undefined && tooFarAhead(last, wall)) last = undefined;
    if (last !== undefined && compareBytes(timestamp, last) <= 0) {
      responder.wipe();
      return this.drop('stale-timestamp', known);
    }
    this.peerTimestamps.set(peerHex, timestamp.slice());
    const session = this.sessionFor(read.remoteStatic);
    session.peerCertificate = cert;

    const localSpi = this.newSpi();
    const remoteSpi = readSpi(msg, 0);
    const { message, keys } = responder.writeMessageB(this.opts.certificate.raw);
    const reply = new Uint8Array(RESP_NOISE_OFF + message.length + MACS_LEN);
    reply[0] = 2;
    const dv = new DataView(reply.buffer);
    dv.setUint32(HS_SENDER_SPI_OFF, localSpi);
    dv.setUint32(RESP_RECEIVER_SPI_OFF, remoteSpi);
    reply.set(message, RESP_NOISE_OFF);
    writeMacs(reply, mac1Key(session.peerPublicKey), null);

    const kp = new Keypair(keys, localSpi, remoteSpi, now, false);
    this.bySpi.set(localSpi, { session, keypair: kp });
    if (session.current === null) {
      session.current = kp;
    } else {
      // Key confirmation: keep sending with the current keys until the initiator uses these.
      this.retire(session.next);
      session.next = kp;
    }
    session.stats.handshakes++;
    this.touched.add(session);
    return { kind: 'established', session, reply };
  }

  private onResponse(msg: Uint8Array, now: number): ReceiveResult {
    if (msg.length < MIN_RESPONSE) return this.drop('malformed');
    const session = this.pendingBySpi.get(readSpi(msg, RESP_RECEIVER_SPI_OFF - 4));
    if (session === undefined || session.pending === null) return this.drop('unknown-spi');
    if (!checkMac1(msg, this.mac1KeyOwn)) return this.drop('bad-mac1', session);
    const pending = session.pending;
    const read = pending.initiator.readMessageB(
      msg.subarray(RESP_NOISE_OFF, msg.length - MACS_LEN),
    );
    if (read === null) return this.drop('bad-handshake', session);
    this.pendingBySpi.delete(pending.localSpi);
    session.pending = null;
    const cert = this.checkPeerCertificate(
      read.payload,
      session.peerPublicKey,
      this.wallClock(),
      session.peerCertificate,
    );
    if (typeof cert === 'string') {
      lib().memzero(read.keys.sendKey);
      lib().memzero(read.keys.receiveKey);
      return this.drop(cert, session);
    }
    session.peerCertificate = cert;
    const kp = new Keypair(read.keys, pending.localSpi, readSpi(msg, 0), now, true);
    this.bySpi.set(kp.localSpi, { session, keypair: kp });
    this.retire(session.next);
    session.next = null;
    this.retire(session.previous);
    session.previous = session.current;
    session.current = kp;
    session.wantRekey = false;
    session.stats.handshakes++;
    this.touched.add(session);
    return { kind: 'established', session };
  }

  private onCookieReply(msg: Uint8Array, now: number): ReceiveResult {
    if (msg.length !== 64) return this.drop('malformed');
    const session = this.pendingBySpi.get(readSpi(msg, 0));
    if (session === undefined || session.pending === null) return this.drop('unknown-spi');
    const cookie = openCookieReply(msg, session.peerPublicKey, session.pending.mac1);
    if (cookie === null || cookie.length !== COOKIE_LEN) return this.drop('bad-cookie', session);
    session.cookie = { value: cookie, at: now };
    // The responder did no Diffie-Hellman for it and kept no state: the same initiation (same
    // ephemeral key and timestamp) goes again at once from poll(), now with MAC2. Cheaper for
    // the initiator than a whole new one, and what it answers (mac1) stays the same.
    writeMacs(session.pending.message, mac1Key(session.peerPublicKey), cookie);
    session.pending.resendNow = true;
    this.touched.add(session);
    return { kind: 'cookie', session };
  }

  private onData(msg: Uint8Array, now: number): ReceiveResult {
    if (msg.length < DATA_OVERHEAD) return this.drop('malformed');
    this.oneOffset[0] = 0;
    this.oneLength[0] = msg.length;
    const entry = this.bySpi.get(readSpi(msg, 0));
    if (entry === undefined) return this.drop('unknown-spi');
    const reason = this.openOne(entry.session, entry.keypair, msg, 0, msg.length, now);
    if (reason !== null) return this.drop(reason, entry.session);
    return {
      kind: 'data',
      session: entry.session,
      offset: DATA_HEADER_LEN,
      length: msg.length - DATA_OVERHEAD,
      signaling: msg[1] === DataKind.SIGNALING,
    };
  }

  /** Pre-checks (age, window) for a data message; null if it may be decrypted. */
  private precheck(kp: Keypair, buf: Uint8Array, off: number, now: number): DropReason | null {
    if (now - kp.createdAt >= this.timers.rejectAfterTimeMs) return 'expired-keys';
    const counter = readCounter(buf, off);
    if (counter >= this.timers.rejectAfterMessages) return 'too-old';
    const v = kp.replay.check(counter);
    return v === 'ok' ? null : v;
  }

  /** Post-tag bookkeeping: window update, key confirmation, counters. */
  private accept(
    session: PeerSession,
    kp: Keypair,
    buf: Uint8Array,
    off: number,
    len: number,
  ): DropReason | null {
    const v = kp.replay.update(readCounter(buf, off));
    if (v !== 'ok') return v;
    if (kp === session.next) {
      this.retire(session.previous);
      session.previous = session.current;
      session.current = kp;
      session.next = null;
      // Fresh keys confirmed both ways: a rekey of our own still being retransmitted is moot
      // (wireguard-go stops its retransmissions here too, timersHandshakeComplete).
      if (session.pending !== null && session.current.createdAt >= session.pending.firstSentAt) {
        this.abandonPending(session);
      }
      session.wantRekey = false;
    }
    session.stats.packetsIn++;
    session.stats.bytesIn += len - DATA_OVERHEAD;
    return null;
  }

  private openOne(
    session: PeerSession,
    kp: Keypair,
    buf: Uint8Array,
    off: number,
    len: number,
    now: number,
  ): DropReason | null {
    const pre = this.precheck(kp, buf, off, now);
    if (pre !== null) return pre;
    this.oneOffset[0] = off;
    this.oneLength[0] = len;
    this.aead.openBatch(kp.keys.receiveKey, buf, this.oneOffset, this.oneLength, 1, this.oneResult);
    if (this.oneResult[0] !== 1) return 'bad-tag';
    return this.accept(session, kp, buf, off, len);
  }

  private growRuns(n: number): void {
    if (n <= this.runOffsets.length) return;
    let cap = this.runOffsets.length;
    while (cap < n) cap *= 2;
    this.runOffsets = new Uint32Array(cap);
    this.runLengths = new Uint32Array(cap);
    this.runIndex = new Uint32Array(cap);
    this.runResults = new Uint8Array(cap);
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
    this.growRuns(count);
    let accepted = 0;
    let run = 0;
    let runKp: Keypair | null = null;
    let runSession: PeerSession | null = null;
    const flush = (): void => {
      if (run === 0 || runKp === null || runSession === null) return;
      this.aead.openBatch(
        runKp.keys.receiveKey,
        buf,
        this.runOffsets,
        this.runLengths,
        run,
        this.runResults,
      );
      for (let j = 0; j < run; j++) {
        const i = this.runIndex[j]!;
        let reason: DropReason | null = this.runResults[j] === 1 ? null : 'bad-tag';
        if (reason === null) {
          reason = this.accept(runSession, runKp, buf, this.runOffsets[j]!, this.runLengths[j]!);
        }
        if (reason === null) {
          out.results[i] =
            buf[this.runOffsets[j]! + MSG_KIND_OFF] === DataKind.SIGNALING
              ? OpenResult.SIGNALING
              : OpenResult.DATA;
          out.sessions[i] = runSession;
          accepted++;
        } else {
          this.drop(reason, runSession);
          out.results[i] = OpenResult.DROPPED;
        }
      }
      run = 0;
    };
    for (let i = 0; i < count; i++) {
      const off = offsets[i]!;
      const len = lengths[i]!;
      out.sessions[i] = undefined;
      if (len < 1 || off + len > buf.length) {
        this.drop('malformed');
        out.results[i] = OpenResult.DROPPED;
        continue;
      }
      if (buf[off] !== 4) {
        out.results[i] = OpenResult.NOT_DATA;
        continue;
      }
      if (
        len < DATA_OVERHEAD ||
        (buf[off + 1] !== DataKind.PAYLOAD && buf[off + 1] !== DataKind.SIGNALING) ||
        buf[off + 2] !== 0 ||
        buf[off + 3] !== 0
      ) {
        this.drop('malformed');
        out.results[i] = OpenResult.DROPPED;
        continue;
      }
      const entry = this.bySpi.get(readSpi(buf, off));
      if (entry === undefined) {
        this.drop('unknown-spi');
        out.results[i] = OpenResult.DROPPED;
        continue;
      }
      const pre = this.precheck(entry.keypair, buf, off, now);
      if (pre !== null) {
        this.drop(pre, entry.session);
        out.results[i] = OpenResult.DROPPED;
        continue;
      }
      if (entry.keypair !== runKp) flush();
      runKp = entry.keypair;
      runSession = entry.session;
      this.runOffsets[run] = off;
      this.runLengths[run] = len;
      this.runIndex[run] = i;
      run++;
    }
    flush();
    return accepted;
  }

  // ---- send ------------------------------------------------------------------------------

  /** The keys to send with, or null (and a rekey requested) when there are none usable. */
  private sendKeys(session: PeerSession, count: number, now: number): Keypair | null {
    const kp = session.current;
    if (kp === null) return null;
    const age = now - kp.createdAt;
    if (
      age >= this.timers.rejectAfterTimeMs ||
      kp.sendCounter + count > this.timers.rejectAfterMessages
    ) {
      session.wantRekey = true;
      this.touched.add(session);
      return null;
    }
    if (
      kp.sendCounter + count >= this.timers.rekeyAfterMessages ||
      (kp.isInitiator && age >= this.timers.rekeyAfterTimeMs) ||
      (!kp.isInitiator && age >= this.timers.rekeyAfterTimeMs + 2 * this.timers.rekeyTimeoutMs)
    ) {
      if (!session.wantRekey) this.touched.add(session);
      session.wantRekey = true;
    }
    return kp;
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
    const kp = this.sendKeys(session, count, now);
    if (kp === null) return 0;
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      writeDataHeader(buf, offsets[i]!, kp.remoteSpi, kp.sendCounter++, kind);
      bytes += lengths[i]!;
    }
    this.aead.sealBatch(kp.keys.sendKey, buf, offsets, lengths, count);
    session.stats.packetsOut += count;
    session.stats.bytesOut += bytes;
    return count;
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
    const msg = new Uint8Array(DATA_OVERHEAD + plaintext.length);
    msg.set(plaintext, DATA_HEADER_LEN);
    this.oneOffset[0] = 0;
    this.oneLength[0] = plaintext.length;
    return this.sealBatch(session, msg, this.oneOffset, this.oneLength, 1, now, kind) === 1
      ? msg
      : null;
  }

  // ---- timers ----------------------------------------------------------------------------

  /**
   * Timer work: handshake retransmission (REKEY_TIMEOUT, new ephemeral each time, giving up
   * after REKEY_ATTEMPT_TIME), rekeys, and wiping keys past REJECT_AFTER_TIME. Returns what to
   * send (to each peer's current locator) and when to call again. Looks only at the sessions
   * whose timer is due or whose state changed since the last call: O(those), not O(sessions).
   */
  poll(now: number): { send: { peer: PeerSession; data: Uint8Array }[]; nextDeadline: number } {
    const send: { peer: PeerSession; data: Uint8Array }[] = [];
    const due = this.touched;
    this.touched = new Set();
    while (this.timerHeap.peek() <= now) {
      const at = this.timerHeap.peek();
      const s = this.timerHeap.pop();
      if (s.timerAt === at) due.add(s); // else stale: rescheduled since
    }
    for (const s of due) {
      if (s.closed) continue;
      const next = this.pollSession(s, now, send);
      this.touched.delete(s); // initiate() marked it; its deadline is part of `next`
      if (next !== s.timerAt) {
        s.timerAt = next;
        if (next !== Infinity) this.timerHeap.push(next, s);
      }
    }
    return {
      send,
      nextDeadline: this.touched.size > 0 ? now : this.timerHeap.peekLive(),
    };
  }

  /** One session's timer work (see poll); returns when it next has some. */
  private pollSession(
    s: PeerSession,
    now: number,
    send: { peer: PeerSession; data: Uint8Array }[],
  ): number {
    const t = this.timers;
    let next = Infinity;
    {
      for (const slot of ['previous', 'next', 'current'] as const) {
        const kp = s[slot];
        if (kp === null) continue;
        if (now - kp.createdAt >= t.rejectAfterTimeMs) {
          this.retire(kp);
          s[slot] = null;
          if (slot === 'current' && s.persistent) s.wantRekey = true;
        } else {
          next = Math.min(next, kp.createdAt + t.rejectAfterTimeMs);
        }
      }
      const cur = s.current;
      if (cur && cur.isInitiator && s.persistent) {
        if (now - cur.createdAt >= t.rekeyAfterTimeMs) s.wantRekey = true;
        else next = Math.min(next, cur.createdAt + t.rekeyAfterTimeMs);
      }
      if (s.pending?.resendNow === true) {
        s.pending.resendNow = false;
        s.pending.lastSentAt = now;
        send.push({ peer: s, data: s.pending.message.slice() });
      } else if (s.pending) {
        if (now - s.pending.lastSentAt >= t.rekeyTimeoutMs) {
          if (now - s.pending.firstSentAt >= t.rekeyAttemptTimeMs) {
            this.abandonPending(s);
            s.stats.handshakeTimeouts++;
            s.wantRekey = false;
          } else {
            send.push({ peer: s, data: this.initiate(s, now, s.pending.firstSentAt) });
          }
        }
      } else if (s.wantRekey) {
        s.wantRekey = false;
        send.push({ peer: s, data: this.initiate(s, now, now) });
      }
      if (s.pending) next = Math.min(next, s.pending.lastSentAt + t.rekeyTimeoutMs);
    }
    return next;
  }

  // ---- teardown --------------------------------------------------------------------------

  private retire(kp: Keypair | null): void {
    if (kp === null) return;
    kp.wipe();
    this.bySpi.delete(kp.localSpi);
  }

  /** Closes one peer's channel: keys wiped, SPIs freed. */
  closeSession(session: PeerSession): void {
    session.closed = true;
    session.timerAt = Infinity;
    this.touched.delete(session);
    this.abandonPending(session);
    for (const slot of ['previous', 'next', 'current'] as const) {
      this.retire(session[slot]);
      session[slot] = null;
    }
    this.sessions.delete(hex(session.peerPublicKey));
  }

  /** Closes every channel and wipes all key material held here. */
  close(): void {
    for (const s of [...this.sessions.values()]) this.closeSession(s);
    this.cookies?.wipe();
    this.cookies = null;
    if (this.aead instanceof SodiumBatchAead && this.aead !== this.opts.aead) this.aead.dispose();
  }
}
