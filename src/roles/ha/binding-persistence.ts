/**
 * The home agent's side of its binding store (io/binding-store.ts, issue 20), without I/O:
 *   - BindingJournal: the changes of one burst (BUs accepted, bindings removed), coalesced by
 *     home address; the driver hands them to the store in one write at the end of the burst
 *     (a receive batch, a timer run), after the BAs went out.
 *   - restoredBinding(): whether a stored binding may serve again after a restart (not expired,
 *     its certificate still the owner's, valid and holding the home address on our prefix) and
 *     the cache entry it becomes.
 *   - RestoreSchedule: the members to re-initiate a channel with, paced (a restarted HA with
 *     100 000 stored bindings must not send 100 000 initiations in one burst), and when each
 *     unanswered attempt is given up.
 * Channel keys are never stored: the channel comes back with a fresh handshake, initiated by
 * the HA to the member's last locator, followed by a Binding Refresh Request.
 */
import { decodeCertificate, verifyCertificate } from '../../crypto/certificate.js';
import type { PeerSession } from '../../crypto/endpoint.js';
import { certificateHolds } from '../../crypto/selector.js';
import type { BindingStoreChanges, StoredBinding } from '../../io/binding-store.js';
import type { BindingCacheEntry, NewBindingCacheEntry } from '../../protocol/binding-cache.js';
import type { Locator } from '../../protocol/locator.js';
import { MAX_BINDING_LIFETIME_S } from '../../protocol/constants.js';
import { byteString, bytesEqual } from '../../util/bytes.js';
import { parseIpv6, prefixContains, type Prefix } from '../../wire/address.js';

/** Initiations sent per restore tick, and the tick (ms): at most 2 000 per second. */
export const RESTORE_INITIATIONS_PER_TICK = 20;
export const RESTORE_TICK_MS = 10;
/**
 * At most this many restore handshakes unanswered at once: the pace follows what the HA (and
 * the path) can complete, so a loaded HA never sends faster than it takes the responses in
 * (responses dropped from a full socket buffer would wait for the 5 s retransmission).
 */
export const RESTORE_WINDOW = 256;
/**
 * A restore handshake nobody answered is given up after this long (ms): the endpoint has
 * retransmitted it twice by then (REKEY_TIMEOUT, 5 s). The binding stays until it expires; a
 * member that comes back handshakes itself and gets it again.
 */
export const RESTORE_GIVE_UP_MS = 12_000;

/** The stored form of a binding: its cache entry and its owner's certificate. */
export function toStoredBinding(entry: BindingCacheEntry, certificate: Uint8Array): StoredBinding {
  return {
    homeAddress: entry.homeAddress,
    ownerKey: entry.ownerKey,
    certificate,
    peerName: entry.peerName,
    careOfAddress: entry.careOfAddress,
    locator: { address: entry.locator.address, port: entry.locator.port },
    sequence: entry.sequence,
    lifetimeSeconds: entry.lifetimeSeconds,
    expiresAt: entry.expiresAt,
    flags: entry.flags,
    natDetected: entry.natDetected,
    udpEncapsulationRequired: entry.udpEncapsulationRequired,
    refreshTime: entry.refreshTime,
    refreshAdviceSeconds: entry.refreshAdviceSeconds,
  };
}

/** The changes of one burst, coalesced by home address (the last one wins). */
export class BindingJournal {
  #changes = new Map<string, StoredBinding | null>();

  get size(): number {
    return this.#changes.size;
  }

  put(binding: StoredBinding): void {
    this.#changes.set(binding.homeAddress, binding);
  }

  delete(homeAddress: string): void {
    this.#changes.set(homeAddress, null);
  }

  /** What to write, and an empty journal. */
  take(): BindingStoreChanges {
    const out: BindingStoreChanges = { put: [], delete: [] };
    for (const [hoa, b] of this.#changes) {
      if (b === null) out.delete.push(hoa);
      else out.put.push(b);
    }
    this.#changes = new Map();
    return out;
  }
}

export type RestoreVerdict =
  | { ok: true; entry: NewBindingCacheEntry; certificate: Uint8Array }
  | { ok: false; reason: 'expired' | 'certificate' | 'not-our-prefix' | 'revoked' };

/** What a restored binding is checked against. */
export interface RestorePolicy {
  homePrefix: Prefix;
  /** The overlay authority: a stored certificate must carry its signature. */
  authorityPublicKey: Uint8Array;
  /** The longest lifetime this HA grants: a stored expiry further out is cut to it. */
  maxLifetimeSeconds: number;
  isRevoked?: ((publicKey: Uint8Array) => boolean) | undefined;
}

/**
 * Whether the stored binding `b` serves again at `now` (our Unix-ms timeline; `wallMs` for the
 * certificate's validity). The store is not trusted (an etcd writer, the SQLite file): the
 * certificate must carry the authority's signature, be the owner's, valid, not an HA's, and
 * hold the home address; the expiry is cut to now + the maximum lifetime. The handshake that
 * brings the channel back proves the key again (#rebindRestored).
 */
export function restoredBinding(
  b: StoredBinding,
  now: number,
  wallMs: number,
  policy: RestorePolicy,
): RestoreVerdict {
  const { homePrefix, authorityPublicKey, isRevoked } = policy;
  if (!Number.isFinite(b.expiresAt) || b.expiresAt <= now) return { ok: false, reason: 'expired' };
  let hoa: Uint8Array;
  try {
    hoa = parseIpv6(b.homeAddress);
  } catch {
    return { ok: false, reason: 'not-our-prefix' };
  }
  if (!prefixContains(homePrefix, hoa, 0)) return { ok: false, reason: 'not-our-prefix' };
  try {
    const cert = decodeCertificate(b.certificate);
    if (
      !bytesEqual(cert.publicKey, b.ownerKey) ||
      cert.role === 'ha' ||
      verifyCertificate(cert, authorityPublicKey, wallMs) !== 'ok' ||
      !certificateHolds(cert, hoa)
    ) {
      return { ok: false, reason: 'certificate' };
    }
  } catch {
    return { ok: false, reason: 'certificate' };
  }
  if (isRevoked?.(b.ownerKey) === true) return { ok: false, reason: 'revoked' };
  const maxSeconds = Math.min(policy.maxLifetimeSeconds, MAX_BINDING_LIFETIME_S);
  return {
    ok: true,
    certificate: b.certificate,
    entry: {
      homeAddress: b.homeAddress,
      careOfAddress: b.careOfAddress,
      locator: { ...b.locator },
      lifetimeSeconds: Math.min(b.lifetimeSeconds, maxSeconds),
      expiresAt: Math.min(b.expiresAt, now + maxSeconds * 1000),
      sequence: b.sequence,
      flags: b.flags,
      homeRegistration: true,
      peerName: b.peerName,
      ownerKey: b.ownerKey,
      natDetected: b.natDetected,
      udpEncapsulationRequired: b.udpEncapsulationRequired,
      refreshTime: b.refreshTime,
      refreshAdviceSeconds: b.refreshAdviceSeconds,
    },
  };
}

/** One member whose channel a restarted HA re-initiates. */
export interface RestoringMember {
  ownerKey: Uint8Array;
  /** Its last locator (of its most recently updated binding) and when that was. */
  locator: Locator;
  updatedAt: number;
  /** Keys of its restored bindings. */
  keys: string[];
  /** The channel once an initiation went out; when that attempt is given up. */
  session?: PeerSession | undefined;
  giveUpAt: number;
  /** Initiated and neither answered nor given up (counts against the window). */
  inFlight: boolean;
}

/** Members waiting for their channel, paced initiations, give-up times. */
export class RestoreSchedule {
  readonly #byOwner = new Map<string, RestoringMember>();
  readonly #queue: RestoringMember[] = [];
  #next = 0;
  /** Initiated, oldest first (give-up order). */
  readonly #sent: RestoringMember[] = [];
  #sentHead = 0;
  #nextTickAt = Infinity;
  #inFlight = 0;
  readonly #perTick: number;
  readonly #tickMs: number;
  readonly #window: number;

  constructor(
    perTick = RESTORE_INITIATIONS_PER_TICK,
    tickMs = RESTORE_TICK_MS,
    window = RESTORE_WINDOW,
  ) {
    this.#perTick = perTick;
    this.#tickMs = tickMs;
    this.#window = window;
  }

  /** Members still waiting for their channel. */
  get size(): number {
    return this.#byOwner.size;
  }

  /** A restored binding of `ownerKey`, last seen at `locator` (the newest wins). */
  add(ownerKey: Uint8Array, key: string, locator: Locator, updatedAt: number): void {
    const id = byteString(ownerKey);
    let m = this.#byOwner.get(id);
    if (m === undefined) {
      m = { ownerKey, locator, updatedAt, keys: [], giveUpAt: Infinity, inFlight: false };
      this.#byOwner.set(id, m);
      this.#queue.push(m);
    } else if (updatedAt > m.updatedAt) {
      m.locator = locator;
      m.updatedAt = updatedAt;
    }
    m.keys.push(key);
  }

  /** Starts the paced initiations at `now`. */
  start(now: number): void {
    if (this.#next < this.#queue.length) this.#nextTickAt = now;
  }

  /** The member waiting for a channel with this key (bytes, or a byteString: PeerSession.peerKey),
   *  removed from the schedule. */
  take(peerKey: Uint8Array | string): RestoringMember | undefined {
    if (this.#byOwner.size === 0) return undefined;
    const id = typeof peerKey === 'string' ? peerKey : byteString(peerKey);
    const m = this.#byOwner.get(id);
    if (m !== undefined) {
      this.#byOwner.delete(id);
      this.#settle(m);
    }
    return m;
  }

  /**
   * The members to initiate now (at most perTick per tick and `window` unanswered, still
   * waiting), marked with their give-up time; and those whose attempt is given up now (no
   * channel yet: the driver closes it).
   */
  poll(now: number): { initiate: RestoringMember[]; giveUp: RestoringMember[] } {
    // Give-ups first: they free room in the window for this tick's initiations.
    const giveUp: RestoringMember[] = [];
    while (this.#sentHead < this.#sent.length && this.#sent[this.#sentHead]!.giveUpAt <= now) {
      const m = this.#sent[this.#sentHead++]!;
      if (this.#byOwner.has(byteString(m.ownerKey))) {
        this.#settle(m);
        giveUp.push(m);
      }
    }
    if (this.#sentHead === this.#sent.length) {
      this.#sent.length = 0;
      this.#sentHead = 0;
    }
    const initiate: RestoringMember[] = [];
    if (now >= this.#nextTickAt) {
      while (
        this.#next < this.#queue.length &&
        initiate.length < this.#perTick &&
        this.#inFlight < this.#window
      ) {
        const m = this.#queue[this.#next++]!;
        if (!this.#byOwner.has(byteString(m.ownerKey))) continue; // its channel is back already
        m.giveUpAt = now + RESTORE_GIVE_UP_MS;
        m.inFlight = true;
        this.#inFlight++;
        initiate.push(m);
        this.#sent.push(m);
      }
      this.#nextTickAt = this.#next < this.#queue.length ? now + this.#tickMs : Infinity;
    }
    return { initiate, giveUp };
  }

  /** Handshakes initiated and not yet answered nor given up. */
  get inFlight(): number {
    return this.#inFlight;
  }

  #settle(m: RestoringMember): void {
    if (!m.inFlight) return;
    m.inFlight = false;
    this.#inFlight--;
  }

  nextDeadline(): number {
    const head = this.#sent[this.#sentHead];
    return Math.min(this.#nextTickAt, head === undefined ? Infinity : head.giveUpAt);
  }
}
