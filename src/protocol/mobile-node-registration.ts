/**
 * Mobile node: home registration with the home agent (RFC 6275 §11.7.1-§11.7.3, §11.8;
 * RFC 5555 §4 for IPv4 care-of addresses). Sans-IO: every input method takes `now` (ms) and
 * returns the actions to execute; the driver arms one timer at `nextDeadline()` and calls
 * `poll(now)` when it fires.
 *
 * Flow:
 *   setCareOf(coa)  -- a move (or the first link): a BU goes out at once (A=1, H=1, a NEW
 *                      sequence number, lifetime asked = config.lifetimeSeconds).
 *                        IPv4 CoA: inner src = HoA, dst = HA, IPv4 Care-of Address option
 *                                  (RFC 5555; the HA detects NAT by comparing it).
 *                        IPv6 CoA: inner src = CoA, dst = HA, Home Address option = HoA and an
 *                                  Alternate Care-of Address option (RFC 6275 §11.7.1).
 *   no BA in time   -- retransmit with a NEW greater sequence number; timeout starts at 1.5 s
 *                      for a first registration (no binding in place) or 1 s otherwise, doubles,
 *                      and stays at 32 s (RFC 6275 §11.8, §12, §13). Never more than 3 BUs per
 *                      second (MAX_UPDATE_RATE): an excess send waits.
 *   BA arrives      -- must answer a BU of the current attempt (any of its retransmissions: they
 *                      carry the same binding). Then by status (digest §11):
 *                        < 128    registered: lifetime = min(granted, asked), counted from when
 *                                 the acknowledged BU was sent; refresh at the Binding Refresh
 *                                 Advice interval, else at 85% of the lifetime; with a NAT
 *                                 Detection option also no later than its refresh time, so the
 *                                 refresh BU keeps the NAT mapping (and the HA's locator) alive
 *                                 (UMIP does the same). Status 1: prefix discovery needed.
 *                        135      resynchronise: next sequence = BA sequence + 1, resend at once.
 *                        >= 128   failed: stop (a later setCareOf retries).
 *   BRR             -- a BU at once (RFC 6275 §11.7.4).
 *   deregister()    -- lifetime 0 BU, at most 3 tries (1 s, 2 s, 4 s), then `deregistered`
 *                      whether or not a BA came (the HA binding expires anyway).
 *   returnHome()    -- a candidate home link (setCareOf(HoA) means the same): a lifetime-0 BU
 *                      with CoA == HoA (inner src = HoA, no options) that the driver sends out
 *                      of that link, never through the tunnel (`onHomeLink`). The HA accepts it
 *                      only when it arrived on its home link, unrouted, so its BA is the proof
 *                      that we are home. Meanwhile the binding and the care-of stay in force
 *                      (a move only changes the care-of to fall back to). BA < 128:
 *                      `returnedHome` (binding gone, care-of = HoA). BA >= 128, or no BA after
 *                      3 tries: `returnHomeFailed`, and registration goes on from the care-of
 *                      as before (still registered, or a BU at once when the binding is gone or
 *                      was for another care-of). cancelReturnHome() gives up at once.
 *   setCareOf(null) -- lost every link: nothing can be sent; retransmissions stop, the binding
 *                      at the HA lives on until it expires (`bindingExpired`).
 */
import { systemRandom, type RandomSource } from '../util/random-source.js';
import { parseIpv6, formatIpv6 } from '../wire/address.js';
import {
  BA_STATUS,
  type BindingAcknowledgement,
  type BindingUpdate,
  type MobilityOption,
  bindingUpdateFlags,
} from '../wire/types.js';
import { UpdateRateLimiter, type BindingUpdateListEntry } from './binding-update-list.js';
import {
  INITIAL_BINDACK_TIMEOUT_FIRST_REG_MS,
  INITIAL_BINDACK_TIMEOUT_MS,
  MAX_BINDACK_TIMEOUT_MS,
  MAX_DEREGISTRATION_ATTEMPTS,
  MN_REFRESH_FRACTION,
  NAT_REFRESH_TIME_DEFAULT,
  NAT_REFRESH_TIME_NONE,
  NATKATIMEOUT_S,
  baStatusName,
} from './constants.js';
import {
  lifetimeUnitsToSeconds,
  secondsToLifetimeUnits,
  seqAdd,
  seqNewer,
  seqNext,
  SEQUENCE_MODULUS,
} from './sequence.js';

/** Settings of one home registration (from mn.toml). */
/** BA statuses after which another home agent is tried at once (the 'failed' action). */
const FAILOVER_STATUSES: ReadonlySet<number> = new Set([
  BA_STATUS.INSUFFICIENT_RESOURCES, // 130
  BA_STATUS.HOME_REGISTRATION_NOT_SUPPORTED, // 131
  BA_STATUS.NOT_HOME_SUBNET, // 132
  BA_STATUS.NOT_HOME_AGENT_FOR_MN, // 133
]);

export interface HomeRegistrationConfig {
  /** The MN's home address. */
  homeAddress: string;
  /** The HA's IPv6 address (inner destination of BUs). */
  homeAgentAddress: string;
  /** Lifetime asked for in each BU (s). */
  lifetimeSeconds: number;
  /** First timeout of a first registration (ms), RFC 6275 InitialBindackTimeoutFirstReg. */
  firstRegistrationTimeoutMs?: number;
  /** First timeout otherwise (ms), INITIAL_BINDACK_TIMEOUT. */
  initialTimeoutMs?: number;
  /**
   * First timeout of a BU sent because of a move (ms; default: as above). A link that has just
   * come up often loses its first packets (ARP/ND, carrier settling at the other end); the
   * mobile node driver shortens this so such a loss costs a fraction of the RFC's one second.
   */
  moveTimeoutMs?: number;
  /** Timeout cap (ms), MAX_BINDACK_TIMEOUT. */
  maxTimeoutMs?: number;
  /** Tries of a deregistration BU before giving up (default 3). */
  maxDeregistrationAttempts?: number;
  /** Draws the first sequence number when none is given (default systemRandom). */
  random?: RandomSource | undefined;
  /**
   * RFC 5555 IPv4 home address: 'auto' (the HA assigns one) or a dotted quad the member's
   * certificate allows; every home-registration BU carries the IPv4 Home Address option, with
   * the address granted before once there is one (so refreshes, moves and returning home keep
   * it). Undefined: no IPv4 home address.
   */
  ipv4HomeAddress?: string | undefined;
}

/** The MN's current care-of address: its local underlay address and family. */
export interface CareOf {
  family: 4 | 6;
  /** Dotted quad for IPv4, IPv6 text for IPv6 (as bound locally, before any NAT). */
  localAddress: string;
}

/**
 * idle: no care-of yet; registering: a BU is outstanding (a previous binding may still be
 * valid, see status().bindingValid); registered: acknowledged, no BU outstanding; detached: no
 * link; deregistering / deregistered; failed: rejected by the HA (>= 128), waiting for a move.
 */
export type HomeRegistrationState =
  | 'idle'
  | 'registering'
  | 'registered'
  | 'detached'
  | 'deregistering'
  | 'deregistered'
  | 'failed'
  | 'returning-home';

/** Why a BU goes out (for logs). */
export type BindingUpdateReason =
  | 'move'
  | 'retransmit'
  | 'refresh'
  | 'natKeepalive'
  | 'refreshRequest'
  | 'resync'
  | 'deregister'
  | 'probe'
  | 'returnHome';

/** What the driver must do; returned by every input method and by `poll`. */
export type HomeRegistrationAction =
  | {
      kind: 'sendBindingUpdate';
      message: BindingUpdate;
      innerSource: string;
      innerDestination: string;
      /** Home Address destination option to add (IPv6 care-of only). */
      homeAddressOption?: string;
      /** The care-of (local address) this BU registers, i.e. the socket family to send on. */
      careOf: CareOf;
      reason: BindingUpdateReason;
      /** A returning-home BU: send it out of the candidate home link only (see returnHome). */
      onHomeLink?: true;
    }
  | {
      kind: 'registered';
      status: number;
      /** False for a refresh of the same care-of; true for a new binding or a move. */
      changed: boolean;
      /** min(granted, asked), seconds. */
      lifetimeSeconds: number;
      careOf: CareOf;
      /** The BA carried a NAT Detection option (RFC 5555). */
      natDetected: boolean;
      /** The HA requires UDP encapsulation (NAT Detection option F flag). */
      udpEncapsulationRequired: boolean;
      /** NAT keepalive interval (s) from the NAT Detection option; 0 when none is needed. */
      refreshTime: number;
      /** Status 1: run Mobile Prefix Discovery. */
      prefixDiscoveryNeeded: boolean;
      /**
       * The IPv4 home address held after this BA (RFC 5555 IPv4 Address Acknowledgement);
       * null when none (none asked, refused, or the HA sent no acknowledgement).
       */
      homeAddress4: string | null;
      /** Status of the BA's IPv4 Address Acknowledgement; null when it carried none. */
      ipv4Status: number | null;
    }
  /**
   * Refused (status >= 128, or accepted with a zero lifetime). `tryAnotherHomeAgent`: the status
   * says this home agent will not register us whatever we send (130-133: full, no home
   * registration, not our prefix, not our HA), so the driver fails over at once (RFC 6275
   * §11.7.3 leaves what to do to the MN); otherwise it waits for the next move.
   */
  | { kind: 'failed'; status: number; statusName: string; tryAnotherHomeAgent: boolean }
  | { kind: 'deregistered'; status: number | null; gaveUp: boolean }
  /** The HA acknowledged the returning-home BU: we are on the home link, deregistered. */
  | { kind: 'returnedHome'; status: number }
  /** It refused (status >= 128) or never answered (null): not home; registration goes on. */
  | { kind: 'returnHomeFailed'; status: number | null }
  | { kind: 'bindingExpired' };

/** Snapshot for `mip6 status` (plain JSON-able object). */
export interface HomeRegistrationStatus {
  state: HomeRegistrationState;
  homeAddress: string;
  homeAgentAddress: string;
  careOf: CareOf | null;
  /** An acknowledged binding is in place (also while a refresh or move BU is in flight). */
  bindingValid: boolean;
  /** CoA of that binding (IPv6 / IPv4-mapped), null when none. */
  registeredCareOf: string | null;
  /** Last sequence number sent, null before the first BU. */
  sequence: number | null;
  lifetimeSeconds: number;
  lifetimeRemainingSeconds: number;
  refreshInSeconds: number | null;
  natDetected: boolean;
  udpEncapsulationRequired: boolean;
  natRefreshTimeSeconds: number;
  prefixDiscoveryNeeded: boolean;
  /** Retransmissions of the BU now outstanding. */
  retransmissions: number;
  /** Retransmissions since start. */
  totalRetransmissions: number;
  /** Last BA status and its name, null before any BA. */
  lastStatus: number | null;
  lastStatusName: string | null;
  /** IPv4 home address granted by the HA (RFC 5555), null when none. */
  homeAddress4: string | null;
  /** Last IPv4 Address Acknowledgement status, null before any. */
  ipv4Status: number | null;
}

interface Binding {
  careOf: CareOf;
  lifetimeSeconds: number;
  expiresAt: number;
  refreshAt: number;
  refreshReason: BindingUpdateReason;
  natDetected: boolean;
  udpEncapsulationRequired: boolean;
  natRefreshTime: number;
  prefixDiscoveryNeeded: boolean;
}

interface Attempt {
  kind: 'register' | 'deregister' | 'home';
  careOf: CareOf;
  /** BUs of this attempt (same content, new sequence each), newest last; at most 16 kept. */
  sent: { sequence: number; at: number }[];
  sends: number;
  timeoutMs: number;
  retransmitAt: number;
  sendPending: boolean;
  reason: BindingUpdateReason;
}

const SENT_KEPT = 16;

function sameCareOf(a: CareOf | null, b: CareOf | null): boolean {
  return (
    a === b ||
    (a !== null && b !== null && a.family === b.family && a.localAddress === b.localAddress)
  );
}

/** The home-registration state machine of one HoA (see the file comment). */
export class HomeRegistration {
  readonly #hoa: string;
  readonly #ha: string;
  readonly #lifetimeSeconds: number;
  readonly #firstTimeoutMs: number;
  readonly #initialTimeoutMs: number;
  readonly #moveTimeoutMs: number | undefined;
  readonly #maxTimeoutMs: number;
  readonly #maxDeregAttempts: number;
  readonly #rate = new UpdateRateLimiter();
  #state: HomeRegistrationState = 'idle';
  #careOf: CareOf | null = null;
  #lastSequence: number;
  #anySent = false;
  #binding: Binding | null = null;
  #attempt: Attempt | null = null;
  #lastStatus: number | null = null;
  /** 'auto', a fixed dotted quad, or undefined (no IPv4 home address asked for). */
  readonly #ipv4Request: string | undefined;
  /** The IPv4 home address the HA granted (kept across deregistration: asked for again). */
  #homeAddress4: string | null = null;
  #ipv4Status: number | null = null;
  #totalRetransmissions = 0;
  #lastSentAt: number | null = null;

  /**
   * @param config addresses, asked lifetime and retransmission timers.
   * @param now current time (ms); kept for symmetry with the other inputs.
   * @param initialSequence the first BU's sequence number (random when omitted; inject it in
   *   tests). A restarted MN that picks a value the HA sees as old gets BA 135 and resyncs.
   */
  constructor(config: HomeRegistrationConfig, now: number, initialSequence?: number) {
    void now;
    this.#hoa = formatIpv6(parseIpv6(config.homeAddress));
    this.#ha = formatIpv6(parseIpv6(config.homeAgentAddress));
    if (!(config.lifetimeSeconds > 0)) throw new RangeError('lifetimeSeconds must be positive');
    this.#lifetimeSeconds = lifetimeUnitsToSeconds(secondsToLifetimeUnits(config.lifetimeSeconds));
    this.#firstTimeoutMs =
      config.firstRegistrationTimeoutMs ?? INITIAL_BINDACK_TIMEOUT_FIRST_REG_MS;
    this.#initialTimeoutMs = config.initialTimeoutMs ?? INITIAL_BINDACK_TIMEOUT_MS;
    this.#moveTimeoutMs = config.moveTimeoutMs;
    this.#maxTimeoutMs = config.maxTimeoutMs ?? MAX_BINDACK_TIMEOUT_MS;
    this.#maxDeregAttempts = config.maxDeregistrationAttempts ?? MAX_DEREGISTRATION_ATTEMPTS;
    const first =
      initialSequence ?? Math.floor((config.random ?? systemRandom)() * SEQUENCE_MODULUS);
    if (!Number.isInteger(first) || first < 0 || first > 0xffff) {
      throw new RangeError('initialSequence must be in 0..65535');
    }
    this.#lastSequence = seqAdd(first, -1);
    this.#ipv4Request = config.ipv4HomeAddress;
  }

  /** The IPv4 home address granted by the HA, null when none. */
  get homeAddress4(): string | null {
    return this.#homeAddress4;
  }

  /**
   * The BA's IPv4 Address Acknowledgement (RFC 5555 §3.2.1): success binds the address; a
   * refusal of an address we asked for by value drops it, and so does a successful BA without
   * an acknowledgement (e.g. after a failover to an HA with no IPv4 pool: it routes no IPv4
   * home address for us, so the address leaves the TUN). True when 'auto' should ask afresh
   * at once: the HA refused the address it had given us (it restarted, or gave it away while
   * we were home), so the next BU asks for any address instead of waiting for a refresh.
   */
  #onIpv4Ack(ba: BindingAcknowledgement): boolean {
    if (this.#ipv4Request === undefined) return false;
    const ack = ba.options.find((o) => o.type === 'ipv4AddressAcknowledgement');
    if (ack === undefined) {
      this.#ipv4Status = null;
      this.#homeAddress4 = null;
      return false;
    }
    this.#ipv4Status = ack.status;
    const askedByValue = this.#homeAddress4 !== null;
    if (ack.status < 128) {
      this.#homeAddress4 = ack.address;
      return false;
    }
    this.#homeAddress4 = null;
    return this.#ipv4Request === 'auto' && askedByValue;
  }

  /** Current state. */
  get state(): HomeRegistrationState {
    return this.#state;
  }

  /**
   * A move: the MN now sends from `careOf` (or, with null, has no usable link). A new care-of
   * starts a registration at once; the same care-of again is a no-op unless the machine is idle,
   * failed, detached or deregistered, in which case it (re)starts registering. A care-of equal to
   * the home address means the MN is back home: that deregisters (RFC 6275 §11.5.5).
   */
  setCareOf(careOf: CareOf | null, now: number): HomeRegistrationAction[] {
    const actions: HomeRegistrationAction[] = [];
    if (careOf === null) {
      this.#careOf = null;
      if (this.#state === 'returning-home') return this.poll(now); // sent on the home link
      if (this.#attempt?.kind === 'deregister') {
        this.#attempt = null;
        this.#binding = null;
        this.#state = 'deregistered';
        actions.push({ kind: 'deregistered', status: null, gaveUp: true });
      } else {
        this.#attempt = null;
        if (this.#state === 'registering' || this.#state === 'registered') this.#state = 'detached';
      }
      return [...actions, ...this.poll(now)];
    }
    const normalized: CareOf = {
      family: careOf.family,
      localAddress:
        careOf.family === 6 ? formatIpv6(parseIpv6(careOf.localAddress)) : careOf.localAddress,
    };
    if (normalized.family === 6 && normalized.localAddress === this.#hoa) {
      return this.returnHome(now);
    }
    if (this.#state === 'returning-home') {
      // The home BU stays outstanding; this is where registration resumes if it fails.
      this.#careOf = normalized;
      return this.poll(now);
    }
    const active =
      this.#state === 'registering' ||
      this.#state === 'registered' ||
      this.#state === 'deregistering';
    if (sameCareOf(normalized, this.#careOf) && active) return this.poll(now);
    this.#careOf = normalized;
    this.#start('register', 'move');
    this.#state = 'registering';
    return this.poll(now);
  }

  /**
   * A candidate home link: the returning-home BU (see the file comment). A no-op while one is
   * outstanding or once home. It replaces an outstanding registration BU (only one BU is ever
   * outstanding: the HA must see them in sequence order); a failure re-registers at once.
   */
  returnHome(now: number): HomeRegistrationAction[] {
    if (this.#state === 'returning-home' || this.#isHome()) return this.poll(now);
    this.#start('home', 'returnHome', { family: 6, localAddress: this.#hoa });
    this.#state = 'returning-home';
    return this.poll(now);
  }

  /** The candidate home link went away: stop asking, carry on from the care-of. */
  cancelReturnHome(now: number): HomeRegistrationAction[] {
    if (this.#state !== 'returning-home') return this.poll(now);
    this.#attempt = null;
    this.#resumeAfterHome(now);
    return this.poll(now);
  }

  #isHome(): boolean {
    const c = this.#careOf;
    return (
      this.#state === 'deregistered' && c !== null && c.family === 6 && c.localAddress === this.#hoa
    );
  }

  /** After a failed return home: registered as before, else a BU for the care-of at once. */
  #resumeAfterHome(now: number): void {
    const b = this.#binding;
    if (this.#careOf === null) {
      this.#state = b === null ? 'idle' : 'detached';
    } else if (b !== null && b.expiresAt > now && sameCareOf(b.careOf, this.#careOf)) {
      this.#state = 'registered';
    } else {
      this.#start('register', 'move');
      this.#state = 'registering';
    }
  }

  /** A Binding Refresh Request from the HA: refresh at once when registered (RFC 6275 §11.7.4). */
  onBindingRefreshRequest(now: number): HomeRegistrationAction[] {
    if (this.#state === 'registered' && this.#careOf !== null && this.#attempt === null) {
      this.#start('register', 'refreshRequest');
      this.#state = 'registering';
    }
    return this.poll(now);
  }

  /**
   * Reachability probe (NUD-like, driven by the MN when nothing comes back from the HA, or after
   * a clock jump): an authenticated BU refresh now, whose BA proves the path works and whose
   * arrival from a new NAT mapping moves the HA's locator. Registered: a new attempt whose first
   * timeout is `timeoutMs` (then doubling as usual). A BU already outstanding: it is resent now.
   * Other states: nothing to probe.
   */
  probe(now: number, timeoutMs?: number): HomeRegistrationAction[] {
    if (this.#state === 'registered' && this.#careOf !== null && this.#attempt === null) {
      this.#start('register', 'probe');
      if (timeoutMs !== undefined && timeoutMs > 0) this.#attempt!.timeoutMs = timeoutMs;
      this.#state = 'registering';
    } else if (this.#attempt !== null && !this.#attempt.sendPending) {
      this.#attempt.sendPending = true;
      this.#attempt.reason = 'retransmit';
    }
    return this.poll(now);
  }

  /** BUs of the outstanding attempt sent so far without a BA (0 when none is outstanding). */
  get unansweredSends(): number {
    return this.#attempt?.sends ?? 0;
  }

  /**
   * Deregisters (lifetime 0). Ends with `deregistered` on the BA or after the bounded tries;
   * at once when there is no link to send on or nothing was ever registered.
   */
  deregister(now: number): HomeRegistrationAction[] {
    if (this.#state === 'deregistered' || this.#state === 'deregistering') return this.poll(now);
    if (this.#careOf === null || this.#state === 'idle') {
      this.#attempt = null;
      this.#binding = null;
      this.#state = 'deregistered';
      return [
        { kind: 'deregistered', status: null, gaveUp: this.#careOf === null },
        ...this.poll(now),
      ];
    }
    this.#start('deregister', 'deregister');
    this.#state = 'deregistering';
    return this.poll(now);
  }

  /** A Binding Acknowledgement from the HA (already authenticated by the channel). */
  onBindingAcknowledgement(ba: BindingAcknowledgement, now: number): HomeRegistrationAction[] {
    const attempt = this.#attempt;
    if (attempt === null) return this.poll(now); // nothing outstanding: stale or duplicate
    // A 135 carries the HA's last accepted sequence L instead of ours; it can only answer a BU
    // of this attempt whose sequence is not newer than L (a stale 135 from an earlier attempt
    // would otherwise move the counter backwards).
    const resync =
      ba.status === 135 && attempt.sent.some((s) => !seqNewer(s.sequence, ba.sequence));
    const sent = attempt.sent.find((s) => s.sequence === ba.sequence);
    if (!resync && (ba.status === 135 || sent === undefined)) return this.poll(now); // not ours
    this.#lastStatus = ba.status;
    const actions: HomeRegistrationAction[] = [];
    if (resync) {
      // RFC 6275 §11.7.3: the BA carries the last accepted sequence; continue after it.
      this.#lastSequence = ba.sequence;
      attempt.sendPending = true;
      attempt.reason = 'resync';
      return this.poll(now);
    }
    if (attempt.kind === 'deregister') {
      this.#attempt = null;
      this.#binding = null;
      this.#state = 'deregistered';
      actions.push({ kind: 'deregistered', status: ba.status, gaveUp: false });
      return [...actions, ...this.poll(now)];
    }
    if (attempt.kind === 'home') {
      this.#attempt = null;
      if (ba.status >= 128) {
        this.#resumeAfterHome(now);
        actions.push({ kind: 'returnHomeFailed', status: ba.status });
      } else {
        this.#binding = null;
        this.#careOf = { ...attempt.careOf };
        this.#state = 'deregistered';
        actions.push({ kind: 'returnedHome', status: ba.status });
      }
      return [...actions, ...this.poll(now)];
    }
    const sentAt = (sent as { at: number }).at;
    const lifetimeSeconds = Math.min(
      lifetimeUnitsToSeconds(ba.lifetimeUnits),
      this.#lifetimeSeconds,
    );
    if (ba.status >= 128 || lifetimeSeconds === 0) {
      this.#attempt = null;
      this.#state = 'failed';
      const statusName =
        ba.status >= 128
          ? baStatusName(ba.status)
          : `${baStatusName(ba.status)} with zero lifetime`;
      actions.push({
        kind: 'failed',
        status: ba.status,
        statusName,
        tryAnotherHomeAgent: FAILOVER_STATUSES.has(ba.status),
      });
      return [...actions, ...this.poll(now)];
    }
    const changed = this.#binding === null || !sameCareOf(this.#binding.careOf, attempt.careOf);
    let natOption: Extract<MobilityOption, { type: 'natDetection' }> | undefined;
    let adviceSeconds = 0;
    for (const o of ba.options) {
      if (o.type === 'natDetection') natOption = o;
      if (o.type === 'bindingRefreshAdvice')
        adviceSeconds = lifetimeUnitsToSeconds(o.refreshInterval & 0xffff);
    }
    let natRefreshTime = 0;
    if (natOption !== undefined) {
      if (natOption.refreshTime === NAT_REFRESH_TIME_DEFAULT) natRefreshTime = NATKATIMEOUT_S;
      else if (natOption.refreshTime !== NAT_REFRESH_TIME_NONE)
        natRefreshTime = natOption.refreshTime;
    }
    const refreshAfter =
      adviceSeconds > 0 && adviceSeconds < lifetimeSeconds
        ? adviceSeconds
        : lifetimeSeconds * MN_REFRESH_FRACTION;
    let refreshAt = sentAt + refreshAfter * 1000;
    let refreshReason: BindingUpdateReason = 'refresh';
    if (natRefreshTime > 0 && sentAt + natRefreshTime * 1000 < refreshAt) {
      refreshAt = sentAt + natRefreshTime * 1000;
      refreshReason = 'natKeepalive';
    }
    this.#binding = {
      careOf: attempt.careOf,
      lifetimeSeconds,
      expiresAt: sentAt + lifetimeSeconds * 1000,
      refreshAt,
      refreshReason,
      natDetected: natOption !== undefined,
      udpEncapsulationRequired: natOption?.udpEncapsulationRequired ?? false,
      natRefreshTime,
      prefixDiscoveryNeeded: ba.status === 1,
    };
    if (this.#onIpv4Ack(ba)) this.#binding.refreshAt = now; // ask for a new IPv4 address now
    this.#attempt = null;
    this.#state = 'registered';
    actions.push({
      kind: 'registered',
      status: ba.status,
      changed,
      lifetimeSeconds,
      careOf: attempt.careOf,
      natDetected: natOption !== undefined,
      udpEncapsulationRequired: natOption?.udpEncapsulationRequired ?? false,
      refreshTime: natRefreshTime,
      prefixDiscoveryNeeded: ba.status === 1,
      homeAddress4: this.#homeAddress4,
      ipv4Status: this.#ipv4Status,
    });
    return [...actions, ...this.poll(now)];
  }

  /** Earliest time `poll` has work (ms); Infinity when idle. */
  nextDeadline(): number {
    let d = Infinity;
    const b = this.#binding;
    if (b !== null) {
      d = Math.min(d, b.expiresAt);
      if (this.#state === 'registered') d = Math.min(d, b.refreshAt);
    }
    const a = this.#attempt;
    if (a !== null) d = Math.min(d, a.sendPending ? this.#rate.nextAllowedAt() : a.retransmitAt);
    return d;
  }

  /** Runs due timers (expiry, refresh, retransmission, rate-limited sends). */
  poll(now: number): HomeRegistrationAction[] {
    const actions: HomeRegistrationAction[] = [];
    const b = this.#binding;
    if (b !== null && now >= b.expiresAt) {
      this.#binding = null;
      actions.push({ kind: 'bindingExpired' });
      if (this.#state === 'registered' && this.#careOf !== null) {
        this.#start('register', 'refresh');
        this.#state = 'registering';
      }
    } else if (
      b !== null &&
      this.#state === 'registered' &&
      now >= b.refreshAt &&
      this.#careOf !== null
    ) {
      this.#start('register', b.refreshReason);
      this.#state = 'registering';
    }
    const a = this.#attempt;
    if (a !== null && !a.sendPending && now >= a.retransmitAt) {
      if (a.kind === 'deregister' && a.sends >= this.#maxDeregAttempts) {
        this.#attempt = null;
        this.#binding = null;
        this.#state = 'deregistered';
        actions.push({ kind: 'deregistered', status: null, gaveUp: true });
        return actions;
      }
      if (a.kind === 'home' && a.sends >= this.#maxDeregAttempts) {
        this.#attempt = null;
        this.#resumeAfterHome(now);
        actions.push({ kind: 'returnHomeFailed', status: null });
        return [...actions, ...this.poll(now)];
      }
      a.timeoutMs = Math.min(a.timeoutMs * 2, this.#maxTimeoutMs);
      a.sendPending = true;
      a.reason = 'retransmit';
    }
    if (a !== null && a.sendPending && this.#rate.allows(now)) actions.push(this.#send(a, now));
    return actions;
  }

  /** Snapshot for `mip6 status`. */
  status(now: number): HomeRegistrationStatus {
    const b = this.#binding;
    return {
      state: this.#state,
      homeAddress: this.#hoa,
      homeAgentAddress: this.#ha,
      careOf: this.#careOf === null ? null : { ...this.#careOf },
      bindingValid: b !== null && b.expiresAt > now,
      registeredCareOf: b === null ? null : careOfAddressText(b.careOf),
      sequence: this.#anySent ? this.#lastSequence : null,
      lifetimeSeconds: b?.lifetimeSeconds ?? 0,
      lifetimeRemainingSeconds:
        b === null ? 0 : Math.max(0, Math.round((b.expiresAt - now) / 1000)),
      refreshInSeconds:
        b === null || this.#state !== 'registered'
          ? null
          : Math.max(0, Math.round((b.refreshAt - now) / 1000)),
      natDetected: b?.natDetected ?? false,
      udpEncapsulationRequired: b?.udpEncapsulationRequired ?? false,
      natRefreshTimeSeconds: b?.natRefreshTime ?? 0,
      prefixDiscoveryNeeded: b?.prefixDiscoveryNeeded ?? false,
      retransmissions: this.#attempt === null ? 0 : Math.max(0, this.#attempt.sends - 1),
      totalRetransmissions: this.#totalRetransmissions,
      lastStatus: this.#lastStatus,
      lastStatusName: this.#lastStatus === null ? null : baStatusName(this.#lastStatus),
      homeAddress4: this.#homeAddress4,
      ipv4Status: this.#ipv4Status,
    };
  }

  /** The Binding Update List entry for the HA (RFC 6275 §11.1), as plain data. */
  bindingUpdateListEntry(): BindingUpdateListEntry {
    const b = this.#binding;
    const coa = this.#attempt?.careOf ?? b?.careOf ?? null;
    return {
      destination: this.#ha,
      homeAddress: this.#hoa,
      careOfAddress: coa === null ? null : careOfAddressText(coa),
      requestedLifetimeSeconds:
        this.#attempt !== null && this.#attempt.kind !== 'register' ? 0 : this.#lifetimeSeconds,
      grantedLifetimeSeconds: b?.lifetimeSeconds ?? 0,
      expiresAt: b?.expiresAt ?? 0,
      lastSequenceSent: this.#anySent ? this.#lastSequence : null,
      lastSentAt: this.#lastSentAt,
      retransmissions: this.#attempt === null ? 0 : Math.max(0, this.#attempt.sends - 1),
      stopSending: false,
    };
  }

  #start(
    kind: Attempt['kind'],
    reason: BindingUpdateReason,
    careOf: CareOf = this.#careOf as CareOf,
  ): void {
    const first = kind === 'register' && this.#binding === null;
    this.#attempt = {
      kind,
      careOf,
      sent: [],
      sends: 0,
      timeoutMs:
        (reason === 'move' || reason === 'returnHome') && this.#moveTimeoutMs !== undefined
          ? this.#moveTimeoutMs
          : first
            ? this.#firstTimeoutMs
            : this.#initialTimeoutMs,
      retransmitAt: Infinity,
      sendPending: true,
      reason,
    };
  }

  #send(a: Attempt, now: number): HomeRegistrationAction {
    const sequence = seqNext(this.#lastSequence);
    this.#lastSequence = sequence;
    this.#anySent = true;
    this.#lastSentAt = now;
    if (a.reason === 'retransmit') this.#totalRetransmissions++;
    a.sent.push({ sequence, at: now });
    if (a.sent.length > SENT_KEPT) a.sent.shift();
    a.sends++;
    a.retransmitAt = now + a.timeoutMs;
    a.sendPending = false;
    this.#rate.record(now);
    const lifetimeUnits = a.kind === 'register' ? secondsToLifetimeUnits(this.#lifetimeSeconds) : 0;
    const options: MobilityOption[] = [];
    const atHome = a.careOf.family === 6 && a.careOf.localAddress === this.#hoa;
    let innerSource = this.#hoa;
    let homeAddressOption: string | undefined;
    if (a.careOf.family === 4) {
      options.push({ type: 'ipv4CareOfAddress', address: a.careOf.localAddress });
    } else if (!atHome) {
      innerSource = a.careOf.localAddress;
      homeAddressOption = this.#hoa;
      options.push({ type: 'alternateCareOfAddress', address: a.careOf.localAddress });
    }
    if (a.kind === 'register' && this.#ipv4Request !== undefined) {
      // RFC 5555 §3.1.1: 0.0.0.0 asks the HA to assign one; a single address is /32.
      const fixed = this.#ipv4Request === 'auto' ? '0.0.0.0' : this.#ipv4Request;
      options.push({
        type: 'ipv4HomeAddress',
        prefixLength: 32,
        requestPrefix: false,
        address: this.#homeAddress4 ?? fixed,
      });
    }
    const message: BindingUpdate = {
      kind: 'bindingUpdate',
      sequence,
      flags: bindingUpdateFlags({ A: true, H: true }),
      lifetimeUnits,
      options,
    };
    return {
      kind: 'sendBindingUpdate',
      message,
      innerSource,
      innerDestination: this.#ha,
      ...(homeAddressOption === undefined ? {} : { homeAddressOption }),
      careOf: { ...a.careOf },
      reason: a.reason,
      ...(a.kind === 'home' ? { onHomeLink: true as const } : {}),
    };
  }
}

/** A care-of as a Mobility Header CoA: IPv6 text, IPv4 as IPv4-mapped (RFC 5555). */
export function careOfAddressText(careOf: CareOf): string {
  return careOf.family === 4 ? `::ffff:${careOf.localAddress}` : careOf.localAddress;
}
