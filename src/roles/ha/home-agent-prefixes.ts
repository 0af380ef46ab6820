/**
 * What the home agent announces about its home prefix and home agents, and to whom: the
 * discovery contents (DHAAD Replies, MPAs), the home prefix's lifetimes as registration sees
 * them (RFC 6275 §10.3.1) and the MPA schedule (protocol/prefix-advertisement.ts). Returns the
 * packets; the HomeAgent seals them into each member's channel.
 */
import {
  answerDiscovery,
  DEFAULT_HA_LIFETIME_S,
  discoveryChanged,
  mobilePrefixAdvertisement,
  PREFIX_LIFETIME_INFINITE,
  type DiscoveryConfig,
} from '../../protocol/home-agent-discovery.js';
import type { HomeAgentRegistrationConfig } from '../../protocol/home-agent-registration.js';
import {
  PrefixAdvertiser,
  type PrefixAdvertisementAction,
  type PrefixAdvertisementState,
} from '../../protocol/prefix-advertisement.js';
import type { RandomSource } from '../../util/random-source.js';
import type { SizedOwnerStore } from '../../util/owner-store.js';
import { formatIpv6, ipv6Equal, parseIpv6, type Prefix } from '../../wire/address.js';
import { ICMPV6_TYPE } from '../../wire/icmpv6.js';
import { IPV6_HEADER_LEN, IPV6_NEXT_HEADER_OFF } from '../../wire/ipv6.js';
import { decodePacket, encodeIcmpv6Packet } from '../../wire/packet.js';
import { IPPROTO } from '../../wire/types.js';
import type { HomeAgentOptions } from './home-agent-options.js';

/**
 * Data-path pre-filter: the IPv6 packet at `off` (`len` bytes) is an ICMPv6 DHAAD Request or
 * Mobile Prefix Solicitation (RFC 6275 §6.5, §6.7), by its first Next Header and type.
 */
export function isDiscoveryRequest(buf: Uint8Array, off: number, len: number): boolean {
  if (len <= IPV6_HEADER_LEN || buf[off + IPV6_NEXT_HEADER_OFF] !== IPPROTO.ICMPV6) return false;
  const type = buf[off + IPV6_HEADER_LEN];
  return type === ICMPV6_TYPE.HAAD_REQUEST || type === ICMPV6_TYPE.MOBILE_PREFIX_SOLICITATION;
}

/** An MPA for the member of binding `key`. */
export interface AdvertisementToSend extends PrefixAdvertisementAction {
  hoa: string;
  packet: Uint8Array;
}

export class HomePrefixes {
  readonly #opts: HomeAgentOptions;
  readonly #homePrefix: Prefix;
  readonly #random: RandomSource;
  readonly #advertiser: PrefixAdvertiser;
  #discovery: DiscoveryConfig;
  #registrationConfig: HomeAgentRegistrationConfig;

  /** `store`: where each binding's MPA schedule is kept (the binding cache's entries). */
  constructor(
    opts: HomeAgentOptions,
    homePrefix: Prefix,
    random: RandomSource,
    store?: SizedOwnerStore<string, PrefixAdvertisementState>,
  ) {
    this.#opts = opts;
    this.#homePrefix = homePrefix;
    this.#random = random;
    this.#advertiser = new PrefixAdvertiser({
      store,
      random,
      minIntervalSeconds: opts.prefixAdvertisementIntervals?.minSeconds,
      maxIntervalSeconds: opts.prefixAdvertisementIntervals?.maxSeconds,
    });
    // Default: ourselves alone (preference 0) and the home prefix with infinite lifetimes.
    this.#discovery = opts.discovery ?? {
      homeAgents: [
        { address: opts.homeAgentAddress, preference: 0, lifetime: DEFAULT_HA_LIFETIME_S },
      ],
      prefixes: [
        {
          address: formatIpv6(homePrefix.address),
          length: homePrefix.length,
          validLifetime: PREFIX_LIFETIME_INFINITE,
          preferredLifetime: PREFIX_LIFETIME_INFINITE,
        },
      ],
    };
    this.#registrationConfig = opts;
    this.#apply();
  }

  /** What DHAAD and MPAs currently announce. */
  get discovery(): DiscoveryConfig {
    return this.#discovery;
  }

  /** The options, plus the home prefix's remaining valid lifetime (RFC 6275 §10.3.1). */
  get registrationConfig(): HomeAgentRegistrationConfig {
    return this.#registrationConfig;
  }

  /** The advertised lifetimes of the home prefix (infinite when it is not listed). */
  homePrefixLifetimes(): { validLifetime: number; preferredLifetime: number } {
    const p = this.#discovery.prefixes.find(
      (x) =>
        x.length === this.#homePrefix.length &&
        ipv6Equal(parseIpv6(x.address), 0, this.#homePrefix.address, 0),
    );
    return (
      p ?? { validLifetime: PREFIX_LIFETIME_INFINITE, preferredLifetime: PREFIX_LIFETIME_INFINITE }
    );
  }

  #apply(): void {
    const { validLifetime, preferredLifetime } = this.homePrefixLifetimes();
    this.#registrationConfig = { ...this.#opts, homePrefixValidLifetimeSeconds: validLifetime };
    this.#advertiser.setPreferredLifetime(preferredLifetime);
  }

  /** New contents (a reloaded ha.toml); false when nothing changed. */
  set(cfg: DiscoveryConfig): boolean {
    if (!discoveryChanged(this.#discovery, cfg)) {
      this.#discovery = cfg; // the same announcement; DHAAD orders by the new loads
      return false;
    }
    this.#discovery = cfg;
    this.#apply();
    return true;
  }

  /**
   * The answer to a DHAAD Request or Mobile Prefix Solicitation `packet` from the member of
   * binding `key`: the reply packet and what to log; null for anything else; 'malformed' for
   * bytes that do not decode or a wrong checksum.
   */
  answer(
    packet: Uint8Array,
    key: string,
    now: number,
  ): { reply: Uint8Array; event: 'dhaad' | 'mobile-prefix'; hoa: string } | 'malformed' | null {
    let decoded;
    try {
      decoded = decodePacket(packet);
    } catch {
      return 'malformed';
    }
    const msg = decoded.icmpv6;
    if (msg === undefined || msg.checksumValid === false) return 'malformed';
    const answer = answerDiscovery(msg, this.#discovery, this.#random);
    if (answer === null) return null;
    if (answer.kind === 'mobilePrefixAdvertisement') this.#advertiser.onSolicitedSent(key, now);
    const reply = encodeIcmpv6Packet({
      source: this.#opts.homeAgentAddress,
      destination: decoded.source,
      message: answer,
    });
    return {
      reply,
      event: msg.kind === 'haadRequest' ? 'dhaad' : 'mobile-prefix',
      hoa: decoded.source,
    };
  }

  /** Unsolicited MPAs to these members now (a change to announce). */
  advertise(members: { key: string; hoa: string }[], now: number): AdvertisementToSend[] {
    const hoaOf = new Map(members.map((m) => [m.key, m.hoa]));
    return this.#packets(
      this.#advertiser.advertise(
        members.map((m) => m.key),
        now,
      ),
      (k) => hoaOf.get(k),
    );
  }

  /** Retransmissions and periodic MPAs due at `now`; `hoaOf` finds each member's HoA. */
  poll(now: number, hoaOf: (key: string) => string | undefined): AdvertisementToSend[] {
    return this.#packets(this.#advertiser.poll(now), hoaOf);
  }

  #packets(
    actions: PrefixAdvertisementAction[],
    hoaOf: (key: string) => string | undefined,
  ): AdvertisementToSend[] {
    const out: AdvertisementToSend[] = [];
    for (const a of actions) {
      const hoa = hoaOf(a.key);
      if (hoa === undefined) {
        this.#advertiser.forget(a.key);
        continue;
      }
      const packet = encodeIcmpv6Packet({
        source: this.#opts.homeAgentAddress,
        destination: hoa,
        message: mobilePrefixAdvertisement(a.identifier, this.#discovery),
      });
      out.push({ ...a, hoa, packet });
    }
    return out;
  }

  /** A member's accepted BU; true when it acknowledged an unsolicited MPA (§11.4.3). */
  onBindingUpdate(key: string, now: number): boolean {
    return this.#advertiser.onBindingUpdate(key, now);
  }

  forget(key: string): void {
    this.#advertiser.forget(key);
  }

  nextDeadline(): number {
    return this.#advertiser.nextDeadline();
  }
}
