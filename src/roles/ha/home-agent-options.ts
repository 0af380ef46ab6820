/**
 * What a HomeAgent is built with (roles/ha/home-agent.ts): the registration settings from
 * ha.toml, the home-link control, discovery contents and the injected random source.
 */
import { MAX_UPDATE_RATE } from '../../protocol/constants.js';
import type { DiscoveryConfig } from '../../protocol/home-agent-discovery.js';
import type { HomeAgentRegistrationConfig } from '../../protocol/home-agent-registration.js';
import type { BindingStore } from '../../io/binding-store.js';
import type { HomeLinkStatus } from '../../io/control-protocol.js';
import type { ClusterBinding, ClusterHealth } from '../../io/etcd-binding-store.js';
import type { RandomSource } from '../../util/random-source.js';
import type { WallClock } from '../../util/wall-clock.js';

/**
 * BUs per second one member may have processed at the HA. A conforming MN sends at most
 * MAX_UPDATE_RATE per second (RFC 6275 §11.8), but network jitter can bunch three BUs sent
 * just over a second apart into less than a second on arrival, and a conforming move BU must
 * never be dropped; twice the MN's rate still stops a flood after a handful.
 */
export const HA_BU_RATE_PER_MEMBER = 2 * MAX_UPDATE_RATE;

/** Home-link side effects of a binding (routes, proxy ND); real one in src/io/home-link.ts. */
export interface HomeLinkControl {
  /** Route and proxy ND for `homeAddress`; proxy ND only for the `alsoDefend` addresses. */
  bindingAdded(homeAddress: string, alsoDefend?: readonly string[]): Promise<void>;
  bindingRemoved(homeAddress: string): Promise<void>;
  /**
   * Duplicate Address Detection on the home link (RFC 6275 §10.3.1, RFC 4862 §5.4): resolves
   * to the first of `addresses` that a node on the link answers for, or null. Absent (or
   * resolving null at once) without a real home link.
   */
  detectDuplicates?(addresses: readonly string[]): Promise<string | null>;
  /** How far route and proxy-entry programming is behind (`mip6 status`); a real link only. */
  programmingStatus?(): HomeLinkStatus | undefined;
}

export interface HomeAgentOptions extends HomeAgentRegistrationConfig {
  homeLink?: HomeLinkControl | undefined;
  /**
   * True for the interface index of the real home link ([home] link). A BU that says the MN is
   * home (CoA == HoA) is accepted only from a datagram that arrived there with hop limit 255;
   * without this option (a virtual home network) never.
   */
  isHomeLink?: ((ifindex: number) => boolean) | undefined;
  /**
   * What DHAAD Replies and MPAs announce: the home agents of the prefix (ourselves included)
   * and the advertised prefixes. Default: ourselves alone (preference 0) and the home prefix
   * with infinite lifetimes. Changed at run time with setDiscovery().
   */
  discovery?: DiscoveryConfig | undefined;
  /** Randomness for DHAAD tie-breaking, MPA identifiers and MPA jitter (default systemRandom). */
  random?: RandomSource | undefined;
  /**
   * Where bindings survive a restart ([home] state, issue 20): every accepted BU and every
   * removal goes there, one write per burst. Without it the bindings live in memory only.
   */
  store?: BindingStore | undefined;
  /**
   * The home agents of the prefix share bindings through etcd ([cluster], issue 18; the store
   * is then the cluster's): a BU for a member another home agent serves takes it over with the
   * sequence continuing, refused while etcd is unreachable.
   */
  cluster?: HomeAgentCluster | undefined;
  /**
   * With `cluster` on a virtual home network: a packet for a member another home agent of the
   * cluster serves is forwarded to it on an HA-to-HA channel (roles/ha/ha-peers.ts), and such
   * channels (certificate role `ha`) deliver data for the members served here.
   */
  forwardToPeers?: boolean | undefined;
  /** Revoked member keys: their stored bindings are not restored. */
  isRevoked?: ((publicKey: Uint8Array) => boolean) | undefined;
  /** Wall clock for the validity of stored bindings' certificates (default Date.now). */
  wallClock?: WallClock | undefined;
  /**
   * IPv4 home addresses for members ([home] ipv4_pool, RFC 5555), e.g. "10.99.0.0/24"; without
   * it an IPv4 Home Address option is answered with status 129.
   */
  ipv4Pool?: string | undefined;
  /** MinMobPfxAdvInterval / MaxMobPfxAdvInterval in seconds (RFC 6275 §13 defaults). */
  prefixAdvertisementIntervals?: { minSeconds: number; maxSeconds: number } | undefined;
  /** The underlay's MTU ([tun] underlay_mtu, default 1500): the path MTU search's ceiling. */
  underlayMtu?: number | undefined;
}

/** What the home agent asks of its cluster (src/io/etcd-binding-store.ts provides it). */
export interface HomeAgentCluster {
  /** This home agent's name in the cluster. */
  readonly member: string;
  /** The cluster's record of a home address, whoever serves it. */
  binding(homeAddress: string): ClusterBinding | undefined;
  readonly health: ClusterHealth;
}
