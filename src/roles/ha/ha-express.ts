/**
 * What the home agent puts into the native express lane (io/express.ts, native/express.c,
 * issue #16), and what it takes back from it.
 *
 * The lane carries a member's plain payload (IPv6 TCP / UDP / Echo, inner source a home address
 * bound to that member's channel) both ways without a JS call. It never decides anything: the
 * driver's checks ran in JS on this channel's earlier packets, and the lane only repeats them
 * until the driver's next callback, which starts by clearing it (`begin`) and ends by arming
 * again what still passes every check (`end`). So a binding, locator, key or path MTU change,
 * which only ever happens inside a driver callback, takes effect on the very next packet.
 *
 * A channel is wanted when JS has just carried its data in the steady state (`noteRx`,
 * `noteTx`): data from the binding's validated locator and at our address it was bound at, no
 * DAD pending, a bound path whose path MTU state is current and in use, no capture. `end`
 * checks that again for each wanted binding from the driver's state, never from the packet.
 * What the lane carried is added back at `begin` to the counters JS would have kept (session,
 * binding, tunnel counters, drops) and to the path MTU's traffic mark.
 */
import type { PeerSession, SecureEndpoint } from '../../crypto/endpoint.js';
import type { ExpressLane, ExpressReport } from '../../io/types.js';
import type { BindingCache, BindingCacheEntry } from '../../protocol/binding-cache.js';
import { bytesOfString } from '../../util/bytes.js';
import { parseIpv4 } from '../../wire/address.js';
import type { BindingPaths, BoundPath } from './binding-paths.js';
import { addExpressReport, type TunnelCounters } from '../common.js';

/** A wanted channel is dropped after this long without traffic either way. */
export const EXPRESS_IDLE_MS = 10_000;
/**
 * Each arming costs every wanted channel some microseconds (its checks here, its keys into the
 * lane's contexts), and every callback empties the lane. So the lane holds the channels JS
 * carried most recently, at most EXPRESS_WANTED of them, and is armed again at most once per
 * EXPRESS_REARM_MS: a home agent busy enough to run JS more often (or a sender of datagrams the
 * lane cannot take, each a callback) then has its packets through JS, as without a lane, and
 * never pays more than ~EXPRESS_WANTED arming per millisecond. The lane is for the quiet
 * channel's lone packets.
 */
export const EXPRESS_WANTED = 16;
export const EXPRESS_REARM_MS = 1;
/** Home addresses per direction of one channel (the lane's MAX_SOURCES / MAX_DESTS). */
const MAX_KEYS = 4;

/** What ha-express needs from the home agent driver. */
export interface HaExpressHost {
  readonly endpoint: SecureEndpoint;
  readonly cache: BindingCache;
  readonly paths: BindingPaths;
  readonly counters: TunnelCounters;
  readonly drops: { add(reason: string, n?: number): void };
  /** Where the channel's last datagram came from (handshakes the HA starts go there). */
  lastLocator(session: PeerSession): { address: string; port: number } | undefined;
  /** Keys of bindings still in DAD. */
  dadPending(key: string): boolean;
  /** The IPv4 home address (RFC 5555) granted to the binding of `key`, as text. */
  ipv4AddressOf(key: string): string | undefined;
  /** A capture file is open: every packet must pass through JS. */
  capturing(): boolean;
  /** A socket of the family exists. */
  hasSocket(family: 4 | 6): boolean;
  /** Payload went to `session`'s path at `at` (the path MTU's traffic mark). */
  noteTraffic(session: PeerSession, at: number): void;
}

class Wanted {
  readonly session: PeerSession;
  /** Binding keys whose inner sources the lane may take from this channel, and destinations;
   *  rx4 / tx4: those whose IPv4 home address (RFC 5555) JS carried. */
  readonly rx: string[] = [];
  readonly tx: string[] = [];
  readonly rx4: string[] = [];
  readonly tx4: string[] = [];
  /** The binding key armed each way (its binding gets the lane's counts). */
  armedRx: string | undefined = undefined;
  armedTx: string | undefined = undefined;
  lastActive: number;

  constructor(session: PeerSession, now: number) {
    this.session = session;
    this.lastActive = now;
  }
}

export class HaExpress {
  readonly #lane: ExpressLane;
  readonly #host: HaExpressHost;
  readonly #wanted = new Map<PeerSession, Wanted>();
  /** The channel each armed SPI belongs to, for the reports of the next clear. */
  readonly #bySpi = new Map<number, Wanted>();
  #now = 0;
  /** When end() last armed (EXPRESS_REARM_MS). */
  #armedAt = -Infinity;
  readonly #apply = (r: ExpressReport): void => this.#applyReport(r);

  constructor(lane: ExpressLane, host: HaExpressHost) {
    this.#lane = lane;
    this.#host = host;
  }

  /** Channels armed now. */
  get armed(): number {
    return this.#lane.armed;
  }

  /** A driver callback starts: nothing in the lane any more; what it carried is counted. */
  begin(now: number): void {
    if (this.#lane.armed === 0) return;
    this.#now = now;
    this.#lane.clear(this.#apply);
    this.#bySpi.clear();
  }

  /** JS forwarded payload of `entry`'s binding from its channel, in the steady state. */
  noteRx(entry: BindingCacheEntry, session: PeerSession, v4: boolean, now: number): void {
    const w = this.#want(session, now);
    const list = v4 ? w.rx4 : w.rx;
    if (!list.includes(entry.key) && list.length < MAX_KEYS) list.push(entry.key);
  }

  /** JS sealed payload for `entry`'s binding to its channel, in the steady state. */
  noteTx(entry: BindingCacheEntry, session: PeerSession, v4: boolean, now: number): void {
    const w = this.#want(session, now);
    const list = v4 ? w.tx4 : w.tx;
    if (!list.includes(entry.key) && list.length < MAX_KEYS) list.push(entry.key);
  }

  /**
   * A driver callback ends: arms what still passes every check. `now` is read at the end of
   * the callback (the keys' remaining time counts from the moment of arming).
   */
  end(now: number): void {
    if (this.#wanted.size === 0) return;
    if (this.#host.capturing()) {
      this.#wanted.clear();
      return;
    }
    if (now - this.#armedAt < EXPRESS_REARM_MS) return;
    this.#armedAt = now;
    for (const w of this.#wanted.values()) {
      if (w.session.closed || now - w.lastActive > EXPRESS_IDLE_MS || !this.#arm(w, now)) {
        this.#wanted.delete(w.session);
      }
    }
  }

  /** Forgets everything (the driver closes). */
  close(): void {
    this.begin(this.#now);
    this.#wanted.clear();
    this.#lane.close();
  }

  #want(session: PeerSession, now: number): Wanted {
    const wanted = this.#wanted;
    let w = wanted.get(session);
    if (w === undefined) {
      w = new Wanted(session, now);
      // The longest wanted gives way (a Map iterates in insertion order: the first is the one
      // JS carried least recently, since a channel JS carries again moves to the end below).
      if (wanted.size >= EXPRESS_WANTED) wanted.delete(wanted.keys().next().value!);
    } else if (w.lastActive !== now) {
      wanted.delete(session);
    }
    wanted.set(session, w);
    w.lastActive = now;
    return w;
  }

  /** The binding of `key` on `session`'s channel, bound to a validated path; else undefined. */
  #bound(key: string, session: PeerSession): BoundPath | undefined {
    const h = this.#host;
    const entry = h.cache.getByKey(key);
    if (entry === undefined || h.dadPending(key)) return undefined;
    const bound = h.paths.of(entry);
    if (bound === undefined || bound.session !== session || bound.data !== bound.locator) {
      return undefined;
    }
    // Our address the member reaches must be known: the lane then takes only datagrams to it,
    // and one to another of ours goes through JS, whose path bookkeeping challenges from there.
    if (bound.ifindex !== 0 || bound.local === undefined || !h.hasSocket(bound.family)) {
      return undefined;
    }
    return bound;
  }

  /**
   * The addresses of one direction of `w` that may go into the lane, all on one bound path:
   * the IPv6 home addresses of `keys` and the IPv4 ones (as ::ffff:a.b.c.d) of `keys4`, at most
   * MAX_KEYS; `accept(bound)` says whether a binding's path qualifies. Undefined when none.
   */
  #collect(
    w: Wanted,
    keys: readonly string[],
    keys4: readonly string[],
    accept: (bound: BoundPath) => boolean,
  ): { path: BoundPath; addresses: Uint8Array; first: string } | undefined {
    let path: BoundPath | undefined;
    let first: string | undefined;
    const out = new Uint8Array(MAX_KEYS * 16);
    let n = 0;
    for (let i = 0; i < keys.length + keys4.length && n < MAX_KEYS; i++) {
      const v4 = i >= keys.length;
      const key = v4 ? keys4[i - keys.length]! : keys[i]!;
      const bound = this.#bound(key, w.session);
      if (bound === undefined || (path !== undefined && bound !== path) || !accept(bound)) continue;
      if (v4) {
        const a4 = this.#host.ipv4AddressOf(key);
        if (a4 === undefined) continue;
        out[n * 16 + 10] = out[n * 16 + 11] = 0xff; // ::ffff:a.b.c.d (the rest is zero)
        out.set(parseIpv4(a4), n * 16 + 12);
      } else {
        out.set(bytesOfString(key), n * 16);
      }
      path = bound;
      first ??= key;
      n++;
    }
    if (path === undefined || first === undefined) return undefined;
    return { path, addresses: out.subarray(0, n * 16), first };
  }

  /** Arms `w` from the driver's state now; false when nothing of it may go into the lane. */
  #arm(w: Wanted, now: number): boolean {
    w.armedRx = w.armedTx = undefined;
    const view = this.#host.endpoint.expressView(w.session, now);
    if (view === undefined) return false;
    let armed = false;
    // The channel's last datagram came from the bound path (the one the lane will take): else
    // a handshake the HA starts would go elsewhere while the lane keeps the path.
    const last = this.#host.lastLocator(w.session);
    const rx = this.#collect(
      w,
      w.rx,
      w.rx4,
      (b) => last !== undefined && last.address === b.address && last.port === b.port,
    );
    if (rx !== undefined && this.#lane.armRx(view, rx.path, rx.addresses)) {
      w.armedRx = rx.first;
      armed = true;
    }
    // The path MTU state of this very locator, searching or done, and payload noted on it (an
    // idle path's confirmations rest until JS sees payload again).
    const tx = this.#collect(
      w,
      w.tx,
      w.tx4,
      (b) => b.mtu !== undefined && b.mtuFor === b.locator && b.mtu.used,
    );
    if (tx !== undefined && this.#lane.armTx(view, tx.path, tx.path.mtu!.maxInner, tx.addresses)) {
      w.armedTx = tx.first;
      armed = true;
    }
    if (armed) this.#bySpi.set(view.localSpi, w);
    return armed || w.rx.length + w.tx.length + w.rx4.length + w.tx4.length > 0;
  }

  /** Adds what the lane carried for one channel to what JS keeps. */
  #applyReport(r: ExpressReport): void {
    const w = this.#bySpi.get(r.spi);
    if (w === undefined) return;
    const h = this.#host;
    const s = w.session;
    const now = this.#now;
    addExpressReport(h.endpoint, s, h.counters, h.drops, r);
    if (r.rxPackets > 0) {
      const entry = w.armedRx === undefined ? undefined : h.cache.getByKey(w.armedRx);
      if (entry !== undefined) this.#record(entry, r.rxPackets, r.rxBytes, now - r.rxAgoMs, true);
      w.lastActive = Math.max(w.lastActive, now - r.rxAgoMs);
    }
    if (r.txPackets > 0) {
      const entry = w.armedTx === undefined ? undefined : h.cache.getByKey(w.armedTx);
      if (entry !== undefined) this.#record(entry, r.txPackets, r.txBytes, now - r.txAgoMs, false);
      h.noteTraffic(s, now - r.txAgoMs);
      w.lastActive = Math.max(w.lastActive, now - r.txAgoMs);
    }
  }

  /** The binding's counters as recordIn / recordOut would have kept them, packet by packet. */
  #record(
    entry: BindingCacheEntry,
    packets: number,
    bytes: number,
    at: number,
    inbound: boolean,
  ): void {
    const c = entry.counters;
    if (inbound) {
      c.packetsIn += packets;
      c.bytesIn += bytes;
    } else {
      c.packetsOut += packets;
      c.bytesOut += bytes;
    }
    if (entry.lastUsedAt === null || at > entry.lastUsedAt) entry.lastUsedAt = at;
  }
}
