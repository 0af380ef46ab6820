/**
 * The home agent's [cluster] (issue 18), composed: the etcd store opened from ha.toml, this
 * home agent announced in it, the store's events wired to the HomeAgent (a member taken over
 * by another home agent, the live home agents for DHAAD and MPAs, etcd's health in the log),
 * and the cluster's part of `mip6 status`.
 */
import type { HaConfig, HaPeerConfig } from '../config/ha.js';
import type { ClusterStatus } from '../io/control-protocol.js';
import {
  EtcdBindingStore,
  type ClusterAgent,
  type ClusterHealth,
} from '../io/etcd-binding-store.js';
import { DEFAULT_HA_LIFETIME_S, type HomeAgentInfo } from '../protocol/home-agent-discovery.js';
import type { ClusterPeer } from '../protocol/ha-forwarding.js';
import type { HomeAgent } from '../roles/ha/home-agent.js';
import type { HaChannelStatus } from '../roles/ha/ha-peers.js';
import type { Logger } from '../util/log.js';
import { readCertificate } from './key-files.js';

/** Opens the cluster's store; one error line when etcd does not answer or a TLS file is bad. */
export function openClusterStore(cfg: HaConfig): Promise<EtcdBindingStore> | undefined {
  const c = cfg.cluster;
  if (c === undefined) return undefined;
  return EtcdBindingStore.open({
    endpoints: c.etcd,
    cluster: c.name,
    member: c.member,
    tls: { ca: c.tlsCa, cert: c.tlsCert, key: c.tlsKey },
    configKey: `[cluster] of ${cfg.file}`,
  });
}

/** A listen address members can use (not a wildcard), else undefined. */
function specific(address: string | undefined): string | undefined {
  return address === undefined || address === '0.0.0.0' || address === '::' ? undefined : address;
}

/**
 * The live home agents as DHAAD and MPAs list them: each one's etcd entry; where it lacks an
 * underlay address (a home agent listening on a wildcard), the [[home.agents]] entry with the
 * same home address fills it in. `self` (this home agent) goes without a public key: members
 * know ours. Each one's binding count is its load: DHAAD lists the lighter first on a tie.
 */
export function clusterHomeAgents(
  agents: readonly ClusterAgent[],
  self: string,
  configured: readonly HaPeerConfig[] = [],
): HomeAgentInfo[] {
  return agents.map((a) => {
    const known = configured.find((x) => x.homeAddress === a.homeAgentAddress);
    return {
      address: a.homeAgentAddress,
      preference: a.preference,
      lifetime: DEFAULT_HA_LIFETIME_S,
      underlay4: a.address4 ?? known?.address4,
      underlay6: a.address6 ?? known?.address6,
      port: a.port,
      load: a.bindings,
      ...(a.member !== self && a.publicKey !== undefined
        ? { publicKey: new Uint8Array(Buffer.from(a.publicKey, 'hex')) }
        : {}),
    };
  });
}

/**
 * The other live home agents as channels to forward to (a virtual home network): each one's
 * key and underlay addresses from etcd, a wildcard listener's filled in from [[home.agents]]
 * as for DHAAD. One without a key is left out.
 */
export function clusterPeers(
  agents: readonly ClusterAgent[],
  self: string,
  configured: readonly HaPeerConfig[] = [],
): ClusterPeer[] {
  return agents
    .filter((a) => a.member !== self && a.publicKey !== undefined)
    .map((a) => {
      const known = configured.find((x) => x.homeAddress === a.homeAgentAddress);
      return {
        member: a.member,
        publicKey: new Uint8Array(Buffer.from(a.publicKey!, 'hex')),
        address4: a.address4 ?? known?.address4,
        address6: a.address6 ?? known?.address6,
        port: a.port,
      };
    });
}

/**
 * Announces this home agent in the cluster and wires the store's events to it. Call after
 * the HomeAgent exists and before it starts.
 */
export async function joinCluster(
  cfg: HaConfig,
  store: EtcdBindingStore,
  ha: HomeAgent,
  log: Logger,
): Promise<void> {
  const health = (h: ClusterHealth): void => {
    if (h.state === 'ok') {
      log.info('cluster-etcd', { state: 'ok', endpoints: h.endpoints.join(',') });
    } else {
      log.warn('cluster-etcd', {
        state: 'unreachable',
        error: h.error ?? '?',
        effect: 'serving the bindings held; moves between home agents refused',
      });
    }
  };
  store.on({
    takenOver: (hoa, by) => ha.clusterTookOver(hoa, by),
    agentsChanged: (agents) => {
      if (ha.setClusterAgents(clusterHomeAgents(agents, store.member, cfg.home.agents))) {
        log.info('cluster-agents', { agents: agents.map((a) => a.member).join(',') });
      }
      ha.setClusterPeers(clusterPeers(agents, store.member, cfg.home.agents));
    },
    healthChanged: health,
    // A malformed value in etcd (another writer's, or damaged): skipped, one line each.
    badValue: (key, why) => log.warn('cluster-bad-value', { key, why, effect: 'skipped' }),
  });
  const own = readCertificate(cfg.identity.certificate);
  await store.announce({
    homeAgentAddress: cfg.home.address,
    address4: specific(cfg.listen.address4),
    address6: specific(cfg.listen.address6),
    port: cfg.listen.port,
    preference: cfg.home.preference,
    publicKey: Buffer.from(own.publicKey).toString('hex'),
  });
  // A binding restored from etcd that another home agent took meanwhile.
  for (const b of ha.cache.entries()) {
    const served = store.binding(b.homeAddress)?.servingHa;
    if (served !== undefined && served !== store.member) {
      ha.clusterTookOver(b.homeAddress, served);
    }
  }
}

/** The cluster's part of `mip6 status`. */
export function clusterStatus(
  cfg: HaConfig,
  store: EtcdBindingStore,
  channels?: HaChannelStatus[],
): ClusterStatus {
  const counts = store.bindingCounts();
  const h = store.health;
  return {
    name: cfg.cluster?.name ?? '',
    member: store.member,
    etcd: {
      state: h.state,
      since: h.since,
      ...(h.error !== undefined && h.state !== 'ok' ? { error: h.error } : {}),
      endpoints: h.endpoints,
    },
    homeAgents: store.agents().map((a) => ({
      member: a.member,
      address: a.homeAgentAddress,
      preference: a.preference,
      bindings: counts.get(a.member) ?? 0,
    })),
    ...(channels !== undefined ? { channels } : {}),
  };
}
