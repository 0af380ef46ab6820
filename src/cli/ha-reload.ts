/**
 * The home agent's discovery information from ha.toml, and its reload on SIGHUP:
 *   SIGHUP -> re-read ha.toml -> a bad file keeps the running configuration (one error line)
 *   -> the home agents list and the advertised prefixes take effect at once (an unsolicited MPA
 *   to every registered member when they changed, RFC 6275 §10.6.2) -> the revocation list
 *   (`[identity] revocation_list`) is re-read, also when ha.toml was bad: members on it lose
 *   their bindings and channels at once and their handshakes are refused -> any other changed
 *   section is reported in one warning line: it needs a restart.
 */
import { readFileSync } from 'node:fs';
import { loadHaConfig, type HaConfig } from '../config/index.js';
import { readMemberPublic } from './key-files.js';
import { parseRevocationList, RevocationList } from '../crypto/revocation-list.js';
import { CryptoError } from '../util/errors.js';
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

/** Reads a revocation list file; one-line CryptoError ERR_REVOCATION_LIST when it cannot. */
export function readRevocationList(file: string): RevocationList {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new CryptoError(
      'ERR_REVOCATION_LIST',
      `${file}: cannot read the revocation list (${code})`,
    );
  }
  return parseRevocationList(text, file);
}

/**
 * The revocation list in force. The endpoint is given `isRevoked`, which reads `current` at
 * every handshake, so a reload takes effect for the next one without rebuilding anything.
 */
export class Revocations {
  current = new RevocationList();
  readonly isRevoked = (publicKey: Uint8Array): boolean => this.current.has(publicKey);
}

/**
 * Re-reads the revocation list `file` (undefined: none configured, the list becomes empty) and
 * cuts off every member on it (HomeAgent.revokeMembers). A file that cannot be read or parsed
 * keeps the list in force (one error line).
 */
export function reloadRevocations(
  revocations: Revocations,
  file: string | undefined,
  ha: HomeAgent,
  log: Logger,
): void {
  let next: RevocationList;
  try {
    next = file === undefined ? new RevocationList() : readRevocationList(file);
  } catch (err) {
    log.error('revocation-reload-failed', {
      file,
      error: (err as Error).message,
      kept: `${revocations.current.size} revoked`,
    });
    return;
  }
  revocations.current = next;
  const cut = ha.revokeMembers(revocations.isRevoked);
  log.info('revocations', {
    file: file ?? '-',
    revoked: next.size,
    disconnected: cut.length > 0 ? cut.join(',') : '-',
  });
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
    return { ...c, home, identity: { ...c.identity, revocationList: undefined } };
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
  revocations?: Revocations,
): Promise<HaConfig> {
  let next: HaConfig;
  let discovery: DiscoveryConfig;
  try {
    next = await loadHaConfig(file);
    discovery = haDiscovery(next);
  } catch (err) {
    log.error('reload-failed', { file, error: (err as Error).message, kept: 'running config' });
    if (revocations) reloadRevocations(revocations, current.identity.revocationList, ha, log);
    return current;
  }
  if (revocations) reloadRevocations(revocations, next.identity.revocationList, ha, log);
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
  return {
    ...current,
    identity: { ...current.identity, revocationList: next.identity.revocationList },
    home: { ...current.home, ...pick(next.home) },
  };
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
