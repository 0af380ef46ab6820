/**
 * mn.toml (mobile node) and cn.toml (correspondent node). A mip6 CN is a member with its own
 * home address registered at an HA, like an MN, plus [route_optimization]; so both files share
 * one reader and cn.toml adds one section. parseMnConfig / parseCnConfig(text, file).
 */
import { canonicalIpv6, isIpv4 } from '../wire/address.js';
import { DSMIPV6_PORT, readCommon, readPort, resolveAgainst, type CommonConfig } from './common.js';
import { MAX_BINDING_LIFETIME_S } from './ha.js';
import {
  addressInPrefix,
  ipv6InPrefix,
  parseAnyPrefix,
  parseToml,
  prefixOf,
  TableReader,
  type Ipv6Prefix,
} from './reader.js';

/** First home-registration BU timeout, InitialBindackTimeoutFirstReg (RFC 6275 §13: 1.5 s). */
export const DEFAULT_FIRST_REG_TIMEOUT_S = 1.5;
/** MAX_BINDACK_TIMEOUT (RFC 6275 §12): no retransmission timer is ever longer. */
export const MAX_BINDACK_TIMEOUT_S = 32;
/** MAX_RR_BINDING_LIFETIME (RFC 6275 §12): cap of a correspondent binding. */
export const MAX_RR_BINDING_LIFETIME_S = 420;
/** Default requested home-registration lifetime, seconds. */
export const DEFAULT_MN_LIFETIME_S = 600;

export type AgentHostKind = 'ipv4' | 'ipv6' | 'hostname';

export interface MnHomeConfig {
  /** The home address (HoA), canonical IPv6 text. */
  address: string;
  /** Length of the home prefix the HoA belongs to. */
  prefixLength: number;
  /** The home prefix derived from address/prefix_length. */
  prefix: Ipv6Prefix;
  /** The HA's underlay address or hostname (resolved by the daemon). */
  agent: string;
  agentKind: AgentHostKind;
  /** Every configured HA address or name (the first is `agent`). */
  agents: string[];
  /** The HA's UDP port (the first of `agentPorts`). */
  agentPort: number;
  /**
   * The HA's ports in the order to try them ([home] agent_port as a list, e.g. [4191, 443]): on a
   * network where one is blocked the MN moves on to the next and remembers what worked there.
   */
  agentPorts: number[];
  /** The HA's address on the home prefix: inner destination of home BUs. */
  agentAddress: string;
  /** Optional path to the HA's public key, pinned in addition to the certificate check. */
  agentPublicKey: string | undefined;
  /** Requested home-registration lifetime, seconds (a multiple of 4). */
  lifetime: number;
  /** Timeout of the first BU of a new home registration, seconds. */
  firstRegistrationTimeout: number;
  /**
   * RFC 5555 IPv4 home address: "auto" (the HA assigns one from its pool) or a dotted quad the
   * member's certificate allows (as ::ffff:a.b.c.d); undefined = none.
   */
  ipv4Address: string | undefined;
}

export interface MnUnderlayConfig {
  /** Local UDP port; 0 lets the kernel pick an ephemeral port. */
  port: number;
  /** Underlay interfaces to use; empty = every interface with a usable address. */
  interfaces: string[];
  /** Family to register over when both have a route to the HA. */
  prefer: 'ipv6' | 'ipv4';
}

export interface MnMovementConfig {
  /** Watch rtnetlink link/address/route events to detect moves at once. */
  netlink: boolean;
  /** Probe the HA after this many seconds without receiving anything, seconds. */
  probeInterval: number;
  /** How long to wait for the answer to one probe, seconds. */
  probeTimeout: number;
  /** Unanswered probes in a row that count as movement (re-register). */
  probeAttempts: number;
  /**
   * Go home on a link the home agent proves to be the home link (false: never treat a link as
   * home, always tunnel).
   */
  returnHome: boolean;
  /**
   * Captive-portal probe (issue #15): an http:// URL that answers 204 on the open internet; when
   * no port of the HA answers it is fetched outside the tunnel, and anything but 204 (a
   * redirect, a login page) is reported as a captive portal in `mip6 status`. Undefined: none.
   */
  portalProbe: string | undefined;
  /**
   * [movement] portal_login (default false): after the probe found a portal, DNS, HTTP and
   * HTTPS may leave outside the tunnel (routes and kill switch) for PORTAL_LOGIN_S at most, so a
   * browser can log in. Off: a portal is only reported, nothing opens.
   */
  portalLogin: boolean;
}

/** How long the portal login window stays open at most ([movement] portal_login), seconds. */
export const PORTAL_LOGIN_S = 300;

/** Routing tables the kernel owns (default, main, local): never a [tun] fwmark. */
const RESERVED_TABLES = new Set([253, 254, 255]);

/** A correspondent this member may optimize routes to ([[correspondent]]). */
export interface CorrespondentConfig {
  /** The correspondent's home address. */
  address: string;
  /** Its underlay addresses (IPv4 and/or IPv6 literals) for the direct channel. */
  underlay: string[];
  /** Its underlay UDP port (the CN's [underlay] port). */
  port: number;
  /** Path to its X25519 public key file (pinned for the direct channel). */
  publicKey: string;
  /** Route optimization on/off for this correspondent. */
  routeOptimization: boolean;
  /** Requested correspondent binding lifetime, seconds (<= MAX_RR_BINDING_LIFETIME). */
  lifetime: number;
  /** Set A in correspondent BUs and wait for the BA before sending directly. */
  ack: boolean;
}

/** The member's [tun] keys beyond the shared ones: what the tunnel carries (issue #15). */
export interface MnTunnelConfig {
  /**
   * Prefixes routed into the TUN besides the home prefix, canonical "network/length" of either
   * family (e.g. "::/0", "0.0.0.0/0" for everything); empty: the home prefix only.
   */
  routes: string[];
  /** Firewall mark of the daemon's UDP sockets and number of the routes' table. */
  fwmark: number;
  /** Resolvers while the tunnel is up ([tun] dns); empty: the machine's own are kept. */
  dns: string[];
  /** The kill switch ([tun] block_outside): nothing but the tunnel leaves by the underlay. */
  blockOutside: boolean;
}

/** Default [tun] fwmark: 4191, the dsmipv6 port (src/io/tunnel-routes.ts). */
export const DEFAULT_FWMARK = 4191;

function defaultTunnel(): MnTunnelConfig {
  return { routes: [], fwmark: DEFAULT_FWMARK, dns: [], blockOutside: false };
}

/** Reads [tun] routes and fwmark (called inside readCommon, before [tun] is finished). */
function readTunnel(t: TableReader, out: MnTunnelConfig): void {
  const routes = t.optStringOrArray('routes') ?? [];
  const seen = new Set<string>();
  routes.forEach((r, i) => {
    const p = parseAnyPrefix(r.trim());
    if (typeof p === 'string') throw t.error(`routes[${i}]`, p);
    if (seen.has(p.text)) throw t.error(`routes[${i}]`, `${p.text} is listed twice`);
    seen.add(p.text);
    out.routes.push(p.text);
  });
  out.fwmark = t.int('fwmark', DEFAULT_FWMARK, { min: 1, max: 0xffffffff });
  if (RESERVED_TABLES.has(out.fwmark)) {
    throw t.error(
      'fwmark',
      `${out.fwmark} is a routing table of the kernel (253 default, 254 main, 255 local); the mark is also the tunnel's table number: pick another, e.g. 4191`,
    );
  }
  const dns = t.optStringOrArray('dns') ?? [];
  dns.forEach((d, i) => {
    if (!isIpv4(d) && canonicalIpv6OrUndefined(d) === undefined) {
      throw t.error(`dns[${i}]`, `"${d}" is not an IPv4 or IPv6 address`);
    }
    out.dns.push(isIpv4(d) ? d : canonicalIpv6(d));
  });
  out.blockOutside = t.bool('block_outside', false);
}

export interface MnConfig extends CommonConfig {
  role: 'mn';
  home: MnHomeConfig;
  underlay: MnUnderlayConfig;
  movement: MnMovementConfig;
  correspondents: CorrespondentConfig[];
  tunnel: MnTunnelConfig;
}

function readCorrespondents(root: TableReader): CorrespondentConfig[] {
  return root.sectionList('correspondent').map((c) => {
    const address = c.optIpv6('address');
    if (address === undefined) {
      throw c.error('address', "required key is missing (the correspondent's home address)");
    }
    const underlay = c.optStringOrArray('underlay') ?? [];
    if (underlay.length === 0) {
      throw c.error('underlay', 'required key is missing (its underlay IPv4/IPv6 address(es))');
    }
    underlay.forEach((u, i) => {
      if (!isIpv4(u) && canonicalIpv6OrUndefined(u) === undefined) {
        throw c.error(`underlay[${i}]`, `"${u}" is not an IPv4 or IPv6 address`);
      }
    });
    const out: CorrespondentConfig = {
      address,
      underlay: underlay.map((u) => (isIpv4(u) ? u : canonicalIpv6(u))),
      port: readPort(c, 'port', DSMIPV6_PORT),
      publicKey: resolveAgainst(root.file, c.requiredPath('public_key')),
      routeOptimization: c.bool('route_optimization', true),
      lifetime: c.int('lifetime', MAX_RR_BINDING_LIFETIME_S, {
        min: 4,
        max: MAX_RR_BINDING_LIFETIME_S,
        unit: 's',
      }),
      ack: c.bool('ack', true),
    };
    c.finish();
    return out;
  });
}

export interface RouteOptimizationConfig {
  enabled: boolean;
  /** Lifetime requested or granted for a correspondent binding, seconds. */
  bindingLifetime: number;
}

export interface CnConfig extends Omit<MnConfig, 'role'> {
  role: 'cn';
  routeOptimization: RouteOptimizationConfig;
}

const HOSTNAME_RE =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function canonicalIpv6OrUndefined(v: string): string | undefined {
  try {
    return canonicalIpv6(v);
  } catch {
    return undefined;
  }
}

/** `http://<IPv4>[:port][/path]` or `http://[<IPv6>][:port][/path]`: an address, never a name. */
function isAddressUrl(url: string): boolean {
  const m = /^http:\/\/(?:\[([0-9A-Fa-f:.]+)\]|(\d+\.\d+\.\d+\.\d+))(?::(\d{1,5}))?(\/\S*)?$/.exec(
    url,
  );
  if (m === null) return false;
  const port = m[3] === undefined ? 80 : Number(m[3]);
  if (port < 1 || port > 65535) return false;
  return m[1] !== undefined ? canonicalIpv6OrUndefined(m[1]) !== undefined : isIpv4(m[2]!);
}

function readOneAgent(
  h: TableReader,
  key: string,
  v: string,
): { agent: string; agentKind: AgentHostKind } {
  if (isIpv4(v)) return { agent: v, agentKind: 'ipv4' };
  if (v.includes(':')) {
    const canonical = canonicalIpv6OrUndefined(v);
    if (canonical === undefined) throw h.error(key, `"${v}" is not a valid IPv6 address`);
    return { agent: canonical, agentKind: 'ipv6' };
  }
  if (/^[\d.]+$/.test(v) || !HOSTNAME_RE.test(v)) {
    throw h.error(key, `"${v}" is neither an IPv4 address, an IPv6 address nor a hostname`);
  }
  return { agent: v.toLowerCase(), agentKind: 'hostname' };
}

/**
 * `agent` is one address or name, or a list of them (e.g. the HA's IPv4 and IPv6 underlay
 * addresses, so the MN can reach it from IPv4-only and IPv6-only networks alike).
 */
function readAgents(h: TableReader): { agent: string; agentKind: AgentHostKind }[] {
  const list = h.optStringOrArray('agent');
  if (list === undefined || list.length === 0) {
    throw h.error(
      'agent',
      "required key is missing (the home agent's IPv4/IPv6 address or hostname, or a list of them)",
    );
  }
  return list.map((v, i) => readOneAgent(h, list.length === 1 ? 'agent' : `agent[${i}]`, v));
}

function readMember(
  root: TableReader,
  isCn: boolean,
): Omit<MnConfig, 'role' | 'correspondents' | 'tunnel' | keyof CommonConfig> {
  const h = root.section('home');
  const address = h.optIpv6('address');
  if (address === undefined) throw h.error('address', 'required key is missing (the home address)');
  const prefixLength = h.int('prefix_length', 64, { min: 16, max: 128 });
  const prefix = prefixOf(address, prefixLength);
  const agents = readAgents(h);
  const { agent, agentKind } = agents[0]!;
  const agentPorts = h.optIntList('agent_port', { min: 1, max: 65535 }) ?? [DSMIPV6_PORT];
  const agentPort = agentPorts[0]!;
  const agentAddress = h.ipv6('agent_address', addressInPrefix(prefix, 1));
  if (!ipv6InPrefix(prefix, agentAddress)) {
    throw h.error(
      'agent_address',
      `${agentAddress} is outside the home prefix ${prefix.text} (home.address/home.prefix_length)`,
    );
  }
  if (agentAddress === address) {
    throw h.error('agent_address', `${agentAddress} is the same as home.address`);
  }
  const agentPublicKey = h.optPath('agent_public_key');
  const ipv4Address = h.optString('ipv4_address');
  if (ipv4Address !== undefined && ipv4Address !== 'auto') {
    const first = Number(ipv4Address.split('.')[0]);
    if (!isIpv4(ipv4Address) || first === 0 || first === 127 || first >= 224) {
      throw h.error(
        'ipv4_address',
        `"${ipv4Address}" is neither "auto" nor a unicast IPv4 address (e.g. "10.99.0.7")`,
      );
    }
  }
  const lifetime = h.int('lifetime', DEFAULT_MN_LIFETIME_S, {
    min: 4,
    max: MAX_BINDING_LIFETIME_S,
    unit: 's',
  });
  const firstRegistrationTimeout = h.number(
    'first_registration_timeout',
    DEFAULT_FIRST_REG_TIMEOUT_S,
    {
      min: 0.1,
      max: MAX_BINDACK_TIMEOUT_S,
      unit: 's',
    },
  );
  h.finish();

  const u = root.section('underlay');
  const interfaces = u.optStringArray('interfaces') ?? [];
  interfaces.forEach((n, i) => {
    if (n.length === 0 || n.length > 15 || /[\s/]/.test(n)) {
      throw u.error(`interfaces[${i}]`, `"${n}" is not a valid interface name`);
    }
  });
  const underlay: MnUnderlayConfig = {
    port: readPort(u, 'port', isCn ? DSMIPV6_PORT : 0, true),
    interfaces,
    prefer: u.oneOf('prefer', ['ipv6', 'ipv4'] as const, 'ipv6'),
  };
  u.finish();

  const m = root.section('movement');
  const movement: MnMovementConfig = {
    netlink: m.bool('netlink', true),
    probeInterval: m.number('probe_interval', 5, { min: 0.1, max: 3600, unit: 's' }),
    probeTimeout: m.number('probe_timeout', 1, {
      min: 0.05,
      max: MAX_BINDACK_TIMEOUT_S,
      unit: 's',
    }),
    probeAttempts: m.int('probe_attempts', 3, { min: 1, max: 20 }),
    returnHome: m.bool('return_home', true),
    portalProbe: m.optString('portal_probe'),
    portalLogin: m.bool('portal_login', false),
  };
  const probe = movement.portalProbe;
  if (probe !== undefined && !isAddressUrl(probe)) {
    throw m.error(
      'portal_probe',
      `"${probe}" is not a plain http:// URL with an address (http://IPv4/... or http://[IPv6]/...; a host name would be blocked by the kill switch), e.g. "http://203.0.113.80/generate_204"`,
    );
  }
  if (movement.portalLogin && probe === undefined) {
    throw m.error('portal_login', 'needs [movement] portal_probe (nothing detects a portal)');
  }
  m.finish();

  const home: MnHomeConfig = {
    address,
    prefixLength,
    prefix,
    agent,
    agentKind,
    agents: agents.map((a) => a.agent),
    agentPort,
    agentPorts,
    agentAddress,
    agentPublicKey:
      agentPublicKey === undefined ? undefined : resolveAgainst(root.file, agentPublicKey),
    lifetime: lifetime - (lifetime % 4),
    firstRegistrationTimeout,
    ipv4Address,
  };
  return { home, underlay, movement };
}

/** Parses and validates mn.toml text. */
export function parseMnConfig(text: string, file: string): MnConfig {
  const root = new TableReader(file, parseToml(text, file));
  const tunnel = defaultTunnel();
  const common = readCommon(root, 'mn', (t) => readTunnel(t, tunnel));
  const member = readMember(root, false);
  const correspondents = readCorrespondents(root);
  root.finish();
  return { ...common, role: 'mn', ...member, correspondents, tunnel };
}

/** Parses and validates cn.toml text: mn.toml plus [route_optimization]. */
export function parseCnConfig(text: string, file: string): CnConfig {
  const root = new TableReader(file, parseToml(text, file));
  const tunnel = defaultTunnel();
  const common = readCommon(root, 'cn', (t) => readTunnel(t, tunnel));
  const member = readMember(root, true);
  const r = root.section('route_optimization');
  const routeOptimization: RouteOptimizationConfig = {
    enabled: r.bool('enabled', true),
    bindingLifetime: r.int('binding_lifetime', MAX_RR_BINDING_LIFETIME_S, {
      min: 4,
      max: MAX_RR_BINDING_LIFETIME_S,
      unit: 's',
    }),
  };
  r.finish();
  const correspondents = readCorrespondents(root);
  root.finish();
  return { ...common, role: 'cn', ...member, routeOptimization, correspondents, tunnel };
}
