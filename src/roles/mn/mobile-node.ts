/**
 * The mobile node (RFC 6275 §11, RFC 5555 §4; DESIGN.md §2-§5), a driver: its home address
 * lives on the TUN; everything from it is reverse-tunneled to the home agent through the
 * channel, and everything for it comes back the same way. The decisions are the engines':
 *   protocol/mobile-node-registration.ts  BU/BA, retransmission, refresh, returning home
 *   protocol/movement.ts                  care-of choice, home-link proof steps, NUD-like
 *                                         probing, path loss, sleep/resume, re-checks
 *   protocol/home-agent-discovery-client.ts  DHAAD / MPS, learned home agents, failover order
 *   protocol/binding-update-list.ts       what the MN told its HA (kept from the registration)
 * This file runs them on I/O: one timer (env.clock) armed from their next deadlines.
 *
 * Startup: the channel handshake with the HA (Noise IK, home-agent-channel.ts) and, in
 *   parallel, the first care-of probe. The first BU waits for the channel, then goes out at once.
 * TUN -> underlay: route optimization takes bound correspondents' packets; the rest is sealed
 *   in place (one run per batch) and sent to the HA's address of the care-of family in use.
 * Underlay -> TUN: data from the HA's channel is opened in place and must be addressed to our
 *   home address; what the HA marked as SIGNALING goes to the engines, the rest to the TUN.
 * Movement: a changed care-of -> setCareOf -> BU now. The old locator keeps working until the
 *   BA (make-before-break: the channel accepts data from any locator).
 * Home link (RFC 6275 §11.5.4; issue #13): a `homeLink` candidate is only a candidate (a rogue
 *   Router Advertisement or an evil twin's Neighbor Advertisement produce one too). The proof
 *   is the home agent's: the returning-home BU goes out of that interface only, to the
 *   solicited-node group of the HA's home address with hop limit 255, and the HA accepts it only
 *   from its home link. Until that BA (0) nothing changes; then the HoA moves from the TUN to
 *   that interface and unsolicited NAs announce it. Leaving home moves it back before
 *   registering. Without homeLink control ([movement] return_home = false) never home.
 * Path lost: re-check care-of addresses, then the next home agent in DHAAD order if DHAAD / MPAs
 *   named others, else a fresh handshake (the HA may have restarted) and a re-resolved name.
 * Shutdown: deregistration BU (lifetime 0), waited for until a deadline of the same timer.
 */
import type { MemberStatus } from '../../io/control-protocol.js';
import { BindingUpdateList } from '../../protocol/binding-update-list.js';
import { baStatusName } from '../../protocol/constants.js';
import {
  HomeAgentDiscoveryClient,
  type FailoverEntry,
  type HomeAgentDiscoveryAction,
  type HomePrefix,
  type LearnedHomeAgent,
} from '../../protocol/home-agent-discovery-client.js';
import { formatLocator } from '../../protocol/locator.js';
import {
  HomeRegistration,
  type HomeRegistrationAction,
} from '../../protocol/mobile-node-registration.js';
import { classifyMobileNodeSignal } from '../../protocol/mobile-node-signaling.js';
import { ErrorRateLimiter } from '../../protocol/mobility-header-check.js';
import { LATE_TIMER_MS, MovementDetector, type CareOfCandidate } from '../../protocol/movement.js';
import { expressHarvestMs } from './mn-express.js';
import { systemRandom, type RandomSource } from '../../util/random-source.js';
import { systemWallClock, type WallClock } from '../../util/wall-clock.js';
import { canonicalIpv6, parseIpv4, parseIpv6 } from '../../wire/address.js';
import { ipv4AckStatusName } from '../../protocol/ipv4-home-addresses.js';
import { encodeMobilityPacket } from '../../wire/packet.js';
import { BE_STATUS } from '../../wire/types.js';
import {
  armTimer,
  DropCounters,
  expressCounters,
  nodeNow,
  type NodeEnvironment,
} from '../common.js';
import { HomeAgentChannel } from './home-agent-channel.js';
import { HomeTunnel } from './home-tunnel.js';
import { TunnelMtu } from '../tunnel-mtu.js';
import { DEFAULT_UNDERLAY_MTU } from '../../config/common.js';
import type { PeerSession } from '../../crypto/endpoint.js';
import type { MnHomeLinkControl, MobileNodeOptions } from './mobile-node-options.js';
import { renderMnStatus } from './mobile-node-status.js';
import { offloadNames } from '../offloads.js';

export type { CareOfCandidate } from '../../protocol/movement.js';

export type { CareOfSource, MnHomeLinkControl, MobileNodeOptions } from './mobile-node-options.js';

/**
 * First retransmission timeout of a move's BU (ms). Deviation from INITIAL_BINDACK_TIMEOUT
 * (1 s, RFC 6275 §12): in the lab the first packets on a link that has just come up are often
 * lost (the far end's carrier/neighbour state settles), and a whole second of waiting was most
 * of the handover time. Still doubling, still under the 3 BUs/s cap (MAX_UPDATE_RATE).
 */
const MOVE_BINDACK_TIMEOUT_MS = 250;
/** After every known HA refused: first retry (ms), doubling up to the cap. */
const REFUSED_RETRY_MIN_MS = 5_000;
const REFUSED_RETRY_MAX_MS = 120_000;

/** Parameter Problems / Binding Errors the MN answers with, per second (RFC 6275 §9.3.3). */
const ERROR_ANSWERS_PER_SECOND = 10;

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
  /** Parameter Problems and Binding Errors we answer with (RFC 6275 §9.3.3, RFC 4443 §2.4). */
  readonly #errorAnswers = new ErrorRateLimiter(ERROR_ANSWERS_PER_SECOND);
  /** Home agents that refused us (#refusedHere) in this round of failovers. */
  readonly #refusedBy = new Set<string>();
  /**
   * Every home agent we know refused us (BA 130-133): when to try again without waiting for a
   * move, and the wait after that (doubling, capped). A refusal can pass (a cluster's etcd back,
   * a binding freed), and an MN left without any home agent must not stay so until it moves.
   */
  #retryRefusedAt = Infinity;
  #retryRefusedDelayMs = REFUSED_RETRY_MIN_MS;
  readonly #env: NodeEnvironment;
  readonly #opts: MobileNodeOptions;
  readonly #hoa: Uint8Array;
  /** [home] agent_port list: the port that worked per network, tries since registering. */
  readonly #portByNetwork = new Map<string, number>();
  #portTries = 0;
  /** BUs of the outstanding attempt sent before the current port was chosen. */
  #portSendsBase = 0;
  /** Why the HA cannot be reached, when we know (for `mip6 status`). */
  #unreachable: string | undefined;
  /** A captive-portal probe is running. */
  #portalProbing = false;
  /** The portal login window ([movement] portal_login) is open until then (node time). */
  #portalOpenUntil: number | null = null;
  /** The care-of the window was opened on: once per network (until a move or registration). */
  #portalOpenedOn: string | null = null;
  /** Opening and closing the portal login window, one after the other. */
  #portalChain: Promise<void> = Promise.resolve();
  /** The IPv4 home address the HA granted (RFC 5555), null when none. */
  #homeAddress4: string | null = null;
  readonly #tunnel: HomeTunnel;
  /** Path MTU to the home agent (issue #21). */
  readonly #mtu: TunnelMtu<PeerSession>;
  readonly #channel: HomeAgentChannel;
  #agents: { agent4?: string | undefined; agent6?: string | undefined };
  readonly #movement: MovementDetector;
  #resolving = false;
  readonly #discovery: HomeAgentDiscoveryClient;
  /** What the MN told its home agent (RFC 6275 §11.1): the home registration's entry. */
  readonly #bul = new BindingUpdateList();
  /** The home agent in use: its home-prefix address, channel key and UDP port. */
  #haAddress: string;
  readonly #random: RandomSource;
  readonly #wallClock: WallClock;
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
    const movement = () => this.#movement;
    this.#channel = new HomeAgentChannel(
      {
        env,
        drops: this.drops,
        counters: this.counters,
        homeAddress: this.#hoa,
        homeAgentAddress: () => this.#haAddress,
        homeProof: () => movement().homeProof,
        awayPathless: () => movement().careOf === null,
        sent: () => movement().sent(),
        capture: (packet, now) => this.#capture(packet, now),
        otherSession: (session, now) => opts.routeOptimization?.onSessionEstablished(session, now),
      },
      opts.agentPublicKey,
      opts.agentPort,
    );
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
    this.#mtu = new TunnelMtu(env, this.drops, {
      underlayMtu: opts.underlayMtu ?? DEFAULT_UNDERLAY_MTU,
      icmpSource6: () => this.#haAddress,
    });
    this.#tunnel = new HomeTunnel({
      env,
      mtu: this.#mtu,
      channel: this.#channel,
      routeOptimization: opts.routeOptimization,
      drops: this.drops,
      counters: this.counters,
      homeAddress: this.#hoa,
      heard: (now) => movement().heard(now),
      sent: () => movement().sent(),
      fromHomeAgent: (packet, now) => this.#onSignaling(packet, now, true),
      forwardedReturnRoutability: (packet, now) => this.#onSignaling(packet, now, false),
      capture: (packet, now) => this.#capture(packet, now),
      rearm: () => this.#rearm(),
      wakeBy: (at) => this.#wakeBy(at),
      expressHarvestMs: expressHarvestMs(opts.probeIntervalMs),
    });
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
        ipv4HomeAddress: opts.ipv4HomeAddress,
      },
      now,
    );
  }

  /**
   * The BA's RFC 5555 IPv4 Address Acknowledgement: a new (or lost) IPv4 home address goes to
   * the data path (what the HA's channel may deliver to the TUN) and onto the TUN.
   */
  #ipv4HomeAddress(address: string | null, status: number | null): void {
    if (this.#opts.ipv4HomeAddress === undefined) return;
    if (status !== null && status >= 128) {
      this.#env.log.warn('ipv4-home-address-refused', {
        status,
        statusName: ipv4AckStatusName(status),
      });
    }
    if (address === this.#homeAddress4) return;
    const previous = this.#homeAddress4;
    this.#homeAddress4 = address;
    this.#tunnel.homeAddress4 = address === null ? undefined : parseIpv4(address);
    this.#env.log.info('ipv4-home-address', { address: address ?? '-', previous: previous ?? '-' });
    this.#emit('ipv4-home-address', { address, previous });
    const control = this.#opts.homeAddress4Control;
    control?.set(address, previous).catch((err: unknown) => {
      this.#env.log.error('ipv4-home-address-tun', { error: String(err) });
    });
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
    env.tun.onPackets((b) => this.#tunnel.fromTun(b));
    for (const s of [env.udp4, env.udp6]) s?.onDatagrams((b) => this.#tunnel.fromUnderlay(s, b));
    this.#opts.routeOptimization?.attach({
      sendViaHomeAgent: (packet, at) => this.#channel.sendSignaling(packet, at),
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
    this.#tunnel.expressBegin(nodeNow(this.#env));
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
        case 'cancel-home-proof':
        case 'path-lost':
        case 'probe':
        case 'prove-home':
        case 'recheck':
        case 'resume':
          // Not from onCandidates(): movement.poll() and afterMove() give these.
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
    this.#channel.ensure(now);
    this.#run(this.registration.returnHome(now), now);
  }

  /** The HA's BA proved the home link: the HoA moves there (RFC 6275 §11.5.4). */
  async #enterHome(homeLink: MnHomeLinkControl, home: CareOfCandidate): Promise<void> {
    this.#tunnel.expressBegin(nodeNow(this.#env));
    const link = home.homeLink as string;
    await homeLink
      .enter(link)
      .catch((err: unknown) => this.#env.log.error('enter-home', { error: String(err) }));
    if (this.#closed) return;
    this.#movement.enteredHome(home);
    const agent6 = this.#agents.agent6;
    if (agent6 !== undefined) this.#channel.setAgent(agent6);
    this.#closePortalLogin('home');
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
    this.#tunnel.expressBegin(nodeNow(this.#env));
    this.#closePortalLogin(chosen ? 'move' : 'detached');
    this.#portalOpenedOn = null;
    this.#movement.moved(chosen);
    if (chosen) {
      this.#choosePort(chosen.localAddress);
      const address = chosen.family === 4 ? this.#agents.agent4! : this.#agents.agent6!;
      this.#channel.setAgent(address);
      if (old) this.counters.moves++;
      this.#env.log.info(old ? 'move' : 'attach', {
        careOf: chosen.localAddress,
        ...(old ? { from: old.localAddress } : {}),
        agent: formatLocator(this.#channel.agent!),
      });
      this.#emit(old ? 'move' : 'attach', { careOf: chosen.localAddress, family: chosen.family });
      this.#channel.ensure(now);
    } else {
      this.#unreachable = 'no route to the home agent (no usable care-of address)';
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

  /**
   * The HA's port for a network (keyed by our care-of address there): the one that worked
   * there last, else the first of [home] agent_port.
   */
  #choosePort(network: string): void {
    const ports = this.#opts.agentPorts ?? [];
    if (ports.length < 2 || this.#haAddress !== this.#opts.homeAgentAddress) return;
    const port = this.#portByNetwork.get(network) ?? ports[0]!;
    this.#portTries = 0;
    this.#portSendsBase = 0;
    if (port !== this.#channel.port) this.#channel.setPort(port);
  }

  /**
   * The path is lost: the next of the HA's ports ([home] agent_port list), with a fresh
   * handshake there; false once every port was tried since the last registration (then the
   * MN says so in `mip6 status`: no answer on any port).
   */
  #nextPort(now: number): boolean {
    const ports = this.#opts.agentPorts ?? [];
    if (ports.length < 2 || this.#haAddress !== this.#opts.homeAgentAddress) return false;
    this.#portTries++;
    if (this.#portTries >= ports.length) {
      this.#portTries = 0;
      this.#unreachable = 'no answer on any port';
      this.#probePortal();
      return false;
    }
    const i = ports.indexOf(this.#channel.port);
    const port = ports[(i + 1) % ports.length]!;
    this.#channel.setPort(port);
    this.#portSendsBase = this.registration.unansweredSends;
    this.#env.log.info('agent-port', { port, tried: this.#portTries });
    this.#emit('agent-port', { port });
    this.#channel.reconnect(now);
    // The next unanswered BU may report a lost path again (then the port after this one), and
    // one goes out now: queued until the new handshake completes.
    this.#movement.retryPath();
    this.#run(this.registration.probe(now, this.#opts.probeTimeoutMs ?? 1000), now);
    return true;
  }

  /**
   * No port of the HA answers: a captive portal? ([movement] portal_probe, outside the tunnel.)
   * What it finds goes into `mip6 status` until the next registration.
   */
  #probePortal(): void {
    const probe = this.#opts.portalProbe;
    const careOf = this.#movement.careOf;
    if (probe === undefined || careOf === null || this.#portalProbing) return;
    this.#portalProbing = true;
    probe(careOf.localAddress)
      .then((portal) => {
        if (portal === undefined || this.#unreachable === undefined) return;
        this.#unreachable = `captive portal: ${portal}`;
        this.#env.log.warn('captive-portal', { careOf: careOf.localAddress, portal });
        this.#emit('captive-portal', { portal });
        // Only reported, unless [movement] portal_login opted in; and only on that network.
        if (this.#movement.careOf?.localAddress === careOf.localAddress) {
          this.#openPortalLogin(careOf.localAddress);
        }
      })
      .catch(() => undefined)
      .finally(() => {
        this.#portalProbing = false;
      });
  }

  /**
   * [movement] portal_login: DNS, HTTP and HTTPS outside the tunnel for a browser's login, for
   * a limited time (a hostile network can fake a portal: what it opens leaks in clear), once
   * per network: a network that keeps the HA unreachable does not get it again by answering
   * the next probe; a move or a registration allows a new one.
   */
  #openPortalLogin(careOf: string): void {
    const login = this.#opts.portalLogin;
    if (login === undefined || this.#portalOpenUntil !== null || this.#closed) return;
    if (this.#portalOpenedOn === careOf) return;
    this.#portalOpenedOn = careOf;
    this.#portalOpenUntil = nodeNow(this.#env) + login.durationMs;
    const seconds = login.durationMs / 1000;
    this.#env.log.warn('portal-login-open', { services: 'dns,http,https', seconds });
    this.#emit('portal-login-open', { seconds });
    this.#portalChain = this.#portalChain
      .then(() => login.open())
      .catch((err: unknown) => this.#env.log.warn('portal-login', { error: String(err) }));
    this.#rearm();
  }

  /** The portal login window closes: time is up, we moved, detached, are home or registered. */
  #closePortalLogin(why: string): void {
    const login = this.#opts.portalLogin;
    if (login === undefined || this.#portalOpenUntil === null) return;
    this.#portalOpenUntil = null;
    this.#env.log.info('portal-login-closed', { why });
    this.#emit('portal-login-closed', { why });
    this.#portalChain = this.#portalChain
      .then(() => login.close())
      .catch((err: unknown) => this.#env.log.warn('portal-login', { error: String(err) }));
  }

  /** probeAttempts BUs went unanswered: look for another path to the HA. */
  #pathLost(now: number, unanswered: number): void {
    this.#tunnel.expressBegin(nodeNow(this.#env));
    this.counters.pathLost++;
    this.#env.log.warn('path-lost', { unanswered });
    this.#emit('path-lost', { unanswered });
    this.#recheck();
    // Another port of the same HA (a network that blocks the first): try the next one.
    if (this.#nextPort(now)) return;
    // Another home agent of the prefix, learned by DHAAD / MPA: try the next one.
    if (this.#failOver(now)) return;
    // The HA may have lost our channel (restart): a fresh handshake, old keys kept meanwhile.
    const session = this.#channel.session;
    if (session !== undefined && !session.pending) {
      this.#channel.reconnect(now);
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
          this.#channel.setAgent(address);
          const t = nodeNow(this.#env);
          this.#channel.reconnect(t);
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
          this.#channel.sendSignaling(a.packet, now);
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

  /**
   * This home agent will not register us whatever we send (a 'failed' action that says so, or
   * a Binding Error status 2 about our BU): the next one in failoverList() is tried at once
   * (RFC 6275 §11.7.3 leaves the choice to the MN; waiting for the next move would leave us
   * unregistered).
   */
  #refusedHere(now: number, why: string): void {
    this.#refusedBy.add(this.#haAddress);
    const next = this.#discovery.nextHomeAgent(this.#haAddress, now);
    if (next === undefined || this.#refusedBy.has(next.address) || !this.#failOver(now)) {
      // Every home agent we know refused since our last registration: no ping-pong between
      // them (one round per trigger); the next move, prefix or HA list change tries again, and
      // at the latest a timer (5 s, doubling to 2 min).
      this.#refusedBy.clear();
      this.#retryRefusedAt = now + this.#retryRefusedDelayMs;
      this.#env.log.error('no-home-agent-left', {
        why,
        homeAgent: this.#haAddress,
        retryInMs: this.#retryRefusedDelayMs,
      });
      this.#retryRefusedDelayMs = Math.min(2 * this.#retryRefusedDelayMs, REFUSED_RETRY_MAX_MS);
    }
  }

  /** The refusal timer: another round, from the next home agent (or this one, if alone). */
  #retryAfterRefusal(now: number): void {
    this.#retryRefusedAt = Infinity;
    // Only while still refused: a move since may have started (or won) a registration.
    const state = this.registration.state;
    if (state !== 'idle' && state !== 'failed') return;
    this.#env.log.info('home-agent-retry', { homeAgent: this.#haAddress });
    if (this.#failOver(now)) return;
    this.#restartRegistration(now);
    this.#movement.switchedHomeAgent(); // a fresh care-of choice: the first BU goes out
    this.#recheck();
  }

  /** A new registration engine for the current home agent (its BUL entry replaced). */
  #restartRegistration(now: number): void {
    const old = this.registration.bindingUpdateListEntry();
    this.#bul.delete(old.destination, old.homeAddress); // a new registration, elsewhere
    this.#registration = this.#newRegistration(now);
    this.#bul.set(this.registration.bindingUpdateListEntry());
  }

  /** Switches to the home agent after the current one in failoverList(); false if none. */
  #failOver(now: number): boolean {
    this.#tunnel.expressBegin(nodeNow(this.#env));
    const next = this.#discovery.nextHomeAgent(this.#haAddress, now);
    if (next === undefined) return false;
    const from = this.#haAddress;
    this.#haAddress = next.address;
    this.#channel.useHomeAgent(next.publicKey, next.port);
    this.#agents = { agent4: next.agent4, agent6: next.agent6 };
    this.#opts.careOf.setAgents?.(this.#agents);
    this.#restartRegistration(now);
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

  /** The process was frozen or the host slept: the world may have changed under us. */
  #resumed(now: number, how: string, ms: number): void {
    this.counters.resumes++;
    this.#env.log.info('resume', { how, ms: Math.round(ms) });
    this.#emit('resume', { how, ms });
    this.#recheck();
    this.#probe(now, 'resume');
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
          if (a.onHomeLink) this.#channel.sendSignalingOnHomeLink(packet, now);
          else this.#channel.sendSignaling(packet, now);
          // BUs sent to an earlier port of the HA do not count against this one.
          const unanswered = this.registration.unansweredSends - 1 - this.#portSendsBase;
          for (const l of this.#movement.bindingUpdateSent(unanswered, a.onHomeLink === true)) {
            if (l.kind === 'path-lost') this.#pathLost(now, l.unanswered);
          }
          break;
        }
        case 'registered':
          this.#unreachable = undefined;
          this.#retryRefusedAt = Infinity;
          this.#retryRefusedDelayMs = REFUSED_RETRY_MIN_MS;
          this.#closePortalLogin('registered');
          this.#portalOpenedOn = null;
          this.#portTries = 0;
          this.#portSendsBase = 0;
          if ((this.#opts.agentPorts?.length ?? 0) > 1) {
            this.#portByNetwork.set(a.careOf.localAddress, this.#channel.port);
          }
          this.#ipv4HomeAddress(a.homeAddress4, a.ipv4Status);
          this.#refusedBy.clear();
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
          if (a.tryAnotherHomeAgent) this.#refusedHere(now, a.statusName);
          break;
        case 'deregistered': {
          this.#env.log.info('deregistered', { status: a.status ?? -1, gaveUp: a.gaveUp });
          this.#emit('deregistered', { gaveUp: a.gaveUp });
          // Home: the HA no longer proxies for us; take the address back (RFC 6275 §11.5.4).
          const atHome = this.#movement.atHome;
          if (atHome !== undefined) this.#opts.homeLink?.announce?.(atHome);
          this.#deregistered?.();
          break;
        }
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

  // ---- signaling from the home agent ------------------------------------------------------

  /**
   * Signaling from the HA channel (protocol/mobile-node-signaling.ts says what is accepted):
   * `fromHomeAgent` = the HA marked it as its own, else a forwarded HoT / HoTI.
   */
  #onSignaling(packet: Uint8Array, now: number, fromHomeAgent: boolean): void {
    const sig = classifyMobileNodeSignal(packet, fromHomeAgent);
    if (sig.kind === 'ignored') {
      this.drops.add(sig.reason);
      return;
    }
    this.#capture(packet, now);
    if (sig.kind === 'refused') {
      this.drops.add(sig.reason);
      return;
    }
    this.counters.signalingIn++;
    if (sig.kind === 'answer') {
      // RFC 6275 §9.2 (Parameter Problem / Binding Error status 2), rate-limited (§9.3.3).
      this.drops.add(sig.reason);
      if (this.#errorAnswers.allow(now)) this.#channel.sendSignaling(sig.packet, now);
      return;
    }
    if (sig.kind === 'discovery') {
      this.#runDiscovery(this.#discovery.onMessage(sig.message, now), now);
      return;
    }
    const mh = sig.message;
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
        // Only ever the HA's own (mobile-node-signaling.ts): it does not understand what we
        // sent it (status 2, RFC 6275 §11.3.6), i.e. our BUs: not a home agent for us.
        this.#env.log.warn('home-agent-binding-error', { status: mh.status, hoa: mh.homeAddress });
        this.drops.add(`binding-error-${mh.status}`);
        if (mh.status === BE_STATUS.UNRECOGNIZED_MH_TYPE) this.#refusedHere(now, 'binding-error');
        break;
      case 'bindingUpdate':
      case 'careOfTest':
      case 'careOfTestInit':
      case 'unknown':
        this.drops.add(`unexpected-${mh.kind}`);
        break;
    }
  }

  #capture(packet: Uint8Array, now: number): void {
    this.#env.capture?.write(packet, now * 1000);
  }

  // ---- timers ----------------------------------------------------------------------------

  /** The timer callback, made once (#rearm runs after every packet batch). */
  readonly #fireTimer = (): void => this.#onTimer();

  /** When the driver's timer is armed for (#rearm, #wakeBy). */
  #timerAt = Infinity;

  /** The timer fires by `at` at the latest (the express lane's next clear). */
  #wakeBy(at: number): void {
    if (this.#closed || at >= this.#timerAt) return;
    this.#timerAt = at;
    this.#movement.armed(at, nodeNow(this.#env));
    armTimer(this.#env, at, this.#fireTimer);
  }

  /** The earliest deadline of the driver's engines (the timer's, without the lane's harvest). */
  #engineDeadline(): number {
    return Math.min(
      this.registration.nextDeadline(),
      this.#channel.endpointDeadline,
      this.#movement.nextDeadline(this.registration.state === 'registered'),
      this.#discovery.nextDeadline(),
      this.#opts.routeOptimization?.nextDeadline() ?? Infinity,
      this.#closeBy,
      this.#retryRefusedAt,
      this.#tunnel.mtuDeadline(),
      this.#portalOpenUntil ?? Infinity,
    );
  }

  #rearm(): void {
    if (this.#closed) return;
    // Whatever changed is in effect for the next packet: the express lane is emptied (what it
    // carried reaches movement detection and the counters first); a data callback arms it
    // again after this (home-tunnel.ts).
    this.#tunnel.expressBegin(nodeNow(this.#env));
    const deadline = this.#engineDeadline();
    // A deadline in the past fires at once: lateness counts from now.
    this.#timerAt = deadline;
    this.#movement.armed(deadline, nodeNow(this.#env));
    armTimer(this.#env, deadline, this.#fireTimer);
  }

  #onTimer(): void {
    if (this.#closed) return;
    const env = this.#env;
    const now = nodeNow(env);
    // Only the express lane's harvest is due (on time, no engine's deadline): its counts reach
    // JS and it stays armed, so the next packets keep their lane. A send that started the
    // silence deadline, or a late timer (sleep), goes the whole way.
    if (this.#tunnel.expressArmed && now - this.#timerAt < LATE_TIMER_MS) {
      const whole = this.#tunnel.expressHarvest(now);
      const due = this.#engineDeadline(); // after the harvest: what it reported counts
      if (!whole && now < due) {
        this.#timerAt = Infinity;
        this.#wakeBy(Math.min(due, now + expressHarvestMs(this.#opts.probeIntervalMs)));
        return;
      }
    }
    this.#tunnel.expressBegin(now);
    if (now >= this.#closeBy) {
      this.#closeBy = Infinity;
      this.#deregistered?.(); // close() stops waiting for the BA
    }
    if (this.#portalOpenUntil !== null && now >= this.#portalOpenUntil) {
      this.#closePortalLogin('time limit');
    }
    if (now >= this.#retryRefusedAt) this.#retryAfterRefusal(now);
    const registered = this.registration.state === 'registered';
    for (const a of this.#movement.poll(now, this.#wallClock(), registered)) {
      if (a.kind === 'resume') this.#resumed(now, a.how, a.ms);
      else if (a.kind === 'probe') this.#probe(now, a.why);
      else if (a.kind === 'recheck') this.#recheck();
    }
    const polled = env.endpoint.poll(now);
    for (const { peer, data } of polled.send) {
      if (!this.#opts.routeOptimization?.sendHandshake(peer, data)) this.#channel.sendRaw(data);
    }
    this.#channel.endpointDeadline = polled.nextDeadline;
    this.#runDiscovery(this.#discovery.poll(now), now);
    this.#run(this.registration.poll(now), now);
    this.#opts.routeOptimization?.poll(now);
    this.#tunnel.pollMtu(now); // path MTU probes (issue #21)
    this.#tunnel.takeMtuReports(now);
    this.#rearm();
  }

  // ---- status and shutdown ---------------------------------------------------------------

  status(): MemberStatus {
    const now = nodeNow(this.#env);
    this.#tunnel.expressBegin(now);
    const ro = this.#opts.routeOptimization;
    return renderMnStatus({
      now,
      startedAt: this.#startedAt,
      pid: process.pid,
      role: this.#opts.role ?? 'mn',
      tun: { name: this.#env.tun.name, mtu: this.#env.tun.mtu },
      offloads: offloadNames(this.#env.tun, [this.#env.udp4, this.#env.udp6]),
      homeAddress: this.#opts.homeAddress,
      homeAddress4: this.#homeAddress4,
      homeAgentAddress: this.#haAddress,
      ...(this.#unreachable !== undefined
        ? {
            unreachable:
              this.#portalOpenUntil === null
                ? this.#unreachable
                : `${this.#unreachable}; portal login open (DNS, HTTP, HTTPS outside the tunnel) for ${Math.max(0, Math.ceil((this.#portalOpenUntil - now) / 1000))} s more`,
          }
        : {}),
      agentLocator: this.#channel.agent ? formatLocator(this.#channel.agent) : undefined,
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
      counters: { ...this.counters, ...expressCounters(this.#env.express) },
      drops: this.drops.byReason,
      channelDrops: this.#env.endpoint.drops,
      routeOptimizationDrops: ro?.drops.byReason ?? {},
      pathMtu: this.#tunnel.mtuPath(now)?.status(),
      mtuCounters: { ...this.#mtu.counters },
    });
  }

  /**
   * Deregisters (BU with lifetime 0) and waits for the BA or for the machine to give up,
   * at most `timeoutMs`; then stops timers. The caller closes the I/O.
   */
  async close(timeoutMs = 3000): Promise<void> {
    if (this.#closed) return;
    this.#tunnel.expressClose();
    const now = nodeNow(this.#env);
    this.#opts.routeOptimization?.close(now); // correspondent deregistrations (best effort)
    const registered =
      this.registration.state === 'registered' ||
      this.registration.state === 'registering' ||
      this.registration.state === 'returning-home';
    if (registered && this.#channel.session?.established) {
      const done = new Promise<void>((resolve) => {
        this.#deregistered = resolve;
      });
      this.#closeBy = now + timeoutMs; // a deadline of the node's one timer (env.clock)
      this.#run(this.registration.deregister(now), now);
      await done;
    }
    this.#closed = true;
    this.#env.clock.clearTimer();
    this.#closePortalLogin('exit');
    await this.#portalChain;
    this.#opts.careOf.close();
    const atHome = this.#movement.atHome;
    if (atHome !== undefined && this.#opts.homeLink) {
      await this.#opts.homeLink.leave(atHome).catch(() => undefined);
    }
  }
}
