/**
 * `mip6 status` of a mobile node (or of a `mip6 cn` daemon, which is one): the home entry of
 * its Binding Update List, the home agents it knows, the home prefixes, route optimization's
 * entries, counters and drops, as the control protocol's MemberStatus. Pure: the MobileNode
 * hands over a view of its state and the time.
 */
import type {
  BindingStatus,
  BindingUpdateListStatus,
  HomeAgentStatus,
  MemberStatus,
  PathMtuStatus,
} from '../../io/control-protocol.js';
import { pathMtuStatus } from '../tunnel-mtu.js';
import type { BindingUpdateListEntry } from '../../protocol/binding-update-list.js';
import type { HomePrefix, LearnedHomeAgent } from '../../protocol/home-agent-discovery-client.js';
import type { HomeRegistrationStatus } from '../../protocol/mobile-node-registration.js';

/** What the status needs from a running mobile node. */
export interface MnStatusView {
  now: number;
  startedAt: number;
  pid: number;
  role: 'mn' | 'cn';
  tun: { name: string; mtu: number };
  /** Offloads the kernel accepted (src/roles/offloads.ts names). */
  offloads?: readonly string[];
  homeAddress: string;
  /** The IPv4 home address granted by the HA (RFC 5555), null when none. */
  homeAddress4?: string | null;
  /** The home-prefix address of the HA in use, and the underlay locator it is reached at. */
  homeAgentAddress: string;
  agentLocator: string | undefined;
  /** Why the home agent cannot be reached, when known (no answer on any port...). */
  unreachable?: string;
  /** The home registration's Binding Update List entry and the engine's own view. */
  bulEntry: BindingUpdateListEntry | undefined;
  registration: HomeRegistrationStatus;
  /** Lifetime asked for in registrations (s). */
  lifetimeRequested: number;
  /** DHAAD order, the MPA's home agents, and those failover can reach. */
  homeAgents: readonly string[];
  learnedAgents: ReadonlyMap<string, LearnedHomeAgent>;
  usableAgents: ReadonlySet<string>;
  homePrefixes: readonly HomePrefix[];
  /** Route optimization's Binding Update List entries and correspondent bindings. */
  correspondents: BindingUpdateListStatus[];
  bindings: BindingStatus[] | undefined;
  counters: Record<string, number>;
  drops: Record<string, number>;
  /** The channel's own drop counters (shown with a `channel-` prefix when non-zero). */
  channelDrops: Record<string, number>;
  /** Route optimization's drops (direct-*, hao-*, the CN half's cn-*), added in. */
  routeOptimizationDrops: Record<string, number>;
  /** The path MTU towards the home agent (issue #21), and its counters (added in). */
  pathMtu?: PathMtuStatus | undefined;
  mtuCounters?: Record<string, number> | undefined;
}

export function renderMnStatus(v: MnStatusView): MemberStatus {
  const drops: Record<string, number> = { ...v.drops };
  for (const [reason, count] of Object.entries(v.channelDrops)) {
    if (count > 0) drops[`channel-${reason}`] = count;
  }
  for (const [reason, count] of Object.entries(v.routeOptimizationDrops)) {
    drops[reason] = (drops[reason] ?? 0) + count;
  }
  return {
    role: v.role,
    pid: v.pid,
    uptime: Math.round((v.now - v.startedAt) / 1000),
    tun: { ...v.tun },
    ...(v.offloads !== undefined ? { offloads: [...v.offloads] } : {}),
    homeAddress: v.homeAddress,
    ...(v.homeAddress4 != null ? { homeAddress4: v.homeAddress4 } : {}),
    homeAgent: v.agentLocator ?? v.homeAgentAddress,
    ...(v.unreachable !== undefined ? { homeAgentUnreachable: v.unreachable } : {}),
    state: v.registration.state,
    homeAgents: homeAgentsStatus(v),
    ...(v.homePrefixes.length > 0
      ? {
          homePrefixes: v.homePrefixes.map((p) => ({
            prefix: p.prefix,
            validLifetime: p.validLifetime,
            preferredLifetime: p.preferredLifetime,
          })),
        }
      : {}),
    bindingUpdateList: [homeEntry(v), ...v.correspondents],
    ...(v.bindings ? { bindings: v.bindings } : {}),
    counters: { ...v.counters, ...v.mtuCounters },
    drops,
  };
}

/**
 * The home entry: destination, sequence, remaining lifetime and retransmissions from the Binding
 * Update List; the care-of shown is the acknowledged binding's while there is one (the list
 * holds the one last sent), NAT and state from the registration engine.
 */
function homeEntry(v: MnStatusView): BindingUpdateListStatus {
  const s = v.registration;
  const e = v.bulEntry;
  return {
    peer: v.homeAgentAddress,
    kind: 'home',
    careOfAddress: s.registeredCareOf ?? s.careOf?.localAddress ?? '',
    ...(v.agentLocator !== undefined ? { locator: v.agentLocator } : {}),
    state: s.state,
    lifetimeRequested: v.lifetimeRequested,
    lifetimeRemaining:
      e === undefined || e.expiresAt === 0
        ? 0
        : Math.max(0, Math.round((e.expiresAt - v.now) / 1000)),
    sequence: e?.lastSequenceSent ?? 0,
    retransmits: e?.retransmissions ?? 0,
    nat: s.natDetected ? 'detected' : s.udpEncapsulationRequired ? 'forced' : 'none',
    ...(s.natDetected ? { natKeepalive: s.natRefreshTimeSeconds } : {}),
    ...(s.lastStatus !== null ? { lastStatus: s.lastStatus } : {}),
    ...(v.pathMtu !== undefined ? { pathMtu: pathMtuStatus(v.pathMtu) } : {}),
  };
}

/** The home agents known (DHAAD order first), with what the MPA told about each. */
function homeAgentsStatus(v: MnStatusView): HomeAgentStatus[] {
  const order = [...v.homeAgents];
  for (const a of v.learnedAgents.keys()) if (!order.includes(a)) order.push(a);
  if (!order.includes(v.homeAgentAddress)) order.unshift(v.homeAgentAddress);
  return order.map((address) => {
    const a = v.learnedAgents.get(address);
    const underlay = [a?.underlay4, a?.underlay6].filter((u): u is string => u !== undefined);
    return {
      address,
      current: address === v.homeAgentAddress,
      dhaad: v.homeAgents.includes(address),
      usable: v.usableAgents.has(address),
      ...(a !== undefined
        ? {
            preference: a.preference,
            lifetimeRemaining: Math.max(0, Math.round((a.expiresAt - v.now) / 1000)),
          }
        : {}),
      ...(underlay.length > 0 ? { underlay: underlay.join(' ') } : {}),
      ...(a?.port !== undefined ? { port: a.port } : {}),
    };
  });
}
