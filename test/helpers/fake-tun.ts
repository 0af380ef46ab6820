/**
 * FakeTun: an in-memory TunDevice. The test plays the kernel: inject() hands packets to the
 * device's reader in batches (synchronously, up to maxBatch per batch, with the same
 * headroom/tailroom layout as the real device), and packets the code writes are kept in
 * `written` and passed to `onKernelReceive` listeners.
 */
import { IoError } from '../../src/util/errors.js';
import { SlabPacketBatch, spanAt } from '../../src/io/batch.js';
import type {
  PacketBatchHandler,
  PacketSpans,
  TunCounters,
  TunDevice,
} from '../../src/io/types.js';

export interface FakeTunOptions {
  name?: string;
  mtu?: number;
  headroom?: number;
  tailroom?: number;
  maxBatch?: number;
  /** Packets queued while paused or without a handler before the "kernel" drops (500). */
  queueLimit?: number;
}

export class FakeTun implements TunDevice {
  readonly name: string;
  readonly mtu: number;
  readonly headroom: number;
  readonly tailroom: number;
  readonly maxBatch: number;
  /** Copies of every packet written by the code under test, in order. */
  readonly written: Uint8Array[] = [];
  /** When true, writes fail as if the kernel queue were full (counted as txDrops). */
  kernelQueueFull = false;
  /** Packets dropped because the read queue overflowed while paused. */
  queueDrops = 0;
  #queue: Uint8Array[] = [];
  #queueLimit: number;
  #listeners: ((packet: Uint8Array) => void)[] = [];
  #handler: PacketBatchHandler | undefined;
  #paused = false;
  #closed = false;
  #batch: SlabPacketBatch;
  #slot: number;
  #c = {
    rxPackets: 0,
    rxBytes: 0,
    rxBatches: 0,
    rxErrors: 0,
    txPackets: 0,
    txBytes: 0,
    txDrops: 0,
    txErrors: 0,
  };

  constructor(options: FakeTunOptions = {}) {
    this.name = options.name ?? 'faketun0';
    this.mtu = options.mtu ?? 1420;
    this.headroom = options.headroom ?? 16;
    this.tailroom = options.tailroom ?? 16;
    this.maxBatch = options.maxBatch ?? 64;
    this.#queueLimit = options.queueLimit ?? 500;
    this.#slot = this.headroom + this.mtu + this.tailroom;
    this.#batch = new SlabPacketBatch(
      new Uint8Array(this.maxBatch * this.#slot),
      new Uint32Array(this.maxBatch),
      new Uint32Array(this.maxBatch),
      this.headroom,
      this.tailroom,
    );
  }

  /** True after close(). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Kernel -> device: packets the "kernel routes into the TUN". Larger than mtu: dropped. */
  inject(packets: Uint8Array | readonly Uint8Array[]): void {
    if (this.#closed) return;
    const list = packets instanceof Uint8Array ? [packets] : packets;
    for (const p of list) {
      if (p.length > this.mtu) {
        this.#c.rxErrors++;
        continue;
      }
      if (this.#queue.length >= this.#queueLimit) this.queueDrops++;
      else this.#queue.push(p.slice());
    }
    this.#drain();
  }

  /** Listens to packets the code writes (device -> kernel). */
  onKernelReceive(listener: (packet: Uint8Array) => void): void {
    this.#listeners.push(listener);
  }

  #drain(): void {
    while (
      this.#queue.length > 0 &&
      this.#handler !== undefined &&
      !this.#paused &&
      !this.#closed
    ) {
      const b = this.#batch;
      let n = 0;
      while (n < this.maxBatch && this.#queue.length > 0) {
        const p = this.#queue.shift() as Uint8Array;
        const off = n * this.#slot + this.headroom;
        b.buf.set(p, off);
        b.offsets[n] = off;
        b.lengths[n] = p.length;
        this.#c.rxBytes += p.length;
        n++;
      }
      b.count = n;
      this.#c.rxPackets += n;
      this.#c.rxBatches++;
      this.#handler(b);
    }
  }

  onPackets(handler: PacketBatchHandler): void {
    this.#handler = handler;
    this.#drain();
  }

  writePackets(packets: PacketSpans): number {
    if (this.#closed) throw new IoError('ERR_CLOSED', `TUN device ${this.name} is closed`);
    let ok = 0;
    for (let i = 0; i < packets.count; i++) {
      if (this.kernelQueueFull) {
        this.#c.txDrops++;
        continue;
      }
      const p = spanAt(packets, i).slice();
      this.written.push(p);
      this.#c.txPackets++;
      this.#c.txBytes += p.length;
      ok++;
      for (const l of this.#listeners) l(p);
    }
    return ok;
  }

  writePacket(packet: Uint8Array): boolean {
    return (
      this.writePackets({
        count: 1,
        buf: packet,
        offsets: Uint32Array.of(0),
        lengths: Uint32Array.of(packet.length),
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
    this.#closed = true;
    this.#queue = [];
  }

  counters(): TunCounters {
    return { ...this.#c };
  }
}
