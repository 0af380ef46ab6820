/**
 * Home agent: processing of a home-registration Binding Update (RFC 6275 §10.3.1, digest §9.2,
 * RFC 5555 §4 for IPv4 care-of addresses), adapted to the mip6 overlay.
 *
 * Flow (the driver has already decrypted the channel message, verified the inner packet's
 * selector and decoded the Mobility Header):
 *   1. Work out the home address (HAO if present, else the inner source) and the care-of
 *      address (RFC 5555 IPv4 CoA option -> IPv4-mapped; else Alternate CoA option; else the
 *      inner source when a HAO was present; else none, which means CoA == HoA).
 *   2. Checks, in this order, each with the exact answer:
 *        H=0, or Nonce Indices / Binding Authorization Data present ........ drop (no BA)
 *        inner destination is not the HA address ............................ drop (forward)
 *        HoA not on the home prefix ......................................... 132
 *        peer not allowed to register at all (policy) ....................... 129
 *        peer's certificate does not hold this HoA .......................... 133
 *        existing entry owned by another key (update or deregistration) ..... 129
 *        existing entry of another registration type (H/R differ) ........... 139
 *        R flag (mobile router, NEMO) - not offered ......................... 140
 *        returning home (CoA == HoA) not received on the home link .......... 129
 *        sequence not newer than the entry's (or a tombstone's) ............. 135 + last seq
 *        deregistration (lifetime 0 or CoA == HoA): no entry -> 133 (on the
 *          home link: 0, see below); entry -> delete, 0
 *        CoA unusable (unspecified, loopback, multicast, link-local, on the home prefix,
 *          the HA's own address) ............................................ 174
 *        new entry and the cache is full .................................... 130
 *        the home prefix's valid lifetime is over (0 after a reload) ......... 132
 *      Authorization (132/129/133) comes before anything that reads an existing entry, unlike
 *      UMIP's order: an authenticated member must not learn another member's sequence number
 *      (135) or binding type (139) by sending BUs for a home address it does not own.
 *      Ownership (DESIGN.md §4): an entry belongs to the static key of the channel whose BU
 *      created it. A certificate that holds the home address is not enough to touch someone
 *      else's entry: two certificates may hold the same address (a replaced laptop whose old
 *      certificate is still valid, an `mn` certificate for a whole prefix), and with the next
 *      sequence number either could otherwise move the other's traffic to itself. Such a BU,
 *      deregistration included, gets 129 "administratively prohibited", not 133: this HA *is*
 *      the home agent for that address and the certificate does hold it, so 133 would be
 *      false (and would look like the certificate check above in logs and at the MN); what
 *      refuses it is local policy, one owner per binding, and policy refusals are 129 (RFC
 *      6275 §6.1.8, digest §9.2 step 6). The address is free again for any key the
 *      certificate allows once the entry expires or its owner deregisters it; the tombstone
 *      of a deleted entry holds only for its owner's key.
 *      There is no DAD (134): the home prefix is routed to the HA's TUN, so the HA alone owns it.
 *      Returning home (issue #13): a BU saying CoA == HoA makes the MN take its home address
 *      onto a physical link and send in clear there, so it must come from the home link itself.
 *      The driver says so (`onHomeLink`) only for a datagram that arrived on the home-link
 *      interface with IPv6 hop limit 255, i.e. sent on that link and never routed (RFC 4861
 *      §7.1.2's rule for ND). Anything else, e.g. an evil twin on a hotel network relaying the
 *      MN's BU over the internet, gets 129 with the binding untouched, and the MN, which moves
 *      its address only on a BA 0 for that BU, stays away. On the home link a returning-home BU
 *      without an entry gets 0, not 133 (RFC 6275 §10.3.2): there is nothing to delete, and the
 *      BA is the MN's proof of the link (it starts at home, or its binding expired).
 *   3. Grant min(requested, configured max, the home prefix's remaining valid lifetime) (RFC 6275
 *      §10.3.1 MUST: a binding never outlives its home address's prefix), install the entry,
 *      answer BA 0 with the granted lifetime, a Binding Refresh Advice option when configured and shorter, and an
 *      RFC 5555 NAT Detection option when a NAT was detected or UDP is forced. K is never echoed
 *      (no IKE here, so no key-management mobility).
 *      With A = 0 an accepted BU gets no BA (action 'silent'): RFC 6275 §10.3.1 / §9.5.1 send
 *      one only when asked or when the BU is rejected. Rejections are always answered. mip6's
 *      MN always sets A for home registration (§11.7.1 MUST), so only foreign MNs notice.
 * A reload that shortens the home prefix's valid lifetime shortens the bindings that would
 * outlive it, and one that ends it (0) removes them: limitToHomePrefixLifetime.
 *
 * The BA is returned together with where to send it: to the locator the BU came from, inner
 * source = HA address, inner destination = HoA. RFC 6275 sends it to the CoA with a type 2
 * routing header carrying the HoA, because there the BA crosses the visited network as a plain
 * IPv6 packet that must be routed to the CoA. In mip6 the BA travels inside the MN's encrypted
 * channel to its locator, so the locator already does the RH2's job; addressing the inner packet
 * to the HoA (which the MN's TUN owns) is the same final destination the RH2 would have produced,
 * and keeps the MN free of RH2 processing on its signaling path.
 */
import {
  BA_STATUS,
  type BindingUpdateFlags,
  type BindingAcknowledgement,
  type BindingUpdate,
  type MobilityOption,
} from '../wire/types.js';
import {
  formatIpv6,
  ipv6Equal,
  isIpv4,
  parseIpv4,
  parseIpv6,
  parsePrefix,
  prefixContains,
  unmapIpv4,
  type Prefix,
} from '../wire/address.js';
import { byteString, bytesEqual } from '../util/bytes.js';
import type { MemberCertificate } from '../crypto/certificate.js';
import type { BindingCache, BindingCacheEntry } from './binding-cache.js';
import { MAX_BINDING_LIFETIME_S, NATKATIMEOUT_S } from './constants.js';

/** Prefix lifetime "infinity" (RFC 4861 §4.6.2: all ones). */
const PREFIX_VALID_LIFETIME_INFINITE = 0xffff_ffff;
import type { Locator } from './locator.js';
import { lifetimeUnitsToSeconds, secondsToLifetimeUnits, seqNewer } from './sequence.js';

/** The authenticated channel's member certificate, as far as registration needs it. */
export interface RegistrationPeer {
  name: string;
  /** The channel's static public key (X25519): it owns the bindings its BUs create. */
  publicKey: Uint8Array;
  /** `publicKey` as a byteString when the caller has it (PeerSession.peerKey): what the bindings it
   *  creates keep, and what an existing binding's owner is compared with. */
  owner?: string;
  /** True when the certificate holds this home address (or a prefix containing it). */
  allowsHomeAddress(hoa: string): boolean;
  /** Policy: false refuses every home registration of this member (BA 129). Default true. */
  allowsHomeRegistration?: boolean;
}

/** The HA settings registration needs (from ha.toml). */
export interface HomeAgentRegistrationConfig {
  /** The home prefix, e.g. '2001:db8:100::/64'. */
  homePrefix: string;
  /** The HA's own IPv6 address (inner source of BAs). */
  homeAgentAddress: string;
  /** Largest lifetime granted (s). */
  maxLifetimeSeconds: number;
  /** Binding Refresh Advice sent in BAs when shorter than the granted lifetime (s). */
  refreshAdviceSeconds?: number;
  /** NAT keepalive interval told to NATed MNs (s); RFC 5555 default 110. */
  natKeepaliveSeconds: number;
  /** Cap on the number of bindings (BA 130 beyond). */
  maxBindings: number;
  /** Tell every IPv4 MN that UDP encapsulation is required (NAT Detection option F flag). */
  forceUdp?: boolean;
  /**
   * Remaining valid lifetime of the home prefix (s), as advertised (home.prefix_valid_lifetime);
   * 0xffffffff or absent = infinite. Caps granted lifetimes (RFC 6275 §10.3.1).
   */
  homePrefixValidLifetimeSeconds?: number;
}

/** One decoded, authenticated BU and what the driver knows about how it arrived. */
export interface HomeRegistrationInput {
  bu: BindingUpdate;
  /** Inner IPv6 source (HoA over IPv4 per RFC 5555; the CoA over IPv6 with a HAO). */
  innerSource: string;
  /** Inner IPv6 destination (should be the HA address). */
  innerDestination: string;
  /** Home Address destination option, when the inner packet carried one (RFC 6275 §6.3). */
  homeAddressOption?: string;
  /** Observed outer address and port of the datagram. */
  locator: Locator;
  /**
   * The datagram arrived on the home link's interface with IPv6 hop limit 255: sent on the
   * home link, never routed. Only then may a BU say CoA == HoA (returning home). Default false.
   */
  onHomeLink?: boolean;
  peer: RegistrationPeer;
  config: HomeAgentRegistrationConfig;
  /**
   * In a cluster of home agents (issue 18): the binding another home agent serves for this
   * home address, as etcd last said, when this one holds none. Taking it over needs its owner
   * key and a newer sequence number (the sequence continues across home agents); with
   * `unverified` (etcd unreachable: it may be stale) the move is refused with BA 130, so the
   * member tries another home agent.
   */
  elsewhere?: ClusterBindingView;
}

/** What a home agent of the cluster knows of a binding another one serves. */
export interface ClusterBindingView {
  servingHa: string;
  ownerKey: Uint8Array;
  sequence: number;
  unverified: boolean;
}

/** Where and how the driver sends the BA. */
export interface BindingAckReply {
  locator: Locator;
  innerSource: string;
  innerDestination: string;
}

/** Stable machine-readable reason codes (for counters and tests). */
export type HomeRegistrationCode =
  | 'accepted'
  | 'deregistered'
  | 'notHomeRegistration'
  | 'notAddressedToHomeAgent'
  | 'rrOptionsInHomeRegistration'
  | 'badAddress'
  | 'notHomeSubnet'
  | 'adminProhibited'
  | 'notHomeAgentForMn'
  | 'bindingOwnerMismatch'
  | 'registrationTypeChange'
  | 'mobileRouterNotPermitted'
  | 'sequenceOutOfWindow'
  | 'homeNotOnLink'
  | 'deregistrationWithoutBinding'
  | 'invalidCareOfAddress'
  | 'insufficientResources'
  | 'homePrefixExpired'
  | 'clusterUnreachable';

/** What the driver does after `processHomeBindingUpdate`. */
export interface HomeRegistrationResult {
  /** 'ack': send `ack` to `reply`; 'silent': accepted, A = 0, no BA; 'drop': nothing. */
  action: 'ack' | 'silent' | 'drop';
  /** The BA to send (action 'ack'). */
  ack?: BindingAcknowledgement;
  /** Where to send it (action 'ack'). */
  reply?: BindingAckReply;
  change: 'created' | 'updated' | 'deleted' | 'none';
  /** The new entry (created/updated) or the removed one (deleted). */
  entry?: BindingCacheEntry;
  /** The locator before an update, when it changed (the driver moves its tunnel route). */
  previousLocator?: Locator;
  /** An update that changed nothing but the binding's lifetime and expiry: same locator, local
   *  address, care-of address, NAT and encapsulation (a plain refresh). */
  unchanged?: true;
  /** The care-of address before an update that changed it. */
  previousCareOf?: string;
  /** BA status sent (undefined on drop). */
  status?: number;
  code: HomeRegistrationCode;
  /** One human line for the log. */
  reason: string;
}

/** True when bytes [from, to) of `a` are all zero. */
function zeros(a: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== 0) return false;
  return true;
}

/** 174 triggers: addresses that can never be a care-of address. */
function unusableCareOf(coa: Uint8Array): string | undefined {
  if (zeros(coa, 0, 16)) return 'unspecified';
  const mapped = zeros(coa, 0, 10) && coa[10] === 0xff && coa[11] === 0xff;
  if (mapped) {
    const a = coa[12] ?? 0;
    if (a === 0) return 'IPv4 "this network"';
    if (a === 127) return 'IPv4 loopback';
    if (a >= 224) return 'IPv4 multicast/reserved/broadcast';
    return undefined;
  }
  if (zeros(coa, 0, 15) && coa[15] === 1) return 'loopback';
  if (coa[0] === 0xff) return 'multicast';
  if (coa[0] === 0xfe && ((coa[1] ?? 0) & 0xc0) === 0x80) return 'link-local';
  return undefined;
}

function findOption<T extends MobilityOption['type']>(
  options: MobilityOption[],
  type: T,
): Extract<MobilityOption, { type: T }> | undefined {
  return options.find((o) => o.type === type) as Extract<MobilityOption, { type: T }> | undefined;
}

function makeAck(
  status: number,
  sequence: number,
  lifetimeUnits: number,
  options: MobilityOption[] = [],
): BindingAcknowledgement {
  return {
    kind: 'bindingAcknowledgement',
    status,
    flags: { K: false, R: false, P: false, T: false, B: false, S: false, D: false },
    sequence,
    lifetimeUnits,
    options,
  };
}

/**
 * Processes one home-registration Binding Update at the home agent (see the file comment for
 * the order of checks). Mutates `cache` on acceptance; never throws on peer input (malformed
 * addresses become a drop). `now` is in ms.
 */
export function processHomeBindingUpdate(
  cache: BindingCache,
  input: HomeRegistrationInput,
  now: number,
): HomeRegistrationResult {
  const { bu, config, peer, locator } = input;
  // The configuration is trusted: a bad prefix or HA address is a programmer error and throws.
  const { haBytes, haText, prefix } = parsedConfig(config);

  // Step 2 of digest §9.2: H must be set and no RR options. A BU with H=0 asks for a
  // correspondent registration; this engine only does home registration, and without RR state
  // such a BU could never be authorised (its Nonce Indices / BAD cannot be checked), so RFC 6275
  // §9.5.1 has it silently discarded. The code lets a driver hand it to a CN engine instead.
  if (!bu.flags.H) {
    return drop('notHomeRegistration', 'H flag clear: correspondent registration, not served here');
  }
  if (bu.options.some((o) => o.type === 'nonceIndices' || o.type === 'bindingAuthorizationData')) {
    return drop('rrOptionsInHomeRegistration', 'home registration carrying Nonce Indices / BAD');
  }

  // Step 1: home address and care-of address.
  let hoa: string;
  let coa: string | undefined;
  let coaBytes: Uint8Array | undefined;
  let ipv4CoA: string | undefined;
  let hoaBytes: Uint8Array;
  try {
    // A BU addressed to another node (e.g. a correspondent on the home link) is not ours to
    // process: the driver forwards it as ordinary traffic.
    if (
      input.innerDestination !== haText &&
      !ipv6Equal(parseIpv6(input.innerDestination), 0, haBytes, 0)
    ) {
      return drop('notAddressedToHomeAgent', `BU addressed to ${input.innerDestination}`);
    }
    hoaBytes = parseIpv6(input.homeAddressOption ?? input.innerSource);
    hoa = formatIpv6(hoaBytes);
    const v4 = findOption(bu.options, 'ipv4CareOfAddress');
    const alt = findOption(bu.options, 'alternateCareOfAddress');
    if (v4 !== undefined) {
      if (!isIpv4(v4.address)) throw new Error('IPv4 CoA option is not IPv4');
      ipv4CoA = v4.address;
      // ::ffff:a.b.c.d (RFC 4291 §2.5.5.2)
      coaBytes = new Uint8Array(16);
      coaBytes[10] = 0xff;
      coaBytes[11] = 0xff;
      coaBytes.set(parseIpv4(v4.address), 12);
    } else if (alt !== undefined) {
      coaBytes = parseIpv6(alt.address);
    } else if (input.homeAddressOption !== undefined) {
      coaBytes = parseIpv6(input.innerSource);
    }
    coa = coaBytes === undefined ? undefined : formatIpv6(coaBytes);
  } catch (e) {
    return drop('badAddress', `unparsable address: ${(e as Error).message}`);
  }

  const reply: BindingAckReply = {
    locator,
    innerSource: haText,
    innerDestination: hoa,
  };
  const reject = (status: number, code: HomeRegistrationCode, why: string, seq = bu.sequence) => ({
    action: 'ack' as const,
    ack: makeAck(status, seq, 0),
    reply,
    change: 'none' as const,
    status,
    code,
    reason: `BU seq ${bu.sequence} for ${hoa} from ${peer.name}: ${why} -> BA ${status}`,
  });

  if (!prefixContains(prefix, hoaBytes) || prefix.address.length !== 16) {
    return reject(
      BA_STATUS.NOT_HOME_SUBNET,
      'notHomeSubnet',
      `not on home prefix ${config.homePrefix}`,
    );
  }
  if (peer.allowsHomeRegistration === false) {
    return reject(BA_STATUS.ADMIN_PROHIBITED, 'adminProhibited', 'member may not register');
  }
  if (!peer.allowsHomeAddress(hoa)) {
    return reject(
      BA_STATUS.NOT_HOME_AGENT_FOR_MN,
      'notHomeAgentForMn',
      'certificate does not hold this home address',
    );
  }

  const owner = peer.owner ?? byteString(peer.publicKey);
  const existing = cache.get(hoa);
  if (existing !== undefined && existing.owner !== owner) {
    // Before the sequence and type checks: the other key learns nothing of the entry.
    return reject(
      BA_STATUS.ADMIN_PROHIBITED,
      'bindingOwnerMismatch',
      `the binding belongs to another key (member ${existing.peerName})`,
    );
  }
  const elsewhere = existing === undefined ? input.elsewhere : undefined;
  if (elsewhere !== undefined && !bytesEqual(elsewhere.ownerKey, peer.publicKey)) {
    return reject(
      BA_STATUS.ADMIN_PROHIBITED,
      'bindingOwnerMismatch',
      `the binding at home agent ${elsewhere.servingHa} belongs to another key`,
    );
  }
  if (elsewhere?.unverified === true) {
    return reject(
      BA_STATUS.INSUFFICIENT_RESOURCES,
      'clusterUnreachable',
      `served by home agent ${elsewhere.servingHa} and etcd is unreachable: no move between home agents`,
    );
  }
  if (
    existing !== undefined &&
    (existing.flags.H !== bu.flags.H || existing.flags.R !== bu.flags.R)
  ) {
    return reject(
      BA_STATUS.REGISTRATION_TYPE_CHANGE_DISALLOWED,
      'registrationTypeChange',
      'existing binding has another registration type',
    );
  }
  if (bu.flags.R) {
    return reject(140, 'mobileRouterNotPermitted', 'mobile router (R) registration not offered');
  }
  const returningHome = coa === undefined || coa === hoa;
  if (returningHome && input.onHomeLink !== true) {
    return reject(
      BA_STATUS.ADMIN_PROHIBITED,
      'homeNotOnLink',
      'returning home (care-of = home address) but not received on the home link',
    );
  }
  const lastSeq =
    existing?.sequence ?? elsewhere?.sequence ?? cache.tombstoneSequence(hoa, now, owner);
  if (lastSeq !== undefined && !seqNewer(bu.sequence, lastSeq)) {
    return reject(
      BA_STATUS.SEQUENCE_OUT_OF_WINDOW,
      'sequenceOutOfWindow',
      `sequence not newer than ${lastSeq}`,
      lastSeq,
    );
  }

  const deregistration = bu.lifetimeUnits === 0 || coa === undefined || coa === hoa;
  if (deregistration) {
    if (existing === undefined && returningHome) {
      // On the home link (checked above) with nothing to delete: the BA is the proof.
      return {
        ...acknowledge(bu, makeAck(BA_STATUS.ACCEPTED, bu.sequence, 0), reply),
        change: 'none',
        status: BA_STATUS.ACCEPTED,
        code: 'deregistered',
        reason: `BU seq ${bu.sequence} for ${hoa} from ${peer.name}: home, no binding -> BA 0`,
      };
    }
    if (existing === undefined) {
      return reject(
        BA_STATUS.NOT_HOME_AGENT_FOR_MN,
        'deregistrationWithoutBinding',
        'deregistration without a binding',
      );
    }
    existing.sequence = bu.sequence;
    cache.delete(hoa, now);
    return {
      ...acknowledge(bu, makeAck(BA_STATUS.ACCEPTED, bu.sequence, 0), reply),
      change: 'deleted',
      entry: existing,
      status: BA_STATUS.ACCEPTED,
      code: 'deregistered',
      reason: `BU seq ${bu.sequence} for ${hoa} from ${peer.name}: deregistered -> BA 0`,
    };
  }

  const coaProblem = unusableCareOf(coaBytes as Uint8Array);
  const onHome = prefixContains(prefix, coaBytes as Uint8Array);
  const isHa = ipv6Equal(coaBytes as Uint8Array, 0, haBytes, 0);
  if (coaProblem !== undefined || onHome || isHa) {
    const why = coaProblem ?? (isHa ? "the home agent's own address" : 'on the home prefix');
    return reject(
      BA_STATUS.INVALID_CARE_OF_ADDRESS,
      'invalidCareOfAddress',
      `care-of ${coa} unusable: ${why}`,
    );
  }
  if (existing === undefined && cache.size >= config.maxBindings) {
    return reject(
      BA_STATUS.INSUFFICIENT_RESOURCES,
      'insufficientResources',
      `binding cache full (${config.maxBindings})`,
    );
  }

  const prefixUnits = homePrefixLifetimeUnits(config);
  if (prefixUnits === 0) {
    return reject(
      BA_STATUS.NOT_HOME_SUBNET,
      'homePrefixExpired',
      `home prefix ${config.homePrefix} is no longer valid`,
    );
  }

  // Step 3: grant and install.
  const maxSeconds = Math.min(config.maxLifetimeSeconds, MAX_BINDING_LIFETIME_S);
  const grantedUnits = Math.min(bu.lifetimeUnits, secondsToLifetimeUnits(maxSeconds), prefixUnits);
  const lifetimeSeconds = lifetimeUnitsToSeconds(grantedUnits);
  const options: MobilityOption[] = [];
  let refreshAdviceSeconds = 0;
  if (config.refreshAdviceSeconds !== undefined && config.refreshAdviceSeconds > 0) {
    const units = secondsToLifetimeUnits(config.refreshAdviceSeconds);
    if (units < grantedUnits) {
      options.push({ type: 'bindingRefreshAdvice', refreshInterval: units });
      refreshAdviceSeconds = lifetimeUnitsToSeconds(units);
    }
  }
  // RFC 5555 §4.1: NAT detection compares the IPv4 CoA option with the observed outer source.
  // A dual-stack socket may report an IPv4 peer as ::ffff:a.b.c.d: compare as IPv4.
  const observedV4 = isIpv4(locator.address) ? locator.address : unmapIpv4(locator.address);
  const natDetected = ipv4CoA !== undefined && ipv4CoA !== observedV4;
  const forceUdp = ipv4CoA !== undefined && config.forceUdp === true;
  let refreshTime = 0;
  if (natDetected || forceUdp) {
    refreshTime = config.natKeepaliveSeconds > 0 ? config.natKeepaliveSeconds : NATKATIMEOUT_S;
    options.push({ type: 'natDetection', udpEncapsulationRequired: forceUdp, refreshTime });
  }
  const previousLocator = existing?.locator;
  const encapsulation = natDetected || forceUdp || bu.flags.F;
  const previousCareOf = existing?.careOfAddress;
  const sameState =
    existing !== undefined &&
    previousCareOf === coa &&
    existing.natDetected === natDetected &&
    existing.udpEncapsulationRequired === encapsulation &&
    existing.locator.local === locator.local;
  // A BU from where the binding is (a refresh) keeps its locator object: no copy per BU, and
  // the binding's path state keeps sharing one address text with it (issue 17).
  const keptLocator =
    previousLocator !== undefined &&
    previousLocator.address === locator.address &&
    previousLocator.port === locator.port &&
    previousLocator.local === locator.local
      ? previousLocator
      : undefined;
  const entry = cache.set(
    {
      homeAddress: hoa,
      careOfAddress: coa as string,
      // With the local address the BU reached (the source of what goes back to the member).
      locator:
        keptLocator ??
        (locator.local !== undefined
          ? { address: locator.address, port: locator.port, local: locator.local }
          : { address: locator.address, port: locator.port }),
      lifetimeSeconds,
      expiresAt: now + lifetimeSeconds * 1000,
      sequence: bu.sequence,
      flags: sharedFlags(bu.flags),
      homeRegistration: true,
      peerName: peer.name,
      owner,
      natDetected,
      udpEncapsulationRequired: encapsulation,
      refreshTime,
      refreshAdviceSeconds,
    },
    now,
  );
  const moved =
    previousLocator !== undefined &&
    (previousLocator.address !== locator.address || previousLocator.port !== locator.port);
  // Built field by field: a spread here costs more than the rest of a refresh (Node 20).
  const result: HomeRegistrationResult = {
    action: bu.flags.A ? 'ack' : 'silent',
    change: existing === undefined ? 'created' : 'updated',
    entry,
    status: BA_STATUS.ACCEPTED,
    code: 'accepted',
    reason:
      `BU seq ${bu.sequence} for ${hoa} from ${peer.name}: care-of ${coa} at ` +
      `${locator.address}:${locator.port}, ${lifetimeSeconds} s${natDetected ? ', NAT' : ''} -> BA 0`,
  };
  if (bu.flags.A) {
    result.ack = makeAck(BA_STATUS.ACCEPTED, bu.sequence, grantedUnits, options);
    result.reply = reply;
  }
  if (moved) result.previousLocator = previousLocator;
  else if (sameState) result.unchanged = true;
  if (previousCareOf !== undefined && previousCareOf !== coa)
    result.previousCareOf = previousCareOf;
  return result;
}

/** An accepted BU: its BA only when the MN asked for one (A = 1). */
function acknowledge(
  bu: BindingUpdate,
  ack: BindingAcknowledgement,
  reply: BindingAckReply,
): Pick<HomeRegistrationResult, 'action' | 'ack' | 'reply'> {
  return bu.flags.A ? { action: 'ack', ack, reply } : { action: 'silent' };
}

/** The home prefix's remaining valid lifetime in lifetime units (Infinity when infinite). */
function homePrefixLifetimeUnits(config: HomeAgentRegistrationConfig): number {
  const s = config.homePrefixValidLifetimeSeconds;
  if (s === undefined || s >= PREFIX_VALID_LIFETIME_INFINITE) return Infinity;
  return s <= 0 ? 0 : Math.floor(s / 4) === 0 ? 0 : secondsToLifetimeUnits(s);
}

/**
 * The home prefix's valid lifetime changed (a reload): every binding that would outlive it is
 * shortened to end with it, and with 0 (the prefix withdrawn) removed (RFC 6275 §10.3.1: a
 * binding's lifetime MUST NOT exceed the remaining valid lifetime of its home prefix). Returns
 * the shortened and the removed entries; the driver withdraws the removed ones' routes.
 */
export function limitToHomePrefixLifetime(
  cache: BindingCache,
  validLifetimeSeconds: number,
  now: number,
): { shortened: BindingCacheEntry[]; removed: BindingCacheEntry[] } {
  const shortened: BindingCacheEntry[] = [];
  const removed: BindingCacheEntry[] = [];
  if (validLifetimeSeconds >= PREFIX_VALID_LIFETIME_INFINITE) return { shortened, removed };
  const until = now + Math.max(0, validLifetimeSeconds) * 1000;
  for (const e of [...cache.entries()]) {
    if (e.expiresAt <= until) continue;
    if (validLifetimeSeconds <= 0) {
      cache.delete(e.homeAddress, now);
      removed.push(e);
    } else {
      // In place: a new object would make a BA waiting for this binding's DAD think it gone.
      cache.shorten(e, validLifetimeSeconds, now);
      shortened.push(e);
    }
  }
  return { shortened, removed };
}

/** One frozen flags object per combination, shared by the bindings that have it. */
const flagObjects = new Map<number, Readonly<BindingUpdateFlags>>();

/** A binding's copy of its BU's flags: shared (never changed in place), not one per binding. */
function sharedFlags(f: BindingUpdateFlags): Readonly<BindingUpdateFlags> {
  let mask = 0;
  let bit = 1;
  for (const k of FLAG_NAMES) {
    if (f[k]) mask |= bit;
    bit <<= 1;
  }
  let o = flagObjects.get(mask);
  if (o === undefined) {
    o = Object.freeze({ ...f });
    flagObjects.set(mask, o);
  }
  return o;
}

const FLAG_NAMES = ['A', 'H', 'L', 'K', 'M', 'R', 'P', 'F', 'T', 'B', 'S', 'D'] as const;

/** The parsed form of a registration config's addresses (the last config's, reused). */
let parsed:
  | { ha: string; prefixText: string; haBytes: Uint8Array; haText: string; prefix: Prefix }
  | undefined;

function parsedConfig(config: HomeAgentRegistrationConfig): {
  haBytes: Uint8Array;
  haText: string;
  prefix: Prefix;
} {
  if (parsed?.ha !== config.homeAgentAddress || parsed.prefixText !== config.homePrefix) {
    const haBytes = parseIpv6(config.homeAgentAddress);
    parsed = {
      ha: config.homeAgentAddress,
      prefixText: config.homePrefix,
      haBytes,
      haText: formatIpv6(haBytes),
      prefix: parsePrefix(config.homePrefix),
    };
  }
  return parsed;
}

function drop(code: HomeRegistrationCode, reason: string): HomeRegistrationResult {
  return { action: 'drop', change: 'none', code, reason };
}

/**
 * The single home addresses (/128) of a member's certificate on the home prefix that have no
 * binding here, at most `max`: where a Binding Refresh Request asks an MN that still believes
 * it is registered (after an HA restart) for a BU now (RFC 6275 §6.1.2).
 */
export function unboundHomeAddresses(
  cert: MemberCertificate,
  homePrefix: Prefix,
  cache: BindingCache,
  max = 4,
): string[] {
  const out: string[] = [];
  for (const p of cert.addresses) {
    if (p.prefixLength !== 128 || out.length >= max) continue;
    if (!prefixContains(homePrefix, p.address, 0)) continue;
    const hoa = formatIpv6(p.address);
    if (cache.get(hoa) === undefined) out.push(hoa);
  }
  return out;
}
