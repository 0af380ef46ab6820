/**
 * Home agent binding cache (RFC 6275 §9.1, §10.1; digest §2.1): one entry per home address.
 *
 * Flow:
 *   - The signaling path (home-agent-registration.ts) creates, updates and deletes entries
 *     after a Binding Update passed every check.
 *   - The data path looks entries up per packet by `keyOf(packet, offset)`: the 16 address bytes
 *     become a 16-character latin1 string without any formatting, so no IPv6 text is built per
 *     packet. It records use with `recordIn` / `recordOut` (counters and `lastUsedAt`), which is
 *     O(1) and touches no timer state.
 *   - The driver arms one timer at `nextDeadline()` and calls `poll(now)`, which returns
 *     `refreshRequest` actions (send a Binding Refresh Request to an MN whose binding is 90% spent
 *     and that was used in the last 60 s; once per lifetime) and `expired` actions (the entry is
 *     already removed; the driver withdraws routes and logs).
 *
 * Deadlines live in a binary min-heap (util/deadline-heap.ts) of the entries themselves, with
 * lazy deletion (a heap item is live while its entry is the cache's and its time is the one
 * the entry was last armed for), so each update and each poll is O(log n) even with 100 000
 * bindings, with no object per deadline. A BU for an existing binding updates its entry in
 * place (issue 17: no new entry, counters or heap item per refresh). A refresh moves an
 * entry's deadline later: its item stays where it is and moves when it comes up (nextDeadline,
 * poll), so the heap holds one item per binding, not one per refresh since the last compaction.
 * Item times are whole milliseconds (a deadline rounded up: never sooner), and an entry keeps
 * its item's time relative to the first one the cache armed: a small integer, not a boxed
 * double per entry (issue 17; past ~24 days from that first time it is a double again).
 */
import { byteString, bytesOfString } from '../util/bytes.js';
import { DeadlineHeap } from '../util/deadline-heap.js';
import type { SizedOwnerStore } from '../util/owner-store.js';
import type { BindingUpdateFlags } from '../wire/types.js';
import { formatIpv6, parseIpv6 } from '../wire/address.js';
import { BINDING_TOMBSTONE_MS, BRR_LIFETIME_FRACTION, BRR_USAGE_WINDOW_MS } from './constants.js';
import { locatorCareOfAddress, type Locator } from './locator.js';
import type { PrefixAdvertisementState } from './prefix-advertisement.js';

/** Traffic counters of one binding (reverse-tunneled in, tunneled out). */
export interface BindingCounters {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
}

/** What a Binding Update sets in a binding (and what a restored binding brings), with its owner
 *  key as bytes or as a byteString or both (BindingOwner). */
export type BindingFields = BindingFieldsBase & BindingOwner;

/** A binding's owner key: the bytes, their byteString, or both (one of them at least). */
export type BindingOwner =
  | { ownerKey: Uint8Array; owner?: string | undefined }
  | { owner: string; ownerKey?: Uint8Array | undefined };

/** BindingFields but the owner. */
export interface BindingFieldsBase {
  /** The MN's home address (RFC 5952 text). The key. */
  homeAddress: string;
  /** Registered CoA: IPv6, or IPv4-mapped (::ffff:a.b.c.d) for an IPv4 CoA (RFC 5555). */
  careOfAddress: string;
  /** Where the HA sends: the outer address and port the BU was observed from. */
  locator: Locator;
  /** Granted lifetime in seconds (a multiple of 4). */
  lifetimeSeconds: number;
  /** Absolute expiry time (ms). */
  expiresAt: number;
  /** Last accepted Sequence # (RFC 6275 §9.5.1). */
  sequence: number;
  /** Flags of the accepted BU: one frozen object per combination, shared, never changed. */
  flags: Readonly<BindingUpdateFlags>;
  /** True for a home registration (H=1). */
  homeRegistration: boolean;
  /** Name of the authenticated member (certificate) that registered it. */
  peerName: string;
  /** RFC 5555: the IPv4 CoA option differed from the observed outer address. */
  natDetected: boolean;
  /** RFC 5555: UDP encapsulation is required (NAT, forced by the HA, or asked with BU flag F). */
  udpEncapsulationRequired: boolean;
  /** NAT keepalive interval told to the MN (s); 0 when no NAT Detection option was sent. */
  refreshTime: number;
  /** Binding Refresh Advice sent to the MN (s); 0 when none. */
  refreshAdviceSeconds: number;
}

/**
 * One binding at the HA (digest §2.1). Mutable: the data path updates counters in place, a
 * refresh BU rewrites the BindingFields of the same object. A class, every field set in the
 * constructor in one order, so all entries share one hidden class (issue 17: a spread object
 * literal per entry, then Object.assign on refresh, left each entry with a V8 map and
 * descriptor array of its own, ~600 B per binding).
 */
export class BindingCacheEntry implements BindingFieldsBase {
  // The BindingFields (documented there), all set by update() from the constructor.
  locator!: Locator;
  lifetimeSeconds!: number;
  sequence!: number;
  flags!: Readonly<BindingUpdateFlags>;
  homeRegistration!: boolean;
  peerName!: string;
  /**
   * The binding's owner: the static public key (X25519) of the channel whose BU created it, in
   * byteString (util/bytes.ts; DESIGN.md §4: every binding belongs to the key that created it). Only BUs from this
   * key may refresh, move or delete it; another member whose certificate also holds the home
   * address (an old laptop's, or one for a whole prefix) is refused until it expires or its
   * owner deregisters. The channel's own string (PeerSession.peerKey) when the BU gave it: the
   * entry keeps no bytes of its own (a view into the owner's certificate cost 96 B per binding
   * at 100 000, issue 17).
   */
  owner!: string;
  natDetected!: boolean;
  udpEncapsulationRequired!: boolean;
  refreshTime!: number;
  refreshAdviceSeconds!: number;
  /** `keyOf` of the home address: the data-path key. */
  readonly key: string;
  createdAt: number;
  /** Time of the last accepted BU for this entry. */
  updatedAt: number;
  /** Last data-path use (ms), null when never used. */
  lastUsedAt: number | null;
  /** A Binding Refresh Request was already issued for the current lifetime. */
  refreshRequested = false;
  /** The time of the entry's item in the cache's heap, relative to the cache's first (its
   *  items at other times are stale); undefined when it has none. The cache's own. */
  armedAt: number | undefined = undefined;
  /** The member's Mobile Prefix Advertisement schedule (PrefixAdvertisementState: its two
   *  fields, kept in the entry itself, not in a Map or an object of its own, issue 17);
   *  undefined while it has none. The cache never reads them. */
  mpaAt: number | undefined = undefined;
  mpaPending: PrefixAdvertisementState['mpaPending'] = undefined;
  /** Where the binding's traffic goes (the HA's BindingPaths keeps its bound path here, not in a
   *  Map of its own, issue 17); the cache never reads it, and a replacing entry takes it over. */
  path: object | undefined = undefined;
  #counters: BindingCounters | undefined;
  /** The care-of address when it is not the one `locator` names (locatorCareOfAddress): the
   *  usual binding keeps no text of its own for it (~42 B per binding, issue 17). */
  #careOf: string | undefined;
  /** expiresAt in whole ms, rounded down: a binding ends less than 1 ms before the time it
   *  was given, never after it (RFC 6275 10.3.1: its lifetime MUST NOT exceed the home
   *  prefix's), relative to expiryBase: a small integer, not a boxed double per binding
   *  (issue 17). */
  #expires: number | undefined = undefined;
  /** The home address as the BU spelled it when that is not RFC 5952 text of `key` (the usual
   *  binding keeps no text of its own for it, issue 17). */
  #homeAddress: string | undefined;

  constructor(
    fields: BindingFields,
    key: string,
    createdAt: number,
    updatedAt: number,
    lastUsedAt: number | null,
    counters: BindingCounters | undefined,
  ) {
    this.key = key;
    this.update(fields);
    this.createdAt = createdAt;
    this.updatedAt = updatedAt;
    this.lastUsedAt = lastUsedAt;
    this.#counters = counters;
  }

  /** BindingFields.expiresAt, in whole ms (see #expires). */
  get expiresAt(): number {
    const rel = this.#expires!;
    return Number.isFinite(rel) ? rel + expiryBase : rel;
  }

  set expiresAt(at: number) {
    if (!Number.isFinite(at)) {
      this.#expires = at; // never: kept as it is
      return;
    }
    if (Number.isNaN(expiryBase)) expiryBase = Math.floor(at);
    const rel = Math.floor(at) - expiryBase;
    // `| 0` keeps a small integer one (V8 stores a computed double boxed otherwise).
    this.#expires = rel >= -0x4000_0000 && rel < 0x4000_0000 ? rel | 0 : rel;
  }

  /** BindingFields.homeAddress: RFC 5952 text of `key` unless the BU spelled it otherwise. */
  get homeAddress(): string {
    return this.#homeAddress ?? formatKey(this.key);
  }

  /** BindingFields.careOfAddress: the locator's address as a CoA unless the BU said another. */
  get careOfAddress(): string {
    return this.#careOf ?? locatorCareOfAddress(this.locator);
  }

  /** The owner's static public key (a copy, made from `owner` on each read). */
  get ownerKey(): Uint8Array {
    return bytesOfString(this.owner);
  }

  /** Traffic counters (made on first use: an idle binding has none). */
  get counters(): BindingCounters {
    return (this.#counters ??= { packetsIn: 0, packetsOut: 0, bytesIn: 0, bytesOut: 0 });
  }

  /** The counters if any traffic was counted (for a copy that keeps them). */
  get countersIfAny(): BindingCounters | undefined {
    return this.#counters;
  }

  /** A BU's fields replace this entry's (a refresh or a move of the same binding). */
  update(fields: BindingFields): void {
    this.#homeAddress = fields.homeAddress === formatKey(this.key) ? undefined : fields.homeAddress;
    this.locator = fields.locator;
    this.#careOf =
      fields.careOfAddress === locatorCareOfAddress(fields.locator)
        ? undefined
        : fields.careOfAddress;
    this.lifetimeSeconds = fields.lifetimeSeconds;
    this.expiresAt = fields.expiresAt;
    this.sequence = fields.sequence;
    this.flags = fields.flags;
    this.homeRegistration = fields.homeRegistration;
    this.peerName = fields.peerName;
    this.owner = fields.owner ?? byteString(fields.ownerKey!);
    this.natDetected = fields.natDetected;
    this.udpEncapsulationRequired = fields.udpEncapsulationRequired;
    this.refreshTime = fields.refreshTime;
    this.refreshAdviceSeconds = fields.refreshAdviceSeconds;
  }
}

/** What `poll` asks the driver to do. */
export type BindingCacheAction =
  | { kind: 'expired'; entry: BindingCacheEntry }
  | { kind: 'refreshRequest'; entry: BindingCacheEntry };

/** Fields a caller provides to create an entry; the rest get defaults. */
export type NewBindingCacheEntry = BindingFields & {
  counters?: BindingCounters;
  createdAt?: number;
  lastUsedAt?: number | null;
};

/** Tuning of a BindingCache; the defaults follow RFC 6275 practice (see constants.ts). */
export interface BindingCacheOptions {
  /** Fraction of the lifetime after which a used entry gets a BRR (default 0.9). */
  refreshRequestFraction?: number;
  /** "Used recently" window for BRR (ms, default 60 000). */
  usageWindowMs?: number;
  /** How long the last sequence of a deleted entry is remembered (ms, default 600 000). */
  tombstoneMs?: number;
}

/**
 * Data-path key of the 16-byte IPv6 address at `bytes[offset..offset+16)`: a 16-character
 * string with one char per byte (latin1). Cheap (no hex, no RFC 5952 formatting); V8 keeps it a
 * one-byte string, and Map lookups on it hash in a few ns. Out-of-range bytes read as 0.
 */
export function keyOf(bytes: Uint8Array, offset: number): string {
  return String.fromCharCode(
    bytes[offset] ?? 0,
    bytes[offset + 1] ?? 0,
    bytes[offset + 2] ?? 0,
    bytes[offset + 3] ?? 0,
    bytes[offset + 4] ?? 0,
    bytes[offset + 5] ?? 0,
    bytes[offset + 6] ?? 0,
    bytes[offset + 7] ?? 0,
    bytes[offset + 8] ?? 0,
    bytes[offset + 9] ?? 0,
    bytes[offset + 10] ?? 0,
    bytes[offset + 11] ?? 0,
    bytes[offset + 12] ?? 0,
    bytes[offset + 13] ?? 0,
    bytes[offset + 14] ?? 0,
    bytes[offset + 15] ?? 0,
  );
}

/**
 * `keyOf` that keeps the last key it made: a run of packets of one home address (a download, a
 * lone packet after another) makes its key once and finds it already hashed (issue #16: the
 * data path allocates nothing per packet). One per call site, so runs of that site match.
 */
export class LastKey {
  readonly #bytes = new Uint8Array(16);
  #key = '';

  at(bytes: Uint8Array, offset: number): string {
    const last = this.#bytes;
    let k = 0;
    if (this.#key !== '') while (k < 16 && bytes[offset + k] === last[k]) k++;
    if (k === 16) return this.#key;
    for (k = 0; k < 16; k++) last[k] = bytes[offset + k] ?? 0;
    this.#key = keyOf(bytes, offset);
    return this.#key;
  }
}

/** The first expiry time set in the process: BindingCacheEntry keeps its expiry relative to it. */
let expiryBase = NaN;

/** Scratch of formatKey (one format at a time: JavaScript is single-threaded). */
const KEY_BYTES = new Uint8Array(16);

/** RFC 5952 text of a `keyOf` key. */
function formatKey(key: string): string {
  for (let i = 0; i < 16; i++) KEY_BYTES[i] = key.charCodeAt(i);
  return formatIpv6(KEY_BYTES);
}

/** `keyOf` for an address given as text (any IPv6 spelling). Throws WireError if invalid. */
export function keyOfText(address: string): string {
  return keyOf(parseIpv6(address), 0);
}

/** An owner key as BindingCacheEntry.owner has it: a string is one already. */
function ownerString(ownerKey: Uint8Array | string): string {
  return typeof ownerKey === 'string' ? ownerKey : byteString(ownerKey);
}

/**
 * PrefixAdvertiser's store over the entries (no entry: no state): a member's state is its entry,
 * once it has a schedule (`mpaAt`); `set` copies a new state's fields in (the advertiser goes on
 * with what `get` returns).
 */
function prefixAdvertisementStore(
  byKey: Map<string, BindingCacheEntry>,
): SizedOwnerStore<string, PrefixAdvertisementState> {
  return {
    get: (key) => {
      const e = byKey.get(key);
      return e?.mpaAt === undefined ? undefined : (e as PrefixAdvertisementState);
    },
    set: (key, state) => {
      const e = byKey.get(key);
      if (e === undefined) return;
      e.mpaAt = state.mpaAt;
      e.mpaPending = state.mpaPending;
    },
    delete: (key) => {
      const e = byKey.get(key);
      if (e === undefined) return;
      e.mpaAt = undefined;
      e.mpaPending = undefined;
    },
    get size(): number {
      return byKey.size;
    },
  };
}

/** The HA's binding cache. See the file comment for the flow. */
export class BindingCache {
  readonly #byKey = new Map<string, BindingCacheEntry>();
  readonly #heap = new DeadlineHeap<BindingCacheEntry>();
  readonly #isLive = (e: BindingCacheEntry, at: number): boolean =>
    e.armedAt === at - this.#base && this.#byKey.get(e.key) === e;
  /** The first item time the cache armed (armedAt is relative to it). */
  #base = NaN;
  readonly #tombstones = new Map<string, { sequence: number; until: number; owner: string }>();
  readonly #fraction: number;
  readonly #usageWindowMs: number;
  readonly #tombstoneMs: number;

  /** Creates an empty cache. */
  constructor(options: BindingCacheOptions = {}) {
    this.#fraction = options.refreshRequestFraction ?? BRR_LIFETIME_FRACTION;
    this.#usageWindowMs = options.usageWindowMs ?? BRR_USAGE_WINDOW_MS;
    this.#tombstoneMs = options.tombstoneMs ?? BINDING_TOMBSTONE_MS;
  }

  /** Number of bindings. */
  get size(): number {
    return this.#byKey.size;
  }

  /** The bindings' prefix advertisement schedules, as PrefixAdvertiser's store (by key). */
  readonly prefixAdvertisements = prefixAdvertisementStore(this.#byKey);

  /** Entry for a home address given as text (any IPv6 spelling), or undefined. */
  get(homeAddress: string): BindingCacheEntry | undefined {
    let key: string;
    try {
      key = keyOfText(homeAddress);
    } catch {
      return undefined;
    }
    return this.#byKey.get(key);
  }

  /** Data path: entry for a key made by `keyOf` (no formatting, no allocation besides the key). */
  getByKey(key: string): BindingCacheEntry | undefined {
    return this.#byKey.get(key);
  }

  /** All entries (insertion order). */
  entries(): IterableIterator<BindingCacheEntry> {
    return this.#byKey.values();
  }

  /**
   * Inserts or replaces the entry for `fields.homeAddress` and (re)arms its timers: a new
   * lifetime also re-enables one BRR. Keeps counters and createdAt of a replaced entry unless
   * given. Returns the stored entry.
   */
  set(fields: NewBindingCacheEntry, now: number): BindingCacheEntry {
    const key = keyOfText(fields.homeAddress);
    const old = this.#byKey.get(key);
    if (
      old !== undefined &&
      fields.counters === undefined &&
      fields.createdAt === undefined &&
      fields.lastUsedAt === undefined
    ) {
      // A BU for the binding (a refresh or a move): the same entry, its fields replaced.
      old.update(fields);
      old.updatedAt = now;
      old.refreshRequested = false;
      this.#arm(old);
      return old;
    }
    const entry = new BindingCacheEntry(
      fields,
      key,
      fields.createdAt ?? old?.createdAt ?? now,
      now,
      fields.lastUsedAt ?? old?.lastUsedAt ?? null,
      fields.counters ?? old?.countersIfAny,
    );
    if (old !== undefined) entry.path = old.path;
    this.#byKey.set(key, entry);
    this.#tombstones.delete(key);
    this.#arm(entry);
    return entry;
  }

  /**
   * Ends `entry` sooner, in place (the home prefix's valid lifetime shrank: a lifetime of
   * `lifetimeSeconds` from `now`): the same object, so whoever holds it (a BA waiting for DAD)
   * still finds it in the cache; its timers re-armed from now, as a replaced entry's were.
   */
  shorten(entry: BindingCacheEntry, lifetimeSeconds: number, now: number): void {
    entry.lifetimeSeconds = lifetimeSeconds;
    entry.expiresAt = now + lifetimeSeconds * 1000;
    entry.updatedAt = now;
    entry.refreshRequested = false;
    this.#arm(entry);
  }

  /** Removes the entry for `homeAddress`, remembering its sequence (tombstone). Returns it. */
  delete(homeAddress: string, now: number): BindingCacheEntry | undefined {
    const entry = this.get(homeAddress);
    if (entry === undefined) return undefined;
    this.#remove(entry, now);
    return entry;
  }

  /**
   * Last accepted sequence of a recently deleted binding for `homeAddress`, so a replayed BU
   * cannot resurrect it (undefined when none is remembered). With `ownerKey`, only a tombstone
   * of that owner counts: for any other key the address is free (its BUs never shared the
   * deleted binding's sequence space, and must not learn it).
   */
  tombstoneSequence(
    homeAddress: string,
    now: number,
    ownerKey?: Uint8Array | string,
  ): number | undefined {
    let key: string;
    try {
      key = keyOfText(homeAddress);
    } catch {
      return undefined;
    }
    const t = this.#tombstones.get(key);
    if (t === undefined) return undefined;
    if (t.until <= now) {
      this.#tombstones.delete(key);
      return undefined;
    }
    if (ownerKey !== undefined && t.owner !== ownerString(ownerKey)) return undefined;
    return t.sequence;
  }

  /** Data path: a reverse-tunneled packet of `bytes` from this MN arrived. */
  recordIn(entry: BindingCacheEntry, bytes: number, now: number): void {
    entry.counters.packetsIn++;
    entry.counters.bytesIn += bytes;
    entry.lastUsedAt = now;
  }

  /** Data path: a packet of `bytes` was tunneled to this MN. */
  recordOut(entry: BindingCacheEntry, bytes: number, now: number): void {
    entry.counters.packetsOut++;
    entry.counters.bytesOut += bytes;
    entry.lastUsedAt = now;
  }

  /** Earliest time `poll` has work (ms); Infinity when the cache is empty. */
  nextDeadline(): number {
    return this.#top()?.at ?? Infinity;
  }

  /** The live item due first, its entry's deadline moved up to date (a refreshed entry's item
   *  comes up early: it moves to the entry's deadline now); undefined when none. */
  #top(): { at: number; entry: BindingCacheEntry } | undefined {
    for (;;) {
      const at = this.#heap.peekLive(this.#isLive);
      const entry = this.#heap.peekItem();
      if (entry === undefined) return undefined;
      if (this.#deadline(entry) <= at) return { at, entry };
      this.#heap.pop();
      entry.armedAt = undefined;
      this.#arm(entry);
    }
  }

  /**
   * Runs due timers: expired entries are removed and returned as `expired`; entries at 90% of
   * their lifetime that were used in the usage window yield one `refreshRequest` per lifetime.
   */
  poll(now: number): BindingCacheAction[] {
    const actions: BindingCacheAction[] = [];
    for (;;) {
      const top = this.#top();
      if (top === undefined || top.at > now) break;
      const entry = top.entry;
      this.#heap.pop();
      entry.armedAt = undefined;
      if (entry.expiresAt <= now) {
        this.#remove(entry, now);
        actions.push({ kind: 'expired', entry });
        continue;
      }
      // The BRR deadline.
      entry.refreshRequested = true;
      if (entry.lastUsedAt !== null && now - entry.lastUsedAt <= this.#usageWindowMs) {
        actions.push({ kind: 'refreshRequest', entry });
      }
      this.#arm(entry);
    }
    if (this.#tombstones.size > 0) {
      for (const [k, t] of this.#tombstones) if (t.until <= now) this.#tombstones.delete(k);
    }
    return actions;
  }

  #remove(entry: BindingCacheEntry, now: number): void {
    this.#byKey.delete(entry.key);
    entry.armedAt = undefined;
    this.#tombstones.set(entry.key, {
      sequence: entry.sequence,
      until: now + this.#tombstoneMs,
      owner: entry.owner,
    });
  }

  /** The entry's next deadline (BRR time if not yet used, else expiry), a whole millisecond. */
  #deadline(entry: BindingCacheEntry): number {
    const brrAt = entry.updatedAt + entry.lifetimeSeconds * 1000 * this.#fraction;
    return Math.ceil(entry.refreshRequested || brrAt >= entry.expiresAt ? entry.expiresAt : brrAt);
  }

  /** Gives the entry an item at its deadline, unless it has one at or before it (that one
   *  moves when it comes up, #top). */
  #arm(entry: BindingCacheEntry): void {
    const at = this.#deadline(entry);
    if (entry.armedAt !== undefined && entry.armedAt + this.#base <= at) return;
    if (Number.isNaN(this.#base)) this.#base = at;
    entry.armedAt = at - this.#base;
    this.#heap.push(at, entry);
    if (this.#heap.size > 2 * this.#byKey.size + 64) this.#heap.compact(this.#isLive);
  }
}
