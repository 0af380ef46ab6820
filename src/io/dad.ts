/**
 * Duplicate Address Detection for the home agent's new bindings (RFC 6275 §10.3.1: the HA runs
 * DAD for a binding's home address on the home link before its BA), built for registration
 * bursts: 100 000 members re-registering together after a restart means tens of thousands of
 * probes in flight at once.
 *
 * Flow of one address:
 *   detect([hoa, ...]) -> a probe per address not already queued or running (a second request
 *   for the same address joins the first) -> the queue -> flush (one per event-loop turn:
 *   everything queued since, up to maxInFlight running) -> the backend:
 *     - 'ndproxy' (the normal case): one native call sends the whole batch's probes on the ND
 *       proxy's packet socket (native/ndproxy_linux.c: NS from ::, RFC 4862 §5.4.2) and puts
 *       the addresses in its set under DAD; the proxy's reader, already on node's loop, marks an
 *       address duplicate when an NA for it or another node's DAD probe for it arrives
 *       (§5.4.3, §5.4.4). Probes started in the same BUCKET_MS share one timer; when it fires,
 *       one native call ends them all and reports which were duplicates. No thread, socket or
 *       timer per probe. Probes the link's queue had no room for (a burst) are deferred: sent
 *       again every BUCKET_MS, their window starting when they leave; one still not sent
 *       after a whole window settles as failed (or duplicate, if the link showed it taken).
 *     - 'solicit-threads' (no ND proxy: no packet socket on the link, or an old addon): the
 *       addon's ndpSolicit, a raw socket and a thread per probe, at most
 *       SOLICIT_MAX_IN_FLIGHT at a time.
 *   -> each probe settles as unique, duplicate or failed -> detect resolves with the first of
 *   its addresses found duplicate, else null.
 *
 * Bounds: at most maxInFlight probes run; the rest wait in the queue, first come first served,
 * and are counted (status().waited, peakQueued). The queue needs no bound of its own: each
 * entry belongs to a binding waiting for its BA, and the binding cache is capped.
 *
 * A failed probe (the send refused, the proxy closed, a thread that would not start) settles as
 * "no answer": the home agent's own trouble must not refuse members (src/roles/ha/home-agent.ts
 * #detectDuplicates). It is counted in status().failed.
 */
import { addressBytes } from './address-bytes.js';
import type { NativeAddon } from './addon.js';
import { PROBE_DUPLICATE, PROBE_OUT_DEFERRED, PROBE_SEND_FAILED, type NdProxy } from './ndproxy.js';

export type ProbeOutcome = 'unique' | 'duplicate' | 'failed';

/** Probes in flight on the ND proxy's socket: memory only (two bytes of set per address). */
export const PROXY_MAX_IN_FLIGHT = 65_536;
/** Threads in flight on the fallback path (each holds a thread and a raw socket for 1 s). */
export const SOLICIT_MAX_IN_FLIGHT = 64;
/** Probes started within this many ms share one timer (and end up to this much late). */
export const BUCKET_MS = 10;

/** The timers the engine needs; tests pass a fake clock. */
export interface DadTimers {
  now(): number;
  /** Calls cb after ms; returns a cancel function. */
  after(ms: number, cb: () => void): () => void;
  /** Calls cb once the current event-loop turn's work is done (batches requests). */
  soon(cb: () => void): void;
}

export const realDadTimers: DadTimers = {
  now: () => performance.now(),
  after: (ms, cb) => {
    const t = setTimeout(cb, ms);
    return () => clearTimeout(t);
  },
  soon: (cb) => void setImmediate(cb),
};

/** Where probes run: settle(address, outcome) exactly once per started address, later. */
export interface DadBackend {
  readonly via: DadStatus['via'];
  readonly maxInFlight: number;
  start(
    addresses: readonly string[],
    settle: (address: string, outcome: ProbeOutcome) => void,
  ): void;
  /** Ends what can be ended now (the daemon stops); the rest settles on its own. */
  close(): void;
}

export interface DadStatus {
  via: 'ndproxy' | 'solicit-threads';
  maxInFlight: number;
  inFlight: number;
  queued: number;
  peakInFlight: number;
  peakQueued: number;
  /** Probes that found maxInFlight running and waited in the queue. */
  waited: number;
  started: number;
  unique: number;
  duplicate: number;
  /** Probes that could not run (counted as no answer). */
  failed: number;
  /** Requests for an address already queued or running: they share its probe. */
  joined: number;
}

interface Probe {
  readonly done: Promise<ProbeOutcome>;
  readonly resolve: (outcome: ProbeOutcome) => void;
}

export class DuplicateAddressDetector {
  readonly #backend: DadBackend;
  readonly #timers: DadTimers;
  /** Queued or running, by address. */
  readonly #probes = new Map<string, Probe>();
  #queue: string[] = [];
  #head = 0;
  #flushing = false;
  #closed = false;
  readonly #status: DadStatus;

  constructor(backend: DadBackend, timers: DadTimers = realDadTimers) {
    this.#backend = backend;
    this.#timers = timers;
    this.#status = {
      via: backend.via,
      maxInFlight: backend.maxInFlight,
      inFlight: 0,
      queued: 0,
      peakInFlight: 0,
      peakQueued: 0,
      waited: 0,
      started: 0,
      unique: 0,
      duplicate: 0,
      failed: 0,
      joined: 0,
    };
  }

  /** DAD for each address; resolves with the first one another node holds, else null. */
  async detect(addresses: readonly string[]): Promise<string | null> {
    const outcomes = await Promise.all(addresses.map((a) => this.#probe(a)));
    return addresses[outcomes.indexOf('duplicate')] ?? null;
  }

  status(): DadStatus {
    return { ...this.#status };
  }

  /** Settles everything still queued or running as failed (the daemon is stopping). */
  close(): void {
    this.#closed = true;
    this.#backend.close();
    this.#status.failed += this.#probes.size;
    for (const probe of this.#probes.values()) probe.resolve('failed');
    this.#probes.clear();
    this.#queue = [];
    this.#head = 0;
    this.#status.queued = 0;
    this.#status.inFlight = 0;
  }

  #probe(address: string): Promise<ProbeOutcome> {
    const running = this.#probes.get(address);
    if (running !== undefined) {
      this.#status.joined++;
      return running.done;
    }
    if (this.#closed) return Promise.resolve('failed');
    let resolve!: (outcome: ProbeOutcome) => void;
    const done = new Promise<ProbeOutcome>((r) => (resolve = r));
    this.#probes.set(address, { done, resolve });
    const s = this.#status;
    if (s.inFlight + s.queued >= s.maxInFlight) s.waited++;
    this.#queue.push(address);
    s.queued++;
    s.peakQueued = Math.max(s.peakQueued, s.queued);
    this.#scheduleFlush();
    return done;
  }

  #scheduleFlush(): void {
    if (this.#flushing || this.#status.queued === 0) return;
    this.#flushing = true;
    this.#timers.soon(() => this.#flush());
  }

  #flush(): void {
    this.#flushing = false;
    const s = this.#status;
    const take = Math.min(s.maxInFlight - s.inFlight, s.queued);
    if (this.#closed || take <= 0) return;
    const batch = this.#queue.slice(this.#head, this.#head + take);
    this.#head += take;
    if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    s.queued -= take;
    s.inFlight += take;
    s.started += take;
    s.peakInFlight = Math.max(s.peakInFlight, s.inFlight);
    this.#backend.start(batch, (address, outcome) => this.#settle(address, outcome));
  }

  #settle(address: string, outcome: ProbeOutcome): void {
    if (this.#closed) return;
    const s = this.#status;
    s.inFlight--;
    s[outcome]++;
    const probe = this.#probes.get(address);
    this.#probes.delete(address);
    probe?.resolve(outcome);
    this.#scheduleFlush();
  }
}

/**
 * Probes on the ND proxy's socket (see the file comment); the probes started within one
 * BUCKET_MS share a timer of timeoutMs.
 */
export class ProxyDadBackend implements DadBackend {
  readonly via = 'ndproxy';
  readonly maxInFlight: number;
  readonly #proxy: Pick<NdProxy, 'probeStart' | 'probeEnd'>;
  readonly #timeoutMs: number;
  readonly #timers: DadTimers;
  /** Running probes by the bucket (time / BUCKET_MS, rounded up) their timer ends. */
  readonly #buckets = new Map<
    number,
    { addresses: string[]; settle: ((a: string, o: ProbeOutcome) => void)[]; cancel: () => void }
  >();
  /** Probes not sent yet (the link's queue was full), oldest first, with their first try. */
  #deferred: { address: string; settle: (a: string, o: ProbeOutcome) => void; since: number }[] =
    [];
  #cancelRetry: (() => void) | undefined;

  constructor(
    proxy: Pick<NdProxy, 'probeStart' | 'probeEnd'>,
    timeoutMs: number,
    options: { maxInFlight?: number; timers?: DadTimers } = {},
  ) {
    this.#proxy = proxy;
    this.#timeoutMs = timeoutMs;
    this.maxInFlight = options.maxInFlight ?? PROXY_MAX_IN_FLIGHT;
    this.#timers = options.timers ?? realDadTimers;
  }

  start(
    addresses: readonly string[],
    settle: (address: string, outcome: ProbeOutcome) => void,
  ): void {
    const now = this.#timers.now();
    this.#send(
      addresses.map((address) => ({ address, settle, since: now })),
      now,
    );
  }

  /** Starts (again) the probes of `list`: sent or failed ones wait in a bucket, deferred ones
   *  for the next retry, or settle once deferred for a whole window. */
  #send(
    list: { address: string; settle: (a: string, o: ProbeOutcome) => void; since: number }[],
    now: number,
  ): void {
    const addresses = list.map((p) => p.address);
    let out: Uint8Array;
    try {
      // Sends that failed are flagged in the native set: such a probe still waits (another
      // node's own DAD probe can still show the address taken), else settles as failed.
      out = this.#proxy.probeStart(addresses);
    } catch {
      this.#endQuietly(addresses);
      for (const p of list) p.settle(p.address, 'failed');
      return;
    }
    const key = Math.ceil((now + this.#timeoutMs) / BUCKET_MS);
    let bucket = this.#buckets.get(key);
    const expired: typeof list = [];
    list.forEach((p, i) => {
      if (out[i] === PROBE_OUT_DEFERRED) {
        if (now - p.since >= this.#timeoutMs) expired.push(p);
        else this.#deferred.push(p);
        return;
      }
      if (bucket === undefined) {
        const cancel = this.#timers.after(key * BUCKET_MS - now, () => this.#end(key));
        bucket = { addresses: [], settle: [], cancel };
        this.#buckets.set(key, bucket);
      }
      bucket.addresses.push(p.address);
      bucket.settle.push(p.settle);
    });
    if (expired.length > 0)
      this.#settleAll(
        expired.map((p) => p.address),
        expired.map((p) => p.settle),
        true,
      );
    if (this.#deferred.length > 0 && this.#cancelRetry === undefined) {
      this.#cancelRetry = this.#timers.after(BUCKET_MS, () => {
        this.#cancelRetry = undefined;
        const again = this.#deferred;
        this.#deferred = [];
        this.#send(again, this.#timers.now());
      });
    }
  }

  close(): void {
    this.#cancelRetry?.();
    this.#cancelRetry = undefined;
    this.#endQuietly(this.#deferred.map((p) => p.address));
    this.#deferred = [];
    for (const [key, bucket] of this.#buckets) {
      bucket.cancel();
      this.#endQuietly(bucket.addresses);
      this.#buckets.delete(key);
    }
  }

  #end(key: number): void {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return;
    this.#buckets.delete(key);
    this.#settleAll(bucket.addresses, bucket.settle);
  }

  /** Ends DAD for `addresses` and settles each: duplicate if the link showed it taken, failed
   *  if its probe never left (`unsent`, a failed send, or it was not under DAD), else unique. */
  #settleAll(
    addresses: readonly string[],
    settle: readonly ((a: string, o: ProbeOutcome) => void)[],
    unsent = false,
  ): void {
    let flags: Uint8Array | undefined;
    try {
      flags = this.#proxy.probeEnd(addresses);
    } catch {
      flags = undefined;
    }
    addresses.forEach((a, i) => {
      const f = flags?.[i] ?? 0;
      const outcome =
        f & PROBE_DUPLICATE
          ? 'duplicate'
          : unsent || f === 0 || f & PROBE_SEND_FAILED
            ? 'failed'
            : 'unique';
      settle[i]?.(a, outcome);
    });
  }

  #endQuietly(addresses: readonly string[]): void {
    try {
      this.#proxy.probeEnd(addresses);
    } catch {
      // closed: nothing left to end
    }
  }
}

/** The fallback: the addon's ndpSolicit (a thread and a raw socket per probe), bounded. */
export class SolicitDadBackend implements DadBackend {
  readonly via = 'solicit-threads';
  readonly maxInFlight: number;
  readonly #solicit: NonNullable<NativeAddon['ndpSolicit']>;
  readonly #link: string;
  readonly #timeoutMs: number;

  constructor(
    solicit: NonNullable<NativeAddon['ndpSolicit']>,
    link: string,
    timeoutMs: number,
    maxInFlight = SOLICIT_MAX_IN_FLIGHT,
  ) {
    this.#solicit = solicit;
    this.#link = link;
    this.#timeoutMs = timeoutMs;
    this.maxInFlight = maxInFlight;
  }

  start(
    addresses: readonly string[],
    settle: (address: string, outcome: ProbeOutcome) => void,
  ): void {
    for (const a of addresses) {
      let answered: Promise<boolean>;
      try {
        answered = this.#solicit(this.#link, addressBytes(6, a), this.#timeoutMs);
      } catch {
        settle(a, 'failed');
        continue;
      }
      answered.then(
        (yes) => settle(a, yes ? 'duplicate' : 'unique'),
        () => settle(a, 'failed'),
      );
    }
  }

  close(): void {
    // A running thread cannot be stopped; its answer is ignored after DuplicateAddressDetector.close.
  }
}
