/**
 * `mip6 status` of a home agent: the binding cache, the channel and path state of each binding,
 * what DHAAD and MPAs announce, counters and drops, as the control protocol's HaStatus. Pure:
 * the HomeAgent hands over a view of its state and the time.
 */
import type { BindingCache } from '../../protocol/binding-cache.js';
import type { DiscoveryConfig } from '../../protocol/home-agent-discovery.js';
import { formatLocator } from '../../protocol/locator.js';
import type { BindingStatus, HaStatus, HomeLinkStatus } from '../../io/control-protocol.js';

/** What the status needs from a running home agent. */
export interface HaStatusView {
  now: number;
  startedAt: number;
  pid: number;
  cache: BindingCache;
  /** Path validation state of a binding, by binding key. */
  pathStatus(key: string): Pick<BindingStatus, 'path' | 'dataLocator' | 'homeAddress4'>;
  tun: { name: string; mtu: number };
  /** Offloads the kernel accepted (src/roles/offloads.ts names). */
  offloads?: readonly string[];
  listen: { address: string; port: number }[];
  homePrefix: string;
  homeAgentAddress: string;
  discovery: DiscoveryConfig;
  counters: Record<string, number>;
  drops: Record<string, number>;
  /** The channel's own drop counters (shown with a `channel-` prefix when non-zero). */
  channelDrops: Record<string, number>;
  /** The real home link's programming, if there is one. */
  homeLink?: HomeLinkStatus | undefined;
}

export function renderHaStatus(v: HaStatusView): HaStatus {
  const now = v.now;
  const bindings: BindingStatus[] = [];
  for (const e of v.cache.entries()) {
    bindings.push({
      homeAddress: e.homeAddress,
      member: e.peerName,
      locator: formatLocator(e.locator),
      careOfAddress: e.careOfAddress,
      nat: e.natDetected ? 'detected' : e.udpEncapsulationRequired ? 'forced' : 'none',
      lifetimeRemaining: Math.max(0, Math.round((e.expiresAt - now) / 1000)),
      sequence: e.sequence,
      // Read without creating them: an idle binding has none (binding-cache.ts), and status
      // must not give every one of 100 000 bindings a counters object it keeps.
      packetsIn: e.countersIfAny?.packetsIn ?? 0,
      packetsOut: e.countersIfAny?.packetsOut ?? 0,
      bytesIn: e.countersIfAny?.bytesIn ?? 0,
      bytesOut: e.countersIfAny?.bytesOut ?? 0,
      ...(e.lastUsedAt !== null ? { lastSeen: Math.round((now - e.lastUsedAt) / 1000) } : {}),
      ...v.pathStatus(e.key),
    });
  }
  const drops: Record<string, number> = { ...v.drops };
  for (const [reason, count] of Object.entries(v.channelDrops)) {
    if (count > 0) drops[`channel-${reason}`] = count;
  }
  return {
    role: 'ha',
    pid: v.pid,
    uptime: Math.round((now - v.startedAt) / 1000),
    tun: { name: v.tun.name, mtu: v.tun.mtu },
    ...(v.offloads !== undefined ? { offloads: [...v.offloads] } : {}),
    listen: v.listen.map((l) => formatLocator(l)),
    homePrefix: v.homePrefix,
    homeAddress: v.homeAgentAddress,
    bindings,
    homeAgents: [...v.discovery.homeAgents]
      .sort((a, b) => b.preference - a.preference)
      .map((a) => {
        const underlay = [a.underlay4, a.underlay6].filter((u) => u !== undefined).join(' ');
        return {
          address: a.address,
          preference: a.preference,
          lifetime: a.lifetime,
          ...(underlay !== ''
            ? { underlay: a.port ? `${underlay} port ${a.port}` : underlay }
            : {}),
        };
      }),
    advertisedPrefixes: v.discovery.prefixes.map((p) => ({
      prefix: `${p.address}/${p.length}`,
      validLifetime: p.validLifetime,
      preferredLifetime: p.preferredLifetime,
    })),
    counters: { ...v.counters },
    drops,
    ...(v.homeLink !== undefined ? { homeLink: v.homeLink } : {}),
  };
}
