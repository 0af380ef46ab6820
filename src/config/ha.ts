/**
 * ha.toml: the home agent. parseHaConfig(text, file) -> HaConfig, every key typed and defaulted;
 * any problem is one ConfigError naming the file and the dotted key.
 */
import { ConfigError } from '../util/errors.js';
import { DSMIPV6_PORT, readCommon, readPort, type CommonConfig } from './common.js';
import {
  addressInPrefix,
  ipv6InPrefix,
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

export interface HaListenConfig {
  /** IPv4 address to bind, or undefined when IPv4 is off ("off"). */
  address4: string | undefined;
  /** IPv6 address to bind, or undefined when IPv6 is off ("off"). */
  address6: string | undefined;
  /** UDP port for both families. */
  port: number;
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
}

export interface HaConfig extends CommonConfig {
  role: 'ha';
  listen: HaListenConfig;
  home: HaHomeConfig;
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

/** Parses and validates ha.toml text. `file` is used in errors and to resolve relative paths. */
export function parseHaConfig(text: string, file: string): HaConfig {
  const root = new TableReader(file, parseToml(text, file));
  const common = readCommon(root, 'ha');

  const l = root.section('listen');
  const listen: HaListenConfig = {
    address4: optBindAddress(l, 'address4', 4, '0.0.0.0'),
    address6: optBindAddress(l, 'address6', 6, '::'),
    port: readPort(l, 'port', DSMIPV6_PORT),
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
  const home: HaHomeConfig = {
    prefix,
    address,
    maxLifetime: maxLifetime - (maxLifetime % 4),
    refreshAdvice: refreshAdvice === undefined ? undefined : refreshAdvice - (refreshAdvice % 4),
    natKeepalive,
    link,
  };
  h.finish();
  root.finish();
  return { ...common, role: 'ha', listen, home };
}
