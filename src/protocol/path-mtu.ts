/**
 * Path MTU of each peer's current locator (issue #21): Datagram Packetization Layer PMTU
 * Discovery (RFC 8899) inside the channel, plus ICMP Fragmentation Needed / Packet Too Big
 * reports checked against what was actually sent.
 *
 * Every outer datagram leaves with Don't Fragment and is never fragmented by us (native/udp.c),
 * so an inner packet only goes out when it fits the path as far as we know it: `maxInner`, the
 * largest inner packet (channel payload) confirmed to arrive. Anything larger gets an ICMP
 * Packet Too Big into the TUN (the driver's job), so the inner sender adapts; nothing is lost
 * silently in a network that drops fragments or ICMP.
 *
 * Units: sizes here are inner packet bytes (the channel payload); `overhead` (outer IP header +
 * UDP + channel header and tag) turns them into the path MTU of the underlay and back.
 *
 * The search (RFC 8899 §5.2, a binary search with the ceiling tried first):
 *   - a new locator starts at BASE_INNER (1280, the IPv6 minimum, RFC 8200 §5: always sent)
 *     and probes the ceiling (the TUN MTU, or the underlay MTU minus the overhead) at once;
 *   - a probe is a PMTU_PROBE of exactly the candidate size, sealed as the sender's own
 *     signaling; the peer answers PMTU_PROBE_ACK with the id and the size it received. An ack
 *     confirms the size (maxInner rises); MAX_PROBES unanswered sends, PROBE_TIMER_MS apart,
 *     mean that size does not pass, and the next candidate is the middle of what is left;
 *   - the search ends when the confirmed size and the smallest failed one are within
 *     SEARCH_GRANULARITY; then the current size is re-confirmed every CONFIRM_INTERVAL_MS
 *     (a path that shrank without telling us: MAX_PROBES lost confirmations drop back to base
 *     and search again) and the search starts again from the top after PMTU_RAISE_MS.
 *   - both only while the path is in use: a confirmation (or a raise) falls due on a path that
 *     carried none of our payload since the last one went (or the search ended), and probing
 *     is suspended instead (RFC 8899 §5.1.1 allows it when no data is sent; issue 17: 100 000
 *     idle members were ~3 300 confirmations a second each way). The driver says when payload
 *     goes (`noteTraffic`, a flag test per packet); a suspended path then confirms at once.
 *   - a Packet Too Big / Fragmentation Needed (PTB) that the driver has matched to a datagram
 *     we sent recently on this channel (its channel header: our peer's SPI, a counter we used)
 *     lowers the search's ceiling to its MTU and probes that size (RFC 8899 §4.6.2); if it is
 *     below the confirmed size, the confirmed size drops to it at once. Never below BASE_INNER
 *     (a forged report cannot shrink the tunnel under the minimum), never up (a report can only
 *     lower a size; only probes raise it).
 *   - a send our own interface refused (a local report, only an upper bound: one byte below the
 *     refused datagram) lowers only the search's ceiling. Below the confirmed size it lowers
 *     nothing by itself (a forged ICMP error pending on the socket can fail our send too): the
 *     confirmed size is probed again at once, and only when that confirmation is lost does the
 *     search start again from the base, below the bound. A flood of them costs at most one
 *     confirmation probe a second.
 *
 * Messages (channel payload of kind SIGNALING, not an IPv6 packet: byte 0 has no version 6):
 *   PMTU_PROBE:     0x12 | id (4) | zero padding up to the probed size
 *   PMTU_PROBE_ACK: 0x13 | id (4) | received size (2)
 *
 * Sans-IO: the driver says when a peer's locator changes, feeds acks and checked reports, and
 * asks poll(now) for probes to send; one heap of deadlines over all peers.
 *
 * Parking (issue 17): a path whose search ended at its ceiling and whose probing rests (idle)
 * needs nothing but that size and how it was learnt. With a `PathParking` from the driver, the
 * table then keeps only a small integer for it (`PathMtuState.packed`) and drops the object;
 * the first thing that needs the state again (payload, a report, an ack, the same locator set
 * again) makes it back from that integer and the driver's locator, suspended as it was. A
 * path is parked only when nothing else in it matters: no probe, no pending confirmation, no
 * local bound, no raise to come (the size is the ceiling), its last confirmation more than a
 * PROBE_TIMER_MS ago (it is: probing rests a CONFIRM_INTERVAL_MS after it). Its counters
 * (probesSent, probesAcked, reportsAccepted of that path) start again from zero.
 */
import type { OwnerStore } from '../util/owner-store.js';
import { DeadlineHeap } from '../util/deadline-heap.js';

/** Channel payload type of a path MTU probe (either side -> its peer). */
export const PMTU_PROBE = 0x12;
/** Channel payload type of a probe's acknowledgement. */
export const PMTU_PROBE_ACK = 0x13;
/** Type + id: the smallest probe. */
export const PMTU_PROBE_MIN_LEN = 5;
/** Type + id + size. */
export const PMTU_ACK_LEN = 7;
/** The inner size always allowed: the IPv6 minimum link MTU (RFC 8200 §5), RFC 8899 BASE_PLPMTU. */
export const BASE_INNER = 1280;
/** RFC 8899 §5.1.1 PROBE_TIMER: "MUST NOT be smaller than 1 second". */
export const PROBE_TIMER_MS = 1000;
/** RFC 8899 §5.1.2 MAX_PROBES (default 3). */
export const MAX_PROBES = 3;
/** The search stops when confirmed and failed sizes are this close (bytes). */
export const SEARCH_GRANULARITY = 4;
/** Re-confirm the current size this often after a search (RFC 8899 §5.1.1 CONFIRMATION_TIMER,
 *  shortened: one small probe per peer per interval finds a shrunken path in a minute). */
export const CONFIRM_INTERVAL_MS = 30_000;
/** Search upwards again this long after a search ended below the ceiling (RFC 8899
 *  PMTU_RAISE_TIMER, 600 s). */
export const PMTU_RAISE_MS = 600_000;

/** How the current size was learnt. */
export type PathMtuSource = 'base' | 'probe' | 'icmp';
const SOURCES: readonly PathMtuSource[] = ['base', 'probe', 'icmp'];

export interface PathMtuStatus {
  locator: string;
  /** Path MTU of the underlay in bytes (maxInner + overhead). */
  pathMtu: number;
  /** Largest inner packet sent through (bytes). */
  maxInner: number;
  source: PathMtuSource;
  state: 'searching' | 'complete';
  /** Probing rests: no payload went this way since the last confirmation (RFC 8899 §5.1.1).
   *  The size is the last confirmed one, possibly long ago; payload resumes probing. */
  idle: boolean;
  /** Largest inner size searched for (the TUN / underlay limit). */
  ceiling: number;
  probesSent: number;
  probesAcked: number;
  reportsAccepted: number;
}

interface Probe {
  id: number;
  size: number;
  sentAt: number;
  sends: number;
  /** A confirmation of the current size (its loss is a black hole), not a search step. */
  confirm: boolean;
}

/** One peer's current locator. `maxInner` is read by the data path on every packet. */
export class PathMtuState {
  maxInner = BASE_INNER;
  source: PathMtuSource = 'base';
  /** Smallest size known not to pass (exclusive upper bound of the search). */
  #failed: number;
  #probe: Probe | undefined;
  /** A size to try next (a report's), before the halves. */
  #candidate = 0;
  /** A local report below the confirmed size asks for a confirmation probe. */
  #recheck = false;
  /** The smallest local report below the confirmed size (+1): the ceiling if it is lost. */
  #localBound = Infinity;
  /** When a confirmation last came back (local reports below it are refuted for a while). */
  #confirmedAt = -Infinity;
  #next = 0;
  #complete = false;
  #completedAt = 0;
  probesSent = 0;
  probesAcked = 0;
  reportsAccepted = 0;
  /** Payload went on this path since the last confirmation (or the search's end). */
  used = false;
  /** Probing is suspended (an idle path); noteTraffic resumes it. */
  #suspended = false;

  readonly locator: string;
  /** Outer bytes per packet on this locator (IP header, UDP, channel header and tag). */
  readonly overhead: number;
  /** Largest inner size searched for. */
  readonly ceiling: number;

  constructor(locator: string, overhead: number, ceiling: number, now: number) {
    this.locator = locator;
    this.overhead = overhead;
    this.ceiling = ceiling;
    this.#failed = ceiling + 1;
    this.#next = now;
    if (ceiling <= BASE_INNER) this.#finish(now);
  }

  get searching(): boolean {
    return !this.#complete;
  }

  /**
   * The state as a small integer (its size and source) when nothing else in it matters (see
   * the file comment: a finished search at the ceiling, probing suspended), else undefined.
   */
  get packed(): number | undefined {
    if (
      !this.#suspended ||
      !this.#complete ||
      this.#probe !== undefined ||
      this.#recheck ||
      this.#candidate !== 0 ||
      this.#localBound !== Infinity ||
      this.maxInner !== this.ceiling ||
      this.#failed !== this.ceiling + 1
    ) {
      return undefined;
    }
    return this.maxInner * 4 + SOURCES.indexOf(this.source);
  }

  /** A state made back from `packed` (for the same locator, overhead and ceiling), suspended. */
  static unpacked(
    packed: number,
    locator: string,
    overhead: number,
    ceiling: number,
  ): PathMtuState | undefined {
    const size = Math.floor(packed / 4);
    if (size !== ceiling) return undefined;
    const s = new PathMtuState(locator, overhead, ceiling, 0);
    s.maxInner = size;
    s.source = SOURCES[packed % 4] ?? 'base';
    s.#complete = true;
    s.#suspended = true;
    s.#next = Infinity;
    s.used = false;
    return s;
  }

  /** True while probing waits for payload (an idle path, see the file comment). */
  get suspended(): boolean {
    return this.#suspended;
  }

  /**
   * Payload goes on this path (the driver calls it when `used` is false: once per interval).
   * True when probing was suspended and resumes now (the new deadline: now). A report that
   * came while it was suspended may have scheduled work already (a probe may be in flight):
   * that deadline stands.
   */
  noteTraffic(now: number): boolean {
    this.used = true;
    if (!this.#suspended) return false;
    this.#suspended = false;
    if (this.#next !== Infinity) return false;
    this.#next = now;
    return true;
  }

  /** When poll() has work for this path. */
  get deadline(): number {
    return this.#next;
  }

  status(): PathMtuStatus {
    return {
      locator: this.locator,
      pathMtu: this.maxInner + this.overhead,
      maxInner: this.maxInner,
      source: this.source,
      state: this.#complete ? 'complete' : 'searching',
      idle: this.#suspended,
      ceiling: this.ceiling,
      probesSent: this.probesSent,
      probesAcked: this.probesAcked,
      reportsAccepted: this.reportsAccepted,
    };
  }

  #finish(now: number): void {
    this.#probe = undefined;
    this.#complete = true;
    this.#completedAt = now;
    this.#next = now + CONFIRM_INTERVAL_MS;
    this.used = false;
  }

  /** The next search step: a probe of the next candidate, or the end of the search. */
  #step(now: number, nextId: () => number): { id: number; size: number } | undefined {
    const lo = this.maxInner;
    const hi = this.#failed;
    if (hi - lo <= SEARCH_GRANULARITY) {
      this.#finish(now);
      return undefined;
    }
    // A reported size, else the top first (most paths carry it), then halves of what is left.
    const wanted = this.#candidate;
    this.#candidate = 0;
    const size =
      wanted > lo && wanted < hi
        ? wanted
        : hi === this.ceiling + 1
          ? this.ceiling
          : Math.floor((lo + hi) / 2);
    return this.#send({ id: nextId(), size, sentAt: now, sends: 0, confirm: false }, now);
  }

  #send(p: Probe, now: number): { id: number; size: number } {
    p.sentAt = now;
    p.sends++;
    this.#probe = p;
    this.#next = now + PROBE_TIMER_MS;
    this.probesSent++;
    return { id: p.id, size: p.size };
  }

  /** Work due at `now`: a probe to send, if any. */
  poll(now: number, nextId: () => number): { id: number; size: number } | undefined {
    if (now < this.#next) return undefined;
    const p = this.#probe;
    if (p !== undefined) {
      if (p.sends < MAX_PROBES) return this.#send(p, now);
      this.#probe = undefined;
      if (p.confirm) {
        // The size that passed before no longer does: back to the base, search again (below
        // what our own interface refused, if it did).
        this.maxInner = BASE_INNER;
        this.source = 'base';
        this.#complete = false;
        this.#failed = Math.min(this.#failed, this.#localBound);
        this.#localBound = Infinity;
        this.#recheck = false;
      }
      this.#failed = Math.max(Math.min(this.#failed, p.size), this.maxInner + 1);
      if (this.#recheck) return this.#confirm(now, nextId);
      return this.#step(now, nextId);
    }
    if (this.#recheck) return this.#confirm(now, nextId);
    if (!this.#complete) return this.#step(now, nextId);
    if (!this.used) {
      // Nothing of ours went this way since the last confirmation: no probe until some does.
      this.#suspended = true;
      this.#next = Infinity;
      return undefined;
    }
    this.used = false;
    if (this.maxInner < this.ceiling && now - this.#completedAt >= PMTU_RAISE_MS) {
      this.#complete = false;
      this.#failed = this.ceiling + 1;
      return this.#step(now, nextId);
    }
    if (this.maxInner <= BASE_INNER) {
      this.#next = now + CONFIRM_INTERVAL_MS; // the base needs no confirmation
      return undefined;
    }
    return this.#confirm(now, nextId);
  }

  /** A probe of the confirmed size (none for the base, which always passes). */
  #confirm(now: number, nextId: () => number): { id: number; size: number } | undefined {
    this.#recheck = false;
    if (this.maxInner <= BASE_INNER) {
      this.#localBound = Infinity;
      if (this.#complete) {
        this.#next = now + CONFIRM_INTERVAL_MS;
        return undefined;
      }
      return this.#step(now, nextId);
    }
    const id = nextId();
    return this.#send({ id, size: this.maxInner, sentAt: now, sends: 0, confirm: true }, now);
  }

  /** An ack of (id, size): true when it answers the outstanding probe. */
  onAck(id: number, size: number, now: number): boolean {
    const p = this.#probe;
    if (p === undefined || p.id !== id || p.size !== size) return false;
    this.probesAcked++;
    this.#probe = undefined;
    if (size > this.maxInner) {
      this.maxInner = size;
      this.source = 'probe';
    }
    // A confirmation refutes the local reports below it.
    if (p.confirm) {
      this.#localBound = Infinity;
      this.#confirmedAt = now;
    }
    if (p.confirm && this.#complete) this.#next = now + CONFIRM_INTERVAL_MS;
    else this.#next = now; // the next step goes out on the next poll
    return true;
  }

  /**
   * A report (already matched to a datagram we sent on this channel) that the path carries at
   * most `pathMtu` bytes. `exact` false: only an upper bound (our own interface refused a
   * datagram one byte larger; the size that passes is found by the search, and it never lowers
   * the confirmed size itself). Returns what it changed ('recheck': the confirmed size is
   * probed again).
   */
  onTooBig(pathMtu: number, now: number, exact = true): TooBigResult {
    const inner = Math.max(BASE_INNER, pathMtu - this.overhead);
    if (!exact) return this.#upperBound(inner, now);
    if (inner >= this.#failed - 1 && !(inner < this.maxInner)) return 'ignored';
    this.reportsAccepted++;
    if (inner < this.maxInner) {
      this.maxInner = inner;
      this.source = 'icmp';
      this.#failed = inner + 1;
      this.#finish(now);
      return 'lowered';
    }
    // Between the confirmed size and the search's ceiling: probe exactly that size next.
    this.#failed = inner + 1;
    this.#candidate = inner;
    this.#complete = false;
    if (this.#probe !== undefined && this.#probe.size > inner) this.#probe = undefined;
    if (this.#probe === undefined) this.#next = now;
    if (inner === this.maxInner) {
      this.source = 'icmp';
      this.#finish(now);
    }
    return 'ceiling';
  }

  #upperBound(inner: number, now: number): TooBigResult {
    if (inner < this.maxInner) {
      // Against what a probe confirmed: probe that size again (one confirmation in flight).
      // At most one a PROBE_TIMER_MS after the last one came back (a flood costs one probe a
      // second); a shrunken interface keeps refusing sends, so its reports keep coming.
      if (now - this.#confirmedAt < PROBE_TIMER_MS) return 'ignored';
      if (inner + 1 >= this.#localBound || this.#recheck || this.#probe?.confirm === true) {
        this.#localBound = Math.min(this.#localBound, inner + 1);
        return 'ignored';
      }
      this.reportsAccepted++;
      this.#localBound = inner + 1;
      this.#recheck = true;
      if (this.#probe === undefined) this.#next = now;
      return 'recheck';
    }
    if (inner >= this.#failed - 1) return 'ignored';
    this.reportsAccepted++;
    this.#failed = inner + 1;
    this.#complete = false;
    if (this.#probe !== undefined && this.#probe.size > inner) this.#probe = undefined;
    if (this.#probe === undefined) this.#next = now;
    return 'ceiling';
  }
}

/** What a report changed: the confirmed size, the search's ceiling, a new confirmation, nothing. */
export type TooBigResult = 'lowered' | 'ceiling' | 'recheck' | 'ignored';

/** A probe for the driver to seal (SIGNALING) and send to `owner`'s current locator. */
export interface ProbeToSend<Owner> {
  owner: Owner;
  id: number;
  size: number;
}

/** A path's locator text and the overhead and ceiling its state was made with. */
export interface PathShape {
  locator: string;
  overhead: number;
  ceiling: number;
}

/** What the driver tells the table so it can park idle paths (see the file comment). */
export interface PathParking<Owner> {
  /** The path `owner`'s state is about, as setPath would be given it (to make it back). */
  pathOf(owner: Owner): PathShape | undefined;
  /** May `state` be parked? If so (true) the driver has dropped what it holds of it. */
  park(owner: Owner, state: PathMtuState): boolean;
}

/** A stored path: the state, or its packed form (parked). */
export type StoredPath = PathMtuState | number;

/** The path MTU state of every peer (each at its current locator). */
export class PathMtuTable<Owner> {
  readonly #paths: OwnerStore<Owner, StoredPath>;
  readonly #parking: PathParking<Owner> | undefined;
  readonly #heap = new DeadlineHeap<Owner>();
  #lastId = 0;
  readonly #nextId = (): number => (this.#lastId = (this.#lastId + 1) >>> 0);

  /**
   * `store`: where each owner's state is kept (default: a Map of this table's own);
   * `parking`: idle finished paths are kept packed (without it, never).
   */
  constructor(store: OwnerStore<Owner, StoredPath> = new Map(), parking?: PathParking<Owner>) {
    this.#paths = store;
    this.#parking = parking;
  }

  /** `owner`'s state, made back from its packed form if it was parked. */
  get(owner: Owner): PathMtuState | undefined {
    const v = this.#paths.get(owner);
    if (typeof v !== 'number') return v;
    const p = this.#parking?.pathOf(owner);
    const s = p && PathMtuState.unpacked(v, p.locator, p.overhead, p.ceiling);
    if (s === undefined) {
      this.#paths.delete(owner); // cannot happen: parked only when pathOf said how to
      return undefined;
    }
    this.#paths.set(owner, s);
    return s;
  }

  /** True when `owner`'s path is parked (no state object: only its size). */
  isParked(owner: Owner): boolean {
    return typeof this.#paths.get(owner) === 'number';
  }

  /** The locator `owner`'s path is about, without making a parked state back. */
  locatorOf(owner: Owner): string | undefined {
    const v = this.#paths.get(owner);
    if (typeof v !== 'number') return v?.locator;
    return this.#parking?.pathOf(owner)?.locator;
  }

  /** `owner`'s path status; a parked path stays parked. */
  statusOf(owner: Owner): PathMtuStatus | undefined {
    const v = this.#paths.get(owner);
    if (typeof v !== 'number') return v?.status();
    const p = this.#parking?.pathOf(owner);
    // A state made for the answer only (status is rare): the table keeps the number.
    return p && PathMtuState.unpacked(v, p.locator, p.overhead, p.ceiling)?.status();
  }

  /** Parks `owner`'s state if it can be (see the file comment). */
  #park(owner: Owner, s: PathMtuState): void {
    const parking = this.#parking;
    if (parking === undefined) return;
    const packed = s.packed;
    if (packed === undefined) return;
    const p = parking.pathOf(owner);
    if (
      p === undefined ||
      p.locator !== s.locator ||
      p.overhead !== s.overhead ||
      p.ceiling !== s.ceiling
    ) {
      return;
    }
    if (parking.park(owner, s)) this.#paths.set(owner, packed);
  }

  /**
   * `owner` is (now) reached at `locator`, with `overhead` bytes per packet there and inner
   * packets of at most `ceiling`. The same locator keeps its state; another one (a move) starts
   * at the base and searches at once. Returns the state the data path reads.
   */
  setPath(
    owner: Owner,
    locator: string,
    overhead: number,
    ceiling: number,
    now: number,
  ): PathMtuState {
    const known = this.get(owner);
    if (
      known !== undefined &&
      known.locator === locator &&
      known.overhead === overhead &&
      known.ceiling === ceiling
    ) {
      return known;
    }
    const s = new PathMtuState(locator, overhead, Math.max(BASE_INNER, ceiling), now);
    this.#paths.set(owner, s);
    this.#heap.push(s.deadline, owner);
    return s;
  }

  forget(owner: Owner): void {
    this.#paths.delete(owner);
  }

  /**
   * Payload goes to `owner` (call when `state.used` is false). True when that resumed a
   * suspended path: its confirmation is due now (the driver re-arms its timer).
   */
  noteTraffic(owner: Owner, now: number): boolean {
    const s = this.get(owner);
    if (s === undefined || !s.noteTraffic(now)) return false;
    this.#heap.push(s.deadline, owner);
    return true;
  }

  /** An ack from `owner`; false when it answers no outstanding probe (counted by the caller). */
  onAck(owner: Owner, id: number, size: number, now: number): boolean {
    const v = this.#paths.get(owner);
    // A parked path has no probe out: nothing to answer, and no state made back for it.
    if (v === undefined || typeof v === 'number' || !v.onAck(id, size, now)) return false;
    const s = v;
    this.#heap.push(s.deadline, owner);
    return true;
  }

  /** A checked report for `owner`'s path (see PathMtuState.onTooBig). */
  onTooBig(owner: Owner, pathMtu: number, now: number, exact = true): TooBigResult {
    const s = this.get(owner);
    if (s === undefined) return 'ignored';
    const r = s.onTooBig(pathMtu, now, exact);
    if (r !== 'ignored') this.#heap.push(s.deadline, owner);
    else if (s.deadline === Infinity) this.#park(owner, s); // made back for nothing
    return r;
  }

  #live = (owner: Owner, at: number): boolean => {
    const v = this.#paths.get(owner);
    return typeof v !== 'number' && v?.deadline === at;
  };

  nextDeadline(): number {
    return this.#heap.peekLive(this.#live);
  }

  /** Probes due at `now`. */
  poll(now: number): ProbeToSend<Owner>[] {
    const out: ProbeToSend<Owner>[] = [];
    while (this.#heap.peekLive(this.#live) <= now) {
      const owner = this.#heap.pop();
      const s = this.#paths.get(owner);
      if (s === undefined || typeof s === 'number') continue;
      const p = s.poll(now, this.#nextId);
      if (p !== undefined) out.push({ owner, id: p.id, size: p.size });
      if (s.deadline !== Infinity) this.#heap.push(s.deadline, owner);
      else this.#park(owner, s); // suspended
    }
    return out;
  }
}

/** A probe of exactly `size` bytes (at least PMTU_PROBE_MIN_LEN). */
export function encodeProbe(id: number, size: number): Uint8Array {
  if (size < PMTU_PROBE_MIN_LEN) throw new RangeError('probe shorter than its header');
  const out = new Uint8Array(size);
  out[0] = PMTU_PROBE;
  writeU32(out, 1, id);
  return out;
}

export function encodeProbeAck(id: number, size: number): Uint8Array {
  const out = new Uint8Array(PMTU_ACK_LEN);
  out[0] = PMTU_PROBE_ACK;
  writeU32(out, 1, id);
  out[5] = (size >>> 8) & 0xff;
  out[6] = size & 0xff;
  return out;
}

/** A probe or ack at buf[off, off + len), or undefined when it is neither (malformed). */
export function decodePathMtuMessage(
  buf: Uint8Array,
  off: number,
  len: number,
): { type: 'probe' | 'ack'; id: number; size: number } | undefined {
  const type = buf[off];
  if (type === PMTU_PROBE && len >= PMTU_PROBE_MIN_LEN) {
    return { type: 'probe', id: readU32(buf, off + 1), size: len };
  }
  if (type === PMTU_PROBE_ACK && len === PMTU_ACK_LEN) {
    return { type: 'ack', id: readU32(buf, off + 1), size: (buf[off + 5]! << 8) | buf[off + 6]! };
  }
  return undefined;
}

/** True when the channel payload at `off` is a probe or an ack (byte 0 is its type). */
export function isPathMtuMessage(buf: Uint8Array, off: number): boolean {
  const t = buf[off];
  return t === PMTU_PROBE || t === PMTU_PROBE_ACK;
}

function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

function readU32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}
