/**
 * Batch objects shared by the real devices and the fakes: one object per batch (reused from
 * batch to batch by the real devices) that views a slab, with cheap index accessors for the
 * data path and per-packet objects for signaling code.
 */
import {
  ADDR_SLOT_LEN,
  addressZone,
  isLinkLocalSlot,
  readAddress,
  writeAddress,
} from './address-bytes.js';
import type {
  AddressFamily,
  Datagram,
  DatagramBatch,
  OutgoingDatagrams,
  PacketBatch,
  PacketSpans,
} from './types.js';

/** A PacketBatch over a slab; `count` is updated in place for each new batch. */
export class SlabPacketBatch implements PacketBatch {
  count = 0;
  readonly buf: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly headroom: number;
  readonly tailroom: number;
  constructor(
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    headroom: number,
    tailroom: number,
  ) {
    this.buf = buf;
    this.offsets = offsets;
    this.lengths = lengths;
    this.headroom = headroom;
    this.tailroom = tailroom;
  }

  packet(i: number): Uint8Array {
    const off = this.offsets[i] ?? 0;
    return this.buf.subarray(off, off + (this.lengths[i] ?? 0));
  }

  packets(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.packet(i));
    return out;
  }
}

/** Remote address texts a datagram batch keeps (a power of two). */
const REMOTE_TEXTS = 256;

/** A DatagramBatch over a slab plus per-slot address arrays. */
export class SlabDatagramBatch extends SlabPacketBatch implements DatagramBatch {
  readonly family: AddressFamily;
  readonly remoteAddrs: Uint8Array;
  readonly remotePorts: Uint16Array;
  readonly localAddrs: Uint8Array;
  readonly ifindexes: Uint32Array;
  readonly hopLimits: Uint8Array;
  constructor(
    family: AddressFamily,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    remoteAddrs: Uint8Array,
    remotePorts: Uint16Array,
    localAddrs: Uint8Array,
    headroom: number,
    ifindexes: Uint32Array = new Uint32Array(offsets.length),
    hopLimits: Uint8Array = new Uint8Array(offsets.length),
  ) {
    super(buf, offsets, lengths, headroom, 0);
    this.family = family;
    this.remoteAddrs = remoteAddrs;
    this.remotePorts = remotePorts;
    this.localAddrs = localAddrs;
    this.ifindexes = ifindexes;
    this.hopLimits = hopLimits;
  }

  /**
   * Remote address texts made before, direct-mapped by the address's last two bytes and zone:
   * most datagrams come from an address seen a moment ago (the one peer of a member, members
   * behind one NAT), so its text is made once, not per datagram (issue #16: a datagram's path
   * allocates nothing). A collision only means the text is made again.
   */
  readonly #remoteBytes = new Uint8Array(REMOTE_TEXTS * ADDR_SLOT_LEN);
  readonly #remoteZones = new Uint32Array(REMOTE_TEXTS);
  readonly #remoteTexts: string[] = new Array<string>(REMOTE_TEXTS).fill('');

  remoteAddress(i: number): string {
    const at = i * ADDR_SLOT_LEN;
    const a = this.remoteAddrs;
    const n = this.family === 4 ? 4 : ADDR_SLOT_LEN;
    const zone = this.ifindexes[i] ?? 0;
    const slot = ((a[at + n - 1] ?? 0) ^ ((a[at + n - 2] ?? 0) << 3) ^ zone) & (REMOTE_TEXTS - 1);
    const known = this.#remoteBytes;
    const c = slot * ADDR_SLOT_LEN;
    let same = this.#remoteTexts[slot] !== '' && this.#remoteZones[slot] === zone;
    for (let k = 0; same && k < n; k++) same = a[at + k] === known[c + k];
    if (same) return this.#remoteTexts[slot]!;
    const text = readAddress(this.family, a, at);
    // A link-local source is only an address together with its link (RFC 4007 §11).
    const full =
      this.family === 6 && zone !== 0 && isLinkLocalSlot(a, at) ? `${text}%${zone}` : text;
    known.set(a.subarray(at, at + n), c);
    this.#remoteZones[slot] = zone;
    this.#remoteTexts[slot] = full;
    return full;
  }

  ifindex(i: number): number {
    return this.ifindexes[i] ?? 0;
  }

  hopLimit(i: number): number {
    return this.hopLimits[i] ?? 0;
  }

  remotePort(i: number): number {
    return this.remotePorts[i] ?? 0;
  }

  /** The last local address made text, and its bytes: most datagrams repeat it (a socket
   *  of one address, or a busy member of a multi-homed host), so the text is made once. */
  #lastLocal = '';
  readonly #lastLocalBytes = new Uint8Array(ADDR_SLOT_LEN);

  localAddress(i: number): string {
    const at = i * ADDR_SLOT_LEN;
    const a = this.localAddrs;
    const last = this.#lastLocalBytes;
    const n = this.family === 4 ? 4 : ADDR_SLOT_LEN;
    let same = this.#lastLocal !== '';
    for (let k = 0; same && k < n; k++) same = a[at + k] === last[k];
    if (same) return this.#lastLocal;
    this.#lastLocal = readAddress(this.family, a, at);
    last.set(a.subarray(at, at + n));
    return this.#lastLocal;
  }

  datagram(i: number): Datagram {
    return {
      data: this.packet(i),
      remoteAddress: this.remoteAddress(i),
      remotePort: this.remotePort(i),
      localAddress: this.localAddress(i),
      ifindex: this.ifindex(i),
      hopLimit: this.hopLimit(i),
    };
  }

  datagrams(): Datagram[] {
    const out: Datagram[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.datagram(i));
    return out;
  }
}

/** Allocates the receive arrays for `capacity` datagrams of at most `slotSize` bytes each. */
export function allocDatagramBatch(
  family: AddressFamily,
  capacity: number,
  slotSize: number,
  headroom = 0,
): SlabDatagramBatch {
  return new SlabDatagramBatch(
    family,
    new Uint8Array(capacity * slotSize),
    new Uint32Array(capacity),
    new Uint32Array(capacity),
    new Uint8Array(capacity * ADDR_SLOT_LEN),
    new Uint16Array(capacity),
    new Uint8Array(capacity * ADDR_SLOT_LEN),
    headroom,
    new Uint32Array(capacity),
    new Uint8Array(capacity),
  );
}

/** Packs separate packets into one PacketSpans (copies). */
export function packetSpans(packets: readonly Uint8Array[]): PacketSpans {
  let total = 0;
  for (const p of packets) total += p.length;
  const buf = new Uint8Array(total);
  const offsets = new Uint32Array(packets.length);
  const lengths = new Uint32Array(packets.length);
  let off = 0;
  packets.forEach((p, i) => {
    buf.set(p, off);
    offsets[i] = off;
    lengths[i] = p.length;
    off += p.length;
  });
  return { count: packets.length, buf, offsets, lengths };
}

/** Views packet i of any PacketSpans (no copy). */
export function spanAt(spans: PacketSpans, i: number): Uint8Array {
  const off = spans.offsets[i] ?? 0;
  return spans.buf.subarray(off, off + (spans.lengths[i] ?? 0));
}

/**
 * A reusable builder of OutgoingDatagrams: `clear()`, then `push()` datagrams (copied into
 * the builder's slab, one slot each) with text addresses, or fill the arrays directly.
 */
export class OutgoingDatagramBatch implements OutgoingDatagrams {
  count = 0;
  readonly buf: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly dstAddrs: Uint8Array;
  readonly dstPorts: Uint16Array;
  readonly srcAddrs: Uint8Array;
  readonly ifindexes: Uint32Array;

  readonly family: AddressFamily;
  readonly capacity: number;
  readonly slotSize: number;

  constructor(family: AddressFamily, capacity: number, slotSize = 2048) {
    this.family = family;
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.buf = new Uint8Array(capacity * slotSize);
    this.offsets = new Uint32Array(capacity);
    this.lengths = new Uint32Array(capacity);
    this.dstAddrs = new Uint8Array(capacity * ADDR_SLOT_LEN);
    this.dstPorts = new Uint16Array(capacity);
    this.srcAddrs = new Uint8Array(capacity * ADDR_SLOT_LEN);
    this.ifindexes = new Uint32Array(capacity);
    for (let i = 0; i < capacity; i++) this.offsets[i] = i * slotSize;
  }

  clear(): void {
    this.count = 0;
  }

  /**
   * Appends a copy of `data` for address:port, from `source` if given. False when full. An
   * IPv6 address with a numeric zone (`fe80::1%3`) is sent on that link only.
   */
  push(data: Uint8Array, address: string, port: number, source?: string): boolean {
    if (this.count >= this.capacity) return false;
    if (data.length > this.slotSize) {
      throw new RangeError(`datagram of ${data.length} bytes exceeds slot size ${this.slotSize}`);
    }
    const zone = this.family === 6 ? addressZone(address) : 0;
    const i = this.count++;
    this.ifindexes[i] = zone;
    const off = i * this.slotSize;
    this.buf.set(data, off);
    this.offsets[i] = off;
    this.lengths[i] = data.length;
    writeAddress(this.family, address, this.dstAddrs, i * ADDR_SLOT_LEN);
    this.dstPorts[i] = port;
    if (source === undefined) this.srcAddrs.fill(0, i * ADDR_SLOT_LEN, (i + 1) * ADDR_SLOT_LEN);
    else writeAddress(this.family, source, this.srcAddrs, i * ADDR_SLOT_LEN);
    return true;
  }
}
