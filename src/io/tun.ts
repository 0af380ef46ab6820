/**
 * The real TunDevice on the addon (native/tun_<platform>.c).
 *
 * Read flow: the addon polls the TUN fd on node's own loop; each readiness event reads up to
 * maxBatch packets into this device's slab (slot i at i*slotSize + headroom, leaving headroom
 * for a channel header and tailroom for a tag) and calls back once; the callback hands the
 * reused SlabPacketBatch to the handler. Writes go straight from the caller's buffer.
 */
import { IoError } from '../util/errors.js';
import { loadAddon, type NativeAddon, type NativeError, type NativeHandle } from './addon.js';
import { SlabPacketBatch, packetSpans } from './batch.js';
import { addAddress, setLinkUp, setMtu, setTxQueueLength } from './iproute.js';
import type {
  PacketBatchHandler,
  PacketSpans,
  TunCounters,
  TunDevice,
  TunOffloads,
} from './types.js';

/** Defaults: 64 packets per batch, room for a 16-byte header and a 16-byte tag. */
export const TUN_DEFAULTS = {
  maxBatch: 64,
  headroom: 16,
  tailroom: 16,
  mtu: 1420,
} as const;

/** Largest IPv6 packet a TUN can hand us when its MTU is raised (IPv6 payload length max). */
const MAX_MTU = 65535;

export interface TunOptions {
  /** Interface name (at most 15 bytes); omitted or '' lets the kernel choose (tun0...). */
  name?: string;
  /** MTU to set with `ip link set mtu` (default 1420); also sizes the slab slots. */
  mtu?: number;
  /** Addresses with prefix length to add, e.g. ['fd00:1::2/64']. */
  addresses?: readonly string[];
  /**
   * Kernel queue of packets waiting for this process to read them (`ip link set txqueuelen`;
   * the kernel default is 500). A longer queue absorbs scheduling hiccups instead of dropping.
   */
  txQueueLength?: number;
  /** Bring the link up after configuring it (default true). */
  up?: boolean;
  /** Packets per batch (default 64). */
  maxBatch?: number;
  /** Writable bytes before / after each received packet (default 16 / 16). */
  headroom?: number;
  tailroom?: number;
}

const COUNTER_NAMES = [
  'rxPackets',
  'rxBytes',
  'rxBatches',
  'rxErrors',
  'txPackets',
  'txBytes',
  'txDrops',
  'txErrors',
  'rxGsoPackets',
  'rxGsoSegments',
  'rxDropVnetType',
  'rxDropVnetChecksum',
  'rxDropVnetHeaders',
  'rxDropVnetGsoSize',
  'rxDropTooBig',
  'txGsoPackets',
  'txGsoSegments',
  'rxTruncated',
  'rxMaxRead',
] as const;

/** Turns the addon's errno errors from opening the device into an explanation. */
export function explainTunError(err: NativeError, name: string): IoError {
  const dev = name === '' ? 'a TUN device' : `TUN device ${name}`;
  switch (err.code ?? '') {
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      return new IoError(
        'ERR_TUN_UNAVAILABLE',
        `cannot open ${dev}: /dev/net/tun is missing; load the tun module (\`modprobe tun\`) ` +
          'or, in a container, pass the device through (--device /dev/net/tun)',
        err.errno,
      );
    case 'EPERM':
    case 'EACCES':
      return new IoError(
        'ERR_TUN_PERMISSION',
        `cannot create ${dev}: creating network interfaces needs CAP_NET_ADMIN; run as root ` +
          'or grant it to node with `sudo setcap cap_net_admin+ep $(which node)`',
        err.errno,
      );
    case 'EBUSY':
      return new IoError(
        'ERR_TUN_BUSY',
        `cannot create ${dev}: the name is in use by another interface or process`,
        err.errno,
      );
    default:
      return new IoError('ERR_TUN_OPEN', `cannot open ${dev}: ${err.message}`, err.errno);
  }
}

/** A TUN device opened through the addon. Use openTun() to also configure it. */
export class NativeTunDevice implements TunDevice {
  readonly name: string;
  readonly mtu: number;
  readonly headroom: number;
  readonly tailroom: number;
  readonly #addon: NativeAddon;
  readonly #handle: NativeHandle;
  readonly #counters = new Float64Array(COUNTER_NAMES.length);
  readonly #batch: SlabPacketBatch;
  #handler: PacketBatchHandler | undefined;
  #paused = false;
  #closed = false;

  /** @internal The addon's handle (the express lane attaches to it, io/express.ts). */
  get nativeHandle(): NativeHandle {
    return this.#handle;
  }

  /** Opens the device (no configuration). Throws IoError with what is needed to fix it. */
  constructor(options: TunOptions = {}, addon: NativeAddon = loadAddon()) {
    this.#addon = addon;
    const mtu = options.mtu ?? TUN_DEFAULTS.mtu;
    if (!Number.isInteger(mtu) || mtu < 1280 || mtu > MAX_MTU) {
      throw new RangeError(`TUN mtu must be an integer in [1280, ${MAX_MTU}], got ${mtu}`);
    }
    this.mtu = mtu;
    this.headroom = options.headroom ?? TUN_DEFAULTS.headroom;
    this.tailroom = options.tailroom ?? TUN_DEFAULTS.tailroom;
    const maxBatch = options.maxBatch ?? TUN_DEFAULTS.maxBatch;
    // Slots of headroom + mtu + tailroom, rounded up to 64 bytes for alignment.
    const slot = Math.ceil((this.headroom + mtu + this.tailroom) / 64) * 64;
    const slab = new Uint8Array(maxBatch * slot);
    const offsets = new Uint32Array(maxBatch);
    const lengths = new Uint32Array(maxBatch);
    this.#batch = new SlabPacketBatch(slab, offsets, lengths, this.headroom, this.tailroom);
    const requested = options.name ?? '';
    try {
      [this.#handle, this.name] = addon.tunOpen(
        requested,
        slab,
        offsets,
        lengths,
        this.#counters,
        maxBatch,
        slot,
        this.headroom,
        this.tailroom,
        (count) => this.#deliver(count),
      );
    } catch (err) {
      if (err instanceof RangeError || err instanceof TypeError) throw err;
      throw explainTunError(err as NativeError, requested);
    }
  }

  #deliver(count: number): void {
    const handler = this.#handler;
    if (handler === undefined) return;
    this.#batch.count = count;
    handler(this.#batch);
  }

  onPackets(handler: PacketBatchHandler): void {
    this.#handler = handler;
    if (!this.#paused && !this.#closed) this.#addon.tunSetReading(this.#handle, true);
  }

  writePackets(packets: PacketSpans): number {
    if (this.#closed) throw new IoError('ERR_CLOSED', `TUN device ${this.name} is closed`);
    return this.#addon.tunWrite(
      this.#handle,
      packets.buf,
      packets.offsets,
      packets.lengths,
      packets.count,
    );
  }

  writePacket(packet: Uint8Array): boolean {
    return this.writePackets(packetSpans([packet])) === 1;
  }

  pause(): void {
    this.#paused = true;
    if (!this.#closed) this.#addon.tunSetReading(this.#handle, false);
  }

  resume(): void {
    this.#paused = false;
    if (!this.#closed && this.#handler !== undefined) {
      this.#addon.tunSetReading(this.#handle, true);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#addon.tunClose(this.#handle);
  }

  offloads(): TunOffloads {
    return decodeTunOffloads(this.#closed ? 0 : (this.#addon.tunOffloads?.(this.#handle) ?? 0));
  }

  counters(): TunCounters {
    const c = this.#counters;
    return Object.fromEntries(
      COUNTER_NAMES.map((n, i) => [n, c[i] ?? 0]),
    ) as unknown as TunCounters;
  }
}

/**
 * native/tun_linux.c tunOffloads bits: 1 vnet header, 2 CSUM, 4/8 TSO4/6, 16/32 USO4/6, 64 env,
 * 128 TCP (with USO also UDP) runs written as super-packets, 256 that stopped on a refusal,
 * 512 UDP runs stopped on a refusal (errno << 16).
 */
export function decodeTunOffloads(mask: number): TunOffloads {
  return {
    vnetHeader: (mask & 1) !== 0,
    checksum: (mask & 2) !== 0,
    tso4: (mask & 4) !== 0,
    tso6: (mask & 8) !== 0,
    uso4: (mask & 16) !== 0,
    uso6: (mask & 32) !== 0,
    disabledByEnv: (mask & 64) !== 0,
    coalesceWrites: (mask & 128) !== 0,
    ...((mask & 256) !== 0 ? { coalesceRefusedErrno: mask >>> 16 } : {}),
    ...((mask & 512) !== 0 ? { coalesceUdpRefusedErrno: mask >>> 16 } : {}),
  };
}

/**
 * Opens a TUN device and configures it with `ip`: MTU, addresses, link up. On a
 * configuration failure the device is closed again and the IoError names the command.
 */
export async function openTun(options: TunOptions = {}): Promise<TunDevice> {
  const dev = new NativeTunDevice(options);
  try {
    await setMtu(dev.name, dev.mtu);
    if (options.txQueueLength !== undefined)
      await setTxQueueLength(dev.name, options.txQueueLength);
    for (const a of options.addresses ?? []) await addAddress(dev.name, a);
    if (options.up ?? true) await setLinkUp(dev.name, true);
  } catch (err) {
    dev.close();
    throw err;
  }
  return dev;
}
