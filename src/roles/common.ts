/**
 * Pieces every role's driver shares: the environment a node runs in (I/O handles, clock, log,
 * capture), drop counters, and the tunnel write path (seal a run of packets for one peer and
 * send them to one locator without copying).
 */
import type { OpenBatchOutput, PeerSession, SecureEndpoint } from '../crypto/endpoint.js';
import { DATA_HEADER_LEN, DataKind, TAG_LEN } from '../crypto/aead.js';
import type { PacketSink } from '../io/pcap-sink.js';
import type {
  AddressFamily,
  DatagramBatch,
  Clock,
  ExpressLane,
  ExpressReport,
  OutgoingDatagrams,
  TunDevice,
  UdpEndpoint,
} from '../io/types.js';
import type { Locator } from '../protocol/locator.js';
import type { Logger } from '../util/log.js';
import { isIpv4, parseIpv4, parseIpv6 } from '../wire/address.js';

/** Everything a role needs from the outside world; the CLI builds the real ones, tests fakes. */
export interface NodeEnvironment {
  endpoint: SecureEndpoint;
  tun: TunDevice;
  /** One socket per underlay family (either may be absent). */
  udp4?: UdpEndpoint | undefined;
  udp6?: UdpEndpoint | undefined;
  clock: Clock;
  /** Added to clock.now() to get the cores' Unix-ms timeline (fixed at start; the endpoint
   *  checks certificates and makes handshake timestamps with its own wall clock). */
  epochOffsetMs: number;
  log: Logger;
  /** Decrypted inner packets are written here when set (`--pcap`). */
  capture?: PacketSink | undefined;
  /** The native express lane over `tun` and the sockets (issue #16), when there is one. */
  express?: ExpressLane | undefined;
}

/** A driver's tunnel counters (both roles keep these four). */
export interface TunnelCounters {
  tunnelPacketsIn: number;
  tunnelBytesIn: number;
  tunnelPacketsOut: number;
  tunnelBytesOut: number;
}

/**
 * What one channel carried in the express lane, added to the counters JS keeps for each packet
 * it carries itself: the session's and the driver's tunnel counters, and the drops by reason
 * (bad tags as the channel's own). The rest (bindings, movement, path MTU) is each role's.
 */
export function addExpressReport(
  endpoint: SecureEndpoint,
  session: PeerSession,
  counters: TunnelCounters,
  drops: { add(reason: string, n?: number): void },
  r: ExpressReport,
): void {
  session.packetsIn += r.rxPackets;
  session.bytesIn += r.rxBytes;
  session.packetsOut += r.txPackets;
  session.bytesOut += r.txBytes;
  counters.tunnelPacketsIn += r.rxPackets;
  counters.tunnelBytesIn += r.rxBytes;
  counters.tunnelPacketsOut += r.txPackets;
  counters.tunnelBytesOut += r.txBytes;
  if (r.badTags > 0) endpoint.countExpressDrops(session, r.badTags);
  if (r.sendErrors > 0) drops.add('udp-send', r.sendErrors);
  if (r.tunErrors > 0) drops.add('tun-write', r.tunErrors);
}

/** The express lane's counters for a status (`expressRxTaken`, ...); none without a lane. */
export function expressCounters(lane: ExpressLane | undefined): Record<string, number> {
  if (lane === undefined) return {};
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(lane.counters())) {
    out[`express${k[0]!.toUpperCase()}${k.slice(1)}`] = v;
  }
  return out;
}

/** Drop counters by reason; the names are what `mip6 status` shows. */
export class DropCounters {
  readonly byReason: Record<string, number> = {};
  add(reason: string, n = 1): void {
    this.byReason[reason] = (this.byReason[reason] ?? 0) + n;
  }
  get(reason: string): number {
    return this.byReason[reason] ?? 0;
  }
}

/**
 * Writes the `count` decrypted inner packets collected in `offsets`/`lengths` (inside `buf`) to
 * the TUN in one batch; packets the kernel refuses are counted as `tun-write` drops.
 */
export function writeToTun(
  tun: TunDevice,
  buf: Uint8Array,
  offsets: Uint32Array,
  lengths: Uint32Array,
  count: number,
  drops: DropCounters,
): void {
  if (count === 0) return;
  const accepted = tun.writePackets({ count, buf, offsets, lengths });
  if (accepted < count) drops.add('tun-write', count - accepted);
}

/**
 * The receive side every role shares: one `openBatch` per datagram batch into reused result
 * arrays, then the accepted inner packets collected (in place, in the batch's buffer) for one
 * batched TUN write. Grows with the batch, never shrinks; nothing is allocated per packet.
 */
export class ReceiveBatch {
  out: OpenBatchOutput = { results: new Uint8Array(64), sessions: [] };
  #offsets = new Uint32Array(64);
  #lengths = new Uint32Array(64);
  #count = 0;

  /** Opens `batch` (decrypting in place) and starts a new TUN run; returns the per-packet results. */
  open(endpoint: SecureEndpoint, batch: DatagramBatch, now: number): OpenBatchOutput {
    const n = batch.count;
    if (this.out.results.length < n) {
      this.out = { results: new Uint8Array(n * 2), sessions: [] };
      this.#offsets = new Uint32Array(n * 2);
      this.#lengths = new Uint32Array(n * 2);
    }
    this.#count = 0;
    endpoint.openBatch(batch.buf, batch.offsets, batch.lengths, n, now, this.out);
    return this.out;
  }

  /** Adds the inner packet at buf[offset, offset + length) of the opened batch to the TUN run. */
  toTun(offset: number, length: number): void {
    this.#offsets[this.#count] = offset;
    this.#lengths[this.#count] = length;
    this.#count++;
  }

  /** Writes the run to the TUN in one batch (writeToTun). */
  flush(tun: TunDevice, buf: Uint8Array, drops: DropCounters): void {
    writeToTun(tun, buf, this.#offsets, this.#lengths, this.#count, drops);
    this.#count = 0;
  }
}

/**
 * A locator with what a batched UDP send needs: its family, zone, and its address and local
 * address as 16-byte slots. The slots are made on first use (a data run to it), not per
 * binding: an idle member's binding keeps two typed arrays fewer (issue 17, memory).
 */
export class ResolvedLocator implements Locator {
  readonly address: string;
  readonly port: number;
  /** Our address the peer reaches (setLocalAddress); what goes there leaves from it. */
  local: string | undefined;
  readonly family: AddressFamily;
  /** The zone of a link-local locator (`fe80::1%3`: interface 3), else 0. */
  readonly ifindex: number;
  #slot: Uint8Array | undefined;
  #source: Uint8Array | undefined;

  constructor(address: string, port: number, family: AddressFamily, ifindex: number) {
    this.address = address;
    this.port = port;
    this.local = undefined;
    this.family = family;
    this.ifindex = ifindex;
  }

  /** The address (without its zone) as a 16-byte slot. */
  get slot(): Uint8Array {
    if (this.#slot === undefined) {
      const pct = this.family === 6 ? this.address.indexOf('%') : -1;
      this.#slot = addressSlot(this.family, pct < 0 ? this.address : this.address.slice(0, pct));
    }
    return this.#slot;
  }

  /** `local` in slot form (the source of what is sent there), undefined without one. */
  get source(): Uint8Array | undefined {
    if (this.local === undefined) return undefined;
    return (this.#source ??= addressSlot(this.family, this.local));
  }

  /** Sets `local` (already checked to be of this family, or undefined). */
  setLocal(local: string | undefined): void {
    this.local = local;
    this.#source = undefined;
  }
}

/** `address` (IPv4 or IPv6 text, no zone) as a 16-byte address slot. */
function addressSlot(family: AddressFamily, address: string): Uint8Array {
  const slot = new Uint8Array(16);
  slot.set(family === 4 ? parseIpv4(address) : parseIpv6(address));
  return slot;
}

export function resolveLocator(l: Locator): ResolvedLocator {
  const { family, ifindex } = checkLocator(l);
  const resolved = new ResolvedLocator(l.address, l.port, family, ifindex);
  setLocalAddress(resolved, l.local);
  return resolved;
}

/** A locator's family and zone (the ResolvedLocator fields); throws on an address that does
 *  not parse (here, not at the first send). */
export function checkLocator(l: Locator): { family: AddressFamily; ifindex: number } {
  const family: AddressFamily = isIpv4(l.address) ? 4 : 6;
  const pct = family === 6 ? l.address.indexOf('%') : -1;
  // IPv4: isIpv4 said so.
  if (family === 6) parseIpv6(pct < 0 ? l.address : l.address.slice(0, pct));
  const ifindex = pct < 0 ? 0 : Number(l.address.slice(pct + 1)) >>> 0;
  return { family, ifindex };
}

/**
 * The peer now reaches us at `local` (our address it sent to, replySource): what goes to the
 * locator leaves from there. None, or one of the other family, leaves the choice to the kernel.
 */
export function setLocalAddress(l: ResolvedLocator, local: string | undefined): void {
  const usable = local !== undefined && isIpv4(local) === (l.family === 4);
  l.setLocal(usable ? local : undefined);
}

/** Writes `address` (IPv4 or IPv6 text, an IPv6 zone left out) into out[off, off + 16). */
function writeSlot(address: string, out: Uint8Array, off: number): void {
  if (isIpv4(address)) {
    out.fill(0, off, off + 16);
    out.set(parseIpv4(address), off);
    return;
  }
  const pct = address.indexOf('%');
  out.set(parseIpv6(pct < 0 ? address : address.slice(0, pct)), off);
}

/**
 * The local address datagram i of `batch` was sent to (IP_PKTINFO / IPV6_PKTINFO), as the
 * source of what goes back to its sender: a NAT or a connected socket there takes answers only
 * from the address it contacted. Undefined when unknown, or for a group address (a
 * returning-home BU goes to a solicited-node group; IPv4 multicast, reserved, broadcast),
 * which is never a source: the kernel chooses then.
 */
export function replySource(batch: DatagramBatch, i: number): string | undefined {
  const at = i * 16;
  const first = batch.localAddrs[at] ?? 0;
  if (first >= (batch.family === 4 ? 224 : 0xff)) return undefined;
  if (first === 0 && batch.localAddrs.subarray(at, at + 16).every((b) => b === 0)) return undefined;
  return batch.localAddress(i);
}

/**
 * Seals runs of packets for one peer in place and sends them to one locator. The packets sit in
 * `buf` with at least 16 bytes of headroom and 16 of tailroom (TUN batches provide both), so
 * the channel header and tag are written around them and nothing is copied.
 */
export class TunnelWriter {
  #offsets = new Uint32Array(64);
  #lengths = new Uint32Array(64);
  #msgLengths = new Uint32Array(64);
  #dstAddrs = new Uint8Array(64 * 16);
  #dstPorts = new Uint16Array(64);
  #srcAddrs = new Uint8Array(64 * 16);
  #count = 0;
  #bytes = 0;

  get count(): number {
    return this.#count;
  }

  /** Inner bytes in the run. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Starts a new run. */
  clear(): void {
    this.#count = 0;
    this.#bytes = 0;
  }

  /** Adds the packet at buf[offset, offset + length) to the run. */
  push(offset: number, length: number): void {
    if (this.#count === this.#offsets.length) this.#grow();
    this.#offsets[this.#count] = offset - DATA_HEADER_LEN;
    this.#lengths[this.#count] = length;
    this.#msgLengths[this.#count] = length + DATA_HEADER_LEN + TAG_LEN;
    this.#count++;
    this.#bytes += length;
  }

  #grow(): void {
    const n = this.#offsets.length * 2;
    const grow32 = (a: Uint32Array): Uint32Array<ArrayBuffer> => {
      const b = new Uint32Array(n);
      b.set(a);
      return b;
    };
    this.#offsets = grow32(this.#offsets);
    this.#lengths = grow32(this.#lengths);
    this.#msgLengths = grow32(this.#msgLengths);
    const addrs = new Uint8Array(n * 16);
    addrs.set(this.#dstAddrs);
    this.#dstAddrs = addrs;
    this.#srcAddrs = new Uint8Array(n * 16); // filled per flush
    const ports = new Uint16Array(n);
    ports.set(this.#dstPorts);
    this.#dstPorts = ports;
  }

  /**
   * Whether the last flush sealed its run: when it returned fewer than it was given, false says
   * the session had no keys ('no-keys'), true that the socket refused them ('udp-send', e.g.
   * EPERM from a local firewall or ENETUNREACH).
   */
  lastSealed = false;

  /**
   * Seals the run for `session` and sends it to `to`. Returns the number of datagrams the
   * socket accepted; 0 when the session has no keys yet (the endpoint starts a handshake) or
   * the socket refused them all (`lastSealed` tells which).
   */
  flush(
    endpoint: SecureEndpoint,
    session: PeerSession,
    buf: Uint8Array,
    socket: UdpEndpoint,
    to: ResolvedLocator,
    now: number,
  ): number {
    const n = this.#count;
    this.#count = 0;
    this.#bytes = 0;
    this.lastSealed = false;
    if (n === 0) return 0;
    if (endpoint.sealBatch(session, buf, this.#offsets, this.#lengths, n, now) !== n) return 0;
    this.lastSealed = true;
    const source = to.source;
    for (let i = 0; i < n; i++) {
      this.#dstAddrs.set(to.slot, i * 16);
      this.#dstPorts[i] = to.port;
      if (source !== undefined) this.#srcAddrs.set(source, i * 16);
    }
    const out: OutgoingDatagrams = {
      count: n,
      buf,
      offsets: this.#offsets,
      lengths: this.#msgLengths,
      dstAddrs: this.#dstAddrs,
      dstPorts: this.#dstPorts,
      // From the address the peer last reached us on (its NAT answers only from there).
      // (Every key is always present: one object shape for the send path, no spread per run.)
      srcAddrs: source !== undefined ? this.#srcAddrs : undefined,
      // A link-local locator (rare: a peer on one of our links) is reached on its link only.
      ifindexes: to.ifindex !== 0 ? new Uint32Array(n).fill(to.ifindex) : undefined,
    };
    return socket.sendDatagrams(out);
  }
}

/** One socket's queue of SignalingOutbox: the sealed messages in one slab, with their
 *  destinations as the batched send takes them (grown, never shrunk, reused per batch). */
class OutboxQueue {
  buf = new Uint8Array(16 * 1024);
  used = 0;
  count = 0;
  offsets = new Uint32Array(64);
  lengths = new Uint32Array(64);
  dstAddrs = new Uint8Array(64 * 16);
  dstPorts = new Uint16Array(64);
  srcAddrs = new Uint8Array(64 * 16);
  ifindexes = new Uint32Array(64);
  /** Some message of this batch has a chosen source / a link to leave on. */
  withSource = false;
  withIfindex = false;

  /** Room for one more message of `bytes` (the slab and the arrays grow by doubling). */
  reserve(bytes: number): void {
    if (this.used + bytes > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.used + bytes) cap *= 2;
      const buf = new Uint8Array(cap);
      buf.set(this.buf.subarray(0, this.used));
      this.buf = buf;
    }
    if (this.count < this.offsets.length) return;
    const n = this.offsets.length * 2;
    const grow = <T extends Uint8Array | Uint16Array | Uint32Array>(a: T, b: T): T => {
      b.set(a);
      return b;
    };
    this.offsets = grow(this.offsets, new Uint32Array(n));
    this.lengths = grow(this.lengths, new Uint32Array(n));
    this.dstAddrs = grow(this.dstAddrs, new Uint8Array(n * 16));
    this.dstPorts = grow(this.dstPorts, new Uint16Array(n));
    this.srcAddrs = grow(this.srcAddrs, new Uint8Array(n * 16));
    this.ifindexes = grow(this.ifindexes, new Uint32Array(n));
  }
}

/**
 * Signaling sealed while a receive batch is processed (a BA for each BU in it), sent in one
 * batch per socket at the batch's end instead of one send call each (issue 17: at 20 000 BUs
 * a second the send calls were the HA's largest cost). While holding, each message is sealed
 * in place in the socket's reused slab (no buffer per message or per batch). Outside `hold()`
 * ... `release()` a message is sealed and sent at once. Messages keep their order per socket.
 */
export class SignalingOutbox {
  readonly #queues = new Map<UdpEndpoint, OutboxQueue>();
  readonly #sealOffset = new Uint32Array(1);
  readonly #sealLength = new Uint32Array(1);
  #holding = false;
  /** Messages queued since hold(). */
  #queued = 0;

  /** From now until release(), seal() queues. */
  hold(): void {
    this.#holding = true;
  }

  /**
   * Seals `packet`, which this node wrote itself (DataKind.SIGNALING, see sendSealed), for
   * `session` and sends it to `to` (from `to.local` when set): queued while holding. False when
   * the session has no usable keys or (not holding) the socket refused it.
   */
  seal(
    endpoint: SecureEndpoint,
    session: PeerSession,
    packet: Uint8Array,
    socket: UdpEndpoint,
    to: Locator,
    now: number,
  ): boolean {
    if (!this.#holding) return sendSealed(endpoint, session, packet, socket, to, now);
    let q = this.#queues.get(socket);
    if (q === undefined) {
      q = new OutboxQueue();
      this.#queues.set(socket, q);
    }
    const length = packet.length + DATA_HEADER_LEN + TAG_LEN;
    q.reserve(length);
    const off = q.used;
    q.buf.set(packet, off + DATA_HEADER_LEN);
    this.#sealOffset[0] = off;
    this.#sealLength[0] = packet.length;
    const sealed = endpoint.sealBatch(
      session,
      q.buf,
      this.#sealOffset,
      this.#sealLength,
      1,
      now,
      DataKind.SIGNALING,
    );
    if (sealed !== 1) return false;
    this.#queued++;
    const i = q.count++;
    q.used += length;
    q.offsets[i] = off;
    q.lengths[i] = length;
    // From the text (a binding's locator keeps no slots for this, ResolvedLocator).
    writeSlot(to.address, q.dstAddrs, i * 16);
    q.dstPorts[i] = to.port;
    const pct = to.address.indexOf('%');
    q.ifindexes[i] = pct < 0 ? 0 : Number(to.address.slice(pct + 1)) >>> 0;
    if (pct >= 0) q.withIfindex = true;
    // From the address the member last reached us on (all zero: the kernel chooses).
    const local = to.local;
    if (local !== undefined && isIpv4(local) === isIpv4(to.address)) {
      writeSlot(local, q.srcAddrs, i * 16);
      q.withSource = true;
    } else {
      q.srcAddrs.fill(0, i * 16, i * 16 + 16);
    }
    return true;
  }

  /** Sends what was queued, one batch per socket; returns how many the sockets refused. */
  release(): number {
    this.#holding = false;
    if (this.#queued === 0) return 0; // the data path's batches: no iterator made for nothing
    this.#queued = 0;
    let refused = 0;
    for (const [socket, q] of this.#queues) {
      const n = q.count;
      if (n === 0) continue;
      const batch: OutgoingDatagrams = {
        count: n,
        buf: q.buf,
        offsets: q.offsets,
        lengths: q.lengths,
        dstAddrs: q.dstAddrs,
        dstPorts: q.dstPorts,
        srcAddrs: q.withSource ? q.srcAddrs : undefined,
        ifindexes: q.withIfindex ? q.ifindexes : undefined,
      };
      q.count = 0;
      q.used = 0;
      q.withSource = false;
      q.withIfindex = false;
      refused += n - socket.sendDatagrams(batch);
    }
    return refused;
  }
}

/**
 * Seals one signaling packet this node wrote itself (DataKind.SIGNALING: the peer may take it as
 * ours) and sends it; false when there are no keys or the send failed. Never use it for a packet
 * that came from the TUN or from another peer.
 */
export function sendSealed(
  endpoint: SecureEndpoint,
  session: PeerSession,
  packet: Uint8Array,
  socket: UdpEndpoint | undefined,
  to: Locator,
  now: number,
): boolean {
  if (socket === undefined) return false;
  const msg = endpoint.seal(session, packet, now, DataKind.SIGNALING);
  if (msg === null) return false;
  return socket.send(msg, to.address, to.port, to.local);
}

/**
 * The time every core sees: Unix milliseconds, advancing with the monotonic clock (so a wall
 * clock step does not disturb timers; the endpoint reads the wall clock itself for certificates
 * and handshake timestamps, so it sees such a step).
 */
export function nodeNow(env: NodeEnvironment): number {
  return env.clock.now() + env.epochOffsetMs;
}

/** Arms the node's single timer for a deadline given in nodeNow() time. */
export function armTimer(env: NodeEnvironment, deadline: number, cb: () => void): void {
  if (deadline === Infinity) env.clock.clearTimer();
  else env.clock.setTimer(deadline - env.epochOffsetMs, cb);
}
