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
 *   HA -> MN  Mobile Prefix Advertisement (147): one Prefix Information option per home prefix
 *             with its lifetimes; also unsolicited (new identifier) when the prefix changes.
 * Deviation: RFC 6275 sends the DHAAD Request from the care-of address, unprotected, before any
 * registration. Here it travels inside the authenticated channel from the home address, so the
 * answer cannot be forged by anyone on the path; an MN that cannot reach any HA yet uses the
 * configured names and addresses (home.agent) instead.
 */
import { IPV6_HEADER_LEN, IPV6_MIN_MTU } from '../wire/ipv6.js';
import { formatIpv6, parseIpv6 } from '../wire/address.js';
import type { Icmpv6Message, NdOption } from '../wire/icmpv6.js';

/** Subnet-router anycast ID of Mobile IPv6 Home Agents (RFC 2526 §3: 126 = 0x7E). */
export const HA_ANYCAST_ID = 0x7e;
/** Bytes of a DHAAD Reply before the address list (ICMPv6 header + identifier + reserved). */
const HAAD_REPLY_HEADER_LEN = 8; // RFC 6275 §6.6
/** IPv6 minimum MTU (RFC 8200 §5): the reply must fit. */
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

export interface DiscoveryConfig {
  /** HA addresses on the home link, most preferred first (ourselves first). */
  homeAgentAddresses: readonly string[];
  homePrefix: { address: string; length: number };
  /** Lifetimes advertised for the home prefix (s; 0xffffffff = infinity). */
  validLifetime: number;
  preferredLifetime: number;
}

/** The home prefix as a Mobile Prefix Advertisement option. */
export function homePrefixOption(cfg: DiscoveryConfig): NdOption {
  return {
    type: 'prefixInformation',
    prefixLength: cfg.homePrefix.length,
    onLink: true,
    autonomous: true,
    routerAddress: false,
    validLifetime: cfg.validLifetime,
    preferredLifetime: cfg.preferredLifetime,
    prefix: cfg.homePrefix.address,
  };
}

/** The HA's answer to a DHAAD Request or a Mobile Prefix Solicitation; null for anything else. */
export function answerDiscovery(msg: Icmpv6Message, cfg: DiscoveryConfig): Icmpv6Message | null {
  if (msg.kind === 'haadRequest') {
    return {
      kind: 'haadReply',
      identifier: msg.identifier,
      mobileRouter: false, // NEMO is not offered (RFC 3963 R flag)
      homeAgentAddresses: cfg.homeAgentAddresses.slice(0, MAX_HAAD_ADDRESSES),
    };
  }
  if (msg.kind === 'mobilePrefixSolicitation')
    return mobilePrefixAdvertisement(msg.identifier, cfg);
  return null;
}

/** A Mobile Prefix Advertisement (solicited: the request's identifier; unsolicited: a new one). */
export function mobilePrefixAdvertisement(identifier: number, cfg: DiscoveryConfig): Icmpv6Message {
  return {
    kind: 'mobilePrefixAdvertisement',
    identifier,
    managed: false,
    other: false,
    options: [homePrefixOption(cfg)],
  };
}

/** Home prefixes announced by an MPA, as "prefix/length" with their valid lifetime. */
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
