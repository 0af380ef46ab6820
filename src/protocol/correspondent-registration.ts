/**
 * The mobile node's binding update list entry for one correspondent (RFC 6275 §11.6-§11.7.2):
 * return routability, then an RR-authorised Binding Update, then refresh. Pure: decoded
 * packets and `now` in, packets to send (with the path they must take) and state changes out.
 *
 * setCareOf(coa) -> HoTI (home init cookie; path 'tunnel': src HoA, through the HA) and CoTI
 *   (care-of init cookie; path 'direct': src CoA) in parallel; each retransmitted with a
 *   doubling timeout INITIAL_BINDACK_TIMEOUT .. MAX_BINDACK_TIMEOUT. A home token younger than
 *   MAX_TOKEN_LIFETIME is reused, so after a move only CoTI/CoT is needed (§11.6.1).
 * HoT / CoT -> the cookie must be the outstanding one (a stale or forged test is ignored);
 *   token, nonce index and time are kept.
 * Both tokens -> Kbm = SHA1(home | care-of token) -> BU (src CoA, HAO = HoA, Nonce Indices,
 *   Binding Authorization Data last), path 'direct'. With A set the BU is retransmitted like a
 *   home registration and the route is optimized only once the BA's authenticator checks out;
 *   without A the route is optimized at once (the digest's "optimistic" mode).
 * BA -> 0/1 bound (refresh at MN_REFRESH_FRACTION of the granted lifetime, which is at most
 *   MAX_RR_BINDING_LIFETIME); 135 resync; 136/137/138 fetch the expired token(s) again; other
 *   rejections: back off and retry, or give up (131, 139).
 * BE status 1 (CN has no binding) -> tunnel, full RR again; status 2 -> give up on RO.
 * BRR -> RR + BU while the binding stays in use. directPathFailed() (driver: probes lost,
 *   ICMP errors) -> tunnel now, retry RR with a doubling back-off.
 * Until a binding is in place every packet keeps going through the reverse tunnel.
 */
import type { RrCrypto } from '../crypto/rr-crypto.js';
import { constantTimeEqual } from '../util/bytes.js';
import { encodeMobilityHeader } from '../wire/mobility.js';
import { encodePacket, type DecodedPacket } from '../wire/packet.js';
import {
  BA_STATUS,
  BE_STATUS,
  IPPROTO,
  MH_OPT,
  type BindingAcknowledgement,
  type BindingError,
  type BindingUpdate,
  type CareOfTest,
  type HomeTest,
  type MobilityMessage,
  type MobilityOption,
  bindingUpdateFlags,
} from '../wire/types.js';
import {
  INITIAL_BINDACK_TIMEOUT_MS,
  MAX_BINDACK_TIMEOUT_MS,
  MAX_RR_BINDING_LIFETIME_S,
  MAX_TOKEN_LIFETIME_S,
  MN_REFRESH_FRACTION,
} from './constants.js';
import {
  bindingManagementKey,
  signMobilityHeader,
  verifyMobilityHeader,
} from './return-routability.js';
import { UpdateRateLimiter } from './binding-update-list.js';
import { lifetimeUnitsToSeconds, secondsToLifetimeUnits, seqNext } from './sequence.js';

export const COOKIE_LEN = 8; // RFC 6275 §6.1.3
/**
 * An 8-byte PadN option (RFC 6275 §6.2.2: type 1, length 6, zeros) at the end of every HoTI
 * and CoTI, so the request is as long as the HoT/CoT answering it: a mip6 CN answers nothing
 * shorter (RR_TEST_PACKET_LEN in correspondent-bindings.ts: no amplification). Written as a raw
 * option because the encoder only emits PadN for alignment; receivers skip it (§9.2).
 */
export const RR_INIT_PADDING: MobilityOption = {
  type: 'unknown',
  optionType: MH_OPT.PADN,
  data: new Uint8Array(6),
};
const MAX_TOKEN_LIFETIME_MS = MAX_TOKEN_LIFETIME_S * 1000;

export interface CorrespondentRegistrationConfig {
  homeAddress: string;
  correspondentAddress: string;
  /** Requested binding lifetime, seconds; capped at MAX_RR_BINDING_LIFETIME. */
  lifetimeSeconds?: number;
  /** Set A in the BU and wait for the BA before sending directly (default true). */
  requestAck?: boolean;
}

export type CorrespondentRegistrationState = 'idle' | 'testing' | 'updating' | 'bound' | 'disabled';

export type CorrespondentMessage = 'homeTestInit' | 'careOfTestInit' | 'bindingUpdate';

export type CorrespondentRegistrationAction =
  | {
      kind: 'send';
      /** 'tunnel': through the HA (HoTI); 'direct': straight to the CN (CoTI, BU). */
      path: 'tunnel' | 'direct';
      message: CorrespondentMessage;
      packet: Uint8Array;
    }
  | { kind: 'routeOptimized'; careOfAddress: string; lifetimeSeconds: number }
  | { kind: 'tunneled'; reason: string }
  | { kind: 'disabled'; reason: string }
  | { kind: 'drop'; reason: string };

interface Test {
  cookie: Uint8Array;
  /** The address the test was for (HoA or CoA). */
  address: string;
  sentAt: number;
  timeoutMs: number;
  /** When it is (re)sent next: the retransmission timeout, or when MAX_UPDATE_RATE allows. */
  retransmitAt: number;
  /** Times sent (0 while the first send waits for the rate limit). */
  sends: number;
}

interface Token {
  token: Uint8Array;
  index: number;
  receivedAt: number;
  address: string;
}

interface PendingUpdate {
  sequence: number;
  kbm: Uint8Array;
  careOf: string;
  lifetimeUnits: number;
  timeoutMs: number;
  retransmitAt: number;
  deregistration: boolean;
}

/** Timestamps and counters `mip6 status` shows for a correspondent. */
export interface CorrespondentRegistrationStatus {
  correspondent: string;
  state: CorrespondentRegistrationState;
  routeOptimized: boolean;
  careOfAddress: string | null;
  lifetimeRemainingSeconds: number;
  sequence: number;
  lastHomeTestInit: number;
  lastHomeTest: number;
  lastCareOfTestInit: number;
  lastCareOfTest: number;
  lastBindingUpdate: number;
  lastBindingAck: number;
  lastStatus: number | null;
  retryAt: number;
  disabledReason: string | null;
}

export class CorrespondentRegistration {
  readonly #c: RrCrypto;
  readonly #hoa: string;
  readonly #cn: string;
  readonly #lifetimeS: number;
  readonly #requestAck: boolean;
  #state: CorrespondentRegistrationState = 'idle';
  #careOf: string | null = null;
  #homeTest: Test | undefined;
  #careOfTest: Test | undefined;
  #homeToken: Token | undefined;
  #careOfToken: Token | undefined;
  #pending: PendingUpdate | undefined;
  /**
   * The last BU sent without A (requestAck off), once assumed in place: a CN still answers a
   * rejection (130, 135, 136-138, RFC 6275 §9.5.4), which must match it (onBindingAck).
   */
  #unacknowledged: PendingUpdate | undefined;
  #sequence: number;
  #boundCareOf: string | null = null;
  #expiresAt = 0;
  #refreshAt = 0;
  #retryAt = 0;
  #retryDelayMs = INITIAL_BINDACK_TIMEOUT_MS;
  #disabledReason: string | null = null;
  #lastStatus: number | null = null;
  /** MAX_UPDATE_RATE towards this CN (RFC 6275 §11.8); a BU over the rate waits until here. */
  readonly #rate = new UpdateRateLimiter();
  /**
   * The same limit for HoTIs and CoTIs (RFC 6275 §11.8: "MUST NOT send ... HoTI or CoTI" more
   * than MAX_UPDATE_RATE times a second to one correspondent), one limiter per message type.
   */
  readonly #homeTestRate = new UpdateRateLimiter();
  readonly #careOfTestRate = new UpdateRateLimiter();
  #updateDueAt = 0;
  readonly #times = {
    lastHomeTestInit: 0,
    lastHomeTest: 0,
    lastCareOfTestInit: 0,
    lastCareOfTest: 0,
    lastBindingUpdate: 0,
    lastBindingAck: 0,
  };

  constructor(c: RrCrypto, config: CorrespondentRegistrationConfig) {
    this.#c = c;
    this.#hoa = config.homeAddress;
    this.#cn = config.correspondentAddress;
    this.#lifetimeS = Math.min(
      config.lifetimeSeconds ?? MAX_RR_BINDING_LIFETIME_S,
      MAX_RR_BINDING_LIFETIME_S,
    );
    this.#requestAck = config.requestAck ?? true;
    const r = c.random(2);
    this.#sequence = ((r[0] ?? 0) << 8) | (r[1] ?? 0);
  }

  get state(): CorrespondentRegistrationState {
    return this.#state;
  }

  get correspondentAddress(): string {
    return this.#cn;
  }

  /** True while packets to the CN may go directly from the CoA with a HAO. */
  get routeOptimized(): boolean {
    return this.#boundCareOf !== null && this.#boundCareOf === this.#careOf;
  }

  /** The care-of address the CN has bound (null when none). */
  get boundCareOf(): string | null {
    return this.#boundCareOf;
  }

  #tokenFresh(t: Token | undefined, address: string, now: number): t is Token {
    return t !== undefined && t.address === address && now - t.receivedAt < MAX_TOKEN_LIFETIME_MS;
  }

  /** New care-of address (a move) or the first one; null stops route optimization. */
  setCareOf(careOf: string | null, now: number): CorrespondentRegistrationAction[] {
    if (careOf === this.#careOf) return [];
    const wasOptimized = this.routeOptimized;
    this.#careOf = careOf;
    const out: CorrespondentRegistrationAction[] = [];
    if (wasOptimized) out.push({ kind: 'tunneled', reason: 'move' });
    if (this.#state === 'disabled') return out;
    if (careOf === null) {
      this.#reset();
      return out;
    }
    out.push(...this.#startTests(now));
    return out;
  }

  #reset(): void {
    this.#updateDueAt = 0;
    this.#state = 'idle';
    this.#homeTest = undefined;
    this.#careOfTest = undefined;
    this.#pending = undefined;
    this.#unacknowledged = undefined;
  }

  #newTest(address: string, now: number): Test {
    return {
      cookie: this.#c.random(COOKIE_LEN),
      address,
      sentAt: now,
      timeoutMs: INITIAL_BINDACK_TIMEOUT_MS,
      retransmitAt: now,
      sends: 0,
    };
  }

  /**
   * Sends `t` (HoTI or CoTI) now if MAX_UPDATE_RATE allows, arming its retransmission (doubling
   * after the first send); otherwise it waits for the limiter (poll() sends it then).
   */
  #sendTest(t: Test, now: number): CorrespondentRegistrationAction[] {
    const home = t === this.#homeTest;
    const rate = home ? this.#homeTestRate : this.#careOfTestRate;
    if (!rate.allows(now)) {
      t.retransmitAt = rate.nextAllowedAt();
      return [];
    }
    rate.record(now);
    if (t.sends > 0) t.timeoutMs = Math.min(t.timeoutMs * 2, MAX_BINDACK_TIMEOUT_MS);
    t.sends++;
    t.retransmitAt = now + t.timeoutMs;
    return [home ? this.#sendHomeTestInit(now) : this.#sendCareOfTestInit(now)];
  }

  /** Starts (or restarts) RR for the current CoA, reusing fresh tokens. */
  #startTests(now: number): CorrespondentRegistrationAction[] {
    const careOf = this.#careOf;
    if (careOf === null) return [];
    this.#pending = undefined;
    this.#retryAt = 0;
    this.#state = 'testing';
    const out: CorrespondentRegistrationAction[] = [];
    if (!this.#tokenFresh(this.#homeToken, this.#hoa, now)) {
      this.#homeToken = undefined;
      // An outstanding HoTI survives a move: the home address did not change, and its HoT
      // (through the HA) is as good as a new one's (RFC 6275 §11.6.1).
      if (this.#homeTest?.address !== this.#hoa) {
        this.#homeTest = this.#newTest(this.#hoa, now);
        out.push(...this.#sendTest(this.#homeTest, now));
      }
    }
    if (!this.#tokenFresh(this.#careOfToken, careOf, now)) {
      this.#careOfToken = undefined;
      this.#careOfTest = this.#newTest(careOf, now);
      out.push(...this.#sendTest(this.#careOfTest, now));
    }
    out.push(...this.#maybeUpdate(now));
    return out;
  }

  #sendHomeTestInit(now: number): CorrespondentRegistrationAction {
    const t = this.#homeTest!;
    this.#times.lastHomeTestInit = now;
    const m: MobilityMessage = {
      kind: 'homeTestInit',
      homeInitCookie: t.cookie,
      options: [RR_INIT_PADDING],
    };
    return {
      kind: 'send',
      path: 'tunnel',
      message: 'homeTestInit',
      packet: this.#packet({ source: this.#hoa, destination: this.#cn }, m),
    };
  }

  #sendCareOfTestInit(now: number): CorrespondentRegistrationAction {
    const t = this.#careOfTest!;
    this.#times.lastCareOfTestInit = now;
    const m: MobilityMessage = {
      kind: 'careOfTestInit',
      careOfInitCookie: t.cookie,
      options: [RR_INIT_PADDING],
    };
    return {
      kind: 'send',
      path: 'direct',
      message: 'careOfTestInit',
      packet: this.#packet({ source: t.address, destination: this.#cn }, m),
    };
  }

  #packet(
    a: { source: string; destination: string; homeAddress?: string },
    m: MobilityMessage,
    kbm?: Uint8Array,
    careOf?: string,
  ): Uint8Array {
    return encodePacket(a, IPPROTO.MH, (pseudo) => {
      const mh = encodeMobilityHeader(m, pseudo);
      if (kbm && careOf !== undefined) {
        signMobilityHeader(this.#c, kbm, mh, careOf, this.#cn, pseudo);
      }
      return mh;
    });
  }

  /** Sends the BU once both tokens (or the home token, deregistering) are at hand. */
  #maybeUpdate(now: number): CorrespondentRegistrationAction[] {
    const careOf = this.#careOf;
    if (careOf === null || this.#state !== 'testing') return [];
    const home = this.#homeToken;
    const co = this.#careOfToken;
    if (!this.#tokenFresh(home, this.#hoa, now) || !this.#tokenFresh(co, careOf, now)) return [];
    const kbm = bindingManagementKey(this.#c, home.token, co.token);
    this.#pending = {
      sequence: this.#sequence,
      kbm,
      careOf,
      lifetimeUnits: secondsToLifetimeUnits(this.#lifetimeS),
      timeoutMs: INITIAL_BINDACK_TIMEOUT_MS,
      retransmitAt: now + INITIAL_BINDACK_TIMEOUT_MS,
      deregistration: false,
    };
    this.#state = 'updating';
    const out = this.#rateLimitedUpdate(now);
    if (!this.#requestAck) {
      // No BA will come: the binding is assumed in place (RFC 6275 §11.7.2 leaves A optional).
      out.push(...this.#bound(this.#pending.lifetimeUnits, careOf, now));
    }
    return out;
  }

  /** Sends the pending BU now, or when MAX_UPDATE_RATE allows it (poll() sends it then). */
  #rateLimitedUpdate(now: number): CorrespondentRegistrationAction[] {
    if (!this.#rate.allows(now)) {
      this.#updateDueAt = this.#rate.nextAllowedAt();
      return [];
    }
    this.#updateDueAt = 0;
    this.#rate.record(now);
    return [this.#sendUpdate(now)];
  }

  #sendUpdate(now: number): CorrespondentRegistrationAction {
    const p = this.#pending!;
    this.#sequence = seqNext(p.sequence);
    this.#times.lastBindingUpdate = now;
    const bu: BindingUpdate = {
      kind: 'bindingUpdate',
      sequence: p.sequence,
      flags: bindingUpdateFlags({ A: this.#requestAck, H: false }),
      lifetimeUnits: p.lifetimeUnits,
      options: [
        {
          type: 'nonceIndices',
          homeNonceIndex: this.#homeToken?.index ?? 0,
          careOfNonceIndex: p.deregistration ? 0 : (this.#careOfToken?.index ?? 0),
        },
        { type: 'bindingAuthorizationData', authenticator: new Uint8Array(12) },
      ],
    };
    const away = p.careOf !== this.#hoa;
    const packet = this.#packet(
      {
        source: p.careOf,
        destination: this.#cn,
        ...(away ? { homeAddress: this.#hoa } : {}),
      },
      bu,
      p.kbm,
      p.careOf,
    );
    return { kind: 'send', path: 'direct', message: 'bindingUpdate', packet };
  }

  #bound(units: number, careOf: string, now: number): CorrespondentRegistrationAction[] {
    const lifetime = lifetimeUnitsToSeconds(units);
    const wasOptimized = this.routeOptimized;
    this.#state = 'bound';
    this.#boundCareOf = careOf;
    this.#expiresAt = now + lifetime * 1000;
    this.#refreshAt = now + lifetime * 1000 * MN_REFRESH_FRACTION;
    this.#retryDelayMs = INITIAL_BINDACK_TIMEOUT_MS;
    if (!this.#requestAck) {
      this.#unacknowledged = this.#pending;
      this.#pending = undefined;
    }
    return wasOptimized
      ? []
      : [{ kind: 'routeOptimized', careOfAddress: careOf, lifetimeSeconds: lifetime }];
  }

  /** Drops the binding in use (if any) and schedules RR again after the back-off. */
  #fallBack(reason: string, now: number, immediate: boolean): CorrespondentRegistrationAction[] {
    const out: CorrespondentRegistrationAction[] = [];
    if (this.routeOptimized) out.push({ kind: 'tunneled', reason });
    this.#boundCareOf = null;
    this.#expiresAt = 0;
    this.#refreshAt = 0;
    this.#reset();
    if (this.#careOf === null) return out;
    if (immediate) {
      out.push(...this.#startTests(now));
    } else {
      this.#retryAt = now + this.#retryDelayMs;
      this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, MAX_BINDACK_TIMEOUT_MS);
    }
    return out;
  }

  /** HoT from the CN (arrived through the HA tunnel). */
  onHomeTest(hot: HomeTest, now: number): CorrespondentRegistrationAction[] {
    const t = this.#homeTest;
    if (t === undefined || !constantTimeEqual(t.cookie, hot.homeInitCookie)) {
      return [{ kind: 'drop', reason: 'hot-cookie' }];
    }
    this.#homeTest = undefined;
    this.#times.lastHomeTest = now;
    this.#homeToken = {
      token: hot.homeKeygenToken.slice(),
      index: hot.homeNonceIndex,
      receivedAt: now,
      address: t.address,
    };
    return this.#maybeUpdate(now);
  }

  /** CoT from the CN (arrived directly). A CoT for an earlier CoA or cookie is ignored. */
  onCareOfTest(cot: CareOfTest, now: number): CorrespondentRegistrationAction[] {
    const t = this.#careOfTest;
    if (
      t === undefined ||
      !constantTimeEqual(t.cookie, cot.careOfInitCookie) ||
      t.address !== this.#careOf
    ) {
      return [{ kind: 'drop', reason: 'cot-cookie' }];
    }
    this.#careOfTest = undefined;
    this.#times.lastCareOfTest = now;
    this.#careOfToken = {
      token: cot.careOfKeygenToken.slice(),
      index: cot.careOfNonceIndex,
      receivedAt: now,
      address: t.address,
    };
    return this.#maybeUpdate(now);
  }

  /** BA from the CN; `mhBytes` are the Mobility Header's bytes as received (for the BAD). */
  onBindingAck(
    ba: BindingAcknowledgement,
    mhBytes: Uint8Array,
    now: number,
  ): CorrespondentRegistrationAction[] {
    // Without A a CN answers only a rejection; it must match the BU we assumed in place.
    const unacknowledged = this.#pending === undefined && ba.status >= 128;
    const p = this.#pending ?? (unacknowledged ? this.#unacknowledged : undefined);
    if (p === undefined) return [{ kind: 'drop', reason: 'ba-unexpected' }];
    const hasBad = ba.options.some((o) => o.type === 'bindingAuthorizationData');
    const authentic = hasBad && verifyMobilityHeader(this.#c, p.kbm, mhBytes, p.careOf, this.#cn);
    const status = ba.status;
    // 136-138 come without BAD (the CN had no Kbm); everything else must authenticate.
    const expiredNonce =
      status === BA_STATUS.EXPIRED_HOME_NONCE_INDEX ||
      status === BA_STATUS.EXPIRED_CARE_OF_NONCE_INDEX ||
      status === BA_STATUS.EXPIRED_NONCES;
    if (status === BA_STATUS.SEQUENCE_OUT_OF_WINDOW) {
      if (!authentic) return [{ kind: 'drop', reason: 'ba-authenticator' }];
    } else if (ba.sequence !== p.sequence) {
      return [{ kind: 'drop', reason: 'ba-sequence' }];
    } else if (!expiredNonce && status < 128 && !authentic) {
      return [{ kind: 'drop', reason: 'ba-authenticator' }];
    }
    this.#times.lastBindingAck = now;
    this.#lastStatus = status;
    if (unacknowledged) {
      this.#pending = p;
      this.#unacknowledged = undefined;
    }
    if (status < 128) {
      if (p.deregistration) {
        this.#pending = undefined;
        this.#state = 'idle';
        return [];
      }
      if (this.#requestAck) this.#pending = undefined;
      const units = Math.min(ba.lifetimeUnits, p.lifetimeUnits);
      if (units === 0) return this.#fallBack('zero-lifetime', now, false);
      return this.#bound(units, p.careOf, now);
    }
    switch (status) {
      case BA_STATUS.SEQUENCE_OUT_OF_WINDOW:
        p.sequence = seqNext(ba.sequence);
        return this.#rateLimitedUpdate(now);
      case BA_STATUS.EXPIRED_HOME_NONCE_INDEX:
        this.#homeToken = undefined;
        return this.#fallBack('expired-nonce', now, true);
      case BA_STATUS.EXPIRED_CARE_OF_NONCE_INDEX:
        this.#careOfToken = undefined;
        return this.#fallBack('expired-nonce', now, true);
      case BA_STATUS.EXPIRED_NONCES:
        this.#homeToken = undefined;
        this.#careOfToken = undefined;
        return this.#fallBack('expired-nonce', now, true);
      case BA_STATUS.HOME_REGISTRATION_NOT_SUPPORTED:
      case BA_STATUS.REGISTRATION_TYPE_CHANGE_DISALLOWED:
      case BA_STATUS.ADMIN_PROHIBITED:
        return this.#disable(`ba-status-${status}`);
      default:
        return this.#fallBack(`ba-status-${status}`, now, false);
    }
  }

  #disable(reason: string): CorrespondentRegistrationAction[] {
    const out: CorrespondentRegistrationAction[] = [];
    if (this.routeOptimized) out.push({ kind: 'tunneled', reason });
    this.#boundCareOf = null;
    this.#reset();
    this.#state = 'disabled';
    this.#disabledReason = reason;
    out.push({ kind: 'disabled', reason });
    return out;
  }

  /**
   * The CN does not implement route optimization (ICMPv6 Parameter Problem code 1 about the
   * MH or code 2 about the HAO, RFC 6275 §11.3.5): stop RO with it.
   */
  peerUnsupported(reason: string): CorrespondentRegistrationAction[] {
    return this.#disable(reason);
  }

  /** Binding Error from the CN (RFC 6275 §11.3.6). */
  onBindingError(be: BindingError, now: number): CorrespondentRegistrationAction[] {
    if (be.status === BE_STATUS.UNRECOGNIZED_MH_TYPE) return this.#disable('be-unrecognized-mh');
    if (be.status === BE_STATUS.UNKNOWN_BINDING_FOR_HAO) {
      if (be.homeAddress !== this.#hoa && be.homeAddress !== '::') {
        return [{ kind: 'drop', reason: 'be-other-home' }];
      }
      if (this.#state === 'testing') return [];
      // The CN lost our binding (restart, expiry): its Kcn may be new too, so fetch both tokens.
      this.#homeToken = undefined;
      this.#careOfToken = undefined;
      return this.#fallBack('binding-error', now, true);
    }
    return [{ kind: 'drop', reason: 'be-status' }];
  }

  /** Binding Refresh Request: RR + BU again while the binding stays in use (§11.7.4). */
  onBindingRefreshRequest(now: number): CorrespondentRegistrationAction[] {
    if (this.#state !== 'bound') return [{ kind: 'drop', reason: 'brr-unbound' }];
    return this.#startTests(now);
  }

  /** The driver saw the direct path fail: tunnel at once, retry RR after the back-off. */
  directPathFailed(reason: string, now: number): CorrespondentRegistrationAction[] {
    if (this.#state === 'disabled') return [];
    this.#careOfToken = undefined;
    return this.#fallBack(reason, now, false);
  }

  /** Routes one decoded MH packet from this CN to the right handler. */
  handle(d: DecodedPacket, mhBytes: Uint8Array, now: number): CorrespondentRegistrationAction[] {
    const m = d.mobility;
    if (m === undefined || m.checksumValid === false)
      return [{ kind: 'drop', reason: 'mh-invalid' }];
    switch (m.kind) {
      case 'homeTest':
        return this.onHomeTest(m, now);
      case 'careOfTest':
        return this.onCareOfTest(m, now);
      case 'bindingAcknowledgement':
        return this.onBindingAck(m, mhBytes, now);
      case 'bindingError':
        return this.onBindingError(m, now);
      case 'bindingRefreshRequest':
        return this.onBindingRefreshRequest(now);
      case 'bindingUpdate':
      case 'careOfTestInit':
      case 'homeTestInit':
      case 'unknown':
        return [{ kind: 'drop', reason: `unexpected-${m.kind}` }];
    }
  }

  /**
   * Deregisters at the CN (lifetime 0, Kbm = SHA1(home token)) when a fresh home token is at
   * hand; otherwise the CN's entry simply expires. Stops RO either way.
   */
  deregister(now: number): CorrespondentRegistrationAction[] {
    const out: CorrespondentRegistrationAction[] = [];
    const careOf = this.#boundCareOf;
    if (this.routeOptimized) out.push({ kind: 'tunneled', reason: 'deregister' });
    this.#boundCareOf = null;
    this.#reset();
    if (careOf === null || !this.#tokenFresh(this.#homeToken, this.#hoa, now)) return out;
    this.#pending = {
      sequence: this.#sequence,
      kbm: bindingManagementKey(this.#c, this.#homeToken.token),
      careOf,
      lifetimeUnits: 0,
      timeoutMs: INITIAL_BINDACK_TIMEOUT_MS,
      retransmitAt: Infinity,
      deregistration: true,
    };
    out.push(this.#sendUpdate(now));
    return out;
  }

  /** Retransmissions, refresh, expiry and back-off retries due at `now`. */
  poll(now: number): CorrespondentRegistrationAction[] {
    const out: CorrespondentRegistrationAction[] = [];
    if (this.#state === 'disabled') return out;
    if (this.#boundCareOf !== null && now >= this.#expiresAt) {
      out.push(...this.#fallBack('expired', now, true));
      return out;
    }
    if (this.#retryAt !== 0 && now >= this.#retryAt) {
      this.#retryAt = 0;
      out.push(...this.#startTests(now));
      return out;
    }
    if (this.#state === 'bound' && this.#refreshAt !== 0 && now >= this.#refreshAt) {
      this.#refreshAt = 0;
      out.push(...this.#startTests(now));
      return out;
    }
    for (const t of [this.#homeTest, this.#careOfTest]) {
      if (t === undefined || now < t.retransmitAt) continue;
      out.push(...this.#sendTest(t, now));
    }
    const p = this.#pending;
    if (this.#updateDueAt !== 0 && now >= this.#updateDueAt && p && this.#state === 'updating') {
      p.retransmitAt = now + p.timeoutMs;
      out.push(...this.#rateLimitedUpdate(now));
      return out;
    }
    if (this.#state === 'updating' && p && this.#requestAck && now >= p.retransmitAt) {
      if (
        now - (this.#homeToken?.receivedAt ?? 0) >= MAX_TOKEN_LIFETIME_MS ||
        now - (this.#careOfToken?.receivedAt ?? 0) >= MAX_TOKEN_LIFETIME_MS
      ) {
        out.push(...this.#startTests(now));
        return out;
      }
      p.timeoutMs = Math.min(p.timeoutMs * 2, MAX_BINDACK_TIMEOUT_MS);
      p.retransmitAt = now + p.timeoutMs;
      p.sequence = this.#sequence;
      out.push(...this.#rateLimitedUpdate(now));
    }
    return out;
  }

  nextDeadline(): number {
    if (this.#state === 'disabled') return Infinity;
    let d = Infinity;
    if (this.#boundCareOf !== null) d = Math.min(d, this.#expiresAt);
    if (this.#retryAt !== 0) d = Math.min(d, this.#retryAt);
    if (this.#state === 'bound' && this.#refreshAt !== 0) d = Math.min(d, this.#refreshAt);
    if (this.#homeTest) d = Math.min(d, this.#homeTest.retransmitAt);
    if (this.#careOfTest) d = Math.min(d, this.#careOfTest.retransmitAt);
    if (this.#updateDueAt !== 0) d = Math.min(d, this.#updateDueAt);
    const p = this.#pending;
    if (this.#state === 'updating' && p && this.#requestAck) d = Math.min(d, p.retransmitAt);
    return d;
  }

  status(now: number): CorrespondentRegistrationStatus {
    return {
      correspondent: this.#cn,
      state: this.#state,
      routeOptimized: this.routeOptimized,
      careOfAddress: this.#careOf,
      lifetimeRemainingSeconds:
        this.#boundCareOf === null ? 0 : Math.max(0, Math.round((this.#expiresAt - now) / 1000)),
      sequence: this.#sequence,
      ...this.#times,
      lastStatus: this.#lastStatus,
      retryAt: this.#retryAt,
      disabledReason: this.#disabledReason,
    };
  }
}
