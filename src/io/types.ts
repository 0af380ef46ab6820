/**
 * The I/O interfaces the roles' drivers are written against. Real implementations live
 * beside this file (tun.ts, udp.ts, native-aead.ts, clock.ts); in-memory fakes with the same
 * shapes live in test/helpers (FakeTun, FakeNetwork, FakeClock).
 *
 * Data flow on the fast path (one JS turn per batch, never per packet):
 *   TUN readable -> addon drains N packets into the TUN slab -> onPackets(batch) ->
 *   driver writes a 16-byte channel header into each packet's headroom -> BatchAead.sealBatch
 *   in place -> UdpEndpoint.sendDatagrams straight from the same slab.
 *   UDP readable -> addon recvmmsg's N datagrams into the UDP slab -> onDatagrams(batch) ->
 *   BatchAead.openBatch in place -> TunDevice.writePackets of the inner packets (offset + 16).
 *
 * Buffer lifetime: a batch handed to a callback views a slab that the next batch overwrites.
 * Consume or copy what you need before the callback returns (`packet(i).slice()` copies).
 */

/** A batch of packets inside one buffer: packet i is buf[offsets[i], offsets[i] + lengths[i]). */
export interface PacketSpans {
  /** Number of packets; entries at index >= count are garbage. */
  readonly count: number;
  readonly buf: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
}

/** A received batch of packets; valid only during the callback that receives it. */
export interface PacketBatch extends PacketSpans {
  /**
   * Bytes writable in place before offsets[i] (e.g. for a channel header) and after the
   * packet's end (e.g. for a tag), for every packet of this batch.
   */
  readonly headroom: number;
  readonly tailroom: number;
  /** A view (no copy) of packet i. */
  packet(i: number): Uint8Array;
  /** Views of all packets, for code that prefers one object per packet (signaling). */
  packets(): Uint8Array[];
}

/** Called once per batch read from a TUN device. */
export type PacketBatchHandler = (batch: PacketBatch) => void;

/** Counters of a TUN device (monotonic since open). */
export interface TunCounters {
  readonly rxPackets: number;
  readonly rxBytes: number;
  /** Number of batches delivered; rxPackets / rxBatches is the mean batch size. */
  readonly rxBatches: number;
  readonly rxErrors: number;
  readonly txPackets: number;
  readonly txBytes: number;
  /** Writes refused with EAGAIN (the kernel queue was full): the packet is dropped. */
  readonly txDrops: number;
  readonly txErrors: number;
  /** Offloads: super-packets read (TSO/USO) and the packets cut from them. */
  readonly rxGsoPackets?: number;
  readonly rxGsoSegments?: number;
  /** Reads dropped for a malformed virtio-net header, by reason (native/vnet.h). */
  readonly rxDropVnetType?: number;
  readonly rxDropVnetChecksum?: number;
  readonly rxDropVnetHeaders?: number;
  readonly rxDropVnetGsoSize?: number;
  /** A plain packet larger than a slot (larger than the MTU): dropped. */
  readonly rxDropTooBig?: number;
  /** Super-packets written (runs of one TCP flow coalesced) and the packets in them. */
  readonly txGsoPackets?: number;
  readonly txGsoSegments?: number;
  /** Reads longer than the addon takes (512 KiB after the virtio-net header): dropped. */
  readonly rxTruncated?: number;
  /** The longest read so far, in bytes after the virtio-net header (a gauge, not a sum). */
  readonly rxMaxRead?: number;
}

/** Which offloads the kernel accepted for a TUN device (native/tun_linux.c tunOffloads). */
export interface TunOffloads {
  /** Opened with IFF_VNET_HDR: every packet comes with a virtio-net header. */
  readonly vnetHeader: boolean;
  /** TUN_F_CSUM: transport checksums are completed by the addon. */
  readonly checksum: boolean;
  /** TCP super-packets (TSO) for IPv4 / IPv6, cut by the addon. */
  readonly tso4: boolean;
  readonly tso6: boolean;
  /** UDP super-packets (USO, Linux 6.2+). */
  readonly uso4: boolean;
  readonly uso6: boolean;
  /** MIP6_OFFLOAD_OFF=tun turned them off. */
  readonly disabledByEnv: boolean;
  /** Runs of one TCP flow in a write batch go to the kernel as one super-packet (GRO); with
   *  USO (uso4 / uso6) runs of one UDP flow as well. */
  readonly coalesceWrites: boolean;
  /** Coalescing was on and stopped when the kernel refused a super-packet with this errno. */
  readonly coalesceRefusedErrno?: number;
  /** UDP runs stopped when the kernel refused a UDP super-packet with this errno (TCP runs go on). */
  readonly coalesceUdpRefusedErrno?: number;
}

/**
 * A layer-3 TUN device: every packet is one bare IPv6 (or IPv4) packet, no extra header.
 * Addresses, MTU, routes and link state are configured separately (src/io/iproute.ts).
 */
export interface TunDevice {
  /** Interface name, e.g. `mip6-0` or the kernel's choice `tun0`. */
  readonly name: string;
  /** The MTU the device was configured with. */
  readonly mtu: number;
  /** Bytes writable before each received packet (see PacketBatch.headroom). */
  readonly headroom: number;
  /** Bytes writable after each received packet (see PacketBatch.tailroom). */
  readonly tailroom: number;
  /**
   * Sets the single batch handler (replacing any previous one) and starts reading unless
   * paused. Packets that arrive before a handler is set wait in the kernel queue.
   */
  onPackets(handler: PacketBatchHandler): void;
  /**
   * Writes packets to the kernel. Returns how many were accepted; the others were dropped
   * and counted (txDrops when the kernel queue was full, txErrors otherwise).
   */
  writePackets(packets: PacketSpans): number;
  /** Writes one packet; true when the kernel accepted it. */
  writePacket(packet: Uint8Array): boolean;
  /** Stops delivering batches (backpressure); packets queue in the kernel, then drop there. */
  pause(): void;
  /** Resumes delivering batches after pause(). */
  resume(): void;
  /** Closes the device (the interface disappears). Idempotent; writes after it throw. */
  close(): void;
  counters(): TunCounters;
  /** The offloads the kernel accepted (the real device only). */
  offloads?(): TunOffloads;
}

/** Underlay address family of a UDP endpoint. */
export type AddressFamily = 4 | 6;

/** One received datagram as a plain object (the easy, per-packet view). */
export interface Datagram {
  /** View of the payload (no copy); valid only during the callback. */
  readonly data: Uint8Array;
  /** Source address as text (IPv4 dotted quad or RFC 5952 IPv6). */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The local address the datagram was sent to (from IP_PKTINFO / IPV6_PKTINFO). */
  readonly localAddress: string;
  /** The interface it arrived on (pktinfo; 0 when unknown). */
  readonly ifindex: number;
  /** Its IPv6 hop limit on arrival (0 when unknown, e.g. IPv4). */
  readonly hopLimit: number;
}

/**
 * A received batch of datagrams. Address slots are 16 bytes per datagram (IPv4 uses the first
 * 4 bytes); the raw arrays let the fast path compare or copy addresses without making strings.
 */
export interface DatagramBatch extends PacketBatch {
  readonly family: AddressFamily;
  /** 16 bytes per datagram: the source address. */
  readonly remoteAddrs: Uint8Array;
  /** Source port per datagram. */
  readonly remotePorts: Uint16Array;
  /** 16 bytes per datagram: the local (destination) address it arrived on. */
  readonly localAddrs: Uint8Array;
  /** Per datagram: the interface it arrived on (in6_pktinfo / in_pktinfo; 0 = unknown). */
  readonly ifindexes: Uint32Array;
  /**
   * Per datagram: the IPv6 hop limit it arrived with (0 = unknown). 255 on arrival at a given
   * interface means it was sent on that link and never routed (RFC 4861 §7.1.2's rule).
   */
  readonly hopLimits: Uint8Array;
  /**
   * Source address as text; an IPv6 link-local source carries its zone, the arrival
   * interface (`fe80::1%3`), so that sending back to it leaves the same link.
   */
  remoteAddress(i: number): string;
  remotePort(i: number): number;
  localAddress(i: number): string;
  /** The per-packet object view of datagram i. */
  datagram(i: number): Datagram;
  /** All datagrams as objects (allocates; meant for signaling, not the data path). */
  datagrams(): Datagram[];
}

/** Called once per batch received on a UDP endpoint. */
export type DatagramBatchHandler = (batch: DatagramBatch) => void;

/**
 * Datagrams to send. Datagram i is buf[offsets[i], offsets[i] + lengths[i]) sent to
 * dstAddrs[16i ..] (IPv4: the first 4 bytes) port dstPorts[i], from srcAddrs[16i ..] when
 * srcAddrs is given and that slot is not all zero (otherwise the kernel picks the source; so
 * it does when the chosen one is no longer an address of this host, counted as
 * txSourceFallbacks).
 * IPv6: a non-zero ifindexes[i] sends it on that link only: out of that interface (the zone
 * of a link-local or multicast destination) with hop limit 255. OutgoingDatagramBatch
 * (src/io/batch.ts) builds one from address strings, taking the interface from a numeric
 * zone (`ff02::1%3`, `fe80::1%3`).
 */
export interface OutgoingDatagrams extends PacketSpans {
  readonly dstAddrs: Uint8Array;
  readonly dstPorts: Uint16Array;
  readonly srcAddrs?: Uint8Array | undefined;
  readonly ifindexes?: Uint32Array | undefined;
}

/** Counters of a UDP endpoint (monotonic since open). */
export interface UdpCounters {
  readonly rxDatagrams: number;
  readonly rxBytes: number;
  readonly rxBatches: number;
  readonly rxErrors: number;
  readonly txDatagrams: number;
  readonly txBytes: number;
  /** Datagrams dropped because the socket buffer was full (EAGAIN). */
  readonly txDrops: number;
  /** Datagrams the kernel refused (unreachable, too big...). */
  readonly txErrors: number;
  /** Times the poll reported an error that was cleared so receiving could go on. */
  readonly pollErrors: number;
  /** ICMP errors reported for earlier sends (port/host unreachable, too big). */
  readonly icmpErrors: number;
  /** Received datagrams larger than a slab slot, dropped. */
  readonly rxTruncated: number;
  /** Datagrams refused as larger than the interface MTU (EMSGSIZE; Don't Fragment is set). */
  readonly txTooBig?: number;
  /** ICMP Fragmentation Needed / Packet Too Big found in the error queue (see MtuReport). */
  readonly mtuReports?: number;
  /** Segmented sends (UDP GSO: one message, several datagrams) and the datagrams in them. */
  readonly txGsoSends?: number;
  readonly txGsoDatagrams?: number;
  /** Coalesced reads (UDP GRO: several datagrams in one read) and the datagrams cut from them. */
  readonly rxGroReads?: number;
  readonly rxGroDatagrams?: number;
  /**
   * Datagrams whose chosen source address (srcAddrs) the kernel refused, no longer this host's,
   * and that went out with the kernel's choice instead.
   */
  readonly txSourceFallbacks?: number;
}

/** Which UDP offloads a socket uses (native/udp.c udpOffloads). */
export interface UdpOffloads {
  /** Sends of same-size datagrams to one destination go out as one UDP_SEGMENT message. */
  readonly gso: boolean;
  /** The kernel may coalesce received datagrams (UDP_GRO); the addon cuts them apart. */
  readonly gro: boolean;
  /** GSO was on, and went off when the kernel refused a segmented send with this errno. */
  readonly gsoRefusedErrno?: number;
  /** MIP6_OFFLOAD_OFF turned GSO or GRO off. */
  readonly disabledByEnv: boolean;
}

/**
 * An ICMP Fragmentation Needed (IPv4) / Packet Too Big (IPv6) for a datagram this socket sent,
 * as the kernel queued it (IP_RECVERR): nothing in it is authenticated; the receiver of the
 * report matches `quote` to what it actually sent (src/protocol/path-mtu.ts).
 */
export interface MtuReport {
  /** Destination of the datagram the ICMP quotes. */
  address: string;
  port: number;
  /** The MTU the ICMP announces (IP datagram bytes). */
  mtu: number;
  /** The first bytes of the quoted UDP payload (up to 16), and how long the quote was. */
  quote: Uint8Array;
  quotedLength: number;
  /**
   * True when no ICMP came: this host refused the send (EMSGSIZE) and `mtu` is one below that
   * datagram's size, an upper bound rather than the path MTU. Not proof either: a forged ICMP
   * error pending on the socket fails a send with EMSGSIZE too, so it never lowers a size that
   * probes confirmed (protocol/path-mtu.ts).
   */
  local: boolean;
}

/** A bound UDP socket of one family, with batched receive and send. */
export interface UdpEndpoint {
  readonly family: AddressFamily;
  /** The bound address as text ('0.0.0.0' / '::' when bound to any). */
  readonly localAddress: string;
  /** The bound port (the kernel's choice when opened with port 0). */
  readonly localPort: number;
  /** Sets the single batch handler (replacing any previous one) and starts receiving. */
  onDatagrams(handler: DatagramBatchHandler): void;
  /** Sends a batch; returns how many datagrams the kernel accepted (the rest are counted). */
  sendDatagrams(batch: OutgoingDatagrams): number;
  /**
   * Sends one datagram, optionally from a chosen local address; true when accepted. An IPv6
   * `address` with a numeric zone (`ff02::1%3`) goes on that link only (see OutgoingDatagrams).
   */
  send(data: Uint8Array, address: string, port: number, sourceAddress?: string): boolean;
  /** Stops delivering batches (backpressure). */
  pause(): void;
  resume(): void;
  /** Closes the socket. Idempotent; sends after it throw. */
  close(): void;
  counters(): UdpCounters;
  /**
   * MTU reports queued since the last call (oldest first; at most 16 are kept). Optional: the
   * in-memory test network has none. Cheap to skip: look at counters().mtuReports first.
   */
  takeMtuReports?(): MtuReport[];
  /** counters().mtuReports without building the whole counters object (per batch). */
  mtuReportCount?(): number;
  /** The UDP offloads this socket uses (the real socket only). */
  offloads?(): UdpOffloads;
}

/**
 * Batched ChaCha20-Poly1305 (IETF) over the channel data format:
 * `type(1)=4 | reserved(3) | receiver SPI (4, BE) | counter (8, LE)` + ciphertext + 16-byte tag;
 * nonce = 4 zero bytes | counter (header bytes 8..15); AAD = the 16-byte header.
 * Structurally identical to the interface of the same name in src/crypto/aead.ts.
 */
export interface BatchAead {
  /** For i < count: message i occupies buf[offsets[i], offsets[i] + 16 + lengths[i] + 16).
   *  The 16-byte header is already written (AAD; counter read from it); plaintext of
   *  lengths[i] bytes at offsets[i] + 16 is encrypted in place and the tag written after it. */
  sealBatch(
    key: Uint8Array,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
  ): void;
  /** lengths[i] = whole message length (header + ciphertext + tag). Decrypts in place;
   *  results[i] = 1 if the tag verified, 0 otherwise. */
  openBatch(
    key: Uint8Array,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    results: Uint8Array,
  ): void;
}

/**
 * Time for one node: a monotonic millisecond clock and ONE re-armable timer (the sans-IO
 * cores report their next deadline; the driver re-arms this timer with it).
 */
export interface Clock {
  /** Monotonic milliseconds (fractional allowed); only differences are meaningful. */
  now(): number;
  /**
   * Arms the timer to call `cb` once at time `at` (same scale as now()), replacing any
   * pending arming. A time in the past fires as soon as possible (never synchronously).
   */
  setTimer(at: number, cb: () => void): void;
  /** Disarms the timer if armed. */
  clearTimer(): void;
}

/** A channel's keys and limits for the express lane (from SecureEndpoint.expressView). */
export interface ExpressKeys {
  localSpi: number;
  remoteSpi: number;
  keyChunk: Uint8Array;
  keyBase: number;
  replayChunk: Uint32Array;
  replayBase: number;
  replayWords: number;
  rxForMs: number;
  rxLimit: number;
  txForMs: number;
  txLimit: number;
}

/** Where an armed channel's datagrams come from and go to (a ResolvedLocator has these). */
export interface ExpressPath {
  readonly family: AddressFamily;
  /** The peer's address as a 16-byte slot (IPv4 in the first 4 bytes). */
  readonly slot: Uint8Array;
  readonly port: number;
  /** Our address the peer reaches, as a slot; undefined: the kernel chooses. */
  readonly source: Uint8Array | undefined;
}

/** What one armed channel carried in the lane since it was armed (ExpressLane.clear). */
export interface ExpressReport {
  spi: number;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Ms before the clear of the last packet each way (-1: none). */
  rxAgoMs: number;
  txAgoMs: number;
  badTags: number;
  sendErrors: number;
  /** Inner packets the TUN refused (counted as `tun-write` drops). */
  tunErrors: number;
}

/**
 * The native express lane (native/express.c, io/express.ts): carries armed channels' plain
 * payload between the TUN and the sockets without a JS call, until the next clear().
 */
export interface ExpressLane {
  /** Channels armed since the last clear. */
  readonly armed: number;
  /** Arms receiving: data under `keys` from `path` whose inner source is one of `sources`
   *  (16-byte slots; a mobile node's lane checks its home address instead). */
  armRx(keys: ExpressKeys, path: ExpressPath, sources: Uint8Array | null): boolean;
  /** Arms sending to `destinations` (16-byte slots; a mobile node's lane: everything) through
   *  `path`, packets of at most `maxInner` bytes. */
  armTx(
    keys: ExpressKeys,
    path: ExpressPath,
    maxInner: number,
    destinations: Uint8Array | null,
  ): boolean;
  /** Forgets every armed channel; `visit` gets what each carried (the report is reused). */
  clear(visit: (r: ExpressReport) => void): void;
  /** What each armed channel carried since the last clear or harvest; they stay armed. */
  harvest(visit: (r: ExpressReport) => void): void;
  counters(): ExpressCounters;
  close(): void;
}

export interface ExpressCounters {
  rxTaken: number;
  rxToJs: number;
  rxBadTag: number;
  rxTunErrors: number;
  txTaken: number;
  txToJs: number;
  txSendErrors: number;
  armed: number;
  clears: number;
}
