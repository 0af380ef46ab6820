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
import type { BindingPaths, BoundPath } from './binding-paths.js';

/** A wanted channel is dropped after this long without traffic either way. */
export const EXPRESS_IDLE_MS = 10_000;
/** Home addresses per direction of one channel (the lane's MAX_SOURCES / MAX_DESTS). */
const MAX_KEYS = 4;

/** What ha-express needs from the home agent driver. */
export interface HaExpressHost {
  readonly endpoint: SecureEndpoint;
  readonly cache: BindingCache;
  readonly paths: BindingPaths;
  readonly counters: {
    tunnelPacketsIn: number;
    tunnelBytesIn: number;
    tunnelPacketsOut: number;
    tunnelBytesOut: number;
  };
  /** Adds `n` to a drop counter. */
  drop(reason: 'udp-send' | 'tun-write', n: number): void;
  /** Where the channel's last datagram came from (handshakes the HA starts go there). */
  lastLocator(session: PeerSession): { address: string; port: number } | undefined;
  /** Keys of bindings still in DAD. */
  dadPending(key: string): boolean;
  /** A capture file is open: every packet must pass through JS. */
  capturing(): boolean;
  /** A socket of the family exists. */
  hasSocket(family: 4 | 6): boolean;
  /** Payload went to `session`'s path at `at` (the path MTU's traffic mark). */
  noteTraffic(session: PeerSession, at: number): void;
}

class Wanted {
  readonly session: PeerSession;
  /** Binding keys whose inner sources the lane may take from this channel, and destinations. */
  readonly rx: string[] = [];
  readonly tx: string[] = [];
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
  noteRx(entry: BindingCacheEntry, session: PeerSession, now: number): void {
    const w = this.#want(session, now);
    if (!w.rx.includes(entry.key) && w.rx.length < MAX_KEYS) w.rx.push(entry.key);
  }

  /** JS sealed payload for `entry`'s binding to its channel, in the steady state. */
  noteTx(entry: BindingCacheEntry, session: PeerSession, now: number): void {
    const w = this.#want(session, now);
    if (!w.tx.includes(entry.key) && w.tx.length < MAX_KEYS) w.tx.push(entry.key);
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
    let w = this.#wanted.get(session);
    if (w === undefined) {
      w = new Wanted(session, now);
      this.#wanted.set(session, w);
    }
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

  /** Arms `w` from the driver's state now; false when nothing of it may go into the lane. */
  #arm(w: Wanted, now: number): boolean {
    w.armedRx = w.armedTx = undefined;
    const view = this.#host.endpoint.expressView(w.session, now);
    if (view === undefined) return false;
    // The channel's last datagram came from the bound path (the one the lane will take): else
    // a handshake the HA starts would go elsewhere while the lane keeps the path.
    const last = this.#host.lastLocator(w.session);
    let path: BoundPath | undefined;
    let sources: Uint8Array | null = null;
    let n = 0;
    for (const key of w.rx) {
      const bound = this.#bound(key, w.session);
      if (bound === undefined || (path !== undefined && bound !== path)) continue;
      if (last === undefined || last.address !== bound.address || last.port !== bound.port)
        continue;
      path = bound;
      w.armedRx ??= key;
      sources ??= new Uint8Array(MAX_KEYS * 16);
      sources.set(bytesOfString(key), n * 16);
      n++;
    }
    let armed = false;
    if (path !== undefined && sources !== null) {
      armed = this.#lane.armRx(view, path, sources.subarray(0, n * 16));
    }
    let txPath: BoundPath | undefined;
    let dests: Uint8Array | null = null;
    let d = 0;
    let maxInner = 0;
    for (const key of w.tx) {
      const bound = this.#bound(key, w.session);
      if (bound === undefined || (txPath !== undefined && bound !== txPath)) continue;
      // The path MTU state of this very locator, searching or done, and payload noted on it
      // (an idle path's confirmations rest until JS sees payload again).
      const mtu = bound.mtu;
      if (mtu === undefined || bound.mtuFor !== bound.locator || !mtu.used) continue;
      txPath = bound;
      w.armedTx ??= key;
      maxInner = mtu.maxInner;
      dests ??= new Uint8Array(MAX_KEYS * 16);
      dests.set(bytesOfString(key), d * 16);
      d++;
    }
    if (txPath !== undefined && dests !== null) {
      armed = this.#lane.armTx(view, txPath, maxInner, dests.subarray(0, d * 16)) || armed;
    }
    if (armed) this.#bySpi.set(view.localSpi, w);
    return armed || w.rx.length + w.tx.length > 0;
  }

  /** Adds what the lane carried for one channel to what JS keeps. */
  #applyReport(r: ExpressReport): void {
    const w = this.#bySpi.get(r.spi);
    if (w === undefined) return;
    const h = this.#host;
    const s = w.session;
    const now = this.#now;
    if (r.rxPackets > 0) {
      s.packetsIn += r.rxPackets;
      s.bytesIn += r.rxBytes;
      h.counters.tunnelPacketsIn += r.rxPackets;
      h.counters.tunnelBytesIn += r.rxBytes;
      const entry = w.armedRx === undefined ? undefined : h.cache.getByKey(w.armedRx);
      if (entry !== undefined) this.#record(entry, r.rxPackets, r.rxBytes, now - r.rxAgoMs, true);
      w.lastActive = Math.max(w.lastActive, now - r.rxAgoMs);
    }
    if (r.txPackets > 0) {
      s.packetsOut += r.txPackets;
      s.bytesOut += r.txBytes;
      h.counters.tunnelPacketsOut += r.txPackets;
      h.counters.tunnelBytesOut += r.txBytes;
      const entry = w.armedTx === undefined ? undefined : h.cache.getByKey(w.armedTx);
      if (entry !== undefined) this.#record(entry, r.txPackets, r.txBytes, now - r.txAgoMs, false);
      h.noteTraffic(s, now - r.txAgoMs);
      w.lastActive = Math.max(w.lastActive, now - r.txAgoMs);
    }
    if (r.badTags > 0) h.endpoint.countExpressDrops(s, r.badTags);
    if (r.sendErrors > 0) h.drop('udp-send', r.sendErrors);
    if (r.tunErrors > 0) h.drop('tun-write', r.tunErrors);
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
