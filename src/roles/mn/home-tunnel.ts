/**
 * The mobile node's two data loops (see the flows in docs/ARCHITECTURE.md):
 * TUN -> underlay: route optimization takes the packets for bound correspondents; the rest goes
 *   into one run for the home agent's channel, sealed in place (one native call), one sendmmsg.
 * Underlay -> TUN: openBatch; from the HA's channel a path challenge is answered, the HA's own
 *   signaling (DataKind.SIGNALING) goes to the mobile node, forwarded HoT / HoTI to return
 *   routability, other forwarded mobility signaling is dropped, the rest (addressed to our
 *   home address) joins one TUN write with route optimization's direct data.
 * Inner IPv4 packets (an RFC 5555 IPv4 home address) share the HA's channel: out, they join
 * the HA's run (never route optimization); in, only payload addressed to our IPv4 home address
 * reaches the TUN. The version nibble tells them apart; nothing else per packet.
 * Path MTU (issue #21, roles/tunnel-mtu.ts): a packet for the HA larger than the path to it
 *   allows is answered with a Packet Too Big (IPv4: Fragmentation Needed) into the TUN instead
 *   of being sent; TCP SYNs get their MSS clamped; path MTU probes and acks travel as
 *   SIGNALING (not IP: byte 0 is their type). The path is the HA's locator object: a move
 *   makes a new one, and the search starts over at the base.
 */
import { DATA_HEADER_LEN, DATA_OVERHEAD } from '../../crypto/aead.js';
import { OpenResult, type PeerSession } from '../../crypto/endpoint.js';
import type { DatagramBatch, PacketBatch, UdpEndpoint } from '../../io/types.js';
import type { Locator } from '../../protocol/locator.js';
import { isPathMtuMessage, type PathMtuState } from '../../protocol/path-mtu.js';
import { PATH_MESSAGE_LEN } from '../../protocol/path-validation.js';
import { ipv6Equal } from '../../wire/address.js';
import { IPV6_DST_OFF, IPV6_HEADER_LEN } from '../../wire/ipv6.js';
import { IPV4_DST_OFF, IPV4_HEADER_LEN, IPV4_VERSION } from '../../wire/ipv4.js';
import { mobilitySignal } from '../../wire/mobility-signal.js';
import {
  nodeNow,
  TunnelWriter,
  ReceiveBatch,
  type DropCounters,
  type NodeEnvironment,
} from '../common.js';
import type { TunnelMtu } from '../tunnel-mtu.js';
import { MnExpress } from './mn-express.js';
import type { DatagramOrigin } from './direct-path.js';
import type { HomeAgentChannel, ResolvedAgent } from './home-agent-channel.js';
import type { RouteOptimization } from './route-optimization.js';

/** IPv6 Next Header / IPv4 Protocol of TCP (RFC 9293). */
const TCP = 6;

/** What the data loops need from the mobile node around them. */
export interface HomeTunnelHost {
  readonly env: NodeEnvironment;
  readonly channel: HomeAgentChannel;
  readonly routeOptimization: RouteOptimization | undefined;
  readonly drops: DropCounters;
  /** Path MTU to the home agent (owner: the HA's channel). */
  readonly mtu: TunnelMtu<PeerSession>;
  readonly counters: {
    tunnelPacketsIn: number;
    tunnelPacketsOut: number;
    tunnelBytesIn: number;
    tunnelBytesOut: number;
  };
  readonly homeAddress: Uint8Array;
  /** Something authenticated came from the HA / went to it (movement detection). */
  heard(now: number): void;
  sent(): boolean;
  /** A packet the HA marked as its own signaling. */
  fromHomeAgent(packet: Uint8Array, now: number): void;
  /** A correspondent's HoT / HoTI, forwarded by the HA as payload. */
  forwardedReturnRoutability(packet: Uint8Array, now: number): void;
  capture(packet: Uint8Array, now: number): void;
  rearm(): void;
  /** The driver's timer must fire by `at` (the express lane's next harvest). */
  wakeBy(at: number): void;
  /** How often the express lane's counts must reach JS (mn-express.ts, expressHarvestMs). */
  readonly expressHarvestMs: number;
}

export class HomeTunnel {
  readonly #host: HomeTunnelHost;
  readonly #writer = new TunnelWriter();
  readonly #rx = new ReceiveBatch();
  /** The IPv4 home address granted by the HA (4 bytes), undefined when none. */
  homeAddress4: Uint8Array | undefined = undefined;
  /** Direct (route-optimized) data joins the same TUN batch write. */
  readonly #toTun = (o: number, l: number): void => this.#rx.toTun(o, l);
  readonly #origin = new BatchOrigin();
  /** The HA locator object the path MTU state belongs to, and that state. */
  #mtuAgent: ResolvedAgent | undefined;
  #mtuOwner: PeerSession | undefined;
  #mtuPath: PathMtuState | undefined;
  /** Both sockets (either may be absent), for the per-batch look at their MTU reports. */
  readonly #udp: readonly (UdpEndpoint | undefined)[];

  /** The express lane's arming (mn-express.ts): only without route optimization. */
  readonly #express: MnExpress | undefined;

  constructor(host: HomeTunnelHost) {
    this.#host = host;
    this.#udp = [host.env.udp4, host.env.udp6];
    const lane = host.env.express;
    this.#express =
      lane === undefined || host.routeOptimization !== undefined
        ? undefined
        : new MnExpress(lane, {
            endpoint: host.env.endpoint,
            counters: host.counters,
            drops: host.drops,
            capturing: () => host.env.capture !== undefined,
            heard: (at) => host.heard(at),
            sent: () => host.sent(),
            noteTraffic: (session, at) => void host.mtu.table.noteTraffic(session, at),
            hasSocket: (family) => (family === 4 ? host.env.udp4 : host.env.udp6) !== undefined,
            wakeBy: (at) => host.wakeBy(at),
            harvestMs: host.expressHarvestMs,
          });
  }

  /** Empties the express lane (the driver's state may change now), counting what it carried. */
  expressBegin(now: number): void {
    this.#express?.begin(now);
  }

  /** The express lane's counts (the lane stays armed); true when the driver must re-arm. */
  expressHarvest(now: number): boolean {
    return this.#express?.harvest(now) ?? false;
  }

  /** Channels in the express lane now. */
  get expressArmed(): boolean {
    return (this.#express?.armed ?? 0) > 0;
  }

  /** Closes the express lane (the driver stops). */
  expressClose(): void {
    this.#express?.close();
  }

  /** The end of a data callback: the lane gets what JS carried in the steady state. */
  #expressEnd(): void {
    const x = this.#express;
    if (x === undefined) return;
    const agent = this.#host.channel.agent;
    x.end(
      nodeNow(this.#host.env), // the keys' time left counts from here (the arming)
      this.#host.channel.session,
      agent,
      agent !== undefined && agent === this.#mtuAgent ? this.#mtuPath : undefined,
      this.homeAddress4,
    );
  }

  /** Underlay -> TUN: a batch of datagrams from the UDP socket `socket`. */
  fromUnderlay(socket: UdpEndpoint, batch: DatagramBatch): void {
    const h = this.#host;
    const env = h.env;
    const now = nodeNow(env);
    this.#express?.begin(now);
    const n = batch.count;
    const rx = this.#rx;
    const out = rx.open(env.endpoint, batch, now);
    const buf = batch.buf;
    for (let i = 0; i < n; i++) {
      const result = out.results[i];
      if (result === OpenResult.NOT_DATA) {
        h.channel.onHandshake(
          socket,
          batch.packet(i).slice(),
          { address: batch.remoteAddress(i), port: batch.remotePort(i) },
          now,
        );
        continue;
      }
      if (result !== OpenResult.DATA && result !== OpenResult.SIGNALING) continue;
      const signaling = result === OpenResult.SIGNALING;
      if (out.sessions[i] !== h.channel.session) {
        const ro = h.routeOptimization;
        const o = batch.offsets[i]! + DATA_HEADER_LEN;
        const l = batch.lengths[i]! - DATA_OVERHEAD;
        const from = this.#origin.at(batch, i);
        if (!ro?.fromDirect(out.sessions[i]!, buf, o, l, signaling, from, now, this.#toTun))
          h.drops.add('not-home-agent');
        continue;
      }
      h.heard(now);
      const off = batch.offsets[i]! + DATA_HEADER_LEN;
      const len = batch.lengths[i]! - DATA_OVERHEAD;
      if (signaling && isPathMtuMessage(buf, off)) {
        const session = out.sessions[i]!;
        h.mtu.onMessage(session, buf, off, len, now, (m) => h.channel.sendOwn(session, m, now));
        continue;
      }
      if (signaling && len === PATH_MESSAGE_LEN) {
        h.channel.answerPathChallenge(buf, off, len, now);
        continue;
      }
      if (len >= IPV4_HEADER_LEN && buf[off]! >> 4 === IPV4_VERSION) {
        const a4 = this.homeAddress4;
        if (
          signaling ||
          a4 === undefined ||
          buf[off + IPV4_DST_OFF] !== a4[0] ||
          buf[off + IPV4_DST_OFF + 1] !== a4[1] ||
          buf[off + IPV4_DST_OFF + 2] !== a4[2] ||
          buf[off + IPV4_DST_OFF + 3] !== a4[3]
        ) {
          h.drops.add('not-for-home-address4');
          continue;
        }
        h.counters.tunnelPacketsIn++;
        h.counters.tunnelBytesIn += len;
        if (env.capture) h.capture(buf.subarray(off, off + len), now);
        rx.toTun(off, len);
        if (this.#express !== undefined && h.channel.agent !== undefined) {
          this.#express.noteRx(out.sessions[i]!, h.channel.agent, now);
        }
        continue;
      }
      if (len < IPV6_HEADER_LEN || buf[off]! >> 4 !== 6) {
        h.drops.add('malformed-inner');
        continue;
      }
      if (!ipv6Equal(buf, off + IPV6_DST_OFF, h.homeAddress, 0)) {
        h.drops.add('not-for-home-address');
        continue;
      }
      // Trust (DESIGN.md §4): the HA forwards anybody's packets to our home address into this
      // channel, so only what the HA marked as its own (SIGNALING) is home-agent signaling.
      // Forwarded Mobility Headers and mobility ICMPv6 are somebody else's: only the
      // correspondent's HoT / HoTI travel that way (authenticated by return routability).
      if (signaling) {
        h.fromHomeAgent(buf.slice(off, off + len), now);
        continue;
      }
      const sig = mobilitySignal(buf, off, len);
      if (sig === 'rr') {
        h.forwardedReturnRoutability(buf.slice(off, off + len), now);
        continue;
      }
      if (sig !== undefined) {
        h.drops.add('forwarded-signaling');
        continue;
      }
      h.counters.tunnelPacketsIn++;
      h.counters.tunnelBytesIn += len;
      h.routeOptimization?.noteTunnelIn(buf, off);
      if (env.capture) h.capture(buf.subarray(off, off + len), now);
      rx.toTun(off, len);
      if (this.#express !== undefined && h.channel.agent !== undefined) {
        this.#express.noteRx(out.sessions[i]!, h.channel.agent, now);
      }
    }
    rx.flush(env.tun, buf, h.drops);
    if (h.mtu.reportsWaiting(this.#udp)) this.takeMtuReports(now);
    if (env.endpoint.pollWanted) h.channel.endpointDeadline = 0; // a rekey due on receive
    h.rearm();
    this.#expressEnd();
  }

  /**
   * The path MTU state of the HA's current locator, made anew when the locator object changed
   * (every move, setAgent); undefined without a channel.
   */
  mtuPath(now: number): PathMtuState | undefined {
    const h = this.#host;
    const agent = h.channel.agent;
    const session = h.channel.session;
    if (agent === undefined || session === undefined) return undefined;
    if (agent !== this.#mtuAgent || session !== this.#mtuOwner || this.#mtuPath === undefined) {
      if (this.#mtuOwner !== undefined) h.mtu.forget(this.#mtuOwner);
      this.#mtuAgent = agent;
      this.#mtuOwner = session;
      h.mtu.table.forget(session);
      this.#mtuPath = h.mtu.path(session, agent, now);
    }
    return this.#mtuPath;
  }

  /** When pollMtu has work: never while the channel to the HA is not up (nothing to send). */
  mtuDeadline(): number {
    const session = this.#host.channel.session;
    if (session === undefined || !session.established) return Infinity;
    this.mtuPath(nodeNow(this.#host.env)); // a new channel or locator: its search starts now
    return this.#host.mtu.nextDeadline();
  }

  /** Timer: path MTU probes due, sealed to the HA's current locator. */
  pollMtu(now: number): void {
    const h = this.#host;
    const session = h.channel.session;
    if (session === undefined || !session.established) return;
    this.mtuPath(now);
    for (const p of h.mtu.poll(now)) {
      if (p.owner === session && !h.channel.sendOwn(session, p.message, now)) {
        h.drops.add('pmtu-probe-unsent'); // larger than our interface: its report follows
      }
    }
  }

  /** MTU reports from the sockets: only those about our datagrams to the HA's locator. */
  takeMtuReports(now: number): void {
    const h = this.#host;
    const env = h.env;
    const ours = (s: PeerSession): PeerSession | undefined =>
      s === h.channel.session ? s : undefined;
    h.mtu.takeReports(this.#udp, env.endpoint, ours, now);
  }

  /** TUN -> underlay: a batch of packets from the TUN. */
  fromTun(batch: PacketBatch): void {
    const h = this.#host;
    const env = h.env;
    const now = nodeNow(env);
    this.#express?.begin(now);
    const session = h.channel.session;
    const sock = h.channel.socket();
    if (
      session === undefined ||
      !session.established ||
      sock === undefined ||
      h.channel.agent === undefined
    ) {
      h.drops.add('no-channel', batch.count);
      // Keys wiped after an idle spell (REJECT_AFTER_TIME): traffic brings the channel back.
      if (session !== undefined && sock !== undefined && h.channel.agent !== undefined) {
        h.channel.ensure(now);
        h.rearm();
      }
      return;
    }
    const buf = batch.buf;
    const writer = this.#writer;
    writer.clear();
    // An ICMP error or a refused send about our last datagrams: the path shrank (issue #21).
    // Looked at here too: a sender whose data vanishes gets no answers to trigger a receive.
    if (h.mtu.reportsWaiting(this.#udp)) this.takeMtuReports(now);
    const path = this.mtuPath(now);
    const maxInner = path?.maxInner ?? Infinity;
    for (let i = 0; i < batch.count; i++) {
      const off = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      const v4 = len >= IPV4_HEADER_LEN && buf[off]! >> 4 === IPV4_VERSION;
      if (!v4 && (len < IPV6_HEADER_LEN || buf[off]! >> 4 !== 6)) {
        h.drops.add('tun-not-ip');
        continue;
      }
      if (!v4 && h.routeOptimization?.fromTun(buf, off, len, now)) continue;
      if (len > maxInner) {
        h.mtu.tooBig(session, buf, off, len, maxInner, now);
        continue;
      }
      if (buf[off + (v4 ? 9 : 6)] === TCP) h.mtu.clamp(buf, off, len, maxInner);
      if (env.capture) h.capture(buf.subarray(off, off + len), now);
      h.counters.tunnelPacketsOut++;
      h.counters.tunnelBytesOut += len;
      writer.push(off, len);
      if (path !== undefined && this.#express !== undefined) {
        this.#express.noteTx(session, h.channel.agent, path, now);
      }
    }
    h.routeOptimization?.flushDirect(now); // the direct runs: one seal + send each
    const n = writer.count;
    // Payload towards the HA: its path's confirmations go on (or resume: an idle path is not
    // probed, protocol/path-mtu.ts).
    const resumed =
      n > 0 && path !== undefined && !path.used && h.mtu.table.noteTraffic(session, now);
    const sent = writer.flush(env.endpoint, session, buf, sock, h.channel.agent, now);
    if (sent < n) h.drops.add(writer.lastSealed ? 'udp-send' : 'no-keys', n - sent);
    // Sealed counts as sent even when the socket refused it (a local firewall's EPERM, no
    // route): silence from the HA after that must still lead to probes and a path loss.
    const silenceStarted = (sent > 0 || writer.lastSealed) && h.sent();
    // The seal may have asked for a handshake (a rekey due on this payload, or keys expired).
    const handshake = env.endpoint.pollWanted;
    if (handshake) h.channel.endpointDeadline = 0;
    if (silenceStarted || handshake || resumed) h.rearm();
    this.#expressEnd();
  }
}

/** A DatagramOrigin pointed at datagram i of a receive batch (one per driver, reused). */
class BatchOrigin implements DatagramOrigin {
  #batch: DatagramBatch | undefined;
  #i = 0;

  at(batch: DatagramBatch, i: number): this {
    this.#batch = batch;
    this.#i = i;
    return this;
  }

  locator(): Locator {
    const b = this.#batch!;
    return { address: b.remoteAddress(this.#i), port: b.remotePort(this.#i) };
  }
}
