/**
 * FakeExpressLane: the native express lane (native/express.c, io/express.ts) as a driver sees
 * it, for simulations. It carries nothing itself: it records what the driver arms, clears and
 * harvests, and a test says what the lane carried meanwhile (`carry`), which the next clear or
 * harvest reports the way the real lane does (one report per channel that did something, the
 * ms since its last packet each way, one report object reused).
 *
 * `watch(env)` also marks the node's callbacks (TUN and socket batches, the timer) and its I/O
 * (TUN writes, datagrams sent) in the lane's log, so a test can see what a callback did to the
 * lane before anything else: the lane must be emptied first whenever JS runs.
 */
import type {
  Clock,
  ExpressCounters,
  ExpressKeys,
  ExpressLane,
  ExpressPath,
  ExpressReport,
  TunDevice,
  UdpEndpoint,
} from '../../src/io/types.js';
import { formatIpv4, formatIpv6 } from '../../src/wire/address.js';

/** One direction of a channel as the driver armed it. */
export interface ExpressArm {
  direction: 'rx' | 'tx';
  /** Fake clock time of the arming. */
  at: number;
  localSpi: number;
  remoteSpi: number;
  path: { family: 4 | 6; address: string; port: number; source: string | undefined };
  /** rx: the inner sources; tx: the inner destinations (null: the lane's own rule). */
  addresses: string[] | null;
  /** tx: the largest inner packet. */
  maxInner: number | undefined;
  /** The keys' time and message limits for this direction. */
  forMs: number;
  limit: number;
}

export type ExpressOp =
  | { op: 'arm'; arm: ExpressArm }
  | { op: 'clear' | 'harvest'; reported: number }
  | { op: 'close' }
  /** Something the node did outside the lane (watch()): a TUN write, a datagram sent. */
  | { op: 'io'; what: 'tun-write' | 'udp-send' };

/** A callback of the node (watch()) or a call the test marks (`during`), and its lane ops. */
export interface ExpressCallback {
  label: string;
  /** Fake clock time when it began. */
  at: number;
  /** Armed directions when it began. */
  armedAtEntry: number;
  ops: ExpressOp[];
}

/** What the lane carried for one channel since its last clear or harvest (test-made). */
interface Carried {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  lastRx: number;
  lastTx: number;
  badTags: number;
  sendErrors: number;
  tunErrors: number;
}

export class FakeExpressLane implements ExpressLane {
  readonly #now: () => number;
  /** Every op, in order. */
  readonly log: ExpressOp[] = [];
  /** Every marked callback, in order. */
  readonly callbacks: ExpressCallback[] = [];
  /** Directions armed since the last clear, in arming order (what the lane holds now). */
  live: ExpressArm[] = [];
  /** Every arming ever (live or cleared). */
  readonly arms: ExpressArm[] = [];
  closed = false;
  /** Called at the end of each marked callback (a test's checks of the driver's state). */
  afterEach: ((cb: ExpressCallback) => void) | undefined = undefined;
  readonly #carried = new Map<number, Carried>();
  readonly #stack: ExpressCallback[] = [];
  readonly #totals: ExpressCounters = {
    rxTaken: 0,
    rxToJs: 0,
    rxBadTag: 0,
    rxTunErrors: 0,
    txTaken: 0,
    txToJs: 0,
    txSendErrors: 0,
    armed: 0,
    clears: 0,
  };
  /** One report object for every visit, as io/express.ts does: a visitor must not keep it
   *  (#reportAll sets every field before each visit). */
  readonly #report = {} as ExpressReport;

  /** `now`: the fake clock's time (the reports' ms-ago count from it). */
  constructor(now: () => number) {
    this.#now = now;
  }

  get armed(): number {
    return this.live.length;
  }

  armRx(keys: ExpressKeys, path: ExpressPath, sources: Uint8Array | null): boolean {
    return this.#arm('rx', keys, path, sources, undefined);
  }

  armTx(
    keys: ExpressKeys,
    path: ExpressPath,
    maxInner: number,
    destinations: Uint8Array | null,
  ): boolean {
    return this.#arm('tx', keys, path, destinations, maxInner);
  }

  #arm(
    direction: 'rx' | 'tx',
    k: ExpressKeys,
    path: ExpressPath,
    slots: Uint8Array | null,
    maxInner: number | undefined,
  ): boolean {
    if (this.closed) return false;
    const addresses: string[] = [];
    for (let at = 0; slots !== null && at < slots.length; at += 16) {
      addresses.push(formatIpv6(slots, at));
    }
    const arm: ExpressArm = {
      direction,
      at: this.#now(),
      localSpi: k.localSpi,
      remoteSpi: k.remoteSpi,
      path: {
        family: path.family,
        address: slotText(path.family, path.slot),
        port: path.port,
        source: path.source === undefined ? undefined : slotText(path.family, path.source),
      },
      addresses: slots === null ? null : addresses,
      maxInner,
      forMs: direction === 'rx' ? k.rxForMs : k.txForMs,
      limit: direction === 'rx' ? k.rxLimit : k.txLimit,
    };
    this.live.push(arm);
    this.arms.push(arm);
    this.#totals.armed++;
    this.#record({ op: 'arm', arm });
    return true;
  }

  /** The live arm of `direction` (the last one, as a re-arm of a channel replaces it). */
  liveArm(direction: 'rx' | 'tx', spi?: number): ExpressArm | undefined {
    return this.live.findLast(
      (a) => a.direction === direction && (spi === undefined || a.localSpi === spi),
    );
  }

  /**
   * The lane carried this for the channel of local SPI `spi` (armed that way: a lane never
   * carries what was not armed) at fake time `at` (default now).
   */
  carry(
    spi: number,
    c: {
      rx?: number;
      rxBytes?: number;
      tx?: number;
      txBytes?: number;
      badTags?: number;
      sendErrors?: number;
      tunErrors?: number;
      at?: number;
    },
  ): void {
    const at = c.at ?? this.#now();
    for (const [dir, n] of [
      ['rx', (c.rx ?? 0) + (c.badTags ?? 0) + (c.tunErrors ?? 0)],
      ['tx', (c.tx ?? 0) + (c.sendErrors ?? 0)],
    ] as const) {
      if (n > 0 && this.liveArm(dir, spi) === undefined) {
        throw new Error(`the lane carries nothing ${dir} for SPI ${spi}: not armed`);
      }
    }
    let r = this.#carried.get(spi);
    if (r === undefined) {
      r = {
        rxPackets: 0,
        rxBytes: 0,
        txPackets: 0,
        txBytes: 0,
        lastRx: -1,
        lastTx: -1,
        badTags: 0,
        sendErrors: 0,
        tunErrors: 0,
      };
      this.#carried.set(spi, r);
    }
    if ((c.rx ?? 0) > 0) {
      r.rxPackets += c.rx!;
      r.rxBytes += c.rxBytes ?? 0;
      r.lastRx = Math.max(r.lastRx, at);
      this.#totals.rxTaken += c.rx!;
    }
    if ((c.tx ?? 0) > 0) {
      r.txPackets += c.tx!;
      r.txBytes += c.txBytes ?? 0;
      r.lastTx = Math.max(r.lastTx, at);
      this.#totals.txTaken += c.tx!;
    }
    r.badTags += c.badTags ?? 0;
    r.sendErrors += c.sendErrors ?? 0;
    r.tunErrors += c.tunErrors ?? 0;
    this.#totals.rxBadTag += c.badTags ?? 0;
    this.#totals.txSendErrors += c.sendErrors ?? 0;
    this.#totals.rxTunErrors += c.tunErrors ?? 0;
  }

  clear(visit: (r: ExpressReport) => void): void {
    if (this.live.length === 0 || this.closed) return;
    const reported = this.#reportAll(visit);
    this.live = [];
    this.#totals.clears++;
    this.#record({ op: 'clear', reported });
  }

  harvest(visit: (r: ExpressReport) => void): void {
    if (this.live.length === 0 || this.closed) return;
    this.#record({ op: 'harvest', reported: this.#reportAll(visit) });
  }

  #reportAll(visit: (r: ExpressReport) => void): number {
    const now = this.#now();
    const r = this.#report;
    let n = 0;
    for (const [spi, c] of this.#carried) {
      r.spi = spi;
      r.rxPackets = c.rxPackets;
      r.rxBytes = c.rxBytes;
      r.txPackets = c.txPackets;
      r.txBytes = c.txBytes;
      r.rxAgoMs = c.rxPackets > 0 ? now - c.lastRx : -1;
      r.txAgoMs = c.txPackets > 0 ? now - c.lastTx : -1;
      r.badTags = c.badTags;
      r.sendErrors = c.sendErrors;
      r.tunErrors = c.tunErrors;
      n++;
      visit(r);
    }
    this.#carried.clear();
    return n;
  }

  counters(): ExpressCounters {
    return { ...this.#totals };
  }

  close(): void {
    this.closed = true;
    this.live = [];
    this.#carried.clear();
    this.#record({ op: 'close' });
  }

  /** Runs `fn` as a marked callback `label` (a test's call into the driver: status, a reload). */
  during<T>(label: string, fn: () => T): T {
    const cb: ExpressCallback = {
      label,
      at: this.#now(),
      armedAtEntry: this.live.length,
      ops: [],
    };
    this.callbacks.push(cb);
    this.#stack.push(cb);
    let out: T;
    try {
      out = fn();
    } finally {
      this.#stack.pop();
    }
    this.afterEach?.(cb);
    return out;
  }

  /**
   * Marks the callbacks of `env`'s TUN, sockets and timer (`tun`, `udp4`, `udp6`, `timer`) and
   * its TUN writes and sends. Call before the node starts (its handlers are wrapped as it
   * registers them).
   */
  watch(env: {
    tun: TunDevice;
    udp4?: UdpEndpoint | undefined;
    udp6?: UdpEndpoint | undefined;
    clock: Clock;
  }): void {
    const { tun, clock } = env;
    const onPackets = tun.onPackets.bind(tun);
    tun.onPackets = (h) => onPackets((b) => this.during('tun', () => h(b)));
    const writePackets = tun.writePackets.bind(tun);
    tun.writePackets = (p) => {
      this.#record({ op: 'io', what: 'tun-write' });
      return writePackets(p);
    };
    for (const [label, udp] of [
      ['udp4', env.udp4],
      ['udp6', env.udp6],
    ] as const) {
      if (udp === undefined) continue;
      const onDatagrams = udp.onDatagrams.bind(udp);
      udp.onDatagrams = (h) => onDatagrams((b) => this.during(label, () => h(b)));
      const sendDatagrams = udp.sendDatagrams.bind(udp);
      udp.sendDatagrams = (b) => {
        this.#record({ op: 'io', what: 'udp-send' });
        return sendDatagrams(b);
      };
    }
    const setTimer = clock.setTimer.bind(clock);
    clock.setTimer = (at, cb) => setTimer(at, () => this.during('timer', cb));
  }

  #record(op: ExpressOp): void {
    this.log.push(op);
    this.#stack.at(-1)?.ops.push(op);
  }
}

/** A 16-byte address slot as text (IPv4 in its first 4 bytes). */
function slotText(family: 4 | 6, slot: Uint8Array): string {
  return family === 4 ? formatIpv4(slot, 0) : formatIpv6(slot, 0);
}
