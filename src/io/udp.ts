/**
 * The real UdpEndpoint on the addon (native/udp.c): one socket per address family,
 * recvmmsg/sendmmsg batches, per-datagram remote and local addresses, arrival interface and
 * hop limit, chosen source address and (IPv6) on-link sends on a chosen interface.
 *
 * Receive flow: readiness -> recvmmsg of up to maxBatch datagrams into this endpoint's slab
 * and address arrays -> one callback -> the reused SlabDatagramBatch goes to the handler.
 */
import { IoError } from '../util/errors.js';
import { addressBytes, readAddress } from './address-bytes.js';
import { loadAddon, type NativeAddon, type NativeError, type NativeHandle } from './addon.js';
import { OutgoingDatagramBatch, SlabDatagramBatch } from './batch.js';
import type {
  AddressFamily,
  DatagramBatchHandler,
  MtuReport,
  OutgoingDatagrams,
  UdpCounters,
  UdpEndpoint,
  UdpOffloads,
} from './types.js';

/** Defaults: 64 datagrams per batch, 2 KiB slots (a 1500-byte underlay MTU fits). */
export const UDP_DEFAULTS = {
  maxBatch: 64,
  slotSize: 2048,
  /** Socket buffers: room for several full batches in flight. */
  socketBuffer: 4 * 1024 * 1024,
} as const;

export interface UdpOptions {
  family: AddressFamily;
  /** Local address to bind; default any ('0.0.0.0' / '::'). */
  address?: string;
  /** Local port; 0 (default) lets the kernel choose; see localPort. */
  port?: number;
  /** Datagrams per batch (default 64, at most 1024). */
  maxBatch?: number;
  /** Largest datagram received whole (default 2048); larger ones are dropped and counted. */
  slotSize?: number;
  /** SO_RCVBUF / SO_SNDBUF in bytes (default 4 MiB each; 0 keeps the system default). */
  receiveBuffer?: number;
  sendBuffer?: number;
  /**
   * SO_MARK (non-zero; needs CAP_NET_ADMIN at open): the full tunnel's policy rules send this
   * socket's datagrams past the routes into the TUN (src/io/tunnel-routes.ts).
   */
  mark?: number;
}

const COUNTER_NAMES = [
  'rxDatagrams',
  'rxBytes',
  'rxBatches',
  'rxErrors',
  'txDatagrams',
  'txBytes',
  'txDrops',
  'txErrors',
  'pollErrors',
  'icmpErrors',
  'rxTruncated',
  'txTooBig',
  'mtuReports',
  'txGsoSends',
  'txGsoDatagrams',
  'rxGroReads',
  'rxGroDatagrams',
  'txSourceFallbacks',
] as const;
/** Index of mtuReports in the counters (native/udp.c C_MTU_REPORTS). */
const MTU_REPORTS_COUNTER = 12;
/** native/udp.c: MTU_REPORT_LEN bytes per report, MTU_REPORTS_MAX kept; origin byte 40. */
const MTU_REPORT_LEN = 48;
const MTU_FROM_SEND = 2;
const MTU_REPORTS_MAX = 16;
const QUOTE_LEN = 16;

export class NativeUdpEndpoint implements UdpEndpoint {
  readonly family: AddressFamily;
  readonly localAddress: string;
  readonly localPort: number;
  readonly #addon: NativeAddon;
  readonly #handle: NativeHandle;
  readonly #counters = new Float64Array(COUNTER_NAMES.length);
  readonly #batch: SlabDatagramBatch;
  #single: OutgoingDatagramBatch | undefined;
  #handler: DatagramBatchHandler | undefined;
  #paused = false;
  #closed = false;

  /** @internal The addon's handle (the express lane attaches to it, io/express.ts). */
  get nativeHandle(): NativeHandle {
    return this.#handle;
  }

  /** Opens and binds the socket. Throws IoError ERR_UDP_BIND naming the address. */
  constructor(options: UdpOptions, addon: NativeAddon = loadAddon()) {
    this.#addon = addon;
    this.family = options.family;
    const address = options.address ?? (options.family === 4 ? '0.0.0.0' : '::');
    const bind = addressBytes(options.family, address);
    const maxBatch = options.maxBatch ?? UDP_DEFAULTS.maxBatch;
    const slot = options.slotSize ?? UDP_DEFAULTS.slotSize;
    const b = new SlabDatagramBatch(
      options.family,
      new Uint8Array(maxBatch * slot),
      new Uint32Array(maxBatch),
      new Uint32Array(maxBatch),
      new Uint8Array(maxBatch * 16),
      new Uint16Array(maxBatch),
      new Uint8Array(maxBatch * 16),
      0,
      new Uint32Array(maxBatch),
      new Uint8Array(maxBatch),
    );
    this.#batch = b;
    try {
      [this.#handle, this.localPort] = addon.udpOpen(
        options.family,
        bind,
        options.port ?? 0,
        b.buf,
        b.offsets,
        b.lengths,
        b.remoteAddrs,
        b.remotePorts,
        b.localAddrs,
        this.#counters,
        maxBatch,
        slot,
        0,
        options.receiveBuffer ?? UDP_DEFAULTS.socketBuffer,
        options.sendBuffer ?? UDP_DEFAULTS.socketBuffer,
        (count) => this.#deliver(count),
        b.ifindexes,
        b.hopLimits,
      );
    } catch (err) {
      if (err instanceof RangeError || err instanceof TypeError) throw err;
      const e = err as NativeError;
      const where =
        options.family === 6
          ? `[${address}]:${options.port ?? 0}`
          : `${address}:${options.port ?? 0}`;
      throw new IoError(
        'ERR_UDP_BIND',
        `cannot open UDP socket on ${where}: ${e.message}`,
        e.errno,
      );
    }
    this.localAddress = readAddress(options.family, bind, 0);
    if (options.mark !== undefined && options.mark !== 0) this.#setMark(options.mark);
  }

  #setMark(mark: number): void {
    try {
      if (this.#addon.udpSetMark === undefined) {
        throw Object.assign(new Error('the addon has no udpSetMark (rebuild it)'), { errno: 0 });
      }
      this.#addon.udpSetMark(this.#handle, mark);
    } catch (err) {
      this.close();
      const e = err as NativeError;
      throw new IoError(
        'ERR_UDP_MARK',
        `cannot set firewall mark ${mark} on UDP port ${this.localPort}: ${e.message}` +
          (e.code === 'EPERM' ? ' (needs CAP_NET_ADMIN)' : ''),
        e.errno,
      );
    }
  }

  #deliver(count: number): void {
    const handler = this.#handler;
    if (handler === undefined) return;
    this.#batch.count = count;
    handler(this.#batch);
  }

  onDatagrams(handler: DatagramBatchHandler): void {
    this.#handler = handler;
    if (!this.#paused && !this.#closed) this.#addon.udpSetReading(this.#handle, true);
  }

  sendDatagrams(batch: OutgoingDatagrams): number {
    if (this.#closed) throw new IoError('ERR_CLOSED', `UDP endpoint ${this.localPort} is closed`);
    return this.#addon.udpSend(
      this.#handle,
      batch.buf,
      batch.offsets,
      batch.lengths,
      batch.count,
      batch.dstAddrs,
      batch.dstPorts,
      batch.srcAddrs ?? null,
      batch.ifindexes ?? null,
    );
  }

  send(data: Uint8Array, address: string, port: number, sourceAddress?: string): boolean {
    const size = Math.max(2048, data.length);
    if (this.#single === undefined || this.#single.slotSize < size) {
      this.#single = new OutgoingDatagramBatch(this.family, 1, size);
    }
    const one = this.#single;
    one.clear();
    one.push(data, address, port, sourceAddress);
    return this.sendDatagrams(one) === 1;
  }

  pause(): void {
    this.#paused = true;
    if (!this.#closed) this.#addon.udpSetReading(this.#handle, false);
  }

  resume(): void {
    this.#paused = false;
    if (!this.#closed && this.#handler !== undefined) this.#addon.udpSetReading(this.#handle, true);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#addon.udpClose(this.#handle);
  }

  mtuReportCount(): number {
    return this.#counters[MTU_REPORTS_COUNTER] ?? 0;
  }

  takeMtuReports(): MtuReport[] {
    if (this.#closed || this.#addon.udpTakeMtuReports === undefined) return [];
    const raw = new Uint8Array(MTU_REPORT_LEN * MTU_REPORTS_MAX);
    const n = this.#addon.udpTakeMtuReports(this.#handle, raw);
    const out: MtuReport[] = [];
    for (let i = 0; i < n; i++) {
      const r = raw.subarray(i * MTU_REPORT_LEN, (i + 1) * MTU_REPORT_LEN);
      const quotedLength = (r[18]! << 8) | r[19]!;
      out.push({
        address: readAddress(this.family, r, 0),
        port: (r[16]! << 8) | r[17]!,
        mtu: ((r[20]! << 24) | (r[21]! << 16) | (r[22]! << 8) | r[23]!) >>> 0,
        quote: r.slice(24, 24 + Math.min(QUOTE_LEN, quotedLength)),
        quotedLength,
        local: r[40] === MTU_FROM_SEND,
      });
    }
    return out;
  }

  offloads(): UdpOffloads {
    return decodeUdpOffloads(this.#closed ? 0 : (this.#addon.udpOffloads?.(this.#handle) ?? 0));
  }

  counters(): UdpCounters {
    const c = this.#counters;
    return Object.fromEntries(
      COUNTER_NAMES.map((n, i) => [n, c[i] ?? 0]),
    ) as unknown as UdpCounters;
  }
}

/** native/udp.c udpOffloads bits: 1 GSO, 2 GRO, 4 GSO refused (errno << 8), 8 env. */
export function decodeUdpOffloads(mask: number): UdpOffloads {
  const errno = mask >>> 8;
  return {
    gso: (mask & 1) !== 0,
    gro: (mask & 2) !== 0,
    ...((mask & 4) !== 0 ? { gsoRefusedErrno: errno } : {}),
    disabledByEnv: (mask & 8) !== 0,
  };
}

/** Opens a UDP endpoint (see UdpOptions). */
export function openUdp(options: UdpOptions): UdpEndpoint {
  return new NativeUdpEndpoint(options);
}
