/**
 * What the mobile node puts into the native express lane (io/express.ts, native/express.c,
 * issue #16), and what it takes back: the home agent's channel, both ways, as
 * roles/ha/ha-express.ts does for the home agent (its file comment says how arming and clearing
 * keep the lane to what JS has just decided).
 *
 * Receive: the lane takes payload (TCP / UDP / Echo over IPv6, or IPv4 without options) from
 * the HA's locator under the channel's current keys whose inner destination is our home address
 * (or our IPv4 home address, RFC 5555), as the JS loop would
 * (never the HA's own signaling, which is kind SIGNALING, nor forwarded mobility signaling:
 * neither is TCP, UDP or Echo). Send: every IPv6 or IPv4 packet from the TUN (TCP SYNs, which JS
 * clamps, excepted) goes through the HA's channel, so the lane is only armed without route optimization
 * (whose direct paths JS chooses per destination).
 *
 * What the lane carried reaches movement detection as JS would have told it: the last packet
 * heard from the HA and whether something went to it after that (the silence deadline), the
 * path MTU's traffic mark, and the counters.
 */
import type { PeerSession, SecureEndpoint } from '../../crypto/endpoint.js';
import type { ExpressLane, ExpressReport } from '../../io/types.js';
import type { PathMtuState } from '../../protocol/path-mtu.js';
import type { ResolvedAgent } from './home-agent-channel.js';
import { addExpressReport, type TunnelCounters } from '../common.js';

/**
 * The lane's counts reach JS at least this often while it is armed (a harvest, the lane staying
 * armed): half the probe interval (movement.ts, 5 s by default), so a send after the last packet
 * heard still starts the silence deadline before it is due, and the HA's silence is noticed as
 * soon as without the lane. Not more often: each harvest is a JS turn a packet may wait behind.
 */
export function expressHarvestMs(probeIntervalMs: number | undefined): number {
  return Math.max(100, Math.min(2500, (probeIntervalMs ?? 5000) / 2));
}

export interface MnExpressHost {
  readonly endpoint: SecureEndpoint;
  readonly counters: TunnelCounters;
  readonly drops: { add(reason: string, n?: number): void };
  capturing(): boolean;
  /** Something authenticated came from the HA at `at`. */
  heard(at: number): void;
  /** Something went to the HA; true when that started the silence deadline. */
  sent(): boolean;
  /** Payload went to the HA's path at `at` (path MTU). */
  noteTraffic(session: PeerSession, at: number): void;
  hasSocket(family: 4 | 6): boolean;
  /** The driver's timer must fire by `at` (the next harvest). */
  wakeBy(at: number): void;
  /** How often the lane's counts must reach JS (expressHarvestMs). */
  readonly harvestMs: number;
}

/** A direction JS carried in the steady state: wanted in the lane until idle this long. */
export const MN_EXPRESS_IDLE_MS = 10_000;

export class MnExpress {
  readonly #lane: ExpressLane;
  readonly #host: MnExpressHost;
  /** The channel and HA locator JS carried data on in the steady state, each way, and when
   *  (last by JS or by the lane). Kept across callbacks: each end() checks them again. */
  #rxSession: PeerSession | undefined;
  #rxAgent: ResolvedAgent | undefined;
  #rxAt = 0;
  #txSession: PeerSession | undefined;
  #txAgent: ResolvedAgent | undefined;
  #txPath: PathMtuState | undefined;
  #txAt = 0;
  /** Armed for this session (the reports of the next clear are its). */
  #armedFor: PeerSession | undefined;
  #now = 0;
  /** A sent() of the last report started the silence deadline. */
  #silenceStarted = false;
  readonly #apply = (r: ExpressReport): void => this.#applyReport(r);

  constructor(lane: ExpressLane, host: MnExpressHost) {
    this.#lane = lane;
    this.#host = host;
  }

  get armed(): number {
    return this.#lane.armed;
  }

  /**
   * The lane's counts reach JS, the channel staying armed (the driver's timer between its
   * engines' deadlines). True when the driver must take its whole timer path, which empties the
   * lane: a send the lane made started the silence deadline, or nothing went either way for
   * MN_EXPRESS_IDLE_MS.
   */
  harvest(now: number): boolean {
    if (this.#lane.armed === 0) return false;
    this.#now = now;
    this.#silenceStarted = false;
    this.#lane.harvest(this.#apply);
    // Idle both ways: the lane is emptied (the whole timer path), so an idle laptop's timer
    // stops waking it every second.
    const idle = now - Math.max(this.#rxAt, this.#txAt) > MN_EXPRESS_IDLE_MS;
    return this.#silenceStarted || idle;
  }

  /** The lane is emptied (a callback starts, or the driver's state may change); counts added. */
  begin(now: number): void {
    if (this.#lane.armed === 0) return;
    this.#now = now;
    this.#lane.clear(this.#apply);
    this.#armedFor = undefined;
  }

  /** JS delivered payload from the HA's channel to our home address (IPv6, not signaling). */
  noteRx(session: PeerSession, agent: ResolvedAgent, now: number): void {
    this.#rxSession = session;
    this.#rxAgent = agent;
    this.#rxAt = now;
  }

  /** JS sealed IPv6 payload to the HA through `path` (its path MTU state, in use). */
  noteTx(session: PeerSession, agent: ResolvedAgent, path: PathMtuState, now: number): void {
    this.#txSession = session;
    this.#txAgent = agent;
    this.#txPath = path;
    this.#txAt = now;
  }

  /**
   * A callback ends: arms each direction JS carried on the channel and HA locator that are
   * still the driver's (`session`, `agent`, and for sending the path MTU state `path`).
   */
  end(
    now: number,
    session: PeerSession | undefined,
    agent: ResolvedAgent | undefined,
    path: PathMtuState | undefined,
    homeAddress4?: Uint8Array,
  ): void {
    if (now - this.#rxAt > MN_EXPRESS_IDLE_MS) this.#rxSession = this.#rxAgent = undefined;
    if (now - this.#txAt > MN_EXPRESS_IDLE_MS) {
      this.#txSession = this.#txAgent = undefined;
      this.#txPath = undefined;
    }
    if (this.#rxSession === undefined && this.#txSession === undefined) return;
    if (session === undefined || agent === undefined || this.#host.capturing()) return;
    if (agent.ifindex !== 0 || !this.#host.hasSocket(agent.family)) return;
    const view = this.#host.endpoint.expressView(session, now);
    if (view === undefined) return;
    let armed = false;
    if (this.#rxSession === session && this.#rxAgent === agent) {
      // Our IPv4 home address (RFC 5555), if the HA granted one, as ::ffff:a.b.c.d: what inner
      // IPv4 payload may be addressed to (the IPv6 home address the lane knows already).
      let v4: Uint8Array | null = null;
      if (homeAddress4 !== undefined) {
        v4 = new Uint8Array(16);
        v4[10] = v4[11] = 0xff;
        v4.set(homeAddress4, 12);
      }
      armed = this.#lane.armRx(view, agent, v4);
    }
    if (
      this.#txSession === session &&
      this.#txAgent === agent &&
      path !== undefined &&
      this.#txPath === path &&
      path.used
    ) {
      armed = this.#lane.armTx(view, agent, path.maxInner, null) || armed;
    }
    if (armed) {
      this.#armedFor = session;
      this.#host.wakeBy(now + this.#host.harvestMs);
    }
  }

  close(): void {
    this.begin(this.#now);
    this.#rxSession = this.#txSession = undefined;
    this.#lane.close();
  }

  #applyReport(r: ExpressReport): void {
    const s = this.#armedFor;
    if (s === undefined) return;
    const h = this.#host;
    const now = this.#now;
    const heardAt = r.rxPackets > 0 ? now - r.rxAgoMs : -Infinity;
    const sentAt = r.txPackets > 0 ? now - r.txAgoMs : -Infinity;
    // In the order they happened: a send after the last packet heard leaves the silence
    // deadline running, as it would have in JS (below). Sends the HA answered later (a ping)
    // leave no deadline, as in JS: heard() ends the one their sent() started, so neither is
    // told, and the timer need not go the whole way (which would empty the lane).
    addExpressReport(h.endpoint, s, h.counters, h.drops, r);
    if (r.rxPackets > 0) {
      h.heard(heardAt);
      this.#rxAt = Math.max(this.#rxAt, heardAt);
    }
    if (r.txPackets > 0) {
      h.noteTraffic(s, sentAt);
      if (sentAt > heardAt && h.sent()) this.#silenceStarted = true;
      this.#txAt = Math.max(this.#txAt, sentAt);
    }
  }
}
