/**
 * The home agent's discovery information from ha.toml, and its reload on SIGHUP:
 *   SIGHUP -> re-read ha.toml -> a bad file keeps the running configuration (one error line)
 *   -> the home agents list and the advertised prefixes take effect at once (an unsolicited MPA
 *   to every registered member when they changed, RFC 6275 §10.6.2) -> any other changed
 *   section is reported in one warning line: it needs a restart.
 */
import { loadHaConfig, type HaConfig } from '../config/index.js';
import { readMemberPublic } from '../crypto/key-files.js';
import { DEFAULT_HA_LIFETIME_S, type DiscoveryConfig } from '../protocol/home-agent-discovery.js';
import type { HomeAgent } from '../roles/ha/home-agent.js';
import type { Logger } from '../util/log.js';

/** What DHAAD and MPAs announce for this configuration (reads the peers' public key files). */
export function haDiscovery(cfg: HaConfig): DiscoveryConfig {
  const h = cfg.home;
  return {
    homeAgents: [
      { address: h.address, preference: h.preference, lifetime: DEFAULT_HA_LIFETIME_S },
      ...h.agents.map((a) => ({
        address: a.homeAddress,
        preference: a.preference,
        lifetime: a.lifetime,
        underlay4: a.address4,
        underlay6: a.address6,
        port: a.port,
        ...(a.publicKey !== undefined ? { publicKey: readMemberPublic(a.publicKey) } : {}),
      })),
    ],
    prefixes: [
      {
        address: h.prefix.address,
        length: h.prefix.length,
        validLifetime: h.prefixValidLifetime,
        preferredLifetime: h.prefixPreferredLifetime,
      },
      ...h.advertise.map((p) => ({
        address: p.prefix.address,
        length: p.prefix.length,
        validLifetime: p.validLifetime,
        preferredLifetime: p.preferredLifetime,
      })),
    ],
  };
}

/** [home] keys a reload applies; everything else needs a restart. */
const RELOADABLE_HOME_KEYS = [
  'preference',
  'prefixValidLifetime',
  'prefixPreferredLifetime',
  'advertise',
  'agents',
] as const;

/** Sections (and [home] keys) whose values differ between two configurations. */
export function restartOnlyChanges(a: HaConfig, b: HaConfig): string[] {
  const out: string[] = [];
  const strip = (c: HaConfig): Record<string, unknown> => {
    const home: Record<string, unknown> = { ...c.home };
    for (const k of RELOADABLE_HOME_KEYS) delete home[k];
    return { ...c, home };
  };
  const x = strip(a);
  const y = strip(b);
  for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
    if (k === 'home') {
      const hx = x[k] as Record<string, unknown>;
      const hy = y[k] as Record<string, unknown>;
      for (const hk of Object.keys(hx)) {
        if (JSON.stringify(hx[hk]) !== JSON.stringify(hy[hk])) out.push(`home.${hk}`);
      }
    } else if (JSON.stringify(x[k]) !== JSON.stringify(y[k])) {
      out.push(k);
    }
  }
  return out;
}

/**
 * Re-reads `file` and applies what can change at run time. Returns the configuration now in
 * force (the old one when the file is bad).
 */
export async function reloadHomeAgent(
  file: string,
  current: HaConfig,
  ha: HomeAgent,
  log: Logger,
): Promise<HaConfig> {
  let next: HaConfig;
  let discovery: DiscoveryConfig;
  try {
    next = await loadHaConfig(file);
    discovery = haDiscovery(next);
  } catch (err) {
    log.error('reload-failed', { file, error: (err as Error).message, kept: 'running config' });
    return current;
  }
  const changed = ha.setDiscovery(discovery);
  const restart = restartOnlyChanges(current, next);
  log.info('reloaded', {
    file,
    advertised: changed ? 'changed' : 'unchanged',
    prefixes: discovery.prefixes.map((p) => `${p.address}/${p.length}`).join(','),
    agents: discovery.homeAgents.length,
  });
  if (restart.length > 0) log.warn('reload-needs-restart', { keys: restart.join(',') });
  // Keys that need a restart keep their running values.
  return { ...current, home: { ...current.home, ...pick(next.home) } };
}

function pick(h: HaConfig['home']): Partial<HaConfig['home']> {
  return {
    preference: h.preference,
    prefixValidLifetime: h.prefixValidLifetime,
    prefixPreferredLifetime: h.prefixPreferredLifetime,
    advertise: h.advertise,
    agents: h.agents,
  };
}
