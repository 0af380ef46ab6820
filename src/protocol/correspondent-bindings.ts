/**
 * The correspondent node's signaling core (RFC 6275 §9.4-§9.6): answers return routability,
 * accepts RR-authorised Binding Updates into its binding cache, and checks Home Address
 * options on data. Pure: whole inner IPv6 packets in, actions (packets to send, binding
 * changes, counted drops) out; time is a parameter.
 *
 * HoTI (src HoA, reached us via the MN's HA) -> HoT to the HoA; CoTI (src CoA) -> CoT to the
 *   CoA (over a channel: to the locator the CoTI came from, which the token covers). Both
 *   stateless (return-routability.ts): no state per request, only Kcn, the rotating
 *   nonces and token buckets. Never amplifying: a HoTI/CoTI shorter than the HoT/CoT it would
 *   get (RR_TEST_PACKET_LEN; RFC-sized ones are 8 bytes short, mip6 MNs pad them with PadN)
 *   is dropped and counted. Rate-limited per origin: an anonymous request (a HoTI from an
 *   address no member's certificate holds) shares RR_ANSWER_RATE with every other anonymous
 *   one; a member's (its CoTI on its own channel, a HoTI from its home address) gets its own
 *   RR_MEMBER_ANSWER_RATE, so a flood from elsewhere cannot starve a member's RR.
 * BU (src CoA + HAO HoA, or src HoA when returning home) -> checks in the digest §8.5 order:
 *   1. HoA and CoA routable unicast; the CoA is not itself a bound HoA (no chains) -> drop.
 *      On a member's channel (mip6, issue #13; `origin` says so), silent drops, counted:
 *        the HoA is not one the member's certificate holds ........... bu-home-address-not-allowed
 *        no HAO, unless it is the RFC's returning-home deregistration
 *          (sent from the HoA itself: CoA == HoA) ...................... bu-without-hao
 *        a binding for the HoA exists and another key owns it ........ binding-owner-mismatch
 *      RFC 6275 §9.5.1 takes the packet's source as the home address when there is no HAO;
 *      that form is for an MN back on its home link (§11.5.4), which deregisters from the HoA
 *      itself (CoA == HoA). An MN away from home sends its BU from the CoA with its HoA in a
 *      HAO (§11.7.2). A HAO-less BU that names another CoA (Alternate CoA option) is neither,
 *      and would let one care-of token bind any address the sender can get a HoT at (a HoT
 *      goes to whatever source a HoTI had): refused. mip6 MNs always
 *      deregister from the CoA with a HAO (correspondent-registration.ts), so the HAO-less form
 *      stays accepted only for RFC conformance. A binding belongs to the static key of the
 *      channel that created it (DESIGN.md §4), as at the home agent: another certificate that
 *      holds the same HoA must wait for it to expire or be deregistered by its owner. These are
 *      silent drops, not BA 129 as at the HA: §9.5.1 discards a BU that fails validation, and a
 *      129 would make a mip6 MN give up route optimization with this CN for good (a replaced
 *      laptop would then stay tunneled after the old binding expires); silently dropped, it
 *      retries with back-off and gets the address once it is free.
 *   2. H set: with Nonce Indices drop, else BA 139 (a binding exists) / 131.
 *   3. Nonce Indices present (else drop); tokens regenerated; expired -> BA 136/137/138. The
 *      care-of token covers the locator the BU was observed from (return-routability.ts, a
 *      mip6 deviation), so only a BU from the locator that received the CoT verifies.
 *   4. Binding Authorization Data present and correct for Kbm -> else silent drop.
 *   5. Sequence newer than the entry's (or its owner's deleted entry's tombstone) -> else BA 135
 *      with the last accepted value.
 *   6. Lifetime > 0: create/update with lifetime <= MAX_RR_BINDING_LIFETIME (full -> BA 130);
 *      lifetime 0 or CoA == HoA: delete, keep a tombstone (last sequence) so a replay of an
 *      older BU cannot resurrect the binding while its nonces are still valid.
 *   7. BA when A was set and for every rejection above that is not a drop; BAD when Kbm known.
 *      BAs go to the CoA with a Type 2 Routing Header carrying the HoA.
 * Data: a packet with a HAO is accepted only if a binding for that HoA has the packet's source
 *   as CoA; otherwise Binding Error status 1 to the source (rate-limited). Entries in use and
 *   near expiry get a Binding Refresh Request.
 */
import type { RrCrypto } from '../crypto/rr-crypto.js';
import { bytesEqual } from '../util/bytes.js';
import { formatIpv6, parseIpv6 } from '../wire/address.js';
import { encodeMobilityHeader } from '../wire/mobility.js';
import { decodePacket, encodePacket, type DecodedPacket } from '../wire/packet.js';
import {
  BA_STATUS,
  BE_STATUS,
  IPPROTO,
  type BindingUpdate,
  type MobilityMessage,
  type MobilityOption,
} from '../wire/types.js';
import { keyOf, keyOfText } from './binding-cache.js';
import {
  BRR_LIFETIME_FRACTION,
  BRR_USAGE_WINDOW_MS,
  MAX_NONCE_LIFETIME_S,
  MAX_RR_BINDING_LIFETIME_S,
} from './constants.js';
import {
  ReturnRoutabilityResponder,
  bindingManagementKey,
  signMobilityHeader,
  verifyMobilityHeader,
} from './return-routability.js';
import type { Locator } from './locator.js';
import { checkMobilityHeader, mobilityHeaderAnswer } from './mobility-header-check.js';
import { lifetimeUnitsToSeconds, secondsToLifetimeUnits, seqNewer } from './sequence.js';

/** mip6 choice: at most this many HoT/CoT answers per second to anonymous requests, all
 * together (reflection/CPU bound). */
export const RR_ANSWER_RATE = 100;
/** mip6 choice: HoT/CoT answers per second to one member (a conforming MN needs one HoTI and
 * one CoTI per move, retransmitted at most every INITIAL_BINDACK_TIMEOUT). */
export const RR_MEMBER_ANSWER_RATE = 10;
/** mip6 choice: per-member RR buckets kept (members are certified, so this is generous). */
export const MAX_RR_MEMBER_BUCKETS = 4096;
/**
 * Length of the HoT / CoT packet we answer with: IPv6 header 40 (RFC 8200 §3) + a 24-byte
 * Mobility Header (RFC 6275 §6.1.5/§6.1.6: 6 header + 2 nonce index + 8 cookie + 8 token).
 * A request shorter than this is not answered (no amplification, issue 9): the RFC's 16-byte
 * HoTI/CoTI Mobility Header is 8 bytes short of the answer, so mip6 MNs add one 8-byte PadN
 * option (RR_INIT_PADDING in correspondent-registration.ts). A deviation from RFC 6275 §9.4.1,
 * which answers any well-formed HoTI/CoTI: a plain RFC MN's RR is refused by a mip6 CN.
 */
export const RR_TEST_PACKET_LEN = 40 + 24;
/** mip6 choice: at most this many Binding Errors per second (RFC 6275 §9.3.3 "rate limited"). */
export const BINDING_ERROR_RATE = 10;
/** mip6 choice: the tombstone of a deleted binding lasts as long as any nonce it used can. */
export const CORRESPONDENT_TOMBSTONE_MS = MAX_NONCE_LIFETIME_S * 1000;
/** mip6 choice: default capacity of the correspondent binding cache. */
export const DEFAULT_MAX_CORRESPONDENT_BINDINGS = 4096;

/** Token bucket: `rate` tokens per second, burst `rate`. */
export class TokenBucket {
  #tokens: number;
  #at = -Infinity;
  readonly #rate: number;
  constructor(rate: number) {
    this.#rate = rate;
    this.#tokens = rate;
  }
  take(now: number): boolean {
    if (this.#at !== -Infinity) {
      this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#at) * this.#rate) / 1000);
    }
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

export interface CorrespondentBinding {
  homeAddress: string;
  careOfAddress: string;
  /** 16 bytes of the CoA, for data-path comparisons. */
  careOfBytes: Uint8Array;
  sequence: number;
  lifetimeSeconds: number;
  registeredAt: number;
  expiresAt: number;
  lastUsed: number;
  brrSentAt: number;
  packetsIn: number;
  packetsOut: number;
  /**
   * The binding's owner: the static public key of the channel whose BU created it (empty when
   * it came on none). Only BUs from that key update or delete it.
   */
  ownerKey: Uint8Array;
}

/** What the driver knows about where a Mobility Header packet came from (see `handle`). */
export interface CorrespondentOrigin {
  /**
   * The certified member a HoTI/CoTI is known to come from (its own RR rate bucket); without
   * it the request is anonymous.
   */
  member?: string | undefined;
  /**
   * The static public key of the member's channel the packet came on. A BU's binding belongs
   * to it, and with it the channel checks of the file comment (step 1) apply.
   */
  ownerKey?: Uint8Array | undefined;
  /** The member's certificate: true when it holds this home address (16 bytes). */
  allowsHomeAddress?: ((homeAddress: Uint8Array) => boolean) | undefined;
  /** The observed outer locator (UDP address and port) of the datagram. */
  locator?: Locator | undefined;
}

export type CorrespondentMessageKind =
  | 'homeTest'
  | 'careOfTest'
  | 'bindingAcknowledgement'
  | 'bindingError'
  | 'bindingRefreshRequest'
  | 'parameterProblem';

export type CorrespondentAction =
  | {
      kind: 'send';
      message: CorrespondentMessageKind;
      /** IPv6 destination on the wire (CoA for BA/BE/BRR/CoT, HoA for HoT). */
      destination: string;
      /** The MN this concerns (its HoA), `::` when unknown. */
      homeAddress: string;
      packet: Uint8Array;
      /** BA status, for logs. */
      status?: number;
    }
  | { kind: 'bindingAdded' | 'bindingUpdated'; binding: CorrespondentBinding }
  | { kind: 'bindingDeleted'; homeAddress: string; reason: 'deregistered' | 'expired' }
  | { kind: 'drop'; reason: string };

export interface CorrespondentOptions {
  /** Our own addresses (the CN's home address); BUs must be sent to one of them. */
  addresses: string[];
  /** Lifetime cap for bindings, seconds (<= MAX_RR_BINDING_LIFETIME). */
  maxLifetimeSeconds?: number;
  maxBindings?: number;
  responder?: ReturnRoutabilityResponder;
}

interface Tombstone {
  sequence: number;
  until: number;
  /** The deleted binding's owner: the tombstone holds for its key only. */
  ownerKey: Uint8Array;
}

const UNSPECIFIED = '::';
/** Owner of a binding made without a channel (the engine used on its own). */
const NO_OWNER = new Uint8Array(0);

/** True for addresses a binding may use: not unspecified, loopback, multicast or link-local. */
export function isRoutableUnicast(a: Uint8Array, off = 0): boolean {
  const b0 = a[off] ?? 0;
  if (b0 === 0xff) return false; // multicast (RFC 4291 §2.7)
  if (b0 === 0xfe && ((a[off + 1] ?? 0) & 0xc0) === 0x80) return false; // fe80::/10
  let zero = true;
  for (let i = 0; i < 15; i++) if ((a[off + i] ?? 0) !== 0) zero = false;
  const last = a[off + 15] ?? 0;
  if (zero && (last === 0 || last === 1)) return false; // :: and ::1
  return true;
}

export class CorrespondentBindings {
  readonly #c: RrCrypto;
  readonly responder: ReturnRoutabilityResponder;
  readonly #addresses: Set<string>;
  readonly #maxLifetime: number;
  readonly #maxBindings: number;
  readonly #byHome = new Map<string, CorrespondentBinding>();
  readonly #tombstones = new Map<string, Tombstone>();
  readonly #rrBucket = new TokenBucket(RR_ANSWER_RATE);
  /** Per-member RR buckets, oldest first (Map order), at most MAX_RR_MEMBER_BUCKETS. */
  readonly #memberBuckets = new Map<string, TokenBucket>();
  readonly #beBucket = new TokenBucket(BINDING_ERROR_RATE);

  constructor(c: RrCrypto, opts: CorrespondentOptions) {
    this.#c = c;
    this.responder = opts.responder ?? new ReturnRoutabilityResponder(c);
    this.#addresses = new Set(opts.addresses.map((a) => keyOfText(a)));
    this.#maxLifetime = Math.min(
      opts.maxLifetimeSeconds ?? MAX_RR_BINDING_LIFETIME_S,
      MAX_RR_BINDING_LIFETIME_S,
    );
    this.#maxBindings = opts.maxBindings ?? DEFAULT_MAX_CORRESPONDENT_BINDINGS;
  }

  get size(): number {
    return this.#byHome.size;
  }

  bindings(): IterableIterator<CorrespondentBinding> {
    return this.#byHome.values();
  }

  /** The binding for the HoA at `bytes[off..off+16)` (data path, no allocation but the key). */
  lookup(bytes: Uint8Array, off: number): CorrespondentBinding | undefined {
    return this.#byHome.get(keyOf(bytes, off));
  }

  get(homeAddress: string): CorrespondentBinding | undefined {
    return this.#byHome.get(keyOfText(homeAddress));
  }

  /**
   * RFC 6275 §9.3.1: a packet with a HAO (home address at `haoOff`) from source `srcOff` is
   * acceptable only if a binding for that HoA names that source as its CoA.
   */
  acceptHomeAddressOption(
    buf: Uint8Array,
    haoOff: number,
    srcOff: number,
    now: number,
  ): CorrespondentBinding | undefined {
    const b = this.#byHome.get(keyOf(buf, haoOff));
    if (b === undefined || now >= b.expiresAt) return undefined;
    for (let i = 0; i < 16; i++) if (b.careOfBytes[i] !== buf[srcOff + i]) return undefined;
    b.lastUsed = now;
    b.packetsIn++;
    return b;
  }

  /**
   * Binding Error status 1 for a HAO without a binding (RFC 6275 §9.3.1), to the packet's
   * source; null when rate-limited.
   */
  bindingErrorFor(
    homeAddress: string,
    source: string,
    destination: string,
    now: number,
    status: number = BE_STATUS.UNKNOWN_BINDING_FOR_HAO,
  ): CorrespondentAction | null {
    if (!this.#beBucket.take(now)) return null;
    const packet = encodePacket({ source: destination, destination: source }, IPPROTO.MH, (p) =>
      encodeMobilityHeader({ kind: 'bindingError', status, homeAddress, options: [] }, p),
    );
    return { kind: 'send', message: 'bindingError', destination: source, homeAddress, packet };
  }

  /** RR state for status and tests: per-member buckets and live nonces (nothing per request). */
  rrState(): { memberBuckets: number; nonces: number } {
    return { memberBuckets: this.#memberBuckets.size, nonces: this.responder.nonces.size };
  }

  /** Takes one RR answer from the bucket of `member`, or the shared anonymous one. */
  #rrAllowed(member: string | undefined, now: number): boolean {
    if (member === undefined) return this.#rrBucket.take(now);
    let b = this.#memberBuckets.get(member);
    if (b === undefined) {
      if (this.#memberBuckets.size >= MAX_RR_MEMBER_BUCKETS) {
        const oldest = this.#memberBuckets.keys().next().value;
        if (oldest !== undefined) this.#memberBuckets.delete(oldest);
      }
      b = new TokenBucket(RR_MEMBER_ANSWER_RATE);
      this.#memberBuckets.set(member, b);
    }
    return b.take(now);
  }

  /**
   * Handles one inner IPv6 packet carrying a Mobility Header addressed to us. `origin.member`
   * names the certified member a HoTI/CoTI is known to come from (the driver knows: the
   * channel a CoTI came on, the certificate holding a HoTI's source); without it the request
   * is anonymous. For what came on a member's channel the driver also gives its key, its
   * certificate's home-address check and the observed locator (CorrespondentOrigin).
   */
  handle(packet: Uint8Array, now: number, origin: CorrespondentOrigin = {}): CorrespondentAction[] {
    let d: DecodedPacket;
    try {
      d = decodePacket(packet);
    } catch {
      return [{ kind: 'drop', reason: 'malformed' }];
    }
    const verdict = checkMobilityHeader(d);
    if (verdict.action === 'drop') return [{ kind: 'drop', reason: verdict.reason }];
    if (!this.#addresses.has(keyOfText(d.destination)) && d.routingHomeAddress === undefined) {
      return [{ kind: 'drop', reason: 'not-for-us' }];
    }
    if (verdict.action === 'parameterProblem') {
      // RFC 6275 §9.2: Payload Proto not 59, or Header Len too short; rate-limited like BEs.
      if (!this.#beBucket.take(now)) return [{ kind: 'drop', reason: 'be-rate' }];
      const answer = mobilityHeaderAnswer(verdict, packet, d.destination);
      return [
        { kind: 'drop', reason: verdict.reason },
        {
          kind: 'send',
          message: 'parameterProblem',
          destination: d.source,
          homeAddress: d.homeAddress ?? UNSPECIFIED,
          packet: answer,
        },
      ];
    }
    if (verdict.action === 'bindingError') {
      const be = this.bindingErrorFor(
        verdict.homeAddress,
        d.source,
        d.destination,
        now,
        verdict.status,
      );
      return [{ kind: 'drop', reason: verdict.reason }, be ?? { kind: 'drop', reason: 'be-rate' }];
    }
    const mh = verdict.message;
    switch (mh.kind) {
      case 'homeTestInit': {
        if (d.homeAddress !== undefined) return [{ kind: 'drop', reason: 'hoti-with-hao' }];
        if (packet.length < RR_TEST_PACKET_LEN) return [{ kind: 'drop', reason: 'rr-short' }];
        if (!this.#rrAllowed(origin.member, now)) return [{ kind: 'drop', reason: 'rr-rate' }];
        const hot = this.responder.homeTest(mh, d.source, now);
        return [this.#test('homeTest', d, d.source, hot, packet.length)];
      }
      case 'careOfTestInit': {
        if (d.homeAddress !== undefined) return [{ kind: 'drop', reason: 'coti-with-hao' }];
        if (packet.length < RR_TEST_PACKET_LEN) return [{ kind: 'drop', reason: 'rr-short' }];
        if (!this.#rrAllowed(origin.member, now)) return [{ kind: 'drop', reason: 'rr-rate' }];
        const cot = this.responder.careOfTest(mh, d.source, now, origin.locator);
        return [this.#test('careOfTest', d, UNSPECIFIED, cot, packet.length)];
      }
      case 'bindingUpdate':
        return this.#onBindingUpdate(d, mh, packet.subarray(d.upperOffset), now, origin);
      case 'unknown': // answered by checkMobilityHeader above
      case 'bindingAcknowledgement':
      case 'bindingError':
      case 'bindingRefreshRequest':
      case 'careOfTest':
      case 'homeTest':
        return [{ kind: 'drop', reason: `unexpected-${mh.kind}` }];
    }
  }

  /** HoT / CoT back to the request's source; never larger than the request (`requestLen`). */
  #test(
    message: 'homeTest' | 'careOfTest',
    d: DecodedPacket,
    homeAddress: string,
    m: MobilityMessage,
    requestLen: number,
  ): CorrespondentAction {
    const a = this.#send(message, d.destination, d.source, homeAddress, undefined, m);
    return a.packet.length > requestLen ? { kind: 'drop', reason: 'rr-short' } : a;
  }

  #send(
    message: CorrespondentMessageKind,
    source: string,
    destination: string,
    homeAddress: string,
    routingHomeAddress: string | undefined,
    m: MobilityMessage,
    sign?: { kbm: Uint8Array; careOf: string },
  ): Extract<CorrespondentAction, { kind: 'send' }> {
    const packet = encodePacket(
      {
        source,
        destination,
        ...(routingHomeAddress !== undefined ? { routingHomeAddress } : {}),
      },
      IPPROTO.MH,
      (pseudo) => {
        const mh = encodeMobilityHeader(m, pseudo);
        if (sign) signMobilityHeader(this.#c, sign.kbm, mh, sign.careOf, source, pseudo);
        return mh;
      },
    );
    const a: Extract<CorrespondentAction, { kind: 'send' }> = {
      kind: 'send',
      message,
      destination,
      homeAddress,
      packet,
    };
    if (m.kind === 'bindingAcknowledgement') a.status = m.status;
    return a;
  }

  #ack(
    d: DecodedPacket,
    home: string,
    careOf: string,
    status: number,
    sequence: number,
    lifetimeUnits: number,
    kbm: Uint8Array | undefined,
  ): CorrespondentAction {
    const options: MobilityOption[] = [];
    if (kbm) options.push({ type: 'bindingAuthorizationData', authenticator: new Uint8Array(12) });
    const ba: MobilityMessage = {
      kind: 'bindingAcknowledgement',
      status,
      flags: { K: false, R: false, P: false, T: false, B: false, S: false, D: false },
      sequence,
      lifetimeUnits,
      options,
    };
    const toHome = careOf === home;
    return this.#send(
      'bindingAcknowledgement',
      d.destination,
      careOf,
      home,
      toHome ? undefined : home,
      ba,
      kbm ? { kbm, careOf } : undefined,
    );
  }

  #onBindingUpdate(
    d: DecodedPacket,
    bu: BindingUpdate,
    mhBytes: Uint8Array,
    now: number,
    origin: CorrespondentOrigin,
  ): CorrespondentAction[] {
    const home = d.homeAddress ?? d.source;
    let careOf = d.source;
    for (const o of bu.options) if (o.type === 'alternateCareOfAddress') careOf = o.address;
    const homeBytes = parseIpv6(home);
    const careOfBytes = parseIpv6(careOf);
    // 1. Routable unicast addresses, and no chains (the CoA is not a bound HoA).
    if (!isRoutableUnicast(homeBytes) || !isRoutableUnicast(careOfBytes)) {
      return [{ kind: 'drop', reason: 'bu-address' }];
    }
    const deregistration = bu.lifetimeUnits === 0 || careOf === home;
    if (careOf !== home && this.#byHome.has(keyOf(careOfBytes, 0))) {
      return [{ kind: 'drop', reason: 'bu-coa-is-home-address' }];
    }
    const existing = this.#byHome.get(keyOf(homeBytes, 0));
    // 1b. On a member's channel: its certificate's HoA, a HAO, and only the owner's key.
    const owner = origin.ownerKey ?? NO_OWNER;
    if (origin.allowsHomeAddress !== undefined && !origin.allowsHomeAddress(homeBytes)) {
      return [{ kind: 'drop', reason: 'bu-home-address-not-allowed' }];
    }
    if (origin.ownerKey !== undefined && d.homeAddress === undefined && careOf !== home) {
      return [{ kind: 'drop', reason: 'bu-without-hao' }];
    }
    if (existing !== undefined && !bytesEqual(existing.ownerKey, owner)) {
      return [{ kind: 'drop', reason: 'binding-owner-mismatch' }];
    }
    const nonces = bu.options.find((o) => o.type === 'nonceIndices');
    // 2. Home registration at a node that is not a home agent.
    if (bu.flags.H) {
      if (nonces) return [{ kind: 'drop', reason: 'bu-home-with-nonces' }];
      const status = existing
        ? BA_STATUS.REGISTRATION_TYPE_CHANGE_DISALLOWED
        : BA_STATUS.HOME_REGISTRATION_NOT_SUPPORTED;
      return [this.#ack(d, home, careOf, status, bu.sequence, 0, undefined)];
    }
    // 3. Nonce indices and the tokens they name.
    if (nonces === undefined) return [{ kind: 'drop', reason: 'bu-no-nonce-indices' }];
    const tokens = this.responder.regenerateTokens(
      home,
      deregistration ? undefined : careOf,
      nonces.homeNonceIndex,
      nonces.careOfNonceIndex,
      now,
      origin.locator,
    );
    const homeExpired = tokens.homeToken === undefined;
    const careOfExpired = !deregistration && tokens.careOfToken === undefined;
    if (homeExpired || careOfExpired) {
      const status =
        homeExpired && careOfExpired
          ? BA_STATUS.EXPIRED_NONCES
          : homeExpired
            ? BA_STATUS.EXPIRED_HOME_NONCE_INDEX
            : BA_STATUS.EXPIRED_CARE_OF_NONCE_INDEX;
      return [this.#ack(d, home, careOf, status, bu.sequence, 0, undefined)];
    }
    // 4. The authenticator; a wrong one teaches an attacker nothing: silent drop.
    const kbm = bindingManagementKey(this.#c, tokens.homeToken!, tokens.careOfToken);
    const hasBad = bu.options.some((o) => o.type === 'bindingAuthorizationData');
    if (!hasBad || !verifyMobilityHeader(this.#c, kbm, mhBytes, careOf, d.destination)) {
      return [{ kind: 'drop', reason: 'bu-authenticator' }];
    }
    // 5. Sequence number against the entry or its tombstone.
    const key = keyOf(homeBytes, 0);
    const tomb = this.#tombstones.get(key);
    const last =
      existing?.sequence ??
      (tomb && now < tomb.until && bytesEqual(tomb.ownerKey, owner) ? tomb.sequence : undefined);
    if (last !== undefined && !seqNewer(bu.sequence, last)) {
      return [this.#ack(d, home, careOf, BA_STATUS.SEQUENCE_OUT_OF_WINDOW, last, 0, kbm)];
    }
    const out: CorrespondentAction[] = [];
    // 6. Create, update or delete.
    let grantedUnits = 0;
    if (deregistration) {
      if (existing) {
        this.#byHome.delete(key);
        out.push({ kind: 'bindingDeleted', homeAddress: home, reason: 'deregistered' });
      }
      this.#tombstones.set(key, {
        sequence: bu.sequence,
        until: now + CORRESPONDENT_TOMBSTONE_MS,
        ownerKey: owner,
      });
    } else {
      if (existing === undefined && this.#byHome.size >= this.#maxBindings) {
        return [this.#ack(d, home, careOf, BA_STATUS.INSUFFICIENT_RESOURCES, bu.sequence, 0, kbm)];
      }
      grantedUnits = Math.min(bu.lifetimeUnits, secondsToLifetimeUnits(this.#maxLifetime));
      const lifetimeSeconds = lifetimeUnitsToSeconds(grantedUnits);
      this.#tombstones.delete(key);
      const b: CorrespondentBinding = existing ?? {
        homeAddress: formatIpv6(homeBytes),
        careOfAddress: '',
        careOfBytes: careOfBytes,
        sequence: 0,
        lifetimeSeconds: 0,
        registeredAt: now,
        expiresAt: now,
        lastUsed: 0,
        brrSentAt: 0,
        packetsIn: 0,
        packetsOut: 0,
        ownerKey: owner,
      };
      b.careOfAddress = formatIpv6(careOfBytes);
      b.careOfBytes = careOfBytes;
      b.sequence = bu.sequence;
      b.lifetimeSeconds = lifetimeSeconds;
      b.registeredAt = now;
      b.expiresAt = now + lifetimeSeconds * 1000;
      b.brrSentAt = 0;
      this.#byHome.set(key, b);
      out.push({ kind: existing ? 'bindingUpdated' : 'bindingAdded', binding: b });
    }
    // 7. BA when asked for.
    if (bu.flags.A) {
      out.push(this.#ack(d, home, careOf, BA_STATUS.ACCEPTED, bu.sequence, grantedUnits, kbm));
    }
    return out;
  }

  /** Marks a binding used by CN -> MN traffic (for the BRR decision). */
  noteSent(b: CorrespondentBinding, now: number): void {
    b.lastUsed = now;
    b.packetsOut++;
  }

  /** Expires entries and tombstones; sends BRRs for entries in use and near expiry. */
  poll(now: number, localAddress?: string): CorrespondentAction[] {
    const out: CorrespondentAction[] = [];
    for (const [key, b] of this.#byHome) {
      if (now >= b.expiresAt) {
        this.#byHome.delete(key);
        this.#tombstones.set(key, {
          sequence: b.sequence,
          until: now + CORRESPONDENT_TOMBSTONE_MS,
          ownerKey: b.ownerKey,
        });
        out.push({ kind: 'bindingDeleted', homeAddress: b.homeAddress, reason: 'expired' });
        continue;
      }
      if (b.brrSentAt === 0 && now >= this.#brrAt(b)) {
        // RFC 6275 §9.5.5: only for entries in active use; an idle one just expires.
        b.brrSentAt = now;
        if (b.lastUsed === 0 || now - b.lastUsed > BRR_USAGE_WINDOW_MS) continue;
        const source = localAddress ?? this.#firstAddress();
        if (source !== undefined) {
          out.push(
            // To the home address, no type 2 routing header (RFC 6275 §6.1: only BAs may
            // carry one); the driver seals it in the member's channel, which reaches its CoA.
            this.#send('bindingRefreshRequest', source, b.homeAddress, b.homeAddress, undefined, {
              kind: 'bindingRefreshRequest',
              options: [],
            }),
          );
        }
      }
    }
    for (const [key, t] of this.#tombstones) if (now >= t.until) this.#tombstones.delete(key);
    return out;
  }

  #brrAt(b: CorrespondentBinding): number {
    return b.registeredAt + b.lifetimeSeconds * 1000 * BRR_LIFETIME_FRACTION;
  }

  #firstAddress(): string | undefined {
    for (const k of this.#addresses) {
      const bytes = new Uint8Array(16);
      for (let i = 0; i < 16; i++) bytes[i] = k.charCodeAt(i);
      return formatIpv6(bytes);
    }
    return undefined;
  }

  /** Earliest time poll() has something to do. */
  nextDeadline(): number {
    let d = Infinity;
    for (const b of this.#byHome.values()) {
      d = Math.min(d, b.expiresAt);
      if (b.brrSentAt === 0) d = Math.min(d, this.#brrAt(b));
    }
    for (const t of this.#tombstones.values()) d = Math.min(d, t.until);
    return d;
  }
}
