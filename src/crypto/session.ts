/**
 * The state the SecureEndpoint keeps per peer (DESIGN.md §4): a PeerSession per peer static key,
 * holding up to three Keypairs (previous, current, next; WireGuard's keypair.go) and at most one
 * handshake in flight; plus the drop reasons every rejected input is counted under. Plain data:
 * the endpoint's handshake, transport and timer code (handshake-*.ts, transport.ts, timers.ts)
 * moves sessions between these states.
 */
import type { MemberCertificate } from './certificate.js';
import type { IkInitiator, TransportKeys } from './noise.js';
import { CHANNEL_REPLAY_POOL, REPLAY_WINDOW_WORDS, ReplayWindow } from './replay-window.js';
import { lib } from './sodium.js';
import { SlotPool } from '../util/slot-pool.js';
import { bytesOfString } from '../util/bytes.js';

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
export function zeroDrops(): DropCounters {
  return Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as DropCounters;
}

/** A session's drop counters until its first drop: shared and frozen (most sessions never
 *  drop anything; 18 counters each cost ~0.5 KiB at a home agent of 100 000, issue 17). */
export const NO_DROPS: Readonly<DropCounters> = Object.freeze(zeroDrops());

/** Keypairs per pool chunk (64 keypairs of 88 bytes: 5.5 KiB). */
const KEYPAIRS_PER_CHUNK = 64;

/**
 * A keypair's slot in CHANNEL_KEY_POOL (bytes): the two keys, then what the native express lane
 * (native/express.c, issue 16) shares with this code, so that both paths seal with one counter
 * and open against one replay window:
 *   [0, 32) send key, [32, 64) receive key,
 *   [64, 72) the send counter (float64), [72, 80) the replay window's highest counter (float64),
 *   [80, 84) the local SPI (uint32), [84, 88) while the keys live, a generation number of
 *   this keypair (uint32, never 0, different from the slot's previous keypair's).
 * A wiped keypair's slot is zeroed, so the express lane, which checks SPI and the generation
 * before each use, never reads keys that are gone or another keypair's.
 */
export const KEYPAIR_SLOT_BYTES = 88;
/** Float64 index (from the slot's base / 8) of the send counter and of the replay window's top. */
export const KP_COUNTER = 8;
export const KP_REPLAY_LAST = 9;
/** Uint32 index (from the slot's base / 4) of the local SPI and of the generation (the live mark). */
export const KP_SPI = 20;
export const KP_LIVE = 21;

/**
 * The transport keys of the process's keypairs (util/slot-pool.ts, issue 17): in shared chunks,
 * as views (a buffer of its own costs each keypair an ArrayBuffer and a separate backing store
 * besides its bytes). A slot is zeroed when its keys are wiped.
 */
export const CHANNEL_KEY_POOL = new SlotPool<Uint8Array>(
  KEYPAIR_SLOT_BYTES,
  KEYPAIRS_PER_CHUNK,
  (n) => new Uint8Array(n),
);

/** The next keypair's generation (KP_LIVE): counts up, skipping 0 (a zeroed slot). */
let generation = 0;
function nextGeneration(): number {
  generation = (generation + 1) >>> 0;
  if (generation === 0) generation = 1;
  return generation;
}

/** Float64 / Uint32 views of each key pool chunk (made once per chunk; chunks live forever). */
const chunkViews = new WeakMap<Uint8Array, { f64: Float64Array; u32: Uint32Array }>();
function viewsOf(chunk: Uint8Array): { f64: Float64Array; u32: Uint32Array } {
  let v = chunkViews.get(chunk);
  if (v === undefined) {
    v = {
      f64: new Float64Array(chunk.buffer, chunk.byteOffset, chunk.byteLength >> 3),
      u32: new Uint32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength >> 2),
    };
    chunkViews.set(chunk, v);
  }
  return v;
}

/** Which key of a keypair (Keypair.copyKey): its offset in the keypair's slot. */
export const SEND = 0;
export const RECEIVE = 32;

/**
 * One direction pair of keys from one handshake (an SA pair, in IPsec terms). The two keys live
 * in one 64-byte slot of CHANNEL_KEY_POOL (the handshake's own copies are wiped; its hash is
 * not kept), with no view of their own (a view per key cost 96 B each per member at a home
 * agent, issue 17): each AEAD call copies the key it needs into a scratch buffer and zeroes it
 * after (transport.ts).
 */
export class Keypair {
  /** Its bitmap lives in the process's shared pool; released when the keys are wiped. Its
   *  highest counter lives in this keypair's slot (KP_REPLAY_LAST). */
  readonly replay: ReplayWindow;
  readonly localSpi: number;
  readonly createdAt: number;
  readonly isInitiator: boolean;
  /** The channel these keys belong to (what a data message's receiver SPI finds). */
  readonly session: PeerSession;
  /** remoteSpi as an int32 (`| 0`): a small integer for every SPI, where half of them (those
   *  of 2^31 and up) were a boxed double per keypair (issue 17). */
  readonly #remoteSpi: number;
  /** The keys' slot in CHANNEL_KEY_POOL, -1 once wiped. */
  #slot: number;
  /** The slot's chunk as float64s, and this keypair's first element in it (slot base / 8). */
  readonly #f64: Float64Array;
  readonly #at: number;
  constructor(
    session: PeerSession,
    keys: TransportKeys,
    localSpi: number,
    remoteSpi: number,
    createdAt: number,
    isInitiator: boolean,
  ) {
    this.#slot = CHANNEL_KEY_POOL.take();
    const chunk = CHANNEL_KEY_POOL.chunkOf(this.#slot);
    const base = CHANNEL_KEY_POOL.baseOf(this.#slot);
    chunk.set(keys.sendKey, base + SEND);
    chunk.set(keys.receiveKey, base + RECEIVE);
    const views = viewsOf(chunk);
    this.#f64 = views.f64;
    this.#at = base >> 3;
    views.u32[(base >> 2) + KP_SPI] = localSpi >>> 0;
    views.u32[(base >> 2) + KP_LIVE] = nextGeneration();
    this.replay = new ReplayWindow(
      REPLAY_WINDOW_WORDS,
      CHANNEL_REPLAY_POOL,
      views.f64,
      this.#at + KP_REPLAY_LAST,
    );
    const s = lib();
    s.memzero(keys.sendKey);
    s.memzero(keys.receiveKey);
    this.session = session;
    this.localSpi = localSpi;
    this.#remoteSpi = remoteSpi | 0;
    this.createdAt = createdAt;
    this.isInitiator = isInitiator;
  }

  /** The next counter to send with (shared with the express lane); Infinity once wiped. */
  get sendCounter(): number {
    return this.#slot < 0 ? Infinity : this.#f64[this.#at + KP_COUNTER]!;
  }

  set sendCounter(value: number) {
    if (this.#slot >= 0) this.#f64[this.#at + KP_COUNTER] = value;
  }

  /** The peer's SPI for these keys (what our data messages carry), 0 .. 2^32 - 1. */
  get remoteSpi(): number {
    return this.#remoteSpi >>> 0;
  }

  /** The keys are gone (wipe()): nothing may be sealed or opened under them. */
  get wiped(): boolean {
    return this.#slot < 0;
  }

  /** Copies the SEND or RECEIVE key into `into` (32 bytes, zeros once wiped); returns `into`. */
  copyKey(which: typeof SEND | typeof RECEIVE, into: Uint8Array): Uint8Array {
    if (this.#slot < 0) {
      into.fill(0);
      return into;
    }
    const chunk = CHANNEL_KEY_POOL.chunkOf(this.#slot);
    const from = CHANNEL_KEY_POOL.baseOf(this.#slot) + which;
    for (let i = 0; i < 32; i++) into[i] = chunk[from + i]!;
    return into;
  }

  /** A copy of the send key (tests, diagnostics): zeros once wiped. */
  get sendKey(): Uint8Array {
    return this.copyKey(SEND, new Uint8Array(32));
  }

  /** A copy of the receive key (tests, diagnostics): zeros once wiped. */
  get receiveKey(): Uint8Array {
    return this.copyKey(RECEIVE, new Uint8Array(32));
  }

  /**
   * Where the express lane finds these keys, their counter and their window (native/express.c
   * reads and writes them in place; undefined-free: only asked of live keys).
   */
  expressSlot(): {
    keyChunk: Uint8Array;
    keyBase: number;
    replayChunk: Uint32Array;
    replayBase: number;
    replayWords: number;
  } {
    const w = this.replay.words;
    return {
      keyChunk: CHANNEL_KEY_POOL.chunkOf(this.#slot),
      keyBase: CHANNEL_KEY_POOL.baseOf(this.#slot),
      replayChunk: w.bitmap,
      replayBase: w.base,
      replayWords: REPLAY_WINDOW_WORDS,
    };
  }

  /** The keys' slot in CHANNEL_KEY_POOL (an index, not the keys), -1 once wiped. */
  get slot(): number {
    return this.#slot;
  }

  wipe(): void {
    // The slot is zeroed and goes back to the pool (once); the keys then read zeros, not
    // whatever keys take the slot next.
    // Its window goes first (it reads the slot's state until released), then the slot: zeroed,
    // which also clears the generation the express lane checks. From here on sendCounter reads
    // Infinity: a wiped keypair can never seal again, nor open (its window refuses every counter).
    this.replay.release();
    if (this.#slot >= 0) CHANNEL_KEY_POOL.release(this.#slot);
    this.#slot = -1;
  }
}

export interface PendingHandshake {
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
  /** NO_DROPS (shared, frozen) until the session's first drop. */
  drops: Readonly<DropCounters>;
}

/** The channel with one peer (identified by its static public key). Its counters are its own
 *  fields (SessionStats), read as `stats`: no object of their own (~32 B per member at a home
 *  agent, issue 17). */
export class PeerSession implements SessionStats {
  /** The peer's static public key as a byteString (32 chars, one per byte): the endpoint's key
   *  for this session (the string the sessions Map holds, not a copy), and what a home agent's
   *  bindings name their owner by. */
  readonly peerKey: string;
  peerCertificate: MemberCertificate | null = null;
  // SessionStats (documented there).
  packetsIn = 0;
  packetsOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  handshakes = 0;
  handshakeTimeouts = 0;
  drops: Readonly<DropCounters> = NO_DROPS;
  /**
   * The latest initiation timestamp accepted from the peer while this session is open (as
   * EndpointState.peerTimestamps keeps them: 12 characters, one per byte); the endpoint moves it
   * to that Map when the session closes, so an old initiation cannot be replayed later. Here
   * rather than in the Map while open: one Map entry fewer per member (~46 B, issue 17).
   */
  acceptedTimestamp: string | undefined = undefined;
  /** @internal */ current: Keypair | null = null;
  /** @internal */ previous: Keypair | null = null;
  /** @internal */ next: Keypair | null = null;
  /** @internal */ pending: PendingHandshake | null = null;
  /** @internal */ cookie: { value: Uint8Array; at: number } | null = null;
  /** @internal we connect()ed: we rekey by time on our payload sends, even under keys the peer
   *  initiated (a restarted home agent's, issue 20); see transport.ts sendKeys */
  persistent = false;
  /** @internal a handshake was asked for by the data path (no usable keys, or a rekey due) */
  wantRekey = false;
  /** @internal when this session's timer work is due (its live entry in the endpoint's heap), in
   *  whole ms relative to the endpoint's timerBase (a small integer, not a boxed double per
   *  session, issue 17); undefined when none is */
  timerAt: number | undefined = undefined;
  /** @internal closed: never polled again */
  closed = false;
  /**
   * What the role driver keeps for this channel, in one record of its own (the home agent's
   * per-member state, roles/ha/ha-channel.ts) rather than an entry in a Map per kind of state
   * (issue 17). The channel code never reads or writes it.
   */
  driverState: unknown = undefined;

  /** `peerKey`: the peer's static public key as a byteString. */
  constructor(peerKey: string) {
    this.peerKey = peerKey;
  }

  /** The peer's static public key (32 bytes), made from `peerKey` on each read: a session keeps
   *  no buffer of its own for it (~230 B per member at a home agent, issue 17). */
  get peerPublicKey(): Uint8Array {
    return bytesOfString(this.peerKey);
  }

  /** The session's counters (its own fields). */
  get stats(): SessionStats {
    return this;
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
