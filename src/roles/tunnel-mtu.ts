/**
 * The tunnel's path MTU, as both roles run it (issue #21): the engine (protocol/path-mtu.ts)
 * per peer at its current locator, and what the drivers do around it.
 *
 * Data path (per packet, TUN -> underlay): an inner packet longer than its peer's `maxInner`
 * is not sent (the outer datagram would be dropped: Don't Fragment, and fragments may not
 * pass anyway) but answered with an ICMPv6 Packet Too Big (RFC 4443 §3.2; ICMPv4 Fragmentation
 * Needed, RFC 1191, for an inner IPv4 packet) written into the TUN, rate-limited, so the inner
 * sender adapts; a TCP SYN has its MSS clamped to the path (wire/tcp-mss.ts). Both are a length
 * compare and a byte compare on the common path.
 *
 * Control (rare): probes due are sealed as the node's own signaling and sent to the peer's
 * locator; a probe received is acknowledged at once with its id and size; an ack goes to the
 * engine. MTU reports from the sockets' error queues (ICMP Fragmentation Needed / Packet Too
 * Big, native/udp.c) count only when the quoted channel header is one of ours lately
 * (SecureEndpoint.sentRecently) and the destination is that peer's current locator; then the
 * engine lowers the path (never below the base, never up).
 */
import type { PeerSession, SecureEndpoint } from '../crypto/endpoint.js';
import type { PathMtuStatus } from '../io/control-protocol.js';
import type { MtuReport, UdpEndpoint } from '../io/types.js';
import type { Locator } from '../protocol/locator.js';
import { formatLocator } from '../protocol/locator.js';
import { ErrorRateLimiter } from '../protocol/mobility-header-check.js';
import {
  decodePathMtuMessage,
  encodeProbe,
  encodeProbeAck,
  PathMtuTable,
  type PathMtuState,
  type PathShape,
  type ProbeToSend,
  type StoredPath,
} from '../protocol/path-mtu.js';
import { parseIpv4 } from '../wire/address.js';
import { buildFragmentationNeeded, ipv4DontFragment } from '../wire/icmpv4-too-big.js';
import { buildPacketTooBig } from '../wire/icmpv6.js';
import { clampTcpMss } from '../wire/tcp-mss.js';
import type { OwnerStore } from '../util/owner-store.js';
import type { DropCounters, NodeEnvironment } from './common.js';

/** Outer bytes per inner packet: IP header + UDP (8) + channel header and tag (32). */
export const TUNNEL_OVERHEAD = { 4: 20 + 8 + 32, 6: 40 + 8 + 32 } as const;
/** Packet Too Big / Fragmentation Needed written into the TUN per second at most, per peer
 *  (RFC 4443 §2.4 (f) asks for a limit; the inner sender needs only one): a member behind a
 *  small path cannot use up the others' errors. */
export const TOO_BIG_PER_SECOND = 20;
/** Matched MTU reports acted on per second at most, per peer. Charged only after the report
 *  was matched to a datagram we sent that peer, so forged ones (refused, counted) never use up
 *  a peer's budget. The native side hands out at most 16 per take, which bounds the cost of
 *  checking them (a pass over the sessions each). */
export const MTU_REPORTS_PER_SECOND = 50;
/** Peers with a rate limiter at most (the oldest forgotten first). */
export const RATE_LIMITED_PEERS_MAX = 4096;

/** One ErrorRateLimiter per key, at most RATE_LIMITED_PEERS_MAX of them. */
class PerPeerRateLimiter<K> {
  readonly #perSecond: number;
  readonly #byKey = new Map<K, ErrorRateLimiter>();

  constructor(perSecond: number) {
    this.#perSecond = perSecond;
  }

  allow(key: K, now: number): boolean {
    let l = this.#byKey.get(key);
    if (l === undefined) {
      if (this.#byKey.size >= RATE_LIMITED_PEERS_MAX) {
        const oldest = this.#byKey.keys().next();
        if (oldest.done !== true) this.#byKey.delete(oldest.value);
      }
      l = new ErrorRateLimiter(this.#perSecond);
      this.#byKey.set(key, l);
    }
    return l.allow(now);
  }

  forget(key: K): void {
    this.#byKey.delete(key);
  }

  get size(): number {
    return this.#byKey.size;
  }
}

/** The control protocol's view of a path MTU state (what `mip6 status` shows). */
export function pathMtuStatus(s: PathMtuStatus): PathMtuStatus {
  return {
    locator: s.locator,
    pathMtu: s.pathMtu,
    maxInner: s.maxInner,
    source: s.source,
    state: s.state,
  };
}

export interface TunnelMtuCounters {
  probesSent: number;
  probesAnswered: number;
  tooBigSent: number;
  mssClamped: number;
  reportsAccepted: number;
  reportsRejected: number;
}

export class TunnelMtu<Owner> {
  readonly table: PathMtuTable<Owner>;
  readonly counters: TunnelMtuCounters = {
    probesSent: 0,
    probesAnswered: 0,
    tooBigSent: 0,
    mssClamped: 0,
    reportsAccepted: 0,
    reportsRejected: 0,
  };
  readonly #env: NodeEnvironment;
  readonly #drops: DropCounters;
  readonly #tunMtu: number;
  readonly #underlayMtu: number;
  readonly #tooBig = new PerPeerRateLimiter<Owner>(TOO_BIG_PER_SECOND);
  readonly #reports = new PerPeerRateLimiter<Owner>(MTU_REPORTS_PER_SECOND);
  /** Source of the ICMP errors we write into the TUN (one of this node's addresses). */
  readonly #source6: () => string;
  readonly #source4: Uint8Array;
  /** mtuReports counters already taken, per socket. */
  readonly #seen = new WeakMap<UdpEndpoint, number>();

  constructor(
    env: NodeEnvironment,
    drops: DropCounters,
    opts: {
      underlayMtu: number;
      /** Our address the ICMPv6 errors come from (the home agent's home-prefix address). */
      icmpSource6: () => string;
      icmpSource4?: string | undefined;
      /** Where each owner's path MTU state is kept (default: the table's own Map). */
      store?: OwnerStore<Owner, StoredPath> | undefined;
      /** Idle finished paths kept as their size only (protocol/path-mtu.ts, parking): the
       *  locator an owner's path is about, and whether its state may go (the driver then drops
       *  its references to it). */
      parking?:
        | {
            pathOf(owner: Owner): (Locator & { family: 4 | 6 }) | undefined;
            park(owner: Owner, state: PathMtuState): boolean;
          }
        | undefined;
    },
  ) {
    const parking = opts.parking;
    this.table = new PathMtuTable<Owner>(
      opts.store,
      parking && {
        pathOf: (owner) => {
          const to = parking.pathOf(owner);
          return to && this.#shape(to);
        },
        park: (owner, state) => parking.park(owner, state),
      },
    );
    this.#env = env;
    this.#drops = drops;
    this.#tunMtu = env.tun.mtu;
    this.#underlayMtu = opts.underlayMtu;
    this.#source6 = opts.icmpSource6;
    // RFC 7600 §4.8's dummy address when the node has no IPv4 address of its own.
    this.#source4 = parseIpv4(opts.icmpSource4 ?? '192.0.0.8');
  }

  /** `owner` is reached at `to` (a family's overhead, the TUN and underlay limits). */
  path(owner: Owner, to: Locator & { family: 4 | 6 }, now: number): PathMtuState {
    const p = this.#shape(to);
    return this.table.setPath(owner, p.locator, p.overhead, p.ceiling, now);
  }

  /** The locator text, overhead and ceiling of a path to `to`. */
  #shape(to: Locator & { family: 4 | 6 }): PathShape {
    const overhead = TUNNEL_OVERHEAD[to.family];
    const ceiling = Math.min(this.#tunMtu, this.#underlayMtu - overhead);
    return { locator: formatLocator(to), overhead, ceiling };
  }

  /** `owner` is gone: its path and rate limiters too. */
  forget(owner: Owner): void {
    this.table.forget(owner);
    this.#tooBig.forget(owner);
    this.#reports.forget(owner);
  }

  /** Peers with a rate limiter (bounded by RATE_LIMITED_PEERS_MAX). */
  get rateLimitedPeers(): number {
    return Math.max(this.#tooBig.size, this.#reports.size);
  }

  /**
   * The inner packet at buf[off, off + len) for `owner` is longer than `maxInner`: dropped
   * (counted) and answered with a Packet Too Big / Fragmentation Needed into the TUN,
   * rate-limited per peer.
   */
  tooBig(
    owner: Owner,
    buf: Uint8Array,
    off: number,
    len: number,
    maxInner: number,
    now: number,
  ): void {
    const v4 = buf[off]! >> 4 === 4;
    if (v4 && !ipv4DontFragment(buf, off)) {
      // No Don't Fragment: its sender runs no path MTU discovery, a Fragmentation Needed
      // would not make it shrink its packets (RFC 1191 §3 sends none); dropped, counted apart.
      this.#drops.add('too-big-not-df');
      return;
    }
    this.#drops.add('too-big');
    if (!this.#tooBig.allow(owner, now)) return;
    const packet = buf.subarray(off, off + len);
    let reply: Uint8Array | null;
    try {
      reply = v4
        ? buildFragmentationNeeded(packet, maxInner, this.#source4)
        : buildPacketTooBig(packet, maxInner, this.#source6());
    } catch {
      return; // a malformed packet gets no error
    }
    if (reply === null) return;
    this.counters.tooBigSent++;
    this.#env.tun.writePacket(reply);
  }

  /** A TCP SYN's MSS clamped to `maxInner` (in place); call only for TCP (cheap test first). */
  clamp(buf: Uint8Array, off: number, len: number, maxInner: number): void {
    if (clampTcpMss(buf, off, len, maxInner)) this.counters.mssClamped++;
  }

  /**
   * A probe or ack (SIGNALING, byte 0 its type) from `owner`: a probe is answered through
   * `reply` (sealed as our signaling, back to where the peer is); an ack goes to the engine.
   */
  onMessage(
    owner: Owner | undefined,
    buf: Uint8Array,
    off: number,
    len: number,
    now: number,
    reply: (message: Uint8Array) => boolean,
  ): void {
    const m = decodePathMtuMessage(buf, off, len);
    if (m === undefined) {
      this.#drops.add('pmtu-malformed');
      return;
    }
    if (m.type === 'probe') {
      if (reply(encodeProbeAck(m.id, m.size))) this.counters.probesAnswered++;
      else this.#drops.add('signaling-send');
      return;
    }
    if (owner === undefined || !this.table.onAck(owner, m.id, m.size, now)) {
      this.#drops.add('pmtu-ack-unmatched');
    }
  }

  /** Probes due at `now`, each with its message (exactly the probed size) to seal and send. */
  poll(now: number): (ProbeToSend<Owner> & { message: Uint8Array })[] {
    const due = this.table.poll(now);
    this.counters.probesSent += due.length;
    return due.map((p) => ({ ...p, message: encodeProbe(p.id, p.size) }));
  }

  nextDeadline(): number {
    return this.table.nextDeadline();
  }

  /** True when a socket has MTU reports not taken yet (a compare per socket per batch). */
  reportsWaiting(sockets: readonly (UdpEndpoint | undefined)[]): boolean {
    for (const s of sockets) {
      if (s !== undefined && (s.mtuReportCount?.() ?? 0) !== (this.#seen.get(s) ?? 0)) return true;
    }
    return false;
  }

  /**
   * Takes the sockets' MTU reports; each one that quotes a datagram we sent lately on a channel
   * (`sentRecently`) to the current locator of the owner `ownerOf` names lowers that path.
   */
  takeReports(
    sockets: readonly (UdpEndpoint | undefined)[],
    endpoint: SecureEndpoint,
    ownerOf: (session: PeerSession, report: MtuReport) => Owner | undefined,
    now: number,
  ): void {
    for (const s of sockets) {
      if (s === undefined || s.takeMtuReports === undefined) continue;
      const count = s.mtuReportCount?.() ?? 0;
      if (count === this.#seen.get(s)) continue; // nothing new: no native call
      this.#seen.set(s, count);
      for (const r of s.takeMtuReports()) {
        const session = endpoint.sentRecently(r.quote);
        const owner = session === undefined ? undefined : ownerOf(session, r);
        const locator = owner === undefined ? undefined : this.table.locatorOf(owner);
        if (
          owner === undefined ||
          locator === undefined ||
          locator !== formatLocator({ address: r.address, port: r.port })
        ) {
          this.counters.reportsRejected++;
          this.#drops.add('mtu-report-unmatched');
          continue;
        }
        if (!this.#reports.allow(owner, now)) {
          this.#drops.add('mtu-report-rate-limited');
          continue;
        }
        const result = this.table.onTooBig(owner, r.mtu, now, !r.local);
        if (result === 'ignored') continue;
        this.counters.reportsAccepted++;
        this.#env.log.info('path-mtu-report', {
          locator,
          mtu: r.mtu,
          local: r.local,
          maxInner: this.table.statusOf(owner)?.maxInner,
          result,
        });
      }
    }
  }
}
