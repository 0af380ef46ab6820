/**
 * The control-socket protocol: newline-delimited JSON over a unix socket. One request per line,
 * one response per line, in order:
 *   -> {"cmd":"status"}
 *   <- {"ok":true,"result":{...DaemonStatus...}}
 *   <- {"ok":false,"error":{"code":"ERR_UNKNOWN_COMMAND","message":"..."}}
 * The status objects below are what `mip6 status` renders; daemons fill them, unknown extra
 * fields are allowed and shown by `--json` only. Types only: no I/O here.
 */
import type { DadStatus } from './dad.js';

export interface ControlRequest {
  cmd: string;
  [arg: string]: unknown;
}

export type ControlResponse =
  { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

/** Counters by name, e.g. `{ packetsIn: 10, bytesIn: 1500 }`. */
export type Counters = Record<string, number>;

/** The tunnel's path MTU towards one peer at its current locator (issue #21). */
export interface PathMtuStatus {
  /** The peer's locator the path leads to. */
  locator: string;
  /** Largest outer IP datagram known to pass (bytes). */
  pathMtu: number;
  /** Largest inner packet sent through (pathMtu minus IP, UDP and channel overhead). */
  maxInner: number;
  /** How it was learnt: 'probe' (acknowledged probe), 'icmp' (checked report), 'base'. */
  source: 'base' | 'probe' | 'icmp';
  state: 'searching' | 'complete';
  /** Probing rests on an idle path (no payload since the last confirmation): the size is the
   *  last one confirmed, possibly long ago. Absent from older daemons. */
  idle?: boolean;
}

/** One binding cache entry at the HA (or a correspondent binding at a CN). */
export interface BindingStatus {
  homeAddress: string;
  /** Member name from the certificate, when known. */
  member?: string;
  /** Underlay locator the HA sends to: "198.51.100.7:4191" or "[2001:db8::7]:4191". */
  locator: string;
  /** Care-of address as registered (IPv4-mapped for IPv4). */
  careOfAddress?: string;
  /** "none" | "detected" (RFC 5555 NAT detection) | "forced" (F flag). */
  nat?: 'none' | 'detected' | 'forced';
  /** Seconds until the binding expires. */
  lifetimeRemaining: number;
  /** Sequence number of the last accepted BU. */
  sequence: number;
  packetsIn?: number;
  packetsOut?: number;
  bytesIn?: number;
  bytesOut?: number;
  /** Seconds since the last authenticated packet from this binding. */
  lastSeen?: number;
  /**
   * Home agent: whether data goes to `locator` ("validated"), or the member has yet to answer
   * the path challenge sent there ("validating", data still to `dataLocator`, if any).
   */
  path?: 'validated' | 'validating';
  /** Where data goes while `path` is "validating" (the last validated locator). */
  dataLocator?: string;
  /** Home agent: the path MTU towards this binding's locator. */
  pathMtu?: PathMtuStatus;
  /** The member's IPv4 home address (RFC 5555), when it holds one. */
  homeAddress4?: string;
}

/** One binding update list entry at an MN or CN (RFC 6275 §11.1). */
export interface BindingUpdateListStatus {
  /** Home agent or correspondent address the BU went to. */
  peer: string;
  kind: 'home' | 'correspondent';
  careOfAddress: string;
  /** Local underlay locator in use ("203.0.113.10:40000"). */
  locator?: string;
  /** e.g. "registering", "registered", "refreshing", "deregistering", "failed". */
  state: string;
  lifetimeRequested?: number;
  lifetimeRemaining: number;
  sequence: number;
  /** Retransmissions of the current BU. */
  retransmits?: number;
  nat?: 'none' | 'detected' | 'forced';
  /** NAT keepalive interval in seconds, when a NAT was detected. */
  natKeepalive?: number;
  /** Last BA status (RFC 6275 §6.1.8), if any. */
  lastStatus?: number;
  /** Correspondent entries: whether data goes 'direct' (route optimized) or via the HA. */
  routeOptimization?: 'direct' | 'tunnel';
  /** Correspondent entries: when each return-routability message was last sent/received. */
  returnRoutability?: Record<string, string>;
  /** Correspondent entries: packets direct vs through the HA tunnel, each way. */
  packets?: { directOut: number; directIn: number; tunnelOut: number; tunnelIn: number };
  /** Home entry: the path MTU towards the home agent. */
  pathMtu?: PathMtuStatus;
}

interface StatusCommon {
  version?: string;
  pid?: number;
  /** Seconds since the daemon started. */
  uptime?: number;
  tun?: { name: string; mtu: number };
  /** Offloads the kernel accepted for the TUN and the sockets (src/roles/offloads.ts names). */
  offloads?: string[];
  /** Bound underlay sockets, e.g. ["0.0.0.0:4191", "[::]:4191"]. */
  listen?: string[];
  counters?: Counters;
  /** Dropped packets by reason ("bad-tag", "replay", "selector", ...). */
  drops?: Counters;
}

export interface HaStatus extends StatusCommon {
  role: 'ha';
  homePrefix: string;
  homeAddress?: string;
  bindings: BindingStatus[];
  /** What DHAAD Replies list (ourselves included), most preferred first. */
  homeAgents?: { address: string; preference: number; lifetime: number; underlay?: string }[];
  /** What Mobile Prefix Advertisements announce. */
  advertisedPrefixes?: { prefix: string; validLifetime: number; preferredLifetime: number }[];
  /** [cluster] (issue 18): the home agents sharing the prefix through etcd. */
  cluster?: ClusterStatus;
  /** A real home link: how far its routes and proxy entries are behind the bindings. */
  homeLink?: HomeLinkStatus;
}

/** The home agent's programming of its home link (src/io/home-link-programmer.ts). */
export interface HomeLinkStatus {
  /** rtnetlink through the addon, or `ip -batch` when that cannot be used. */
  via: 'rtnetlink' | 'ip-batch';
  /** Route and proxy-entry ops waiting or in flight. */
  queued: number;
  /** Milliseconds the oldest of them has waited (0 when none). */
  oldestMs: number;
  /** The longest any op took from queued to acknowledged since start. */
  slowestMs: number;
  done: number;
  batches: number;
  /** Ops that failed (after their retries), by errno name. */
  failed: Record<string, number>;
  /**
   * Who answers Neighbor Solicitations for the defended addresses: the addon's responder
   * (src/io/ndproxy.ts; its counters in `ndproxy`) or the kernel's proxy entries.
   */
  defence?: 'ndproxy' | 'kernel-proxy';
  ndproxy?: Record<string, number>;
  /**
   * Duplicate Address Detection for new bindings (src/io/dad.ts): on the ND proxy's socket or,
   * without it, a thread per probe; probes in flight, queued over the cap, and their outcomes.
   */
  dad?: DadStatus;
}

/** A home agent cluster as one of its members sees it. */
export interface ClusterStatus {
  name: string;
  /** This home agent. */
  member: string;
  etcd: {
    state: 'ok' | 'unreachable';
    /** Unix ms of the last change of state. */
    since: number;
    /** Why unreachable (the last error). */
    error?: string;
    endpoints: string[];
  };
  /** Live home agents (their etcd entries) and the bindings each serves. */
  homeAgents: { member: string; address: string; preference: number; bindings: number }[];
  /**
   * On a virtual home network: the channel to each other home agent and the packets forwarded
   * on it (out: to members it serves; in: to members served here).
   */
  channels?: {
    member: string;
    locator: string;
    established: boolean;
    forwardedOut: number;
    bytesOut: number;
    forwardedIn: number;
    bytesIn: number;
  }[];
}

export interface MemberStatus extends StatusCommon {
  role: 'mn' | 'cn';
  homeAddress: string;
  /** The IPv4 home address granted by the home agent (RFC 5555), when one was asked for. */
  homeAddress4?: string;
  homeAgent: string;
  /** Why the home agent cannot be reached, when known ("no answer on any port"). */
  homeAgentUnreachable?: string;
  /** "home", "away", "unregistered", ... */
  state: string;
  bindingUpdateList: BindingUpdateListStatus[];
  /** Correspondent bindings (CN role: MNs bound to this CN). */
  bindings?: BindingStatus[];
  /** Home agents of the home prefix learned by DHAAD / MPA (DHAAD order first). */
  homeAgents?: HomeAgentStatus[];
  /** Prefixes of the last Mobile Prefix Advertisement. */
  homePrefixes?: { prefix: string; validLifetime: number; preferredLifetime: number }[];
}

/** One home agent as a member knows it. */
export interface HomeAgentStatus {
  /** Its address on the home prefix. */
  address: string;
  /** The one registered with (or registering) now. */
  current: boolean;
  /** Listed in the last DHAAD Reply. */
  dhaad: boolean;
  /** Reachable for a failover (underlay known and entry not expired). */
  usable: boolean;
  preference?: number;
  lifetimeRemaining?: number;
  /** Underlay addresses from the MPA, space-separated. */
  underlay?: string;
  port?: number;
}

export type DaemonStatus = HaStatus | MemberStatus;
