/**
 * The express lane's JS side (native/express.c, issue #16): arming, clearing and counters.
 * The roles decide what to arm (roles/ha/ha-express.ts, roles/mn/mn-express.ts); this file only
 * passes it on. Only the real TUN and sockets have one.
 */
import type { NativeAddon, NativeHandle } from './addon.js';
import type {
  ExpressCounters,
  ExpressKeys,
  ExpressLane,
  ExpressPath,
  ExpressReport,
} from './types.js';

export const EXPRESS_HOME_AGENT = 1;
export const EXPRESS_MOBILE_NODE = 2;

/** Numbers per channel in a clear's report (native/express.c, REPORT_LEN). */
const REPORT_LEN = 10;

const COUNTER_NAMES = [
  'rxTaken',
  'rxToJs',
  'rxBadTag',
  'rxTunErrors',
  'txTaken',
  'txToJs',
  'txSendErrors',
  'armed',
  'clears',
] as const;

export interface ExpressOptions {
  mode: typeof EXPRESS_HOME_AGENT | typeof EXPRESS_MOBILE_NODE;
  tun: { nativeHandle: NativeHandle };
  udp4?: { nativeHandle: NativeHandle } | undefined;
  udp6?: { nativeHandle: NativeHandle } | undefined;
  /** Channels armed at once (the most recently active; more stay on the JS path). */
  capacity: number;
  /** A mobile node's home address (16 bytes): what its lane delivers to. */
  homeAddress?: Uint8Array | undefined;
}

export class NativeExpressLane implements ExpressLane {
  readonly #addon: NativeAddon;
  readonly #handle: NativeHandle;
  readonly #out: Float64Array;
  readonly #scratch: ExpressReport = {
    spi: 0,
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    rxAgoMs: -1,
    txAgoMs: -1,
    badTags: 0,
    sendErrors: 0,
    tunErrors: 0,
  };
  #armed = 0;
  #closed = false;

  /** undefined when the addon has no express lane (built before it). */
  static open(addon: NativeAddon, o: ExpressOptions): NativeExpressLane | undefined {
    if (addon.expressOpen === undefined) return undefined;
    const h = addon.expressOpen(
      o.mode,
      o.tun.nativeHandle,
      o.udp4?.nativeHandle ?? null,
      o.udp6?.nativeHandle ?? null,
      o.capacity,
      o.homeAddress ?? null,
    );
    return new NativeExpressLane(addon, h, o.capacity);
  }

  private constructor(addon: NativeAddon, handle: NativeHandle, capacity: number) {
    this.#addon = addon;
    this.#handle = handle;
    this.#out = new Float64Array(capacity * REPORT_LEN);
  }

  get armed(): number {
    return this.#armed;
  }

  armRx(keys: ExpressKeys, path: ExpressPath, sources: Uint8Array | null): boolean {
    return this.#arm(keys, path, 1, sources, 0, 0, null);
  }

  armTx(
    keys: ExpressKeys,
    path: ExpressPath,
    maxInner: number,
    destinations: Uint8Array | null,
  ): boolean {
    return this.#arm(keys, path, 0, null, 1, maxInner, destinations);
  }

  #arm(
    k: ExpressKeys,
    path: ExpressPath,
    rx: number,
    sources: Uint8Array | null,
    tx: number,
    maxInner: number,
    destinations: Uint8Array | null,
  ): boolean {
    if (this.#closed) return false;
    const slot = this.#addon.expressArm!(
      this.#handle,
      k.localSpi,
      k.remoteSpi,
      k.keyChunk,
      k.keyBase,
      k.replayChunk,
      k.replayBase,
      k.replayWords,
      path.family,
      path.slot,
      path.port,
      path.source ?? null,
      rx,
      k.rxForMs,
      k.rxLimit,
      sources,
      tx,
      k.txForMs,
      k.txLimit,
      Math.min(maxInner, 0xffff) >>> 0,
      destinations,
    );
    if (slot < 0) return false;
    this.#armed++;
    return true;
  }

  clear(visit: (r: ExpressReport) => void): void {
    if (this.#armed === 0 || this.#closed) return;
    this.#armed = 0;
    this.#report(this.#addon.expressClear!(this.#handle, this.#out), visit);
  }

  harvest(visit: (r: ExpressReport) => void): void {
    if (this.#armed === 0 || this.#closed) return;
    this.#report(this.#addon.expressHarvest!(this.#handle, this.#out), visit);
  }

  #report(n: number, visit: (r: ExpressReport) => void): void {
    const out = this.#out;
    const r = this.#scratch;
    for (let i = 0; i < n; i++) {
      const at = i * REPORT_LEN;
      r.spi = out[at]!;
      r.rxPackets = out[at + 1]!;
      r.rxBytes = out[at + 2]!;
      r.txPackets = out[at + 3]!;
      r.txBytes = out[at + 4]!;
      r.rxAgoMs = out[at + 5]!;
      r.txAgoMs = out[at + 6]!;
      r.badTags = out[at + 7]!;
      r.sendErrors = out[at + 8]!;
      r.tunErrors = out[at + 9]!;
      visit(r);
    }
  }

  counters(): ExpressCounters {
    const out = new Float64Array(COUNTER_NAMES.length);
    if (!this.#closed) this.#addon.expressCounters!(this.#handle, out);
    return Object.fromEntries(
      COUNTER_NAMES.map((n, i) => [n, out[i]!]),
    ) as unknown as ExpressCounters;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#armed = 0;
    this.#addon.expressClose!(this.#handle);
  }
}
