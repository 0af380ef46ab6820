/**
 * ha.toml: the home agent. parseHaConfig(text, file) -> HaConfig, every key typed and defaulted;
 * any problem is one ConfigError naming the file and the dotted key.
 */
import { ConfigError } from '../util/errors.js';
import { canonicalIpv6, isIpv4 } from '../wire/address.js';
import { readCluster, type HaClusterConfig } from './ha-cluster.js';
import { DSMIPV6_PORT, readCommon, readPort, resolveAgainst, type CommonConfig } from './common.js';
import {
  addressInPrefix,
  ipv6InPrefix,
  parseAnyPrefix,
  parseToml,
  TableReader,
  type Ipv6Prefix,
} from './reader.js';

/** Largest lifetime a BU/BA can carry: 65535 units of 4 s (RFC 6275 §6.1.7). */
export const MAX_BINDING_LIFETIME_S = 262140;
/** Default NAT keepalive interval: NATKATIMEOUT, 110 s (RFC 5555 protocol constants; UMIP nat.h). */
export const DEFAULT_NAT_KEEPALIVE_S = 110;
/** Default maximum lifetime the HA grants a home registration, in seconds. */
export const DEFAULT_HA_MAX_LIFETIME_S = 600;
/** Prefix lifetime "infinity" (RFC 4861 §4.6.2), the default for advertised prefixes. */
export const PREFIX_LIFETIME_INFINITY = 0xffffffff;
/** Default lifetime of a home agent entry: AdvDefaultLifetime, 1800 s (RFC 4861 §6.2.1;
 * the HA Information option's default, RFC 6275 §7.4). */
export const DEFAULT_HA_ENTRY_LIFETIME_S = 1800;
/** Home Agent Preference range: a signed 16-bit field (RFC 6275 §7.4). */
const PREFERENCE_RANGE = { min: -32768, max: 32767 } as const;

export interface HaListenConfig {
  /** IPv4 address to bind, or undefined when IPv4 is off ("off"). */
  address4: string | undefined;
  /** IPv6 address to bind, or undefined when IPv6 is off ("off"). */
  address6: string | undefined;
  /** UDP port for both families (the first of `ports`). */
  port: number;
  /**
   * Every port members may use ([listen] ports, e.g. [4191, 443] for networks that only let
   * some ports out); the others are redirected to `port` by the kernel (src/io/listen-ports.ts).
   */
  ports: number[];
}

export interface HaHomeConfig {
  /** The home prefix routed into the TUN, e.g. 2001:db8:100::/64. */
  prefix: Ipv6Prefix;
  /** The HA's own address on the home prefix (inside `prefix`). */
  address: string;
  /** Upper bound on granted home-registration lifetimes, seconds (multiple of 4 after rounding down). */
  maxLifetime: number;
  /** Binding Refresh Advice interval sent in BAs, seconds; undefined = do not send one. */
  refreshAdvice: number | undefined;
  /** NAT keepalive interval advertised in the NAT Detection option, seconds. */
  natKeepalive: number;
  /** Interface of the real home link, for proxy ND (RFC 6275 §10.4.1); undefined = none. */
  link: string | undefined;
  /** Our Home Agent Preference (RFC 6275 §7.4): signed 16 bits, higher is preferred. */
  preference: number;
  /** Lifetimes advertised for the home prefix in MPAs (s; 4294967295 = infinity). */
  prefixValidLifetime: number;
  prefixPreferredLifetime: number;
  /**
   * IPv4 home addresses for members (RFC 5555), e.g. "10.99.0.0/24": routed into the TUN, the
   * first address is the HA's own; undefined = no IPv4 home addresses.
   */
  ipv4Pool: string | undefined;
  /** Uplink interface to masquerade the pool out of (NAT44); undefined = route only. */
  ipv4Masquerade: string | undefined;
  /** More prefixes advertised in MPAs ([[home.advertise]]), e.g. while renumbering. */
  advertise: HaAdvertisedPrefixConfig[];
  /** The other home agents of the home prefix ([[home.agents]]), for DHAAD and failover. */
  agents: HaPeerConfig[];
  /**
   * The binding store file (SQLite, issue 20): bindings survive a restart of the HA; resolved
   * against the config file's directory. undefined = bindings in memory only.
   */
  state: string | undefined;
}

export interface HaAdvertisedPrefixConfig {
  prefix: Ipv6Prefix;
  validLifetime: number;
  preferredLifetime: number;
}

/** [home] ipv4_pool and ipv4_masquerade (issue #15). */
function readIpv4Pool(h: TableReader): {
  ipv4Pool: string | undefined;
  ipv4Masquerade: string | undefined;
} {
  const raw = h.optString('ipv4_pool');
  let ipv4Pool: string | undefined;
  if (raw !== undefined) {
    const p = parseAnyPrefix(raw.trim());
    if (typeof p === 'string') throw h.error('ipv4_pool', p);
    if (p.family !== 4) throw h.error('ipv4_pool', `${p.text} is not an IPv4 prefix`);
    if (p.length < 8 || p.length > 30) {
      throw h.error('ipv4_pool', `${p.text}: the prefix length must be 8 to 30`);
    }
    ipv4Pool = p.text;
  }
  const ipv4Masquerade = h.optString('ipv4_masquerade');
  if (ipv4Masquerade !== undefined) {
    if (!/^[^/\s]{1,15}$/.test(ipv4Masquerade)) {
      throw h.error('ipv4_masquerade', `"${ipv4Masquerade}" is not a valid interface name`);
    }
    if (ipv4Pool === undefined) {
      throw h.error('ipv4_masquerade', 'needs home.ipv4_pool (the addresses to masquerade)');
    }
  }
  return { ipv4Pool, ipv4Masquerade };
}

/** Another home agent serving the same home prefix. */
export interface HaPeerConfig {
  /** Its address on the home prefix (listed in DHAAD Replies). */
  homeAddress: string;
  /** Its underlay IPv4 / IPv6 addresses (at least one), where members reach it. */
  address4: string | undefined;
  address6: string | undefined;
  /** Its UDP port. */
  port: number;
  /** Home Agent Preference (RFC 6275 §7.4). */
  preference: number;
  /** Seconds members keep this entry (1..65535, RFC 6275 §7.4). */
  lifetime: number;
  /** Path of its public key when it has an identity of its own (else members use ours). */
  publicKey: string | undefined;
}

export interface HaConfig extends CommonConfig {
  role: 'ha';
  listen: HaListenConfig;
  home: HaHomeConfig;
  /** [cluster]: the home agents of the prefix share bindings through etcd; undefined = alone. */
  cluster: HaClusterConfig | undefined;
}

function optBindAddress(
  t: TableReader,
  key: string,
  family: 4 | 6,
  dflt: string,
): string | undefined {
  const v = t.optString(key);
  if (v === 'off') return undefined;
  if (v === undefined) return dflt;
  return family === 4 ? t.optIpv4(key) : t.optIpv6(key);
}

/** A prefix lifetime in seconds: 0..4294967295, or "infinity". */
function prefixLifetime(t: TableReader, key: string): number {
  const v = t.has(key) ? t.optStringOrNumber(key) : undefined;
  if (v === 'infinity') return PREFIX_LIFETIME_INFINITY;
  if (typeof v === 'string') {
    throw t.error(key, `expected a number of seconds or "infinity", got "${v}"`);
  }
  return t.int(key, PREFIX_LIFETIME_INFINITY, {
    min: 0,
    max: PREFIX_LIFETIME_INFINITY,
    unit: 's',
  });
}

/** valid_lifetime / preferred_lifetime of a prefix, preferred <= valid (RFC 4861 §4.6.2). */
function prefixLifetimes(
  t: TableReader,
  validKey: string,
  preferredKey: string,
): { validLifetime: number; preferredLifetime: number } {
  const validLifetime = prefixLifetime(t, validKey);
  const preferredLifetime = prefixLifetime(t, preferredKey);
  if (preferredLifetime > validLifetime) {
    throw t.error(
      preferredKey,
      `${preferredLifetime} s is longer than ${t.keyPath(validKey)} (${validLifetime} s) (RFC 4861 §4.6.2)`,
    );
  }
  return { validLifetime, preferredLifetime };
}

function readAdvertise(h: TableReader, home: Ipv6Prefix): HaAdvertisedPrefixConfig[] {
  const seen = new Set<string>([home.text]);
  return h.sectionList('advertise').map((a) => {
    const prefix = a.optIpv6Prefix('prefix', { minLength: 16, maxLength: 128 });
    if (prefix === undefined) {
      throw a.error('prefix', 'required key is missing (e.g. "2001:db8:200::/64")');
    }
    if (seen.has(prefix.text)) {
      throw a.error(
        'prefix',
        prefix.text === home.text
          ? `${prefix.text} is home.prefix, which is always advertised (set its lifetimes with home.prefix_valid_lifetime / home.prefix_preferred_lifetime)`
          : `${prefix.text} is listed twice`,
      );
    }
    seen.add(prefix.text);
    const out = { prefix, ...prefixLifetimes(a, 'valid_lifetime', 'preferred_lifetime') };
    a.finish();
    return out;
  });
}

function readPeers(h: TableReader, home: Ipv6Prefix, ownAddress: string): HaPeerConfig[] {
  const seen = new Set<string>([ownAddress]);
  return h.sectionList('agents').map((a) => {
    const homeAddress = a.optIpv6('home_address');
    if (homeAddress === undefined) {
      throw a.error(
        'home_address',
        "required key is missing (that home agent's address on home.prefix)",
      );
    }
    if (!ipv6InPrefix(home, homeAddress)) {
      throw a.error('home_address', `${homeAddress} is outside home.prefix ${home.text}`);
    }
    if (homeAddress === home.address) {
      throw a.error(
        'home_address',
        `${homeAddress} is the Subnet-Router anycast address of ${home.text} (RFC 4291 §2.6.1)`,
      );
    }
    if (seen.has(homeAddress)) {
      throw a.error(
        'home_address',
        homeAddress === ownAddress
          ? `${homeAddress} is our own home.address`
          : `${homeAddress} is listed twice`,
      );
    }
    seen.add(homeAddress);
    const list = a.optStringOrArray('address') ?? [];
    if (list.length === 0) {
      throw a.error(
        'address',
        "required key is missing (that home agent's underlay IPv4 and/or IPv6 address)",
      );
    }
    let address4: string | undefined;
    let address6: string | undefined;
    list.forEach((v, i) => {
      const key = list.length === 1 ? 'address' : `address[${i}]`;
      if (isIpv4(v)) {
        if (address4 !== undefined)
          throw a.error(key, `a second IPv4 address ("${v}"): give at most one per family`);
        address4 = v;
        return;
      }
      let v6: string;
      try {
        v6 = canonicalIpv6(v);
      } catch {
        throw a.error(key, `"${v}" is not an IPv4 or IPv6 address (names are not resolved here)`);
      }
      if (address6 !== undefined)
        throw a.error(key, `a second IPv6 address ("${v}"): give at most one per family`);
      address6 = v6;
    });
    const publicKey = a.optPath('public_key');
    const out: HaPeerConfig = {
      homeAddress,
      address4,
      address6,
      port: readPort(a, 'port', DSMIPV6_PORT),
      preference: a.int('preference', 0, PREFERENCE_RANGE),
      lifetime: a.int('lifetime', DEFAULT_HA_ENTRY_LIFETIME_S, { min: 1, max: 65535, unit: 's' }),
      publicKey: publicKey === undefined ? undefined : resolveAgainst(a.file, publicKey),
    };
    a.finish();
    return out;
  });
}

/** Parses and validates ha.toml text. `file` is used in errors and to resolve relative paths. */
export function parseHaConfig(text: string, file: string): HaConfig {
  const root = new TableReader(file, parseToml(text, file));
  const common = readCommon(root, 'ha');

  const l = root.section('listen');
  const port = readPort(l, 'port', DSMIPV6_PORT);
  const ports = l.optIntList('ports', { min: 1, max: 65535 });
  if (ports !== undefined && l.has('port')) {
    throw l.error('ports', 'give either listen.port or listen.ports, not both');
  }
  const listen: HaListenConfig = {
    address4: optBindAddress(l, 'address4', 4, '0.0.0.0'),
    address6: optBindAddress(l, 'address6', 6, '::'),
    port: ports?.[0] ?? port,
    ports: ports ?? [port],
  };
  if (listen.address4 === undefined && listen.address6 === undefined) {
    throw new ConfigError(
      file,
      'listen',
      'address4 and address6 are both "off": enable at least one',
    );
  }
  l.finish();

  const h = root.section('home');
  const prefix = h.optIpv6Prefix('prefix', { minLength: 16, maxLength: 120 });
  if (prefix === undefined)
    throw h.error('prefix', 'required key is missing (e.g. "2001:db8:100::/64")');
  const address = h.ipv6('address', addressInPrefix(prefix, 1));
  if (!ipv6InPrefix(prefix, address)) {
    throw h.error('address', `${address} is outside home.prefix ${prefix.text}`);
  }
  if (address === prefix.address) {
    throw h.error(
      'address',
      `${address} is the Subnet-Router anycast address of ${prefix.text} (RFC 4291 §2.6.1)`,
    );
  }
  const maxLifetime = h.int('max_lifetime', DEFAULT_HA_MAX_LIFETIME_S, {
    min: 4,
    max: MAX_BINDING_LIFETIME_S,
    unit: 's',
  });
  const refreshAdvice = h.optInt('refresh_advice', {
    min: 4,
    max: MAX_BINDING_LIFETIME_S,
    unit: 's',
  });
  if (refreshAdvice !== undefined && refreshAdvice >= maxLifetime) {
    throw h.error(
      'refresh_advice',
      `${refreshAdvice} s must be less than home.max_lifetime (${maxLifetime} s) (RFC 6275 §6.2.4)`,
    );
  }
  const natKeepalive = h.int('nat_keepalive', DEFAULT_NAT_KEEPALIVE_S, {
    min: 1,
    max: 86400,
    unit: 's',
  });
  const link = h.optString('link');
  const preference = h.int('preference', 0, PREFERENCE_RANGE);
  const lifetimes = prefixLifetimes(h, 'prefix_valid_lifetime', 'prefix_preferred_lifetime');
  const { ipv4Pool, ipv4Masquerade } = readIpv4Pool(h);
  const advertise = readAdvertise(h, prefix);
  const agents = readPeers(h, prefix, address);
  const statePath = h.optPath('state');
  if (statePath !== undefined && (statePath.endsWith('/') || /[\0\n]/.test(statePath))) {
    throw h.error('state', `expected a file path (e.g. "/var/lib/mip6/ha.db"), got "${statePath}"`);
  }
  const home: HaHomeConfig = {
    prefix,
    address,
    maxLifetime: maxLifetime - (maxLifetime % 4),
    refreshAdvice: refreshAdvice === undefined ? undefined : refreshAdvice - (refreshAdvice % 4),
    natKeepalive,
    link,
    ipv4Pool,
    ipv4Masquerade,
    preference,
    prefixValidLifetime: lifetimes.validLifetime,
    prefixPreferredLifetime: lifetimes.preferredLifetime,
    advertise,
    agents,
    state: statePath === undefined ? undefined : resolveAgainst(file, statePath),
  };
  h.finish();
  const cluster = readCluster(root);
  if (cluster !== undefined && home.state !== undefined) {
    throw h.error('state', 'a cluster keeps its bindings in etcd ([cluster]): remove home.state');
  }
  if (cluster !== undefined && home.ipv4Pool !== undefined) {
    // IPv4 pools and their leases are per home agent, not in etcd: two HAs would grant the
    // same address.
    throw h.error(
      'ipv4_pool',
      'IPv4 home addresses are not shared by a cluster ([cluster]): remove home.ipv4_pool',
    );
  }
  root.finish();
  return { ...common, role: 'ha', listen, home, cluster };
}
