/**
 * The direct path both halves of route optimization send on (correspondent-client.ts towards
 * CNs, correspondent-server.ts towards bound MNs): the node's sockets and channel endpoint, the
 * shared drop counters, the host once attached, and the batched data path.
 *
 * Data flow of one TUN batch:
 *   fromTun (either half) -> stage(): the packet is copied into the staging slab with
 *     STAGE_HEADROOM in front (the HAO / RH2 rewrite grows it forwards, the channel header goes
 *     before it) and TAG_LEN behind -> the half rewrites it in place -> commit(): appended to
 *     the run of its channel (one TunnelWriter per session, remembered across batches).
 *   end of batch -> flush(): each run sealed in one batch AEAD call and sent with one sendmmsg
 *     (as the tunnel path does); a locator change mid-batch flushes what came before first.
 * Signaling (RR, BU/BA, BE, probes) is sealed and sent one message at a time (sendSignaling).
 */
import type { PeerSession } from '../../crypto/endpoint.js';
import { DATA_HEADER_LEN, DataKind, TAG_LEN } from '../../crypto/aead.js';
import type { UdpEndpoint } from '../../io/types.js';
import type { Locator } from '../../protocol/locator.js';
import { REWRITE_GROWTH } from '../../wire/rewrite.js';
import {
  resolveLocator,
  TunnelWriter,
  type DropCounters,
  type NodeEnvironment,
  type ResolvedLocator,
} from '../common.js';

/** Room in front of a staged packet: the HAO / RH2 the rewrite inserts, then the channel header. */
const STAGE_HEADROOM = REWRITE_GROWTH + DATA_HEADER_LEN;
/** Staging slab for one TUN batch of direct packets (grows for a packet that does not fit). */
const STAGE_SLAB_LEN = 256 * 1024;
/** Channels with a reusable run kept between batches (more are dropped after a flush). */
const MAX_RUNS = 64;

/**
 * Where the driver collects decrypted inner packets for one batched TUN write: the packet at
 * buf[offset, offset + length) of the receive batch being processed.
 */
export type TunSink = (offset: number, length: number) => void;

/**
 * Where a received datagram came from, read only when needed (signaling; data should not pay
 * for the address text). The driver keeps one and points it at each datagram in turn, so no
 * closure is made per packet; read it synchronously, never keep it.
 */
export interface DatagramOrigin {
  locator(): Locator;
}

/** What the route optimization needs from the MobileNode it is plugged into. */
export interface RouteOptimizationHost {
  /** Seals an inner packet to the HA: it leaves through the reverse tunnel. */
  sendViaHomeAgent(packet: Uint8Array, now: number): void;
  /** A deadline moved: re-arm the node's timer. */
  rearm(): void;
}

/** Direct packets staged for one channel during a TUN batch. */
interface DirectRun {
  session: PeerSession;
  to: ResolvedLocator;
  socket: UdpEndpoint;
  writer: TunnelWriter;
}

export class DirectPath {
  readonly env: NodeEnvironment;
  readonly drops: DropCounters;
  /** The MobileNode, once attached. */
  host: RouteOptimizationHost | undefined;
  /** Direct packets of the current TUN batch, rewritten, with room for header and tag. */
  #slab = new Uint8Array(STAGE_SLAB_LEN);
  #staged = 0;
  readonly #runs = new Map<PeerSession, DirectRun>();

  constructor(env: NodeEnvironment, drops: DropCounters) {
    this.env = env;
    this.drops = drops;
  }

  /** The staging slab (stage() may replace it: read it after staging). */
  get slab(): Uint8Array {
    return this.#slab;
  }

  /** The node's socket for the family of `l`, if it has one. */
  socket(l: ResolvedLocator): UdpEndpoint | undefined {
    return l.family === 4 ? this.env.udp4 : this.env.udp6;
  }

  /** Writes a packet to the capture, if there is one (`--pcap`). */
  capture(packet: Uint8Array, now: number): void {
    this.env.capture?.write(packet, now * 1000);
  }

  /** Seals `packet` as our own signaling on `session` and sends it to `to`; false if not sent. */
  sendSignaling(
    session: PeerSession,
    packet: Uint8Array,
    to: ResolvedLocator,
    now: number,
  ): boolean {
    const msg = this.env.endpoint.seal(session, packet, now, DataKind.SIGNALING);
    return msg !== null && this.socket(to)?.send(msg, to.address, to.port) === true;
  }

  /** Sends a one-byte liveness probe message (direct-path-liveness.ts) to `to`. */
  sendProbe(session: PeerSession, to: Locator, message: number, now: number): void {
    this.sendSignaling(session, Uint8Array.of(message), resolveLocator(to), now);
  }

  /**
   * Copies a TUN packet into the staging slab, STAGE_HEADROOM bytes after the last staged one
   * (the rewrite grows it forwards into that room, the channel header goes in front of it),
   * and returns its offset there. A full slab is flushed first.
   */
  stage(buf: Uint8Array, off: number, len: number, now: number): number {
    const need = STAGE_HEADROOM + len + TAG_LEN;
    if (this.#staged + need > this.#slab.length) {
      this.flush(now);
      if (need > this.#slab.length) this.#slab = new Uint8Array(need * 2);
    }
    const at = this.#staged + STAGE_HEADROOM;
    this.#slab.set(buf.subarray(off, off + len), at);
    return at;
  }

  /** Appends the rewritten packet at slab[n, n + len) to the run of `session` towards `to`. */
  commit(
    session: PeerSession,
    to: ResolvedLocator,
    socket: UdpEndpoint,
    n: number,
    len: number,
    now: number,
  ): void {
    let run = this.#runs.get(session);
    if (run === undefined) {
      run = { session, to, socket, writer: new TunnelWriter() };
      this.#runs.set(session, run);
    } else if (run.to.address !== to.address || run.to.port !== to.port) {
      this.#flushRun(run, now); // the locator changed mid-batch: what came before goes first
      run.to = to;
      run.socket = socket;
    }
    if (this.env.capture) this.capture(this.#slab.subarray(n, n + len), now);
    run.writer.push(n, len);
    this.#staged = (n + len + TAG_LEN + 7) & ~7;
  }

  /**
   * Seals and sends what was staged: one batch AEAD call and one sendmmsg per channel.
   * The driver calls it at the end of every TUN batch (poll() does too, as a safety net).
   */
  flush(now: number): void {
    if (this.#staged === 0) return;
    for (const run of this.#runs.values()) this.#flushRun(run, now);
    this.#staged = 0;
    if (this.#runs.size > MAX_RUNS) this.#runs.clear();
  }

  #flushRun(run: DirectRun, now: number): void {
    const n = run.writer.count;
    if (n === 0) return;
    const sent = run.writer.flush(
      this.env.endpoint,
      run.session,
      this.#slab,
      run.socket,
      run.to,
      now,
    );
    if (sent < n) this.drops.add('direct-send', n - sent);
  }
}
