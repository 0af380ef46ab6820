/**
 * A userspace underlay impairment element for the netns lab ("netem in userspace"): the lab's
 * kernel has no sch_netem (`tc qdisc add ... netem` fails "Specified qdisc kind is unknown"), so
 * delay, loss, duplication and reordering are applied by this process, which runs inside the
 * router namespace (test/lab/impairment.ts starts it and sets up the routing around it).
 *
 *   node --import tsx test/lab/impair.ts --tun NAME --config JSON
 *
 * Packet flow:
 *   1. The router policy-routes every packet arriving on one of its veths into the TUN (ip rule
 *      iif VETH -> a table whose default route is the TUN). The addon reads them in batches.
 *   2. ImpairmentCore.admit() copies each packet and classifies it by the first rule whose
 *      src/dst prefixes match (none: passed on at once, counted as "unmatched"). Then, with the
 *      seeded PRNG, in this order: lost (dropped, counted), duplicated (a second copy queued),
 *      held back (queued with reorderMs on top of the delay, so later packets overtake it).
 *      A packet that would make the queues hold more than queueCap packets is dropped.
 *   3. Each rule has two FIFOs with a constant delay each (delayMs and delayMs + reorderMs), so
 *      each stays sorted by due time. The driver keeps ONE timer, armed for the earliest head.
 *   4. On the timer, release(now) hands back every due packet (earliest head first); the driver
 *      writes them to the TUN in one batch. They enter the router again with iif = the TUN,
 *      use the main table and leave on the right veth.
 *   5. Overtaking is measured, not assumed: a packet released after one that was admitted
 *      after it (same rule) counts as "reordered".
 *
 * stdin carries JSON-line commands: {"cmd":"stats"} prints {"event":"stats",...};
 * {"cmd":"configure","config":{...}} replaces the rules (queued packets keep their due times;
 * counters are kept per rule name). stdin EOF or SIGTERM: final stats ({"final":true}) and exit.
 */
import { realpathSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { packetSpans } from '../../src/io/batch.js';
import { openTun } from '../../src/io/tun.js';
import type { TunDevice } from '../../src/io/types.js';
import { parsePrefix, prefixContains, type Prefix } from '../../src/wire/address.js';

// ---- Configuration ---------------------------------------------------------------------------

export interface ImpairmentRule {
  /** Counter key (unique). */
  name: string;
  /** Source / destination prefix (IPv4 or IPv6 CIDR); omitted: any. Both must match. */
  src?: string;
  dst?: string;
  /** Constant one-way delay added to every packet of this rule, ms (default 0). */
  delayMs?: number;
  /** Probability of dropping a packet (0..1, default 0). */
  loss?: number;
  /** Probability of sending a packet twice (0..1, default 0). */
  duplicate?: number;
  /** Probability of holding a packet back reorderMs longer than the others (0..1, default 0). */
  reorder?: number;
  /** Extra hold of a reordered packet, ms (default 5). */
  reorderMs?: number;
}

export interface ImpairmentConfig {
  /** PRNG seed: the same seed and packet sequence give the same decisions (default 1). */
  seed?: number;
  /** Most packets queued at once; above it packets are dropped and counted (default 4096). */
  queueCap?: number;
  rules: ImpairmentRule[];
}

export const DEFAULT_QUEUE_CAP = 4096;
export const DEFAULT_REORDER_MS = 5;
/** Longest accepted delay (ms): the element models a path, not an outage. */
export const MAX_DELAY_MS = 10_000;

export interface RuleCounters {
  /** Packets and bytes classified into this rule. */
  packets: number;
  bytes: number;
  /** Packets written back (duplicates included). */
  forwarded: number;
  lost: number;
  duplicated: number;
  /** Packets held back reorderMs extra. */
  heldBack: number;
  /** Packets released after a later-admitted packet of the same rule (observed reordering). */
  reordered: number;
  /** Dropped because the queues were at queueCap. */
  queueFull: number;
  /** Measured sojourn time of forwarded packets (ms): sum (for the mean) and max. */
  delaySumMs: number;
  delayMaxMs: number;
}

export interface ImpairmentStats {
  event: 'stats';
  final: boolean;
  queued: number;
  rules: Record<string, RuleCounters>;
  /** Packets no rule matched (passed on at once) and packets too short to classify. */
  unmatched: number;
  writeFailures: number;
}

function emptyCounters(): RuleCounters {
  return {
    packets: 0,
    bytes: 0,
    forwarded: 0,
    lost: 0,
    duplicated: 0,
    heldBack: 0,
    reordered: 0,
    queueFull: 0,
    delaySumMs: 0,
    delayMaxMs: 0,
  };
}

function checkProbability(v: number | undefined, what: string): number {
  const p = v ?? 0;
  if (typeof p !== 'number' || !(p >= 0 && p <= 1))
    throw new RangeError(`${what} must be in [0, 1]`);
  return p;
}

function checkDelay(v: number | undefined, what: string, dflt: number): number {
  const d = v ?? dflt;
  if (typeof d !== 'number' || !(d >= 0 && d <= MAX_DELAY_MS))
    throw new RangeError(`${what} must be in [0, ${MAX_DELAY_MS}] ms`);
  return d;
}

// ---- PRNG (pure) -----------------------------------------------------------------------------

/** mulberry32: a small seeded generator; next() is uniform in [0, 1). */
export class SeededRandom {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let x = this.state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  }
}

// ---- The core (sans-IO: packets and `now` in, packets out) ------------------------------------

interface Queued {
  due: number;
  admitted: number;
  seq: number;
  packet: Uint8Array;
  rule: CompiledRule;
}

/** A FIFO over an array with a moving head (compacted when half empty). */
class Fifo {
  private items: Queued[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  peek(): Queued | undefined {
    return this.items[this.head];
  }
  push(q: Queued): void {
    this.items.push(q);
  }
  shift(): Queued | undefined {
    const q = this.items[this.head];
    if (q === undefined) return undefined;
    this.items[this.head++] = undefined as unknown as Queued;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return q;
  }
}

interface CompiledRule {
  name: string;
  src: Prefix | undefined;
  dst: Prefix | undefined;
  delayMs: number;
  loss: number;
  duplicate: number;
  reorder: number;
  reorderMs: number;
  counters: RuleCounters;
  /** Highest admission sequence number released so far (for the reordered count). */
  maxReleasedSeq: number;
  main: Fifo;
  held: Fifo;
}

const IPV4_SRC_OFF = 12; // RFC 791 §3.1
const IPV4_DST_OFF = 16;
const IPV4_MIN_LEN = 20;
const IPV6_SRC_OFF = 8; // RFC 8200 §3
const IPV6_DST_OFF = 24;
const IPV6_HEADER_LEN = 40;

function matches(prefix: Prefix | undefined, packet: Uint8Array, off: number): boolean {
  return prefix === undefined || prefixContains(prefix, packet, off);
}

export class ImpairmentCore {
  private rules: CompiledRule[] = [];
  /** Counters survive a reconfiguration (by rule name). */
  private readonly counters = new Map<string, RuleCounters>();
  private random: SeededRandom;
  private queueCap: number;
  private queued = 0;
  private seq = 0;
  private unmatched = 0;
  /** Packets passed on without delay, waiting for the next release(). */
  private immediate: Uint8Array[] = [];
  /** Every FIFO ever used (queued packets of a replaced rule still drain). */
  private readonly fifos = new Set<Fifo>();
  writeFailures = 0;

  constructor(config: ImpairmentConfig) {
    this.random = new SeededRandom(config.seed ?? 1);
    this.queueCap = DEFAULT_QUEUE_CAP;
    this.configure(config);
  }

  /** Validates and installs `config` (throws RangeError / WireError on a bad one). */
  configure(config: ImpairmentConfig): void {
    const cap = config.queueCap ?? DEFAULT_QUEUE_CAP;
    if (!Number.isInteger(cap) || cap < 1) throw new RangeError('queueCap must be an integer >= 1');
    if (!Array.isArray(config.rules)) throw new TypeError('rules must be an array');
    const names = new Set<string>();
    const compiled = config.rules.map((r): CompiledRule => {
      if (typeof r.name !== 'string' || r.name === '' || names.has(r.name))
        throw new RangeError(`rule names must be unique non-empty strings (${String(r.name)})`);
      names.add(r.name);
      const src = r.src !== undefined ? parsePrefix(r.src) : undefined;
      const dst = r.dst !== undefined ? parsePrefix(r.dst) : undefined;
      if (src && dst && src.address.length !== dst.address.length)
        throw new RangeError(`rule ${r.name}: src and dst of different families`);
      let counters = this.counters.get(r.name);
      if (counters === undefined) {
        counters = emptyCounters();
        this.counters.set(r.name, counters);
      }
      const rule: CompiledRule = {
        name: r.name,
        src,
        dst,
        delayMs: checkDelay(r.delayMs, `rule ${r.name}: delayMs`, 0),
        loss: checkProbability(r.loss, `rule ${r.name}: loss`),
        duplicate: checkProbability(r.duplicate, `rule ${r.name}: duplicate`),
        reorder: checkProbability(r.reorder, `rule ${r.name}: reorder`),
        reorderMs: checkDelay(r.reorderMs, `rule ${r.name}: reorderMs`, DEFAULT_REORDER_MS),
        counters,
        maxReleasedSeq: -1,
        main: new Fifo(),
        held: new Fifo(),
      };
      this.fifos.add(rule.main);
      this.fifos.add(rule.held);
      return rule;
    });
    this.rules = compiled;
    this.queueCap = cap;
    if (config.seed !== undefined) this.random = new SeededRandom(config.seed);
  }

  private classify(packet: Uint8Array): CompiledRule | undefined {
    const version = (packet[0] ?? 0) >> 4;
    let family: number;
    let srcOff: number;
    let dstOff: number;
    if (version === 4 && packet.length >= IPV4_MIN_LEN) {
      [family, srcOff, dstOff] = [4, IPV4_SRC_OFF, IPV4_DST_OFF];
    } else if (version === 6 && packet.length >= IPV6_HEADER_LEN) {
      [family, srcOff, dstOff] = [16, IPV6_SRC_OFF, IPV6_DST_OFF];
    } else {
      return undefined;
    }
    for (const r of this.rules) {
      const fam = r.src?.address.length ?? r.dst?.address.length ?? family;
      if (fam !== family) continue;
      if (matches(r.src, packet, srcOff) && matches(r.dst, packet, dstOff)) return r;
    }
    return undefined;
  }

  /** Takes one packet (copied: the caller's buffer may be reused) that arrived at `now` (ms). */
  admit(packet: Uint8Array, now: number): void {
    const rule = this.classify(packet);
    if (rule === undefined) {
      this.unmatched++;
      this.immediate.push(packet.slice());
      return;
    }
    const c = rule.counters;
    c.packets++;
    c.bytes += packet.length;
    const seq = this.seq++;
    // One draw per decision, always in this order, so a seed replays exactly.
    const lose = this.random.next() < rule.loss;
    const dup = this.random.next() < rule.duplicate;
    const hold = this.random.next() < rule.reorder;
    if (lose) {
      c.lost++;
      return;
    }
    const copies = dup ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.queued >= this.queueCap) {
        c.queueFull++;
        continue;
      }
      if (i === 1) c.duplicated++;
      // The duplicate trails the original by the same delay (it is a second send of it).
      const held = hold && i === 0;
      if (held) c.heldBack++;
      const q: Queued = {
        due: now + rule.delayMs + (held ? rule.reorderMs : 0),
        admitted: now,
        seq,
        packet: packet.slice(),
        rule,
      };
      (held ? rule.held : rule.main).push(q);
      this.queued++;
    }
  }

  /** The earliest due time of a queued packet (ms), or undefined when nothing is queued. */
  nextDue(): number | undefined {
    if (this.immediate.length > 0) return -Infinity;
    let best: number | undefined;
    for (const f of this.fifos) {
      const h = f.peek();
      if (h !== undefined && (best === undefined || h.due < best)) best = h.due;
    }
    return best;
  }

  /** Every packet due at `now`, in release order (earliest due first). */
  release(now: number): Uint8Array[] {
    const out = this.immediate;
    this.immediate = [];
    for (;;) {
      let bestFifo: Fifo | undefined;
      let best: Queued | undefined;
      for (const f of this.fifos) {
        const h = f.peek();
        if (h !== undefined && h.due <= now && (best === undefined || h.due < best.due)) {
          best = h;
          bestFifo = f;
        }
      }
      if (best === undefined || bestFifo === undefined) break;
      bestFifo.shift();
      this.queued--;
      const r = best.rule;
      const c = r.counters;
      if (best.seq < r.maxReleasedSeq) c.reordered++;
      else r.maxReleasedSeq = best.seq;
      c.forwarded++;
      const sojourn = now - best.admitted;
      c.delaySumMs += sojourn;
      if (sojourn > c.delayMaxMs) c.delayMaxMs = sojourn;
      out.push(best.packet);
    }
    return out;
  }

  stats(final = false): ImpairmentStats {
    const rules: Record<string, RuleCounters> = {};
    for (const [name, c] of this.counters) {
      rules[name] = {
        ...c,
        delaySumMs: Math.round(c.delaySumMs * 10) / 10,
        delayMaxMs: Math.round(c.delayMaxMs * 100) / 100,
      };
    }
    return {
      event: 'stats',
      final,
      queued: this.queued,
      rules,
      unmatched: this.unmatched,
      writeFailures: this.writeFailures,
    };
  }
}

// ---- The driver (TUN + one timer) ------------------------------------------------------------

export class ImpairmentDriver {
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;
  private closed = false;

  readonly core: ImpairmentCore;
  private readonly tun: TunDevice;
  private readonly now: () => number;

  constructor(core: ImpairmentCore, tun: TunDevice, now: () => number = () => performance.now()) {
    this.core = core;
    this.tun = tun;
    this.now = now;
  }

  start(): void {
    this.tun.onPackets((batch) => {
      const now = this.now();
      for (let i = 0; i < batch.count; i++) this.core.admit(batch.packet(i), now);
      this.pump();
    });
  }

  /** Writes every due packet in one batch and re-arms the single timer for the next head. */
  private pump(): void {
    if (this.closed) return;
    const out = this.core.release(this.now());
    if (out.length > 0) {
      const written = this.tun.writePackets(packetSpans(out));
      this.core.writeFailures += out.length - written;
    }
    const next = this.core.nextDue();
    if (next === undefined) return;
    if (this.timer !== undefined && this.timerDue <= next) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    // Node timers have 1 ms resolution and truncate: round up so a packet never leaves early.
    const wait = Math.max(0, Math.ceil(next - this.now()));
    this.timerDue = next;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      this.pump();
    }, wait);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.tun.close();
  }
}

// ---- Entry point -----------------------------------------------------------------------------

async function main(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: { tun: { type: 'string' }, config: { type: 'string' }, mtu: { type: 'string' } },
    strict: true,
  });
  const core = new ImpairmentCore(JSON.parse(values.config ?? '{"rules":[]}') as ImpairmentConfig);
  const tun = await openTun({
    name: values.tun ?? 'mip6imp',
    mtu: Number(values.mtu ?? 1500),
    // The router queues packets here while this process is busy: keep a deep kernel queue.
    txQueueLength: 4096,
    maxBatch: 64,
    headroom: 0,
    tailroom: 0,
  });
  const driver = new ImpairmentDriver(core, tun);
  const emit = (o: Record<string, unknown>, cb?: () => void): void => {
    process.stdout.write(`${JSON.stringify(o)}\n`, cb);
  };
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    driver.close();
    emit({ ...core.stats(true) }, () => process.exit(0));
  };
  process.on('SIGTERM', finish);
  process.on('SIGINT', finish);
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    let cmd: { cmd?: unknown; config?: unknown; id?: unknown };
    try {
      cmd = JSON.parse(line) as typeof cmd;
    } catch {
      emit({ event: 'error', message: `malformed command: ${line.slice(0, 80)}` });
      return;
    }
    const id = typeof cmd.id === 'number' ? { id: cmd.id } : {};
    if (cmd.cmd === 'stats') {
      emit({ ...core.stats(), ...id });
    } else if (cmd.cmd === 'configure') {
      try {
        core.configure(cmd.config as ImpairmentConfig);
        emit({ event: 'configured', ...id });
      } catch (err) {
        emit({ event: 'error', message: (err as Error).message, ...id });
      }
    } else {
      emit({ event: 'error', message: `unknown command ${String(cmd.cmd)}`, ...id });
    }
  });
  lines.on('close', finish); // the parent went away
  driver.start();
  emit({ event: 'ready', tun: tun.name });
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(realpathSync(entry)).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`impair: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
