/**
 * Dynamic Home Agent Address Discovery and Mobile Prefix Discovery (RFC 6275 §10.5, §10.6,
 * §11.4), carried inside the member's channel. Sans-IO: the HA driver hands over a decoded
 * ICMPv6 message and gets the answer to send back; the MN driver builds requests and reads
 * replies here.
 *
 * Flow:
 *   MN -> HA  DHAAD Request (144), inner src = HoA, dst = the home prefix's HA anycast address
 *             (RFC 2526 subnet anycast ID 126) or the HA's address.
 *   HA -> MN  DHAAD Reply (145): the HA addresses, most preferred first, trimmed so the reply
 *             fits the IPv6 minimum MTU (RFC 6275 §10.5).
 *   MN -> HA  Mobile Prefix Solicitation (146), inner src = HoA, dst = the HA's address: after a
 *             BA with status 1 (prefix discovery needed), and once after the first registration.
 *   HA -> MN  Mobile Prefix Advertisement (147): one Prefix Information option per advertised
 *             prefix with its lifetimes, plus one Home Agent Locator option (below) per home
 *             agent of the prefix; also unsolicited (new identifier) when that information
 *             changes, retransmitted from PREFIX_ADV_TIMEOUT doubling, at most PREFIX_ADV_RETRIES
 *             times, until the MN acknowledges it with a home-registration BU (RFC 6275 §10.6.2,
 *             §11.4.3).
 * Deviation: RFC 6275 sends the DHAAD Request from the care-of address, unprotected, before any
 * registration. Here it travels inside the authenticated channel from the home address, so the
 * answer cannot be forged by anyone on the path; an MN that cannot reach any HA yet uses the
 * configured names and addresses (home.agent) instead.
 * Deviation: an overlay HA's home-link address is reachable only through that HA's tunnel, so
 * to fail over to another HA of the prefix the MN also needs its underlay address, UDP port and
 * (when it has its own identity) public key. Those travel in the MPA as an experimental ND
 * option (type 253, RFC 4727 §5.1.3; RFC 6275 §6.8: MNs ignore options they do not know),
 * learned over the authenticated channel of the current HA. The DHAAD Reply stays RFC-exact.
 */
import { IPV6_HEADER_LEN, IPV6_MIN_MTU } from '../wire/ipv6.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../wire/address.js';
import type { Icmpv6Message, NdOption } from '../wire/icmpv6.js';
import { systemRandom, type RandomSource } from '../util/random-source.js';

/** Subnet-router anycast ID of Mobile IPv6 Home Agents (RFC 2526 §3: 126 = 0x7E). */
export const HA_ANYCAST_ID = 0x7e;
/** Bytes of a DHAAD Reply before the address list (ICMPv6 header + identifier + reserved). */
const HAAD_REPLY_HEADER_LEN = 8; // RFC 6275 §6.6
/** Most addresses a DHAAD Reply may carry within the minimum MTU. */
export const MAX_HAAD_ADDRESSES = Math.floor(
  (IPV6_MIN_MTU - IPV6_HEADER_LEN - HAAD_REPLY_HEADER_LEN) / 16,
);

/**
 * The home agents' anycast address of a prefix (RFC 2526 §2): for a 64-bit prefix the interface
 * identifier is FDFF:FFFF:FFFF:FFFE (u/l bit clear, ID 126); otherwise all ones after the prefix
 * with the last 7 bits = 126.
 */
export function homeAgentAnycast(prefix: string, length: number): string {
  const a = parseIpv6(prefix);
  for (let bit = length; bit < 128; bit++) a[bit >> 3]! |= 0x80 >> (bit & 7);
  if (length === 64) a[8] = a[8]! & ~0x02; // EUI-64 format: the universal/local bit is 0
  a[15] = (a[15]! & 0x80) | HA_ANYCAST_ID;
  return formatIpv6(a);
}

/** Bytes of a Mobile Prefix Advertisement before its options (ICMPv6 header + id + flags). */
const MPA_HEADER_LEN = 8; // RFC 6275 §6.8
/** Prefix Information option length (RFC 4861 §4.6.2). */
const PREFIX_INFORMATION_LEN = 32;
/** Unsolicited MPA retransmission (RFC 6275 §12), defined in constants.ts; re-exported for
 *  the home agent, which imports them from here. */
export { PREFIX_ADV_RETRIES, PREFIX_ADV_TIMEOUT_MS } from './constants.js';
/** Default lifetime of a home agent entry (s): AdvDefaultLifetime = 3 x MaxRtrAdvInterval
 * (RFC 4861 §6.2.1: 1800 s), what the HA Information option defaults to (RFC 6275 §7.4). */
export const DEFAULT_HA_LIFETIME_S = 1800;
/** Prefix lifetime "infinity" (RFC 4861 §4.6.2). */
export const PREFIX_LIFETIME_INFINITE = 0xffffffff;

/** ND option type of the mip6 Home Agent Locator: experimental (RFC 4727 §5.1.3). */
export const ND_OPT_HA_LOCATOR = 253;
/** First two data bytes of our experimental option ("m6"): RFC 3692-style values are shared. */
const HA_LOCATOR_MAGIC = 0x6d36;
/**
 * Home Agent Locator option (mip6 experiment, 48 bytes, or 80 with a public key):
 *   0 type 253 | 1 length (6 or 10) | 2-3 magic "m6" | 4-5 preference (signed, RFC 6275 §7.4)
 *   6-7 lifetime (s) | 8-23 HA address on the home prefix | 24-39 underlay IPv6 (:: = none)
 *   40-43 underlay IPv4 (0.0.0.0 = none) | 44-45 UDP port | 46-47 reserved (0)
 *   48-79 the HA's X25519 public key (only when length is 10)
 */
const HA_LOCATOR_LEN = 48;
const HA_LOCATOR_KEY_LEN = 32;
const LOC_MAGIC_OFF = 0; // offsets below are into the option data (after type and length)
const LOC_PREFERENCE_OFF = 2;
const LOC_LIFETIME_OFF = 4;
const LOC_ADDRESS_OFF = 6;
const LOC_UNDERLAY6_OFF = 22;
const LOC_UNDERLAY4_OFF = 38;
const LOC_PORT_OFF = 42;
const LOC_KEY_OFF = 46;

/** One home agent of the home prefix (an entry of the Home Agents List, RFC 6275 §10.1). */
export interface HomeAgentInfo {
  /** Its address on the home prefix (what the DHAAD Reply lists). */
  address: string;
  /** Home Agent Preference (RFC 6275 §7.4): signed 16 bits, higher is better. */
  preference: number;
  /** Seconds the entry stays valid (1..65535). */
  lifetime: number;
  /** Underlay addresses and UDP port where members reach it (undefined: not announced). */
  underlay4?: string | undefined;
  underlay6?: string | undefined;
  port?: number | undefined;
  /** Its X25519 public key, when it does not share the identity of the announcing HA. */
  publicKey?: Uint8Array | undefined;
  /** Bindings it serves, when known (a cluster's HAs, issue 18): the lighter first on a tie. */
  load?: number | undefined;
}

/** A prefix announced in Mobile Prefix Advertisements, with its lifetimes in seconds. */
export interface AdvertisedPrefix {
  address: string;
  length: number;
  validLifetime: number;
  preferredLifetime: number;
}

export interface DiscoveryConfig {
  /** Every home agent of the home prefix, ourselves included, in any order. */
  homeAgents: readonly HomeAgentInfo[];
  /** Prefixes advertised in MPAs; the home prefix first. */
  prefixes: readonly AdvertisedPrefix[];
}

/**
 * The Home Agents List in DHAAD order (RFC 6275 §10.5.1): higher preference first; among equal
 * preferences the one serving fewer bindings first when the loads are known (a cluster), else
 * (and among equal loads) randomized for each reply (load sharing); entries with lifetime 0
 * left out, at most MAX_HAAD_ADDRESSES.
 */
export function orderHomeAgents(
  agents: readonly HomeAgentInfo[],
  random: RandomSource = systemRandom,
): HomeAgentInfo[] {
  const live = agents.filter((a) => a.lifetime > 0);
  // Fisher-Yates first, then a stable sort by preference: ties keep the shuffled order.
  for (let i = live.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [live[i], live[j]] = [live[j]!, live[i]!];
  }
  live.sort((a, b) => b.preference - a.preference || (a.load ?? 0) - (b.load ?? 0));
  return live.slice(0, MAX_HAAD_ADDRESSES);
}

/** A Prefix Information option for one advertised prefix. */
export function prefixOption(p: AdvertisedPrefix): NdOption {
  return {
    type: 'prefixInformation',
    prefixLength: p.length,
    onLink: true,
    autonomous: true,
    routerAddress: false,
    validLifetime: p.validLifetime,
    preferredLifetime: p.preferredLifetime,
    prefix: p.address,
  };
}

/** The Home Agent Locator option of one HA (layout above). */
export function homeAgentLocatorOption(a: HomeAgentInfo): NdOption {
  const withKey = a.publicKey !== undefined;
  const data = new Uint8Array(HA_LOCATOR_LEN - 2 + (withKey ? HA_LOCATOR_KEY_LEN : 0));
  const dv = new DataView(data.buffer);
  dv.setUint16(LOC_MAGIC_OFF, HA_LOCATOR_MAGIC);
  dv.setInt16(LOC_PREFERENCE_OFF, a.preference);
  dv.setUint16(LOC_LIFETIME_OFF, a.lifetime);
  data.set(parseIpv6(a.address), LOC_ADDRESS_OFF);
  if (a.underlay6 !== undefined) data.set(parseIpv6(a.underlay6), LOC_UNDERLAY6_OFF);
  if (a.underlay4 !== undefined) data.set(parseIpv4(a.underlay4), LOC_UNDERLAY4_OFF);
  dv.setUint16(LOC_PORT_OFF, a.port ?? 0);
  if (a.publicKey !== undefined) data.set(a.publicKey, LOC_KEY_OFF);
  return { type: 'unknown', optionType: ND_OPT_HA_LOCATOR, data };
}

/** Decodes a Home Agent Locator option; null when it is not one of ours or malformed. */
export function decodeHomeAgentLocator(o: NdOption): HomeAgentInfo | null {
  if (o.type !== 'unknown' || o.optionType !== ND_OPT_HA_LOCATOR) return null;
  const d = o.data;
  if (d.length !== HA_LOCATOR_LEN - 2 && d.length !== HA_LOCATOR_LEN - 2 + HA_LOCATOR_KEY_LEN) {
    return null;
  }
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  if (dv.getUint16(LOC_MAGIC_OFF) !== HA_LOCATOR_MAGIC) return null;
  const v6 = formatIpv6(d, LOC_UNDERLAY6_OFF);
  const v4 = formatIpv4(d, LOC_UNDERLAY4_OFF);
  const port = dv.getUint16(LOC_PORT_OFF);
  return {
    address: formatIpv6(d, LOC_ADDRESS_OFF),
    preference: dv.getInt16(LOC_PREFERENCE_OFF),
    lifetime: dv.getUint16(LOC_LIFETIME_OFF),
    ...(v6 !== '::' ? { underlay6: v6 } : {}),
    ...(v4 !== '0.0.0.0' ? { underlay4: v4 } : {}),
    ...(port !== 0 ? { port } : {}),
    ...(d.length > HA_LOCATOR_LEN - 2
      ? { publicKey: d.slice(LOC_KEY_OFF, LOC_KEY_OFF + HA_LOCATOR_KEY_LEN) }
      : {}),
  };
}

/** The HA's answer to a DHAAD Request or a Mobile Prefix Solicitation; null for anything else. */
export function answerDiscovery(
  msg: Icmpv6Message,
  cfg: DiscoveryConfig,
  random: RandomSource = systemRandom,
): Icmpv6Message | null {
  if (msg.kind === 'haadRequest') {
    return {
      kind: 'haadReply',
      identifier: msg.identifier,
      mobileRouter: false, // NEMO is not offered (RFC 3963 R flag)
      homeAgentAddresses: orderHomeAgents(cfg.homeAgents, random).map((a) => a.address),
    };
  }
  if (msg.kind === 'mobilePrefixSolicitation')
    return mobilePrefixAdvertisement(msg.identifier, cfg);
  return null;
}

/**
 * A Mobile Prefix Advertisement (solicited: the request's identifier; unsolicited: a new one):
 * every prefix, then the HA locators by preference, as many as fit the IPv6 minimum MTU.
 */
export function mobilePrefixAdvertisement(identifier: number, cfg: DiscoveryConfig): Icmpv6Message {
  const options: NdOption[] = cfg.prefixes.map(prefixOption);
  let room =
    IPV6_MIN_MTU - IPV6_HEADER_LEN - MPA_HEADER_LEN - options.length * PREFIX_INFORMATION_LEN;
  const byPreference = [...cfg.homeAgents].sort((a, b) => b.preference - a.preference);
  for (const a of byPreference) {
    const len = HA_LOCATOR_LEN + (a.publicKey !== undefined ? HA_LOCATOR_KEY_LEN : 0);
    if (len > room) break;
    room -= len;
    options.push(homeAgentLocatorOption(a));
  }
  return { kind: 'mobilePrefixAdvertisement', identifier, managed: false, other: false, options };
}

/** Home prefixes announced by an MPA, as "prefix/length" with their lifetimes. */
export function advertisedPrefixes(
  msg: Extract<Icmpv6Message, { kind: 'mobilePrefixAdvertisement' }>,
): { prefix: string; validLifetime: number; preferredLifetime: number }[] {
  const out: { prefix: string; validLifetime: number; preferredLifetime: number }[] = [];
  for (const o of msg.options) {
    if (o.type !== 'prefixInformation') continue;
    out.push({
      prefix: `${o.prefix}/${o.prefixLength}`,
      validLifetime: o.validLifetime,
      preferredLifetime: o.preferredLifetime,
    });
  }
  return out;
}

/** The Home Agent Locator options of an MPA (see the deviation note at the top). */
export function advertisedHomeAgents(
  msg: Extract<Icmpv6Message, { kind: 'mobilePrefixAdvertisement' }>,
): HomeAgentInfo[] {
  const out: HomeAgentInfo[] = [];
  for (const o of msg.options) {
    const a = decodeHomeAgentLocator(o);
    if (a !== null) out.push(a);
  }
  return out;
}

/** True when two discovery configurations advertise different information. */
export function discoveryChanged(a: DiscoveryConfig, b: DiscoveryConfig): boolean {
  const key = (c: DiscoveryConfig): string =>
    JSON.stringify({
      p: c.prefixes,
      h: [...c.homeAgents]
        .sort((x, y) => (x.address < y.address ? -1 : 1))
        // A load is no announcement (MPAs do not carry it): its changes send no MPA.
        .map((x) => ({
          ...x,
          load: undefined,
          publicKey: x.publicKey ? Array.from(x.publicKey) : null,
        })),
    });
  return key(a) !== key(b);
}
