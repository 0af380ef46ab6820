/**
 * FakeNetwork: an in-memory UDP "internet" on a FakeClock for deterministic simulations.
 *
 * - endpoint({ address | addresses, port }) makes a UdpEndpoint bound to those addresses
 *   (multi-homed when several); it receives batches like the real one (remote address/port
 *   and the local address each datagram was sent to) and can choose its source address.
 * - Conditions (loss, delay, jitter, duplication), network-wide or per destination
 *   endpoint, drawn from a seeded PRNG so runs repeat exactly.
 * - move(endpoint, addresses) changes an endpoint's addresses (a handover); datagrams in
 *   flight to the old address are lost, as on a real network.
 * - nat({ publicAddress }) puts endpoints behind a NAT that rewrites their source to
 *   publicAddress:mappedPort and forwards replies back; rebind() gives every mapping a new
 *   port (NAT rebinding); 'address-dependent' filtering admits only peers already sent to.
 * - Links (IPv6 on-link, for the home link): attach(endpoint, link, { ifindex, linkLocal })
 *   gives an endpoint an interface on a named link. A datagram sent to a zoned address
 *   (`ff02::1:ff00:1%7`, `fe80::1%7`: out of interface 7) stays on that link: multicast reaches
 *   every other endpoint attached there, link-local the one holding it; it arrives from the
 *   sender's link-local address with hop limit 255 on the receiver's interface of that link.
 *   Everything else is routed: it arrives with hop limit 63 on the receiver's `routedIfindex`
 *   (default 1), as a datagram that crossed a router.
 * Deliveries are clock events: call clock.advance() to let datagrams arrive.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { IoError } from '../../src/util/errors.js';
import { allocDatagramBatch, spanAt, type SlabDatagramBatch } from '../../src/io/batch.js';
import {
  addressBytes,
  addressZone,
  readAddress,
  writeAddress,
  ADDR_SLOT_LEN,
  isZeroSlot,
} from '../../src/io/address-bytes.js';
import type {
  AddressFamily,
  DatagramBatchHandler,
  OutgoingDatagrams,
  UdpCounters,
  UdpEndpoint,
} from '../../src/io/types.js';
import type { FakeClock } from './fake-clock.js';

export interface LinkConditions {
  /** Probability in [0, 1] that a datagram is lost. */
  loss?: number;
  /** Base one-way delay in ms (default 0: delivered at the next clock.advance). */
  delayMs?: number;
  /** Extra uniformly random delay in [0, jitterMs) (can reorder). */
  jitterMs?: number;
  /** Probability in [0, 1] that a datagram is delivered twice. */
  duplicate?: number;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** No endpoint at the destination (or filtered by a NAT) when the datagram arrived. */
  unroutable: number;
}

interface Pending {
  data: Uint8Array;
  srcAddr: string;
  srcPort: number;
  dstAddr: string;
  dstPort: number;
}

/** Hop limit of a routed datagram on arrival (64, minus one router at least). */
export const ROUTED_HOP_LIMIT = 63;

/** One interface of an endpoint on a named link. */
export interface FakeLinkInterface {
  link: string;
  ifindex: number;
  linkLocal: string;
}

function familyOf(address: string): AddressFamily {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  throw new TypeError(`not an IP address: "${address}"`);
}

/** Canonical text, so '2001:DB8::1' and '2001:db8:0::1' are one address. */
function canon(address: string): string {
  const f = familyOf(address);
  return readAddress(f, addressBytes(f, address), 0);
}

const key = (address: string, port: number): string => `${address}|${port}`;

/** Mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FakeNat {
  readonly publicAddress: string;
  readonly filtering: 'endpoint-independent' | 'address-dependent';
  /** inner endpoint -> public port */
  readonly #mappings = new Map<FakeUdpEndpoint, number>();
  readonly #byPort = new Map<number, FakeUdpEndpoint>();
  readonly #contacted = new Map<FakeUdpEndpoint, Set<string>>();
  #nextPort = 40000;

  constructor(publicAddress: string, filtering: FakeNat['filtering']) {
    this.publicAddress = publicAddress;
    this.filtering = filtering;
  }

  /** @internal Outbound: the public port for `ep`, allocating a mapping on first use. */
  mapOutbound(ep: FakeUdpEndpoint, dstAddr: string): number {
    let port = this.#mappings.get(ep);
    if (port === undefined) {
      port = this.#nextPort++;
      this.#mappings.set(ep, port);
      this.#byPort.set(port, ep);
    }
    let set = this.#contacted.get(ep);
    if (set === undefined) this.#contacted.set(ep, (set = new Set()));
    set.add(dstAddr);
    return port;
  }

  /** @internal Inbound to publicAddress:port from srcAddr: the inner endpoint, if admitted. */
  mapInbound(port: number, srcAddr: string): FakeUdpEndpoint | undefined {
    const ep = this.#byPort.get(port);
    if (ep === undefined) return undefined;
    if (
      this.filtering === 'address-dependent' &&
      !(this.#contacted.get(ep)?.has(srcAddr) ?? false)
    ) {
      return undefined;
    }
    return ep;
  }

  /** The public port currently mapped for `ep`, if any. */
  mappedPort(ep: FakeUdpEndpoint): number | undefined {
    return this.#mappings.get(ep);
  }

  /** NAT rebinding: every existing mapping gets a new public port; old ports stop working. */
  rebind(): void {
    const eps = [...this.#mappings.keys()];
    this.#mappings.clear();
    this.#byPort.clear();
    for (const ep of eps) {
      const port = this.#nextPort++;
      this.#mappings.set(ep, port);
      this.#byPort.set(port, ep);
    }
  }

  /** Forgets every mapping (a NAT reboot or mapping timeout). */
  flush(): void {
    this.#mappings.clear();
    this.#byPort.clear();
    this.#contacted.clear();
  }
}

export class FakeNetwork {
  readonly clock: FakeClock;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0, unroutable: 0 };
  conditions: LinkConditions;
  #random: () => number;
  #bound = new Map<string, FakeUdpEndpoint>();
  /** Every endpoint made (on-link delivery looks for those attached to a link). */
  readonly #endpoints = new Set<FakeUdpEndpoint>();
  #nats = new Map<string, FakeNat>();
  #nextPort = 50000;

  constructor(clock: FakeClock, options: LinkConditions & { seed?: number } = {}) {
    this.clock = clock;
    const { seed, ...conditions } = options;
    this.conditions = conditions;
    this.#random = prng(seed ?? 1);
  }

  /** Creates an endpoint bound to `address` (or several `addresses`) and `port` (0/omitted: any). */
  endpoint(options: {
    address?: string;
    addresses?: readonly string[];
    port?: number;
    maxBatch?: number;
  }): FakeUdpEndpoint {
    const addresses = (
      options.addresses ?? (options.address === undefined ? [] : [options.address])
    ).map(canon);
    const first = addresses[0];
    if (first === undefined) throw new TypeError('endpoint needs an address');
    const family = familyOf(first);
    if (addresses.some((a) => familyOf(a) !== family))
      throw new TypeError('mixed address families');
    let port = options.port ?? 0;
    if (port === 0)
      while (addresses.some((a) => this.#bound.has(key(a, (port = this.#nextPort++)))));
    for (const a of addresses) {
      if (this.#bound.has(key(a, port))) {
        throw new IoError('ERR_UDP_BIND', `cannot open UDP socket on ${a}:${port}: address in use`);
      }
    }
    const ep = new FakeUdpEndpoint(this, family, addresses, port, options.maxBatch ?? 64);
    for (const a of addresses) this.#bound.set(key(a, port), ep);
    this.#endpoints.add(ep);
    return ep;
  }

  /** Changes an endpoint's addresses (and optionally port): a move to another network. */
  move(ep: FakeUdpEndpoint, addresses: string | readonly string[], port?: number): void {
    const list = (typeof addresses === 'string' ? [addresses] : addresses).map(canon);
    if (list.some((a) => familyOf(a) !== ep.family))
      throw new TypeError('move must keep the address family');
    this.unbind(ep);
    ep.rebind(list, port ?? ep.localPort);
    for (const a of list) this.#bound.set(key(a, ep.localPort), ep);
  }

  /** Creates a NAT; put endpoints behind it with nat.add or endpoint.behindNat. */
  nat(options: { publicAddress: string; filtering?: FakeNat['filtering'] }): FakeNat {
    const n = new FakeNat(
      canon(options.publicAddress),
      options.filtering ?? 'endpoint-independent',
    );
    this.#nats.set(n.publicAddress, n);
    return n;
  }

  /** Gives `ep` an interface on `link` (see the file comment); replaces one of that ifindex. */
  attach(ep: FakeUdpEndpoint, link: string, o: { ifindex: number; linkLocal: string }): void {
    if (ep.family !== 6) throw new TypeError('links carry IPv6 only');
    ep.links.set(o.ifindex, { link, ifindex: o.ifindex, linkLocal: canon(o.linkLocal) });
  }

  /** Takes `ep` off `link`. */
  detach(ep: FakeUdpEndpoint, link: string): void {
    for (const [i, l] of ep.links) if (l.link === link) ep.links.delete(i);
  }

  /** @internal An on-link datagram from `from`'s interface `out` (see the file comment). */
  transmitOnLink(from: FakeUdpEndpoint, out: FakeLinkInterface, p: Pending): void {
    this.stats.sent++;
    const c = { ...this.conditions, ...from.sendConditions };
    if (this.#random() < (c.loss ?? 0)) {
      this.stats.lost++;
      return;
    }
    const delay = (c.delayMs ?? 0) + (c.jitterMs ?? 0) * this.#random();
    const multicast = p.dstAddr.startsWith('ff');
    this.clock.schedule(this.clock.now() + delay, () => {
      let delivered = false;
      for (const ep of this.#endpoints) {
        if (ep === from || ep.closed || ep.localPort !== p.dstPort) continue;
        for (const l of ep.links.values()) {
          if (l.link !== out.link || (!multicast && l.linkLocal !== p.dstAddr)) continue;
          delivered = true;
          this.stats.delivered++;
          ep.receive(p.data, p.srcAddr, p.srcPort, p.dstAddr, l.ifindex, 255);
        }
      }
      if (!delivered) this.stats.unroutable++;
    });
  }

  /** Puts `ep` behind `nat` (or takes it out with undefined). */
  setNat(ep: FakeUdpEndpoint, nat: FakeNat | undefined): void {
    ep.nat = nat;
  }

  /** @internal */
  unbind(ep: FakeUdpEndpoint): void {
    for (const a of ep.addresses)
      if (this.#bound.get(key(a, ep.localPort)) === ep) this.#bound.delete(key(a, ep.localPort));
  }

  /** @internal Routes one datagram from `from`. */
  transmit(from: FakeUdpEndpoint, p: Pending): void {
    this.stats.sent++;
    let { srcAddr, srcPort } = p;
    if (from.nat !== undefined) {
      srcPort = from.nat.mapOutbound(from, p.dstAddr);
      srcAddr = from.nat.publicAddress;
    }
    const c = { ...this.conditions, ...from.sendConditions };
    const copies = this.#random() < (c.duplicate ?? 0) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let k = 0; k < copies; k++) {
      if (this.#random() < (c.loss ?? 0)) {
        this.stats.lost++;
        continue;
      }
      const delay = (c.delayMs ?? 0) + (c.jitterMs ?? 0) * this.#random();
      const msg = { ...p, srcAddr, srcPort };
      this.clock.schedule(this.clock.now() + delay, () => this.#arrive(msg));
    }
  }

  #arrive(p: Pending): void {
    let ep: FakeUdpEndpoint | undefined;
    let localAddr = p.dstAddr;
    const nat = this.#nats.get(p.dstAddr);
    if (nat !== undefined) {
      ep = nat.mapInbound(p.dstPort, p.srcAddr);
      if (ep !== undefined) localAddr = ep.addresses[0] ?? localAddr;
    } else {
      ep = this.#bound.get(key(p.dstAddr, p.dstPort));
      // Hosts behind a NAT are reachable only through it (or from behind the same NAT).
      if (ep?.nat !== undefined) ep = undefined;
    }
    if (ep === undefined || ep.closed) {
      this.stats.unroutable++;
      return;
    }
    this.stats.delivered++;
    ep.receive(p.data, p.srcAddr, p.srcPort, localAddr, ep.routedIfindex, ROUTED_HOP_LIMIT);
  }
}

interface Arrival {
  data: Uint8Array;
  src: string;
  port: number;
  local: string;
  ifindex: number;
  hopLimit: number;
}

export class FakeUdpEndpoint implements UdpEndpoint {
  readonly family: AddressFamily;
  /** Conditions applied to datagrams this endpoint sends (override the network's). */
  sendConditions: LinkConditions = {};
  /** The NAT this endpoint sits behind, if any. */
  nat: FakeNat | undefined;
  /** Interfaces on named links, by ifindex (FakeNetwork.attach). */
  readonly links = new Map<number, FakeLinkInterface>();
  /** The interface routed datagrams arrive on. */
  routedIfindex = 1;
  #net: FakeNetwork;
  #addresses: string[];
  #port: number;
  #maxBatch: number;
  #handler: DatagramBatchHandler | undefined;
  #paused = false;
  #closed = false;
  #queue: Arrival[] = [];
  #scheduled = false;
  #batch: SlabDatagramBatch | undefined;
  #c = {
    rxDatagrams: 0,
    rxBytes: 0,
    rxBatches: 0,
    rxErrors: 0,
    txDatagrams: 0,
    txBytes: 0,
    txDrops: 0,
    txErrors: 0,
    pollErrors: 0,
    icmpErrors: 0,
    rxTruncated: 0,
    txSourceFallbacks: 0,
  };

  constructor(
    net: FakeNetwork,
    family: AddressFamily,
    addresses: string[],
    port: number,
    maxBatch: number,
  ) {
    this.#net = net;
    this.family = family;
    this.#addresses = addresses;
    this.#port = port;
    this.#maxBatch = maxBatch;
  }

  /** The first (primary) address: the fake is bound to specific addresses, never to any. */
  get localAddress(): string {
    return this.#addresses[0] ?? '';
  }

  get localPort(): number {
    return this.#port;
  }

  get addresses(): readonly string[] {
    return this.#addresses;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal used by FakeNetwork.move */
  rebind(addresses: string[], port: number): void {
    this.#addresses = addresses;
    this.#port = port;
  }

  /** @internal a datagram arrives: queued, then delivered in batches at the same instant. */
  receive(
    data: Uint8Array,
    src: string,
    port: number,
    local: string,
    ifindex: number,
    hopLimit: number,
  ): void {
    this.#queue.push({ data, src, port, local, ifindex, hopLimit });
    if (!this.#scheduled) {
      this.#scheduled = true;
      // Everything arriving at this instant goes out in as few batches as possible.
      this.#net.clock.schedule(this.#net.clock.now(), () => {
        this.#scheduled = false;
        this.#drain();
      });
    }
  }

  #drain(): void {
    while (
      this.#queue.length > 0 &&
      this.#handler !== undefined &&
      !this.#paused &&
      !this.#closed
    ) {
      const slot = Math.max(
        2048,
        ...this.#queue.slice(0, this.#maxBatch).map((q) => q.data.length),
      );
      if (this.#batch === undefined || this.#batch.buf.length < slot * this.#maxBatch) {
        this.#batch = allocDatagramBatch(this.family, this.#maxBatch, slot);
      }
      const b = this.#batch;
      const slotSize = b.buf.length / this.#maxBatch;
      let n = 0;
      while (n < this.#maxBatch && this.#queue.length > 0) {
        const q = this.#queue.shift() as Arrival;
        b.buf.set(q.data, n * slotSize);
        b.offsets[n] = n * slotSize;
        b.lengths[n] = q.data.length;
        writeAddress(this.family, q.src, b.remoteAddrs, n * ADDR_SLOT_LEN);
        b.remotePorts[n] = q.port;
        writeAddress(this.family, q.local, b.localAddrs, n * ADDR_SLOT_LEN);
        b.ifindexes[n] = q.ifindex;
        b.hopLimits[n] = q.hopLimit;
        this.#c.rxBytes += q.data.length;
        n++;
      }
      b.count = n;
      this.#c.rxDatagrams += n;
      this.#c.rxBatches++;
      this.#handler(b);
    }
  }

  onDatagrams(handler: DatagramBatchHandler): void {
    this.#handler = handler;
    this.#drain();
  }

  /** Every send fails as a local firewall's EPERM would (counted in txErrors, nothing sent). */
  refuseSends = false;

  sendDatagrams(batch: OutgoingDatagrams): number {
    if (this.#closed) throw new IoError('ERR_CLOSED', `UDP endpoint ${this.#port} is closed`);
    if (this.refuseSends) {
      this.#c.txErrors += batch.count;
      return 0;
    }
    let sent = 0;
    for (let i = 0; i < batch.count; i++) {
      const at = i * ADDR_SLOT_LEN;
      let src = this.localAddress;
      if (batch.srcAddrs !== undefined && !isZeroSlot(batch.srcAddrs, at)) {
        const chosen = readAddress(this.family, batch.srcAddrs, at);
        // Not (or no longer) ours: the kernel refuses it and native/udp.c sends from the
        // kernel's choice instead, counted.
        if (this.#addresses.includes(chosen)) src = chosen;
        else this.#c.txSourceFallbacks++;
      }
      const data = spanAt(batch, i).slice();
      const zone = this.family === 6 ? (batch.ifindexes?.[i] ?? 0) : 0;
      const p = {
        data,
        srcAddr: src,
        srcPort: this.#port,
        dstAddr: readAddress(this.family, batch.dstAddrs, at),
        dstPort: batch.dstPorts[i] ?? 0,
      };
      if (zone !== 0) {
        const out = this.links.get(zone);
        if (out === undefined) {
          this.#c.txErrors++; // ENODEV / EINVAL: no such interface here
          continue;
        }
        this.#net.transmitOnLink(this, out, { ...p, srcAddr: out.linkLocal });
      } else {
        this.#net.transmit(this, p);
      }
      sent++;
      this.#c.txDatagrams++;
      this.#c.txBytes += data.length;
    }
    return sent;
  }

  send(data: Uint8Array, address: string, port: number, sourceAddress?: string): boolean {
    const dst = addressBytes(this.family, address);
    const src = sourceAddress === undefined ? undefined : addressBytes(this.family, sourceAddress);
    const zone = this.family === 6 ? addressZone(address) : 0;
    return (
      this.sendDatagrams({
        count: 1,
        buf: data,
        offsets: Uint32Array.of(0),
        lengths: Uint32Array.of(data.length),
        dstAddrs: dst,
        dstPorts: Uint16Array.of(port),
        srcAddrs: src,
        ...(zone !== 0 ? { ifindexes: Uint32Array.of(zone) } : {}),
      }) === 1
    );
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#drain();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#net.unbind(this);
  }

  counters(): UdpCounters {
    return { ...this.#c };
  }
}
