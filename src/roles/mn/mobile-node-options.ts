/**
 * What a MobileNode is built from: its options and the two pieces of I/O it drives through
 * interfaces (care-of discovery, home-link control), so tests plug fakes in.
 */
import type { CareOf } from '../../protocol/mobile-node-registration.js';
import type { RandomSource } from '../../util/random-source.js';
import type { WallClock } from '../../util/wall-clock.js';
import type { RouteOptimization } from './route-optimization.js';

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

/** The IPv4 home address on the TUN (RFC 5555): replaced when the HA grants another one. */
export interface MnHomeAddress4Control {
  set(address: string | null, previous: string | null): Promise<void>;
}

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
  wallClock?: WallClock | undefined;
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
  /**
   * Every port of the home agent, in the order to try them ([home] agent_port as a list; the
   * first is `agentPort`): when the path is lost the next one is tried, and the one that
   * worked is remembered per network. Absent or one port: `agentPort` only.
   */
  agentPorts?: readonly number[] | undefined;
  /**
   * Captive-portal probe from our care-of address, outside the tunnel (src/io/portal-probe.ts):
   * a description of the portal, or undefined. Run when no port of the HA answers.
   */
  portalProbe?: ((careOf: string) => Promise<string | undefined>) | undefined;
  /**
   * [movement] portal_login = true (opt-in; without it a portal is only reported): once the
   * probe found a captive portal, `open()` lets DNS, HTTP and HTTPS leave outside the tunnel so
   * a browser can log in, for `durationMs` at most; `close()` runs after that, on a move or
   * detach, at home, on registration and at exit, whichever comes first.
   */
  portalLogin?: { open(): Promise<void>; close(): Promise<void>; durationMs: number } | undefined;
  /**
   * RFC 5555 IPv4 home address to ask for: 'auto' or a dotted quad ([home] ipv4_address);
   * undefined: none.
   */
  ipv4HomeAddress?: string | undefined;
  /** Puts the granted IPv4 home address on the TUN (src/io); without it only the data path knows. */
  homeAddress4Control?: MnHomeAddress4Control | undefined;
  /** What `mip6 status` calls this member (default 'mn'; a `mip6 cn` daemon says 'cn'). */
  role?: 'mn' | 'cn' | undefined;
  /** The underlay's MTU ([tun] underlay_mtu, default 1500): the path MTU search's ceiling. */
  underlayMtu?: number | undefined;
}
