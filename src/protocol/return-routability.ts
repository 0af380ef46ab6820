/**
 * Return routability (RFC 6275 §5.2): the token arithmetic both ends share and the
 * correspondent's stateless half.
 *
 * CN flow: HoTI (src HoA, reached us through the MN's home agent) -> HoT carrying
 *   First(64, HMAC_SHA1(Kcn, HoA | nonce | 0)) and that nonce's index; CoTI (src CoA, direct)
 *   -> CoT with the same over the CoA and a trailing 1. No state is created per MN: the only
 *   state is Kcn and a small table of rotating nonces (NonceTable). On a BU the CN regenerates
 *   the tokens from the indices in the Nonce Indices option (`regenerateTokens`), derives
 *   Kbm = SHA1(home token | care-of token) and checks the Binding Authorization Data
 *   (correspondent-bindings.ts does the §9.5.1 checks around that).
 * MN flow (correspondent-registration.ts): both tokens -> Kbm -> BU authenticator
 *   First(96, HMAC_SHA1(Kbm, CoA | CN | MH data with checksum 0)); the CN's BA carries one too.
 *
 * mip6 deviation, the care-of token bound to the underlay locator: in mip6 a CoTI and a BU
 * arrive on a channel, and what the CN sends to afterwards is the channel's locator (the UDP
 * address and port the BU was observed from), not the inner CoA. With the RFC token, which
 * covers only the inner CoA, the care-of test proved nothing about that locator: a member
 * could do RR from its own locator and send the BU from a spoofed one, and the CN would stream
 * its traffic at a third party (issue #13). So when the CN knows the observed locator
 * (always, over a channel) the care-of keygen token is
 *     First(64, HMAC_SHA1(Kcn, CoA | locator address | locator port | nonce | 1))
 * with the locator address as 16 bytes (IPv4 as IPv4-mapped ::ffff:a.b.c.d) and the port as
 * 2 bytes big-endian: the CoT goes to that locator, and the BU only verifies when it comes from
 * the very locator that received the CoT. Without a locator the RFC 6275 §5.2.5 formula is
 * unchanged (the known-answer tests check both). The MN is unaffected: it uses the token it
 * received, whatever the CN covered with it. Route optimization over UDP locators is a mip6
 * extension anyway (DESIGN.md §3); the RFC's own care-of test is a reachability proof for the
 * address the CN will send to, and this keeps exactly that meaning.
 *
 * Hashes enter through `RrCrypto` (src/crypto/rr-crypto.ts, node:crypto), so this file is
 * pure and known-answer testable with fixed keys and nonces.
 */
import type { RrCrypto } from '../crypto/rr-crypto.js';
import { constantTimeEqual } from '../util/bytes.js';
import { parseIpv6 } from '../wire/address.js';
import {
  BAD_AUTHENTICATOR_LEN,
  MH_TOKEN_LEN,
  authenticatorOffset,
  mhDataForAuthenticator,
  setAuthenticator,
  type Pseudo,
} from '../wire/mobility.js';
import type { CareOfTest, CareOfTestInit, HomeTest, HomeTestInit } from '../wire/types.js';
import { MAX_NONCE_LIFETIME_S, MAX_TOKEN_LIFETIME_S } from './constants.js';
import { locatorCareOfAddress, type Locator } from './locator.js';

/** Kcn length: 20 octets, the HMAC-SHA1 key size (RFC 6275 §5.2.3). */
export const KCN_LEN = 20;
/** Nonce length: RFC 6275 §5.2.3 leaves it open; 8 octets as UMIP. */
export const NONCE_LEN = 8;
/** SHA1 / HMAC-SHA1 output (RFC 3174). */
export const SHA1_LEN = 20;
/** Byte appended to the HoA when computing the home keygen token (RFC 6275 §5.2.5). */
export const HOME_TOKEN_SUFFIX = 0;
/** Byte appended to the CoA when computing the care-of keygen token (RFC 6275 §5.2.5). */
export const CARE_OF_TOKEN_SUFFIX = 1;
/**
 * mip6 choice (UMIP's rule): a new nonce is generated every
 * MAX_NONCE_LIFETIME - MAX_TOKEN_LIFETIME = 30 s, so every nonce handed out still has at least
 * MAX_TOKEN_LIFETIME to live and a token stays verifiable for the MN's whole usage window.
 */
export const NONCE_REGENERATION_MS = (MAX_NONCE_LIFETIME_S - MAX_TOKEN_LIFETIME_S) * 1000;

function addressBytes(a: string | Uint8Array): Uint8Array {
  return typeof a === 'string' ? parseIpv6(a) : a;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** home keygen token = First(64, HMAC_SHA1(Kcn, HoA | nonce | 0)) (RFC 6275 §5.2.5). */
export function homeKeygenToken(
  c: RrCrypto,
  kcn: Uint8Array,
  homeAddress: string | Uint8Array,
  nonce: Uint8Array,
): Uint8Array {
  const data = concat([addressBytes(homeAddress), nonce, Uint8Array.of(HOME_TOKEN_SUFFIX)]);
  return c.hmacSha1(kcn, data).slice(0, MH_TOKEN_LEN);
}

/** Bytes of a locator in the care-of token: 16 address bytes (IPv4-mapped) + 2 port bytes. */
export const LOCATOR_TOKEN_LEN = 18;

/** A locator as the care-of token covers it (file comment): address as IPv6, port big-endian. */
export function locatorTokenBytes(locator: Locator): Uint8Array {
  const out = new Uint8Array(LOCATOR_TOKEN_LEN);
  out.set(parseIpv6(locatorCareOfAddress(locator)));
  out[16] = (locator.port >>> 8) & 0xff;
  out[17] = locator.port & 0xff;
  return out;
}

/**
 * care-of keygen token = First(64, HMAC_SHA1(Kcn, CoA | nonce | 1)) (RFC 6275 §5.2.5); with
 * `locator`, the mip6 deviation of the file comment: First(64, HMAC_SHA1(Kcn, CoA | locator
 * address | locator port | nonce | 1)), so the token also proves that observed locator.
 */
export function careOfKeygenToken(
  c: RrCrypto,
  kcn: Uint8Array,
  careOfAddress: string | Uint8Array,
  nonce: Uint8Array,
  locator?: Locator,
): Uint8Array {
  const coa = addressBytes(careOfAddress);
  const tested = locator === undefined ? coa : concat([coa, locatorTokenBytes(locator)]);
  const data = concat([tested, nonce, Uint8Array.of(CARE_OF_TOKEN_SUFFIX)]);
  return c.hmacSha1(kcn, data).slice(0, MH_TOKEN_LEN);
}

/**
 * Kbm = SHA1(home keygen token | care-of keygen token), or SHA1(home keygen token) alone for a
 * deregistration (RFC 6275 §5.2.5).
 */
export function bindingManagementKey(
  c: RrCrypto,
  homeToken: Uint8Array,
  careOfToken?: Uint8Array,
): Uint8Array {
  return c.sha1(careOfToken === undefined ? homeToken : concat([homeToken, careOfToken]));
}

/**
 * Authenticator = First(96, HMAC_SHA1(Kbm, CoA | correspondent | MH data)) (RFC 6275 §6.2.7),
 * where MH data is the Mobility Header up to the authenticator with the checksum zeroed.
 */
export function bindingAuthenticator(
  c: RrCrypto,
  kbm: Uint8Array,
  careOfAddress: string | Uint8Array,
  correspondentAddress: string | Uint8Array,
  mhData: Uint8Array,
): Uint8Array {
  const data = concat([addressBytes(careOfAddress), addressBytes(correspondentAddress), mhData]);
  return c.hmacSha1(kbm, data).slice(0, BAD_AUTHENTICATOR_LEN);
}

/**
 * Fills the Binding Authorization Data of an encoded MH (which must end with a BAD option,
 * e.g. 12 zero bytes from encodeMobilityHeader) and refreshes its checksum over `pseudo`.
 */
export function signMobilityHeader(
  c: RrCrypto,
  kbm: Uint8Array,
  mhBytes: Uint8Array,
  careOfAddress: string | Uint8Array,
  correspondentAddress: string | Uint8Array,
  pseudo: Pseudo,
): void {
  const auth = bindingAuthenticator(
    c,
    kbm,
    careOfAddress,
    correspondentAddress,
    mhDataForAuthenticator(mhBytes),
  );
  setAuthenticator(mhBytes, auth, pseudo);
}

/** True when the MH ends with a BAD whose authenticator matches (constant-time compare). */
export function verifyMobilityHeader(
  c: RrCrypto,
  kbm: Uint8Array,
  mhBytes: Uint8Array,
  careOfAddress: string | Uint8Array,
  correspondentAddress: string | Uint8Array,
): boolean {
  let data: Uint8Array;
  try {
    data = mhDataForAuthenticator(mhBytes);
  } catch {
    return false;
  }
  const want = bindingAuthenticator(c, kbm, careOfAddress, correspondentAddress, data);
  const at = authenticatorOffset(mhBytes);
  return constantTimeEqual(want, mhBytes.subarray(at, at + BAD_AUTHENTICATOR_LEN));
}

interface NonceSlot {
  nonce: Uint8Array;
  createdAt: number;
}

/**
 * The CN's nonces (RFC 6275 §5.2.3): a new one every NONCE_REGENERATION_MS, each with the next
 * 16-bit index; an index is honoured for MAX_NONCE_LIFETIME after its nonce was generated,
 * then forgotten (a BU naming it gets status 136/137/138).
 */
export class NonceTable {
  readonly #c: RrCrypto;
  readonly #slots = new Map<number, NonceSlot>();
  readonly #regenerationMs: number;
  readonly #lifetimeMs: number;
  #current = 0;
  #currentAt = -Infinity;

  constructor(
    c: RrCrypto,
    opts: { firstIndex?: number; regenerationMs?: number; lifetimeMs?: number } = {},
  ) {
    this.#c = c;
    this.#regenerationMs = opts.regenerationMs ?? NONCE_REGENERATION_MS;
    this.#lifetimeMs = opts.lifetimeMs ?? MAX_NONCE_LIFETIME_S * 1000;
    // Start somewhere unpredictable, so indices do not reveal how long the CN has run.
    const r = c.random(2);
    this.#current = opts.firstIndex ?? ((r[0] ?? 0) << 8) | (r[1] ?? 0);
    this.#current = (this.#current + 0xffff) & 0xffff; // the first rotation lands on firstIndex
  }

  /** The nonce to hand out at `now` (rotating when the current one is old enough). */
  current(now: number): { index: number; nonce: Uint8Array } {
    if (now - this.#currentAt >= this.#regenerationMs) {
      this.#current = (this.#current + 1) & 0xffff;
      this.#currentAt = now;
      this.#slots.set(this.#current, { nonce: this.#c.random(NONCE_LEN), createdAt: now });
      this.#prune(now);
    }
    const slot = this.#slots.get(this.#current)!;
    return { index: this.#current, nonce: slot.nonce };
  }

  /** Nonces kept (bounded by time, never by requests: MAX_NONCE_LIFETIME / regeneration). */
  get size(): number {
    return this.#slots.size;
  }

  /** The nonce with `index` if it is still within MAX_NONCE_LIFETIME at `now`. */
  lookup(index: number, now: number): Uint8Array | undefined {
    const slot = this.#slots.get(index);
    if (slot === undefined || now - slot.createdAt > this.#lifetimeMs) return undefined;
    return slot.nonce;
  }

  #prune(now: number): void {
    for (const [i, s] of this.#slots) {
      if (now - s.createdAt > this.#lifetimeMs) this.#slots.delete(i);
    }
  }
}

/** Tokens regenerated for a BU; `undefined` where the nonce index has expired. */
export interface RegeneratedTokens {
  homeToken: Uint8Array | undefined;
  /** Not computed (and not needed) for a deregistration. */
  careOfToken: Uint8Array | undefined;
}

/**
 * The correspondent's stateless half of return routability (RFC 6275 §9.4): answers HoTI and
 * CoTI from Kcn and the current nonce, and regenerates tokens for a BU.
 */
export class ReturnRoutabilityResponder {
  readonly #c: RrCrypto;
  readonly #kcn: Uint8Array;
  readonly nonces: NonceTable;

  constructor(c: RrCrypto, opts: { kcn?: Uint8Array; nonces?: NonceTable } = {}) {
    this.#c = c;
    this.#kcn = opts.kcn ?? c.random(KCN_LEN);
    if (this.#kcn.length !== KCN_LEN) throw new RangeError(`Kcn must be ${KCN_LEN} bytes`);
    this.nonces = opts.nonces ?? new NonceTable(c);
  }

  /** HoT for a HoTI whose IPv6 source (the MN's home address) is `homeAddress` (§9.4.3). */
  homeTest(hoti: HomeTestInit, homeAddress: string, now: number): HomeTest {
    const { index, nonce } = this.nonces.current(now);
    return {
      kind: 'homeTest',
      homeNonceIndex: index,
      homeInitCookie: hoti.homeInitCookie.slice(),
      homeKeygenToken: homeKeygenToken(this.#c, this.#kcn, homeAddress, nonce),
      options: [],
    };
  }

  /**
   * CoT for a CoTI whose IPv6 source (the MN's care-of address) is `careOfAddress` (§9.4.4).
   * `locator`: where the CoTI was observed from, which the token then covers too (file
   * comment); the caller must send the CoT to that locator.
   */
  careOfTest(
    coti: CareOfTestInit,
    careOfAddress: string,
    now: number,
    locator?: Locator,
  ): CareOfTest {
    const { index, nonce } = this.nonces.current(now);
    return {
      kind: 'careOfTest',
      careOfNonceIndex: index,
      careOfInitCookie: coti.careOfInitCookie.slice(),
      careOfKeygenToken: careOfKeygenToken(this.#c, this.#kcn, careOfAddress, nonce, locator),
      options: [],
    };
  }

  /**
   * Regenerates the tokens a BU's Nonce Indices name (RFC 6275 §9.5.1). With
   * `careOfAddress` undefined (deregistration) only the home token is computed. `locator`:
   * where the BU was observed from; the care-of token then matches only one handed out to a
   * CoTI from that same locator.
   */
  regenerateTokens(
    homeAddress: string,
    careOfAddress: string | undefined,
    homeNonceIndex: number,
    careOfNonceIndex: number,
    now: number,
    locator?: Locator,
  ): RegeneratedTokens {
    const hn = this.nonces.lookup(homeNonceIndex, now);
    const homeToken =
      hn === undefined ? undefined : homeKeygenToken(this.#c, this.#kcn, homeAddress, hn);
    let careOfToken: Uint8Array | undefined;
    if (careOfAddress !== undefined) {
      const cn = this.nonces.lookup(careOfNonceIndex, now);
      careOfToken =
        cn === undefined
          ? undefined
          : careOfKeygenToken(this.#c, this.#kcn, careOfAddress, cn, locator);
    }
    return { homeToken, careOfToken };
  }
}
