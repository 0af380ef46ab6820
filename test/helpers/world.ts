/**
 * A deterministic world for simulations: one FakeClock, one FakeNetwork, a home agent and any
 * number of mobile nodes, each with its own FakeTun, sockets and certificate, all driven by the
 * real role code (src/roles). Time starts at T0 (2026-01-01) so certificates are valid.
 */
import { initCrypto } from '../../src/crypto/sodium.js';
import { parseIpv6 } from '../../src/wire/address.js';
import { Logger } from '../../src/util/log.js';
import { HomeAgent, type HomeLinkControl } from '../../src/roles/ha/home-agent.js';
import type { HomeAgentCluster } from '../../src/roles/ha/home-agent-options.js';
import {
  MobileNode,
  type CareOfCandidate,
  type CareOfSource,
  type MnHomeLinkControl,
  type MobileNodeOptions,
} from '../../src/roles/mn/mobile-node.js';
import type { NodeEnvironment } from '../../src/roles/common.js';
import type { BindingStore } from '../../src/io/binding-store.js';
import {
  RouteOptimization,
  type RouteOptimizationOptions,
} from '../../src/roles/mn/route-optimization.js';
import type { KeyPair } from '../../src/crypto/noise.js';
import type { Role } from '../../src/crypto/certificate.js';
import { FakeClock } from './fake-clock.js';
import { FakeExpressLane } from './fake-express.js';
import { FakeNetwork, type FakeUdpEndpoint } from './fake-network.js';
import { FakeTun } from './fake-tun.js';
import { authority, endpoint, memberKey, T0 } from './crypto.js';

export const HOME_PREFIX = '2001:db8:100::/64';
export const HA_HOME_ADDRESS = '2001:db8:100::1';
export const HA4 = '198.51.100.1';
export const HA6 = '2001:db8:ff::1';
export const HA_PORT = 4191;
/** The HA's real home link (FakeNetwork link name) and its interface index there. */
export const HOME_LINK = 'home';
export const HA_HOME_LINK_INDEX = 2;

/** A care-of source the test drives: set `candidates`, then `changed()`. */
export class ScriptedCareOf implements CareOfSource {
  candidates: CareOfCandidate[] = [];
  #onChange: (() => void) | undefined;
  probe(): Promise<CareOfCandidate[]> {
    return Promise.resolve(this.candidates.map((c) => ({ ...c })));
  }
  watch(onChange: () => void): void {
    this.#onChange = onChange;
  }
  changed(): void {
    this.#onChange?.();
  }
  close(): void {
    this.#onChange = undefined;
  }
}

/** Records the MN's home-address moves (enter/leave/announce) instead of touching the kernel. */
export class RecordingHomeAddress implements MnHomeLinkControl {
  readonly calls: string[] = [];
  enter(link: string): Promise<void> {
    this.calls.push(`enter ${link}`);
    return Promise.resolve();
  }
  leave(link: string): Promise<void> {
    this.calls.push(`leave ${link}`);
    return Promise.resolve();
  }
  announce(link: string): void {
    this.calls.push(`announce ${link}`);
  }
}

/** Records home-link side effects instead of touching the kernel. */
export class RecordingHomeLink implements HomeLinkControl {
  readonly bound = new Set<string>();
  /** Proxy-only addresses (a BU's L flag: the link-local) by home address. */
  readonly defended = new Map<string, readonly string[]>();
  /** Addresses another node on the home link holds: Duplicate Address Detection finds them. */
  readonly taken = new Set<string>();
  /** Every DAD request, in order. */
  readonly detections: (readonly string[])[] = [];
  bindingAdded(hoa: string, alsoDefend: readonly string[] = []): Promise<void> {
    this.bound.add(hoa);
    this.defended.set(hoa, alsoDefend);
    return Promise.resolve();
  }
  bindingRemoved(hoa: string): Promise<void> {
    this.bound.delete(hoa);
    this.defended.delete(hoa);
    return Promise.resolve();
  }
  /** While true, DAD answers only when releaseDetections() is called. */
  holdDetections = false;
  readonly #held: (() => void)[] = [];
  detectDuplicates(addresses: readonly string[]): Promise<string | null> {
    this.detections.push(addresses);
    const answer = addresses.find((a) => this.taken.has(a)) ?? null;
    if (!this.holdDetections) return Promise.resolve(answer);
    return new Promise((resolve) => this.#held.push(() => resolve(answer)));
  }
  /** Lets every held DAD finish. */
  releaseDetections(): void {
    for (const done of this.#held.splice(0)) done();
  }
}

export interface MnHandle {
  mn: MobileNode;
  tun: FakeTun;
  udp4: FakeUdpEndpoint;
  udp6: FakeUdpEndpoint;
  careOf: ScriptedCareOf;
  events: { event: string; fields: Record<string, unknown>; at: number }[];
  /** The member's static key (its public key is what peers pin). */
  key: KeyPair;
  /** Route optimization module, when the member was given one. */
  ro?: RouteOptimization;
  /** The member's channel endpoint (its sessions, for tests that count state). */
  endpoint: NodeEnvironment['endpoint'];
  /** The member's express lane, when it was given one (mobileNode's `express`). */
  express?: FakeExpressLane;
  /** The member's environment (a test may open a capture on it). */
  env: NodeEnvironment;
}

export class World {
  readonly clock = new FakeClock(0);
  readonly net: FakeNetwork;
  readonly ca = authority();
  readonly haKey = memberKey(0x11);
  readonly haTun = new FakeTun({ name: 'ha-tun' });
  readonly homeLink = new RecordingHomeLink();
  readonly ha: HomeAgent;
  readonly haUdp4: FakeUdpEndpoint;
  readonly haUdp6: FakeUdpEndpoint;
  /** The HA's channel endpoint (tests that play a home agent relaying forged packets). */
  readonly haEndpoint: NodeEnvironment['endpoint'];
  /** The HA's express lane, when the world was made with `haExpress`. */
  readonly haExpress: FakeExpressLane | undefined;
  /** The HA's environment (a test may open a capture on it). */
  readonly haEnv: NodeEnvironment;
  #nextKey = 0x40;

  private constructor(opts: {
    loss?: number;
    delayMs?: number;
    seed?: number;
    maxLifetime?: number;
    maxBindings?: number;
    /** The HA's revocation check (EndpointOptions.isRevoked). */
    isRevoked?: (publicKey: Uint8Array) => boolean;
    /** The HA's binding store ([home] state). */
    store?: BindingStore;
    /** The HA's cluster ([cluster], issue 18; its store is `store`). */
    cluster?: HomeAgentCluster;
    /** The HA's IPv4 home address pool ([home] ipv4_pool, RFC 5555). */
    ipv4Pool?: string;
    /** HA-to-HA forwarding of a cluster on a virtual home network (issue 18). */
    forwardToPeers?: boolean;
    /** Roles the HA's endpoint accepts (default mn, cn; a forwarding cluster adds ha). */
    haPeerRoles?: Role[];
    /**
     * The HA endpoint's wall clock follows the fake clock (default: fixed at T0), so the
     * timestamps of its handshakes grow as in a real run (a peer refuses one not newer).
     */
    haWallClockFollows?: boolean;
    /** The HA's IPv4 underlay addresses (default [HA4]); the first is the kernel's choice. */
    haAddresses4?: string[];
    /** The HA gets a FakeExpressLane (`haExpress`), its callbacks marked (default none). */
    haExpress?: boolean;
  }) {
    this.net = new FakeNetwork(this.clock, {
      loss: opts.loss ?? 0,
      delayMs: opts.delayMs ?? 5,
      seed: opts.seed ?? 7,
    });
    this.haUdp4 = this.net.endpoint({ addresses: opts.haAddresses4 ?? [HA4], port: HA_PORT });
    this.haUdp6 = this.net.endpoint({ address: HA6, port: HA_PORT });
    this.net.attach(this.haUdp6, HOME_LINK, { ifindex: HA_HOME_LINK_INDEX, linkLocal: 'fe80::1' });
    const env: NodeEnvironment = {
      endpoint: endpoint(
        this.ca,
        { name: 'ha', role: 'ha', key: this.haKey, addresses: [HOME_PREFIX] },
        opts.haPeerRoles ?? ['mn', 'cn'],
        {
          ...(opts.isRevoked ? { isRevoked: opts.isRevoked } : {}),
          ...(opts.haWallClockFollows === true ? { wallClock: () => T0 + this.clock.now() } : {}),
        },
      ),
      tun: this.haTun,
      udp4: this.haUdp4,
      udp6: this.haUdp6,
      clock: this.clock.createClock(),
      epochOffsetMs: T0,
      log: Logger.silent(),
    };
    this.haEndpoint = env.endpoint;
    this.haEnv = env;
    this.haExpress = opts.haExpress === true ? this.#expressLane(env) : undefined;
    this.ha = new HomeAgent(env, {
      homePrefix: HOME_PREFIX,
      homeAgentAddress: HA_HOME_ADDRESS,
      maxLifetimeSeconds: opts.maxLifetime ?? 600,
      natKeepaliveSeconds: 110,
      maxBindings: opts.maxBindings ?? 1000,
      homeLink: this.homeLink,
      isHomeLink: (ifindex) => ifindex === HA_HOME_LINK_INDEX,
      ...(opts.store !== undefined
        ? { store: opts.store, wallClock: () => T0 + this.clock.now() }
        : {}),
      ...(opts.ipv4Pool !== undefined ? { ipv4Pool: opts.ipv4Pool } : {}),
      ...(opts.cluster !== undefined ? { cluster: opts.cluster } : {}),
      ...(opts.forwardToPeers !== undefined ? { forwardToPeers: opts.forwardToPeers } : {}),
    });
    this.ha.start();
  }

  static async create(
    opts: {
      loss?: number;
      delayMs?: number;
      seed?: number;
      maxLifetime?: number;
      /** The HA's binding cache size (default 1000). */
      maxBindings?: number;
      isRevoked?: (publicKey: Uint8Array) => boolean;
      store?: BindingStore;
      cluster?: HomeAgentCluster;
      ipv4Pool?: string;
      forwardToPeers?: boolean;
      haPeerRoles?: Role[];
      haWallClockFollows?: boolean;
      haAddresses4?: string[];
      haExpress?: boolean;
    } = {},
  ): Promise<World> {
    await initCrypto();
    return new World(opts);
  }

  /**
   * mobileNode() started on its IPv4 address as the only care-of candidate, once registered;
   * throws when it does not register within `limitMs` of fake time.
   */
  async registeredMobileNode(
    opts: Parameters<World['mobileNode']>[0],
    limitMs = 5_000,
  ): Promise<MnHandle> {
    const m = this.mobileNode(opts);
    m.careOf.candidates = [{ family: 4, localAddress: opts.address4 }];
    m.mn.start();
    if ((await this.until(() => m.mn.registration.state === 'registered', limitMs)) < 0) {
      throw new Error(`${opts.homeAddress} did not register within ${limitMs} ms`);
    }
    return m;
  }

  /** A mobile node whose certificate allows `certAddress` (default: its own home address). */
  mobileNode(opts: {
    homeAddress: string;
    certAddress?: string;
    /** More addresses the certificate holds (e.g. "::ffff:10.99.0.50" for a fixed IPv4 HoA). */
    certAddresses?: string[];
    address4: string;
    address6: string;
    lifetime?: number;
    prefer?: 'ipv4' | 'ipv6';
    /** Any other MobileNode option (probing, wall clock, home link, resolver). */
    options?: Partial<MobileNodeOptions>;
    /** Roles whose channels this member accepts (default ['ha']). */
    peerRoles?: Role[];
    /** Certificate role (default 'mn'). */
    role?: 'mn' | 'cn';
    /** Fixed underlay port (a CN listens on 4191); default ephemeral. */
    port?: number;
    /** Route optimization (correspondents, CN half) for this member. */
    routeOptimization?: Omit<RouteOptimizationOptions, 'homeAddress'>;
    /** The member gets a FakeExpressLane (MnHandle.express), its callbacks marked. */
    express?: boolean;
  }): MnHandle {
    const key = memberKey(this.#nextKey++);
    const tun = new FakeTun({ name: `mn-tun-${this.#nextKey}` });
    const port = opts.port !== undefined ? { port: opts.port } : {};
    const udp4 = this.net.endpoint({ address: opts.address4, ...port });
    const udp6 = this.net.endpoint({ address: opts.address6, ...port });
    const careOf = new ScriptedCareOf();
    const env: NodeEnvironment = {
      endpoint: endpoint(
        this.ca,
        {
          name: `${opts.role ?? 'mn'}-${this.#nextKey}`,
          role: opts.role ?? 'mn',
          key,
          addresses: [opts.certAddress ?? opts.homeAddress, ...(opts.certAddresses ?? [])],
        },
        opts.peerRoles ?? ['ha'],
      ),
      tun,
      udp4,
      udp6,
      clock: this.clock.createClock(),
      epochOffsetMs: T0,
      log: Logger.silent(),
    };
    const express = opts.express === true ? this.#expressLane(env) : undefined;
    const ro = opts.routeOptimization
      ? new RouteOptimization(env, { homeAddress: opts.homeAddress, ...opts.routeOptimization })
      : undefined;
    const mn = new MobileNode(env, {
      homeAddress: opts.homeAddress,
      homeAgentAddress: HA_HOME_ADDRESS,
      agent4: HA4,
      agent6: HA6,
      agentPort: HA_PORT,
      agentPublicKey: this.haKey.publicKey,
      lifetimeSeconds: opts.lifetime ?? 600,
      prefer: opts.prefer ?? 'ipv4',
      careOf,
      // Wall time follows the fake clock (the real Date.now would look like a clock jump).
      wallClock: () => T0 + this.clock.now(),
      ...(ro ? { routeOptimization: ro, role: opts.role ?? 'mn' } : {}),
      ...opts.options,
    });
    const events: MnHandle['events'] = [];
    mn.on((event, fields) => events.push({ event, fields, at: this.clock.now() }));
    return {
      mn,
      tun,
      udp4,
      udp6,
      careOf,
      events,
      key,
      endpoint: env.endpoint,
      env,
      ...(ro ? { ro } : {}),
      ...(express ? { express } : {}),
    };
  }

  /** A FakeExpressLane for the node of `env` (set as its lane), watching its callbacks. */
  #expressLane(env: NodeEnvironment): FakeExpressLane {
    const lane = new FakeExpressLane(() => this.clock.now());
    lane.watch(env);
    env.express = lane;
    return lane;
  }

  /**
   * A correspondent node: a member with its own home address registered at this HA, that
   * answers return routability on its underlay port 4191 (and may itself optimize routes).
   */
  correspondent(opts: {
    homeAddress: string;
    address4: string;
    address6: string;
    correspondents?: RouteOptimizationOptions['correspondents'];
    maxBindingLifetimeSeconds?: number;
  }): MnHandle {
    return this.mobileNode({
      homeAddress: opts.homeAddress,
      address4: opts.address4,
      address6: opts.address6,
      role: 'cn',
      port: HA_PORT,
      peerRoles: ['ha', 'mn', 'cn'],
      routeOptimization: {
        correspondents: opts.correspondents ?? [],
        respond: true,
        maxBindingLifetimeSeconds: opts.maxBindingLifetimeSeconds,
      },
    });
  }

  /**
   * A member (role mn) that optimizes routes to the correspondent `cn`, whose home address is
   * `cnHomeAddress` and whose underlay is `cnAddress4` port 4191; its care-of is `address4`.
   * Not started.
   */
  routeOptimizingMember(opts: {
    homeAddress: string;
    address4: string;
    address6: string;
    cn: MnHandle;
    cnHomeAddress: string;
    cnAddress4: string;
  }): MnHandle {
    const m = this.mobileNode({
      homeAddress: opts.homeAddress,
      address4: opts.address4,
      address6: opts.address6,
      peerRoles: ['ha', 'cn', 'mn'],
      routeOptimization: {
        respond: false,
        correspondents: [
          {
            address: opts.cnHomeAddress,
            underlay4: opts.cnAddress4,
            port: HA_PORT,
            publicKey: opts.cn.key.publicKey,
            enabled: true,
          },
        ],
      },
    });
    m.careOf.candidates = [{ family: 4, localAddress: opts.address4 }];
    return m;
  }

  /**
   * The HA host's kernel, as far as the overlay needs it: packets the HA writes to its TUN for
   * another address on the home prefix are routed straight back into the TUN (so MN -> HA ->
   * CN and back works). Returns the count of packets so routed.
   */
  routeHomePrefix(): { routed: number } {
    const stats = { routed: 0 };
    const prefix = parseIpv6(HOME_PREFIX.split('/')[0]!);
    this.haTun.onKernelReceive((p) => {
      for (let i = 0; i < 8; i++) if (p[24 + i] !== prefix[i]) return;
      stats.routed++;
      queueMicrotask(() => this.haTun.inject(p));
    });
    return stats;
  }

  /** Lets promises (care-of probes) settle and time pass, in small steps. */
  async run(ms: number, step = 1): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) {
      await new Promise<void>((r) => setImmediate(r));
      this.clock.advance(Math.min(step, end - this.clock.now()));
    }
    await new Promise<void>((r) => setImmediate(r));
  }

  /** Runs until `cond` holds (checked every step) or `limitMs` passes; returns elapsed ms or -1. */
  async until(cond: () => boolean, limitMs = 10_000, step = 1): Promise<number> {
    const start = this.clock.now();
    while (this.clock.now() - start <= limitMs) {
      if (cond()) return this.clock.now() - start;
      await new Promise<void>((r) => setImmediate(r));
      this.clock.advance(step);
    }
    return cond() ? this.clock.now() - start : -1;
  }
}
