/**
 * The mobile node (RFC 6275 §11, RFC 5555 §4; DESIGN.md §2-§5): its home address lives on the
 * TUN; everything from it is reverse-tunneled to the home agent through the channel, and
 * everything for it comes back the same way. The care-of locator is whatever local address the
 * kernel picks to reach the HA; every change of it is a move, signaled at once with a BU.
 *
 * Startup: the channel handshake with the HA (Noise IK; the HA's key is configured) and, in
 * parallel, the first care-of probe. The first BU waits for the channel, then goes out at once.
 * TUN -> underlay: every packet is sealed in place (one run per batch) and sent to the HA's
 *   address of the care-of family in use.
 * Underlay -> TUN: data messages from the HA's channel are opened in place; inner packets must
 *   be addressed to our home address. BAs and BRRs go to the HomeRegistration machine, the rest
 *   is written to the TUN.
 * Movement: the CareOfSource reports candidate care-of addresses (rtnetlink events, a periodic
 *   re-check); the preferred family with a usable address wins. A change -> setCareOf -> BU now.
 *   The old locator keeps working until the BA (make-before-break: the channel accepts data from
 *   any locator, so packets still in flight on the old path are delivered).
 * Home link (RFC 6275 §11.5.4; issue #13): a candidate with `homeLink` (a global address of the
 *   home prefix on that interface, or the HA's home address answering our Neighbor
 *   Solicitation there) is only a candidate: a rogue Router Advertisement and an evil twin's
 *   Neighbor Advertisement on hotel Wi-Fi produce one too. The proof is the home agent's: the
 *   returning-home BU (lifetime 0, CoA == HoA, sealed in the HA channel) goes out of that
 *   interface only, to the solicited-node group of the HA's home address, with hop limit 255;
 *   the HA accepts it only when it arrives on its home link unrouted, and answers on the link.
 *   Until that BA (0) everything stays as it was: HoA on the TUN, binding and tunnel in use.
 *   Then the HoA moves from the TUN to that interface (homeLink control) and unsolicited NAs
 *   announce it. A refusal or no answer leaves us away and rests that link (10 s, doubling up
 *   to 10 min) while it is still offered. Leaving home moves the HoA back to the TUN before
 *   registering. Without homeLink control ([movement] return_home = false) never home.
 * Reachability (NUD-like, [movement] probe_*): when we sent something and nothing came back from
 *   the HA for probeInterval, a BU refresh goes out as a probe (its BA proves the path; from a
 *   new NAT mapping it also moves the HA's locator). probeAttempts BUs of one attempt without a
 *   BA -> path lost: re-check care-of addresses, a fresh channel handshake (the HA may have
 *   restarted), and re-resolve the HA's name when configured by name. When DHAAD / MPAs named
 *   other home agents of the prefix (with their underlay addresses), path loss switches to the
 *   next one in DHAAD order instead (a new channel and a new registration there).
 * Discovery: after the first registration, DHAAD + Mobile Prefix Solicitation in the channel;
 *   an unsolicited MPA (prefix or home-agent change) is recorded and acknowledged with a BU.
 * Sleep/resume: a timer firing far later than armed (process frozen, machine suspended) or the
 *   wall clock jumping against the monotonic clock -> re-check care-of and probe at once.
 * Shutdown: deregistration BU (lifetime 0), then close.
 */
import { DATA_HEADER_LEN, DATA_OVERHEAD, DataKind } from '../../crypto/aead.js';
import { OpenResult, type OpenBatchOutput, type PeerSession } from '../../crypto/endpoint.js';
import type { MemberStatus } from '../../io/control-protocol.js';
import type { DatagramBatch, PacketBatch, UdpEndpoint } from '../../io/types.js';
import { baStatusName } from '../../protocol/constants.js';
import { formatLocator, type Locator } from '../../protocol/locator.js';
import {
  HomeRegistration,
  type CareOf,
  type HomeRegistrationAction,
} from '../../protocol/mobile-node-registration.js';
import { WireError } from '../../util/errors.js';
import { BindingUpdateList } from '../../protocol/binding-update-list.js';
import { renderMnStatus } from './mobile-node-status.js';
import { isHomeAgentFor } from '../../crypto/selector.js';
import {
  decodePathMessage,
  encodePathMessage,
  PATH_CHALLENGE,
  PATH_MESSAGE_LEN,
  PATH_RESPONSE,
} from '../../protocol/path-validation.js';
import type { RouteOptimization } from './route-optimization.js';
import { canonicalIpv6, ipv6Equal, parseIpv6, solicitedNodeMulticast } from '../../wire/address.js';
import { IPV6_DST_OFF, IPV6_HEADER_LEN } from '../../wire/ipv6.js';
import { decodePacket, encodeMobilityPacket } from '../../wire/packet.js';
import { mobilitySignal } from '../../wire/mobility-signal.js';
import {
  HomeAgentDiscoveryClient,
  type FailoverEntry,
  type HomeAgentDiscoveryAction,
  type HomePrefix,
  type LearnedHomeAgent,
} from '../../protocol/home-agent-discovery-client.js';
import { MovementDetector, type CareOfCandidate } from '../../protocol/movement.js';
import { bytesEqual } from '../../util/bytes.js';
import { systemWallClock, type WallClock } from '../../util/wall-clock.js';
import { systemRandom, type RandomSource } from '../../util/random-source.js';
import {
  armTimer,
  DropCounters,
  nodeNow,
  resolveLocator,
  sendSealed,
  TunnelWriter,
  writeToTun,
  type NodeEnvironment,
  type ResolvedLocator,
} from '../common.js';

export type { CareOfCandidate } from '../../protocol/movement.js';

/** Where the MN's care-of addresses come from (rtnetlink in src/io/care-of.ts; fakes in tests). */
export interface CareOfSource {
  /** Usable local addresses towards each HA underlay address, e.g. [{family: 4, localAddress}]. */
  probe(): Promise<CareOf[]>;
  /** Calls `onChange` when links, addresses or routes change (debounced by the source). */
  watch(onChange: () => void): void;
  close(): void;
  /** The HA's underlay addresses changed (re-resolved by name). */
  setAgents?(agents: { agent4?: string | undefined; agent6?: string | undefined }): void;
}

/** Moves the home address between the TUN and the home link (src/io/home-address.ts). */
export interface MnHomeLinkControl {
  /** HoA off the TUN, onto `ifname` (with a default route via the HA when none exists). */
  enter(ifname: string): Promise<void>;
  /** HoA off `ifname` (if still there), back onto the TUN. */
  leave(ifname: string): Promise<void>;
  /** Deregistered at home: unsolicited Neighbor Advertisements for the HoA on `ifname`. */
  announce?(ifname: string): void;
}

/**
 * First retransmission timeout of a move's BU (ms). Deviation from INITIAL_BINDACK_TIMEOUT
 * (1 s, RFC 6275 §12): in the lab the first packets on a link that has just come up are often
 * lost (the far end's carrier/neighbour state settles), and a whole second of waiting was most
 * of the handover time. Still doubling, still under the 3 BUs/s cap (MAX_UPDATE_RATE).
 */
const MOVE_BINDACK_TIMEOUT_MS = 250;

export interface MobileNodeOptions {
  homeAddress: string;
  /** The HA's address on the home prefix (inner destination of BUs). */
  homeAgentAddress: string;
  /** The HA's underlay addresses by family and its UDP port. */
  agent4?: string | undefined;
  agent6?: string | undefined;
  agentPort: number;
  agentPublicKey: Uint8Array;
  lifetimeSeconds: number;
  firstRegistrationTimeoutMs?: number | undefined;
  prefer: 'ipv4' | 'ipv6';
  careOf: CareOfSource;
  /** Re-check care-of addresses this often even without events (ms). */
  recheckIntervalMs?: number | undefined;
  /** First retransmission timeout of a BU after a move (ms, default 250). */
  moveTimeoutMs?: number | undefined;
  /** Silence (sent, nothing received) before a reachability probe (ms, default 5000). */
  probeIntervalMs?: number | undefined;
  /** First wait for a probe's BA (ms, default 1000). */
  probeTimeoutMs?: number | undefined;
  /** Unanswered BUs of one attempt that mean the path is lost (default 3). */
  probeAttempts?: number | undefined;
  /** Unix-ms wall clock, compared with the monotonic clock to notice sleep (default systemWallClock). */
  wallClock?: (() => number) | undefined;
  /** Length of the home prefix (default 64), for DHAAD's anycast address and MPA checks. */
  homePrefixLength?: number | undefined;
  /** Home-link control; without it the MN never goes home ([movement] return_home = false). */
  homeLink?: MnHomeLinkControl | undefined;
  /** Re-resolves the HA's underlay addresses (a DNS name) when the path is lost. */
  resolveAgents?:
    (() => Promise<{ agent4?: string | undefined; agent6?: string | undefined }>) | undefined;
  /** Route optimization with correspondents (and the CN half when it answers RR). */
  routeOptimization?: RouteOptimization | undefined;
  /** Randomness for DHAAD / MPS identifiers and the first sequence number (default systemRandom). */
  random?: RandomSource | undefined;
  /** What `mip6 status` calls this member (default 'mn'; a `mip6 cn` daemon says 'cn'). */
  role?: 'mn' | 'cn' | undefined;
}

export class MobileNode {
  readonly drops = new DropCounters();
  readonly counters = {
    tunnelPacketsIn: 0,
    tunnelPacketsOut: 0,
    tunnelBytesIn: 0,
    tunnelBytesOut: 0,
    signalingIn: 0,
    signalingOut: 0,
    moves: 0,
    probes: 0,
    pathLost: 0,
    resumes: 0,
    /** Returning-home BUs the HA refused or left unanswered (the link was not proven home). */
    homeRefused: 0,
  };
  #registration: HomeRegistration;
  readonly #env: NodeEnvironment;
  readonly #opts: MobileNodeOptions;
  readonly #hoa: Uint8Array;
  readonly #writer = new TunnelWriter();
  #openOut: OpenBatchOutput = { results: new Uint8Array(64), sessions: [] };
  #tunOffsets = new Uint32Array(64);
  #tunLengths = new Uint32Array(64);
  #session: PeerSession | undefined;
  #agent: ResolvedLocator | undefined;
  #agents: { agent4?: string | undefined; agent6?: string | undefined };
  readonly #movement: MovementDetector;
  #resolving = false;
  readonly #discovery: HomeAgentDiscoveryClient;
  /** What the MN told its home agent (RFC 6275 §11.1): the home registration's entry. */
  readonly #bul = new BindingUpdateList();
  /** The home agent in use: its home-prefix address, channel key and UDP port. */
  #haAddress: string;
  #agentKey: Uint8Array;
  #agentPort: number;
  readonly #random: RandomSource;
  readonly #wallClock: WallClock;
  /** BUs produced while the channel was not up yet: sent the moment it is. */
  #pendingSignaling: Uint8Array[] = [];
  /** The returning-home BU produced while the channel was not up yet (sent on the link). */
  #pendingOnHomeLink: Uint8Array | undefined;
  #endpointDeadline = 0;
  #probing = false;
  #probeAgain = false;
  #startedAt = 0;
  #closed = false;
  #deregistered: (() => void) | undefined;
  /** close() gives up waiting for the deregistration's BA at this time (node time). */
  #closeBy = Infinity;
  readonly #listeners = new Set<(event: string, fields: Record<string, unknown>) => void>();

  constructor(env: NodeEnvironment, opts: MobileNodeOptions) {
    this.#env = env;
    this.#opts = opts;
    this.#agents = { agent4: opts.agent4, agent6: opts.agent6 };
    this.#hoa = parseIpv6(opts.homeAddress);
    this.#haAddress = opts.homeAgentAddress;
    this.#agentKey = opts.agentPublicKey;
    this.#agentPort = opts.agentPort;
    this.#random = opts.random ?? systemRandom;
    this.#wallClock = opts.wallClock ?? systemWallClock;
    this.#movement = new MovementDetector({
      prefer: opts.prefer,
      canGoHome: opts.homeLink !== undefined && env.udp6 !== undefined,
      recheckIntervalMs: opts.recheckIntervalMs,
      probeIntervalMs: opts.probeIntervalMs,
      probeAttempts: opts.probeAttempts,
    });
    this.#registration = this.#newRegistration(nodeNow(env));
    this.#bul.set(this.#registration.bindingUpdateListEntry());
    this.#discovery = new HomeAgentDiscoveryClient({
      homeAddress: opts.homeAddress,
      homePrefixLength: opts.homePrefixLength ?? 64,
      configured: {
        address: opts.homeAgentAddress,
        agent4: opts.agent4,
        agent6: opts.agent6,
        port: opts.agentPort,
        publicKey: opts.agentPublicKey,
      },
      random: this.#random,
    });
  }

  /** HA addresses from the last DHAAD Reply (most preferred first). */
  get homeAgents(): string[] {
    return this.#discovery.homeAgents;
  }

  set homeAgents(list: string[]) {
    this.#discovery.homeAgents = list;
  }

  /** Home agents announced in MPAs (underlay, port, key), by home-prefix address. */
  get learnedAgents(): Map<string, LearnedHomeAgent> {
    return this.#discovery.learnedAgents;
  }

  /** Home prefixes from the last Mobile Prefix Advertisement. */
  get homePrefixes(): HomePrefix[] {
    return this.#discovery.homePrefixes;
  }

  set homePrefixes(list: HomePrefix[]) {
    this.#discovery.homePrefixes = list;
  }

  /** The Binding Update List (RFC 6275 §11.1): the home entry, kept from the registration. */
  get bindingUpdateList(): BindingUpdateList {
    return this.#bul;
  }

  /** The home registration with the home agent in use. */
  get registration(): HomeRegistration {
    return this.#registration;
  }

  /** The home-prefix address of the home agent in use. */
  get homeAgentAddress(): string {
    return this.#haAddress;
  }

  #newRegistration(now: number): HomeRegistration {
    const opts = this.#opts;
    return new HomeRegistration(
      {
        homeAddress: opts.homeAddress,
        homeAgentAddress: this.#haAddress,
        lifetimeSeconds: opts.lifetimeSeconds,
        ...(opts.firstRegistrationTimeoutMs !== undefined
          ? { firstRegistrationTimeoutMs: opts.firstRegistrationTimeoutMs }
          : {}),
        moveTimeoutMs: opts.moveTimeoutMs ?? MOVE_BINDACK_TIMEOUT_MS,
        random: this.#random,
      },
      now,
    );
  }

  /** Observes events (registered, move, failed...) — used by tests and the demo. */
  on(listener: (event: string, fields: Record<string, unknown>) => void): void {
    this.#listeners.add(listener);
  }

  #emit(event: string, fields: Record<string, unknown>): void {
    for (const l of this.#listeners) l(event, fields);
  }

  start(): void {
    const env = this.#env;
    this.#startedAt = nodeNow(env);
    this.#movement.start(this.#startedAt, this.#wallClock());
    env.tun.onPackets((b) => this.#onTunPackets(b));
    for (const s of [env.udp4, env.udp6]) s?.onDatagrams((b) => this.#onDatagrams(s, b));
    this.#opts.routeOptimization?.attach({
      sendViaHomeAgent: (packet, at) => this.#sendSignaling(packet, at),
      rearm: () => this.#rearm(),
    });
    this.#opts.careOf.watch(() => this.#recheck());
    this.#recheck();
  }

  // ---- movement --------------------------------------------------------------------------

  /** Probes care-of addresses; a change of the chosen one is a move. */
  #recheck(): void {
    if (this.#closed) return;
    if (this.#probing) {
      this.#probeAgain = true;
      return;
    }
    this.#probing = true;
    this.#opts.careOf
      .probe()
      .then((candidates) => this.#onCandidates(candidates))
      .catch((err: unknown) => this.#env.log.warn('care-of-probe', { error: String(err) }))
      .finally(() => {
        this.#probing = false;
        if (this.#probeAgain) {
          this.#probeAgain = false;
          this.#recheck();
        }
      });
  }

  async #onCandidates(candidates: CareOfCandidate[]): Promise<void> {
    if (this.#closed) return;
    const movement = this.#movement;
    for (const a of movement.onCandidates(candidates, this.#agents, nodeNow(this.#env))) {
      switch (a.kind) {
        case 'stay-home':
          this.#rearm();
          return;
        case 'enter-home':
          await this.#enterHome(this.#opts.homeLink!, a.candidate);
          return;
        case 'leave-home': {
          // The HoA goes back to the TUN before anything is signaled from elsewhere.
          await this.#opts
            .homeLink!.leave(a.link)
            .catch((err: unknown) => this.#env.log.error('leave-home', { error: String(err) }));
          this.#env.log.info('left-home', { link: a.link });
          this.#emit('left-home', { link: a.link });
          if (this.#closed) return;
          break;
        }
        case 'move':
          this.#moveTo(a.to, a.from, nodeNow(this.#env));
          break;
      }
    }
    if (this.#closed) return;
    const now = nodeNow(this.#env);
    for (const a of movement.afterMove(this.registration.state === 'returning-home')) {
      if (a.kind === 'cancel-home-proof') this.#run(this.registration.cancelReturnHome(now), now);
      else if (a.kind === 'prove-home') this.#startReturnHome(a.link, now);
    }
    this.#rearm();
  }

  /** The returning-home BU out of `link` (registration.returnHome, sent by #sendSignaling). */
  #startReturnHome(link: string, now: number): void {
    this.#env.log.info('home-candidate', { link });
    this.#emit('home-candidate', { link });
    // Without a channel (we start at home) the handshake goes out of that link too.
    this.#ensureChannel(now);
    this.#run(this.registration.returnHome(now), now);
  }

  /** The HA's BA proved the home link: the HoA moves there (RFC 6275 §11.5.4). */
  async #enterHome(homeLink: MnHomeLinkControl, home: CareOfCandidate): Promise<void> {
    const link = home.homeLink as string;
    await homeLink
      .enter(link)
      .catch((err: unknown) => this.#env.log.error('enter-home', { error: String(err) }));
    if (this.#closed) return;
    this.#movement.enteredHome(home);
    const agent6 = this.#agents.agent6;
    if (agent6 !== undefined)
      this.#agent = resolveLocator({ address: agent6, port: this.#agentPort });
    this.#env.log.info('home', { link });
    this.#emit('home', { link });
    // The HA no longer proxies for us; take the address back on the link.
    homeLink.announce?.(link);
    // Route optimization: correspondent deregistrations at home.
    this.#opts.routeOptimization?.setCareOf(home, nodeNow(this.#env));
    this.#rearm();
  }

  /** A new care-of for the tunnel (or none): a move, signaled at once. */
  #moveTo(chosen: CareOfCandidate | null, old: CareOfCandidate | null, now: number): void {
    this.#movement.moved(chosen);
    if (chosen) {
      const address = chosen.family === 4 ? this.#agents.agent4! : this.#agents.agent6!;
      this.#agent = resolveLocator({ address, port: this.#agentPort });
      if (old) this.counters.moves++;
      this.#env.log.info(old ? 'move' : 'attach', {
        careOf: chosen.localAddress,
        ...(old ? { from: old.localAddress } : {}),
        agent: formatLocator(this.#agent),
      });
      this.#emit(old ? 'move' : 'attach', { careOf: chosen.localAddress, family: chosen.family });
      this.#ensureChannel(now);
    } else {
      this.#env.log.warn('detached', { from: old?.localAddress ?? '' });
      this.#emit('detached', {});
    }
    this.#run(
      this.registration.setCareOf(
        chosen ? { family: chosen.family, localAddress: chosen.localAddress } : null,
        now,
      ),
      now,
    );
    // Route optimization: RR + correspondent BUs again after every move (RFC 6275 §11.7.2).
    this.#opts.routeOptimization?.setCareOf(chosen, now);
  }

  // ---- reachability, sleep/resume, HA address changes ------------------------------------

  #probe(now: number, why: string): void {
    this.counters.probes++;
    this.#env.log.info('probe', { why, silentMs: Math.round(this.#movement.silentMs(now)) });
    this.#emit('probe', { why });
    this.#run(this.registration.probe(now, this.#opts.probeTimeoutMs ?? 1000), now);
  }

  /** probeAttempts BUs went unanswered: look for another path to the HA. */
  #pathLost(now: number, unanswered: number): void {
    this.counters.pathLost++;
    this.#env.log.warn('path-lost', { unanswered });
    this.#emit('path-lost', { unanswered });
    this.#recheck();
    // Another home agent of the prefix, learned by DHAAD / MPA: try the next one.
    if (this.#failOver(now)) return;
    // The HA may have lost our channel (restart): a fresh handshake, old keys kept meanwhile.
    const session = this.#session;
    if (session !== undefined && !session.pending) {
      this.#sendRaw(this.#env.endpoint.connect(this.#agentKey, now));
      this.#endpointDeadline = 0;
    }
    const resolve = this.#opts.resolveAgents;
    if (resolve === undefined || this.#resolving || this.#haAddress !== this.#opts.homeAgentAddress)
      return;
    this.#resolving = true;
    resolve()
      .then((agents) => {
        const a = this.#agents;
        if (agents.agent4 === a.agent4 && agents.agent6 === a.agent6) return;
        this.#env.log.info('agent-resolved', {
          agent4: agents.agent4 ?? '-',
          agent6: agents.agent6 ?? '-',
        });
        this.#emit('agent-resolved', { ...agents });
        this.#agents = { agent4: agents.agent4, agent6: agents.agent6 };
        this.#discovery.setConfiguredAgents(this.#agents);
        this.#opts.careOf.setAgents?.(this.#agents);
        // Force a fresh choice against the new addresses: the care-of is re-registered there.
        const cur = this.#movement.careOf;
        const address = cur ? (cur.family === 4 ? agents.agent4 : agents.agent6) : undefined;
        if (cur && address !== undefined) {
          this.#agent = resolveLocator({ address, port: this.#agentPort });
          const t = nodeNow(this.#env);
          this.#sendRaw(this.#env.endpoint.connect(this.#agentKey, t));
          this.#endpointDeadline = 0;
          this.#run(this.registration.probe(t, this.#opts.probeTimeoutMs ?? 1000), t);
        } else {
          this.#movement.forgetCareOf();
          this.#recheck();
        }
      })
      .catch((err: unknown) => this.#env.log.warn('agent-resolve', { error: String(err) }))
      .finally(() => {
        this.#resolving = false;
      });
  }

  /**
   * Dynamic HA address discovery and mobile prefix discovery inside the channel (RFC 6275
   * §11.4; src/protocol/home-agent-discovery.ts): a DHAAD Request to the home prefix's HA
   * anycast address and a Mobile Prefix Solicitation to the HA. Answers update `homeAgents` /
   * `homePrefixes` and emit 'home-agents' / 'home-prefix'.
   */
  discover(): void {
    const now = nodeNow(this.#env);
    this.#runDiscovery(this.#discovery.discover(now), now);
    this.#rearm();
  }

  /** Executes what the discovery client decided. */
  #runDiscovery(actions: HomeAgentDiscoveryAction[], now: number): void {
    for (const a of actions) {
      switch (a.kind) {
        case 'send':
          this.#sendSignaling(a.packet, now);
          break;
        case 'homeAgents':
          this.#env.log.info('home-agents', { list: a.list.join(',') });
          this.#emit('home-agents', { list: a.list });
          break;
        case 'homePrefixes':
          this.#env.log[a.ours ? 'info' : 'warn'](a.ours ? 'home-prefix' : 'home-prefix-changed', {
            prefixes: a.prefixes.map((p) => `${p.prefix} valid ${p.validLifetime}`).join(','),
          });
          this.#emit(a.ours ? 'home-prefix' : 'home-prefix-changed', { prefixes: a.prefixes });
          break;
        case 'acknowledge':
          if (this.registration.state !== 'registered') break;
          // An unsolicited MPA is acknowledged by a home-registration BU (RFC 6275 §11.4.3).
          this.#env.log.info('mobile-prefix-unsolicited', { ack: 'binding-update' });
          this.#run(this.registration.onBindingRefreshRequest(now), now);
          break;
        case 'drop':
          this.drops.add(a.reason);
          break;
        case 'unanswered':
          this.#env.log.warn('discovery-unanswered', { dhaad: a.dhaad, mps: a.mps });
          break;
      }
    }
  }

  /**
   * The home agents to fail over to, in DHAAD order (else by announced preference), each with
   * what reaching it takes (HomeAgentDiscoveryClient.failoverList).
   */
  failoverList(now = nodeNow(this.#env)): FailoverEntry[] {
    return this.#discovery.failoverList(now);
  }

  /** Switches to the home agent after the current one in failoverList(); false if none. */
  #failOver(now: number): boolean {
    const next = this.#discovery.nextHomeAgent(this.#haAddress, now);
    if (next === undefined) return false;
    const from = this.#haAddress;
    this.#haAddress = next.address;
    this.#agentKey = next.publicKey;
    this.#agentPort = next.port;
    this.#agents = { agent4: next.agent4, agent6: next.agent6 };
    this.#opts.careOf.setAgents?.(this.#agents);
    const old = this.registration.bindingUpdateListEntry();
    this.#bul.delete(old.destination, old.homeAddress); // a new registration, elsewhere
    this.#registration = this.#newRegistration(now);
    this.#bul.set(this.registration.bindingUpdateListEntry());
    this.#session = undefined;
    this.#pendingSignaling = [];
    this.#pendingOnHomeLink = undefined;
    // Proven with the other HA or not at all: ask this one; a fresh care-of choice.
    this.#movement.switchedHomeAgent();
    this.#discovery.switchHomeAgent(next.address); // its view, once registered there
    this.#env.log.warn('home-agent-switch', {
      from,
      to: next.address,
      agent4: next.agent4 ?? '-',
      agent6: next.agent6 ?? '-',
      port: next.port,
    });
    this.#emit('home-agent-switch', { from, to: next.address });
    // Against the new HA's addresses: channel, then the first BU.
    this.#recheck();
    return true;
  }

  #onDiscovery(packet: Uint8Array, now: number): void {
    this.#capture(packet, now);
    let msg;
    try {
      msg = decodePacket(packet).icmpv6;
    } catch {
      msg = undefined;
    }
    if (msg === undefined || msg.checksumValid === false) {
      this.drops.add('discovery-malformed');
      return;
    }
    this.counters.signalingIn++;
    this.#runDiscovery(this.#discovery.onMessage(msg, now), now);
  }

  /** The process was frozen or the host slept: the world may have changed under us. */
  #resumed(now: number, how: string, ms: number): void {
    this.counters.resumes++;
    this.#env.log.info('resume', { how, ms: Math.round(ms) });
    this.#emit('resume', { how, ms });
    this.#recheck();
    this.#probe(now, 'resume');
  }

  #ensureChannel(now: number): void {
    const endpoint = this.#env.endpoint;
    const existing = endpoint.session(this.#agentKey);
    // #session is either a handshake still in flight or a verified home-agent channel: the
    // data path sends on it as soon as it is established.
    if (existing?.established) {
      this.#session = this.#isHomeAgentSession(existing) ? existing : undefined;
      return;
    }
    if (existing?.pending) {
      this.#session = existing;
      return;
    }
    const init = endpoint.connect(this.#agentKey, now);
    this.#session = endpoint.session(this.#agentKey);
    this.#sendRaw(init);
    this.#endpointDeadline = 0;
  }

  #socket(): UdpEndpoint | undefined {
    if (this.#agent === undefined) return undefined;
    return this.#agent.family === 4 ? this.#env.udp4 : this.#env.udp6;
  }

  #sendRaw(data: Uint8Array): void {
    const sock = this.#socket();
    // No path away while a home link is being proven (we start there): a handshake goes
    // out of that link, like the returning-home BU it is needed for.
    const movement = this.#movement;
    if (movement.careOf === null && movement.homeProof !== undefined) this.#sendOnHomeLink(data);
    else if (sock && this.#agent) sock.send(data, this.#agent.address, this.#agent.port);
  }

  /**
   * Out of the candidate home link only (never routed: hop limit 255, native/udp.c) to the
   * solicited-node group of the HA's home address (RFC 4291 §2.7.1): like the Neighbor
   * Solicitation for it, this needs no route, and only the holder of that address listens.
   * The HA answers to our link-local address on that link.
   */
  #sendOnHomeLink(data: Uint8Array): boolean {
    const proof = this.#movement.homeProof;
    const sock = this.#env.udp6;
    if (proof === undefined || sock === undefined) return false;
    const group = solicitedNodeMulticast(this.#haAddress);
    return sock.send(data, `${group}%${proof.ifindex}`, this.#agentPort);
  }

  // ---- registration actions --------------------------------------------------------------

  #run(actions: HomeRegistrationAction[], now: number): void {
    for (const a of actions) {
      switch (a.kind) {
        case 'sendBindingUpdate': {
          const packet = encodeMobilityPacket({
            source: a.innerSource,
            destination: a.innerDestination,
            ...(a.homeAddressOption !== undefined ? { homeAddress: a.homeAddressOption } : {}),
            message: a.message,
          });
          this.#env.log.debug('bu', {
            seq: a.message.sequence,
            lifetime: a.message.lifetimeUnits * 4,
            reason: a.reason,
            careOf: a.careOf.localAddress,
          });
          if (a.onHomeLink) this.#sendSignalingOnHomeLink(packet, now);
          else this.#sendSignaling(packet, now);
          const unanswered = this.registration.unansweredSends - 1;
          for (const l of this.#movement.bindingUpdateSent(unanswered, a.onHomeLink === true)) {
            if (l.kind === 'path-lost') this.#pathLost(now, l.unanswered);
          }
          break;
        }
        case 'registered':
          this.#movement.registered();
          this.#env.log.info('registered', {
            careOf: a.careOf.localAddress,
            lifetime: a.lifetimeSeconds,
            nat: a.natDetected,
            natKeepalive: a.refreshTime,
            status: baStatusName(a.status),
          });
          this.#emit('registered', { careOf: a.careOf.localAddress, nat: a.natDetected });
          // Home agents and home prefixes: once, whenever the HA asks, before learned ones expire.
          this.#runDiscovery(
            this.#discovery.onRegistered(now, a.lifetimeSeconds, a.prefixDiscoveryNeeded),
            now,
          );
          break;
        case 'failed':
          this.#env.log.error('registration-failed', {
            status: a.status,
            statusName: a.statusName,
          });
          this.#emit('failed', { status: a.status, statusName: a.statusName });
          break;
        case 'deregistered':
          this.#env.log.info('deregistered', { status: a.status ?? -1, gaveUp: a.gaveUp });
          this.#emit('deregistered', { gaveUp: a.gaveUp });
          // Home: the HA no longer proxies for us; take the address back (RFC 6275 §11.5.4).
          const atHome = this.#movement.atHome;
          if (atHome !== undefined) this.#opts.homeLink?.announce?.(atHome);
          this.#deregistered?.();
          break;
        case 'bindingExpired':
          this.#env.log.warn('binding-expired', {});
          this.#emit('binding-expired', {});
          break;
        case 'returnedHome': {
          // The HA saw our BU arrive on its home link: deregistered there, the HoA may move.
          this.#env.log.info('deregistered', { status: a.status, gaveUp: false, home: true });
          this.#emit('deregistered', { gaveUp: false, home: true });
          this.#movement.homeProven();
          this.#recheck(); // the move itself runs with the care-of choice (serialised)
          break;
        }
        case 'returnHomeFailed':
          this.#homeFailed(a.status, now);
          break;
      }
    }
    this.#bul.set(this.registration.bindingUpdateListEntry());
    this.#rearm();
  }

  /** The candidate home link failed its proof: stay away, rest that link (see the top). */
  #homeFailed(status: number | null, now: number): void {
    const { link, waitMs } = this.#movement.homeRefused(now);
    this.counters.homeRefused++;
    const fields = {
      link: link ?? '?',
      status: status ?? -1,
      why: status === null ? 'no answer' : baStatusName(status),
      retryInS: waitMs / 1000,
    };
    this.#env.log.warn('home-refused', fields);
    this.#emit('home-refused', fields);
  }

  /** A returning-home BU: sealed in the HA channel, out of the candidate home link only. */
  #sendSignalingOnHomeLink(packet: Uint8Array, now: number): void {
    this.#capture(packet, now);
    const session = this.#session;
    if (session === undefined || !session.established) {
      this.#pendingOnHomeLink = packet; // the latest: it carries the newest sequence number
      return;
    }
    const msg = this.#env.endpoint.seal(session, packet, now, DataKind.SIGNALING);
    if (msg !== null && this.#sendOnHomeLink(msg)) this.counters.signalingOut++;
    else this.drops.add('signaling-send');
  }

  #sendSignaling(packet: Uint8Array, now: number): void {
    this.#capture(packet, now);
    this.#movement.sent();
    const session = this.#session;
    if (session === undefined || !session.established) {
      this.#pendingSignaling.push(packet);
      if (this.#pendingSignaling.length > 8) this.#pendingSignaling.shift();
      return;
    }
    if (
      this.#agent &&
      sendSealed(this.#env.endpoint, session, packet, this.#socket(), this.#agent, now)
    ) {
      this.counters.signalingOut++;
    } else {
      this.drops.add('signaling-send');
    }
  }

  #flushPending(now: number): void {
    const pending = this.#pendingSignaling;
    this.#pendingSignaling = [];
    const onLink = this.#pendingOnHomeLink;
    this.#pendingOnHomeLink = undefined;
    if (onLink !== undefined && this.#movement.homeProof !== undefined) {
      this.#sendSignalingOnHomeLink(onLink, now);
    }
    const session = this.#session;
    for (const p of pending) {
      if (
        session &&
        this.#agent &&
        sendSealed(this.#env.endpoint, session, p, this.#socket(), this.#agent, now)
      ) {
        this.counters.signalingOut++;
      }
    }
  }

  // ---- underlay -> TUN -------------------------------------------------------------------

  #onDatagrams(socket: UdpEndpoint, batch: DatagramBatch): void {
    const env = this.#env;
    const now = nodeNow(env);
    const n = batch.count;
    if (this.#openOut.results.length < n) {
      this.#openOut = { results: new Uint8Array(n * 2), sessions: [] };
      this.#tunOffsets = new Uint32Array(n * 2);
      this.#tunLengths = new Uint32Array(n * 2);
    }
    const out = this.#openOut;
    env.endpoint.openBatch(batch.buf, batch.offsets, batch.lengths, n, now, out);
    const buf = batch.buf;
    let w = 0;
    // Direct (route-optimized) data joins the same TUN batch write.
    const toTun = (o: number, l: number): void => {
      this.#tunOffsets[w] = o;
      this.#tunLengths[w] = l;
      w++;
    };
    for (let i = 0; i < n; i++) {
      const result = out.results[i];
      if (result === OpenResult.NOT_DATA) {
        this.#onHandshake(
          socket,
          batch.packet(i).slice(),
          { address: batch.remoteAddress(i), port: batch.remotePort(i) },
          now,
        );
        continue;
      }
      if (result !== OpenResult.DATA && result !== OpenResult.SIGNALING) continue;
      const signaling = result === OpenResult.SIGNALING;
      if (out.sessions[i] !== this.#session) {
        const ro = this.#opts.routeOptimization;
        const o = batch.offsets[i]! + DATA_HEADER_LEN;
        const l = batch.lengths[i]! - DATA_OVERHEAD;
        const from = (): Locator => ({
          address: batch.remoteAddress(i),
          port: batch.remotePort(i),
        });
        if (!ro?.fromDirect(out.sessions[i]!, buf, o, l, signaling, from, now, toTun))
          this.drops.add('not-home-agent');
        continue;
      }
      this.#movement.heard(now);
      const off = batch.offsets[i]! + DATA_HEADER_LEN;
      const len = batch.lengths[i]! - DATA_OVERHEAD;
      if (signaling && len === PATH_MESSAGE_LEN) {
        this.#onPathChallenge(buf, off, len, now);
        continue;
      }
      if (len < IPV6_HEADER_LEN || buf[off]! >> 4 !== 6) {
        this.drops.add('malformed-inner');
        continue;
      }
      if (!ipv6Equal(buf, off + IPV6_DST_OFF, this.#hoa, 0)) {
        this.drops.add('not-for-home-address');
        continue;
      }
      // Trust (DESIGN.md §4): the HA forwards anybody's packets to our home address into this
      // channel, so only what the HA marked as its own (SIGNALING) is home-agent signaling.
      // Forwarded Mobility Headers and mobility ICMPv6 are somebody else's: only the
      // correspondent's HoT / HoTI travel that way (authenticated by return routability).
      if (signaling) {
        this.#fromHomeAgent(buf.slice(off, off + len), now);
        continue;
      }
      const sig = mobilitySignal(buf, off, len);
      if (sig === 'rr') {
        this.#onSignaling(buf.slice(off, off + len), now, true);
        continue;
      }
      if (sig !== undefined) {
        this.drops.add('forwarded-signaling');
        continue;
      }
      this.counters.tunnelPacketsIn++;
      this.counters.tunnelBytesIn += len;
      this.#opts.routeOptimization?.noteTunnelIn(buf, off);
      if (env.capture) this.#capture(buf.subarray(off, off + len), now);
      this.#tunOffsets[w] = off;
      this.#tunLengths[w] = len;
      w++;
    }
    writeToTun(env.tun, buf, this.#tunOffsets, this.#tunLengths, w, this.drops);
    this.#rearm();
  }

  #onHandshake(socket: UdpEndpoint, datagram: Uint8Array, from: Locator, now: number): void {
    const r = this.#env.endpoint.receive(datagram, now, undefined, formatLocator(from));
    this.#endpointDeadline = 0;
    switch (r.kind) {
      case 'reply':
        socket.send(r.data, from.address, from.port);
        break;
      case 'established':
        if (r.reply) socket.send(r.reply, from.address, from.port);
        if (r.session === this.#session && !this.#isHomeAgentSession(r.session)) {
          // We opened it to the HA key we were given, and the certificate behind that key is no
          // home agent of ours: nothing goes to it (a later attempt starts from scratch).
          this.#session = undefined;
        } else if (this.#isHomeAgentSession(r.session)) {
          this.#session = r.session;
          this.#env.log.info('channel', {
            peer: r.session.peerName ?? '?',
            locator: formatLocator(from),
          });
          this.#flushPending(now);
        } else {
          this.#opts.routeOptimization?.onSessionEstablished(r.session, now);
        }
        break;
      case 'cookie':
      case 'data':
      case 'drop':
        break;
    }
  }

  /**
   * The home-agent channel is the one with the key of the HA in use (configured, or learned from
   * an authenticated MPA of our HA for failover) whose certificate has role `ha` and holds our
   * home address. Any other handshake, whoever completes it first, is at most a correspondent.
   */
  #isHomeAgentSession(session: PeerSession): boolean {
    if (!bytesEqual(session.peerPublicKey, this.#agentKey)) return false;
    if (isHomeAgentFor(session.peerCertificate, this.#hoa)) return true;
    this.drops.add('home-agent-certificate');
    this.#env.log.warn('home-agent-refused', {
      peer: session.peerName ?? '?',
      role: session.peerCertificate?.role ?? '?',
      why: 'certificate is not a home agent for our home address',
    });
    return false;
  }

  /**
   * The HA checks that we receive what it sends to our new locator before it sends data there
   * (src/protocol/path-validation.ts): the challenge's token goes back on the channel at once.
   */
  #onPathChallenge(buf: Uint8Array, off: number, len: number, now: number): void {
    const m = decodePathMessage(buf, off, len);
    const session = this.#session;
    const agent = this.#agent;
    if (m === undefined || m.type !== PATH_CHALLENGE || session === undefined || !agent) {
      this.drops.add('path-message-unexpected');
      return;
    }
    const response = encodePathMessage(PATH_RESPONSE, m.token);
    if (sendSealed(this.#env.endpoint, session, response, this.#socket(), agent, now)) {
      this.counters.signalingOut++;
    } else {
      this.drops.add('signaling-send');
    }
  }

  /** A packet the home agent marked as its own signaling (DataKind.SIGNALING). */
  #fromHomeAgent(packet: Uint8Array, now: number): void {
    const sig = mobilitySignal(packet, 0, packet.length);
    if (sig === 'mh' || sig === 'rr') this.#onSignaling(packet, now, false);
    else if (sig === 'discovery') this.#onDiscovery(packet, now);
    else this.drops.add('unexpected-signaling');
  }

  /**
   * A Mobility Header packet: `forwarded` = it came as payload (a correspondent's HoT / HoTI
   * relayed by the HA), else the HA marked it as its own signaling.
   */
  #onSignaling(packet: Uint8Array, now: number, forwarded: boolean): void {
    this.#capture(packet, now);
    let decoded;
    try {
      decoded = decodePacket(packet);
    } catch (err) {
      this.drops.add(err instanceof WireError ? `wire-${err.code}` : 'malformed-inner');
      return;
    }
    const mh = decoded.mobility;
    if (mh === undefined || mh.checksumValid === false) {
      this.drops.add('mh-invalid');
      return;
    }
    const rr = mh.kind === 'homeTest' || mh.kind === 'homeTestInit';
    if (forwarded !== rr) {
      // Return routability's HoT/HoTI only ever come forwarded; everything else only from the HA.
      this.drops.add(forwarded ? 'forwarded-signaling' : `unexpected-${mh.kind}`);
      return;
    }
    this.counters.signalingIn++;
    switch (mh.kind) {
      case 'bindingAcknowledgement':
        this.#run(this.registration.onBindingAcknowledgement(mh, now), now);
        break;
      case 'bindingRefreshRequest':
        this.#env.log.info('refresh-request', {});
        this.#run(this.registration.onBindingRefreshRequest(now), now);
        break;
      case 'homeTest':
      case 'homeTestInit':
        // HoT for our correspondent registrations, HoTI for our CN half (route-optimization.ts).
        if (!this.#opts.routeOptimization?.fromTunnelSignaling(packet, now)) {
          this.drops.add(`unexpected-${mh.kind}`);
        }
        break;
      case 'bindingError':
      case 'bindingUpdate':
      case 'careOfTest':
      case 'careOfTestInit':
      case 'unknown':
        this.drops.add(`unexpected-${mh.kind}`);
        break;
    }
  }

  // ---- TUN -> underlay -------------------------------------------------------------------

  #onTunPackets(batch: PacketBatch): void {
    const env = this.#env;
    const now = nodeNow(env);
    const session = this.#session;
    const sock = this.#socket();
    if (
      session === undefined ||
      !session.established ||
      sock === undefined ||
      this.#agent === undefined
    ) {
      this.drops.add('no-channel', batch.count);
      return;
    }
    const buf = batch.buf;
    const writer = this.#writer;
    writer.clear();
    for (let i = 0; i < batch.count; i++) {
      const off = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      if (len < IPV6_HEADER_LEN || buf[off]! >> 4 !== 6) {
        this.drops.add('tun-not-ipv6');
        continue;
      }
      if (this.#opts.routeOptimization?.fromTun(buf, off, len, now)) continue;
      if (env.capture) this.#capture(buf.subarray(off, off + len), now);
      this.counters.tunnelPacketsOut++;
      this.counters.tunnelBytesOut += len;
      writer.push(off, len);
    }
    this.#opts.routeOptimization?.flushDirect(now); // the direct runs: one seal + send each
    const n = writer.count;
    const sent = writer.flush(env.endpoint, session, buf, sock, this.#agent, now);
    if (sent < n) this.drops.add(sent === 0 ? 'no-keys' : 'udp-send', n - sent);
    if (sent > 0 && this.#movement.sent()) this.#rearm(); // the silence deadline just started
  }

  #capture(packet: Uint8Array, now: number): void {
    this.#env.capture?.write(packet, now * 1000);
  }

  // ---- timers ----------------------------------------------------------------------------

  #rearm(): void {
    if (this.#closed) return;
    const deadline = Math.min(
      this.registration.nextDeadline(),
      this.#endpointDeadline,
      this.#movement.nextDeadline(this.registration.state === 'registered'),
      this.#discovery.nextDeadline(),
      this.#opts.routeOptimization?.nextDeadline() ?? Infinity,
      this.#closeBy,
    );
    // A deadline in the past fires at once: lateness counts from now.
    this.#movement.armed(deadline, nodeNow(this.#env));
    armTimer(this.#env, deadline, () => this.#onTimer());
  }

  #onTimer(): void {
    if (this.#closed) return;
    const env = this.#env;
    const now = nodeNow(env);
    if (now >= this.#closeBy) {
      this.#closeBy = Infinity;
      this.#deregistered?.(); // close() stops waiting for the BA
    }
    const registered = this.registration.state === 'registered';
    for (const a of this.#movement.poll(now, this.#wallClock(), registered)) {
      if (a.kind === 'resume') this.#resumed(now, a.how, a.ms);
      else if (a.kind === 'probe') this.#probe(now, a.why);
      else if (a.kind === 'recheck') this.#recheck();
    }
    const polled = env.endpoint.poll(now);
    for (const { peer, data } of polled.send) {
      if (!this.#opts.routeOptimization?.sendHandshake(peer, data)) this.#sendRaw(data);
    }
    this.#endpointDeadline = polled.nextDeadline;
    this.#runDiscovery(this.#discovery.poll(now), now);
    this.#run(this.registration.poll(now), now);
    this.#opts.routeOptimization?.poll(now);
  }

  // ---- status and shutdown ---------------------------------------------------------------

  status(): MemberStatus {
    const now = nodeNow(this.#env);
    const ro = this.#opts.routeOptimization;
    return renderMnStatus({
      now,
      startedAt: this.#startedAt,
      pid: process.pid,
      role: this.#opts.role ?? 'mn',
      tun: { name: this.#env.tun.name, mtu: this.#env.tun.mtu },
      homeAddress: this.#opts.homeAddress,
      homeAgentAddress: this.#haAddress,
      agentLocator: this.#agent ? formatLocator(this.#agent) : undefined,
      bulEntry: this.#bul.get(
        canonicalIpv6(this.#haAddress),
        canonicalIpv6(this.#opts.homeAddress),
      ),
      registration: this.registration.status(now),
      lifetimeRequested: this.#opts.lifetimeSeconds,
      homeAgents: this.homeAgents,
      learnedAgents: this.learnedAgents,
      usableAgents: new Set(this.failoverList(now).map((c) => c.address)),
      homePrefixes: this.homePrefixes,
      correspondents: ro ? ro.status(now) : [],
      bindings: ro?.bindings ? ro.bindingStatus(now) : undefined,
      counters: this.counters,
      drops: this.drops.byReason,
      channelDrops: this.#env.endpoint.drops,
      routeOptimizationDrops: ro?.drops.byReason ?? {},
    });
  }

  /**
   * Deregisters (BU with lifetime 0) and waits for the BA or for the machine to give up,
   * at most `timeoutMs`; then stops timers. The caller closes the I/O.
   */
  async close(timeoutMs = 3000): Promise<void> {
    if (this.#closed) return;
    const now = nodeNow(this.#env);
    this.#opts.routeOptimization?.close(now); // correspondent deregistrations (best effort)
    const registered =
      this.registration.state === 'registered' ||
      this.registration.state === 'registering' ||
      this.registration.state === 'returning-home';
    if (registered && this.#session?.established) {
      const done = new Promise<void>((resolve) => {
        this.#deregistered = resolve;
      });
      this.#closeBy = now + timeoutMs; // a deadline of the node's one timer (env.clock)
      this.#run(this.registration.deregister(now), now);
      await done;
    }
    this.#closed = true;
    this.#env.clock.clearTimer();
    this.#opts.careOf.close();
    const atHome = this.#movement.atHome;
    if (atHome !== undefined && this.#opts.homeLink) {
      await this.#opts.homeLink.leave(atHome).catch(() => undefined);
    }
  }
}
