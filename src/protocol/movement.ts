/**
 * Movement detection at the mobile node (RFC 6275 §11.5; DESIGN.md §5), sans-IO: fed care-of
 * candidates, what was sent to and heard from the home agent, and the clocks (`now`, monotonic;
 * `wall`, Unix ms), it returns what the driver (roles/mn/mobile-node.ts) must do.
 *
 * Care-of choice: among the candidates of a family the HA has an underlay address for, the
 *   current care-of while it is still offered (no flapping), else the preferred family, else any.
 *   A home-link candidate is never a care-of: it needs the home agent's proof first.
 * Home link (RFC 6275 §11.5.4; issue #13): a candidate with `homeLink` is proven by the
 *   returning-home BU; until the HA acknowledges it nothing changes (`prove-home`). Proven, the
 *   next candidate round moves the HoA there (`enter-home`); a refusal or silence rests that
 *   link RETURN_HOME_RETRY_MS doubling up to RETURN_HOME_RETRY_MAX_MS while it is offered.
 *   Leaving home (`leave-home`) comes before any move signaled from elsewhere.
 * Reachability (NUD-like): sent something and heard nothing from the HA for probeInterval ->
 *   `probe` (a BU refresh; its BA proves the path). probeAttempts BUs of one attempt without a
 *   BA -> `path-lost` (once per attempt).
 * Sleep/resume: a timer firing LATE_TIMER_MS later than armed, or the wall clock moving
 *   CLOCK_JUMP_MS against the monotonic clock -> `resume` (re-check care-of, probe at once).
 * Re-check: candidates are asked for again every recheckInterval even without events.
 */
import type { CareOf } from './mobile-node-registration.js';

/**
 * A care-of candidate; `homeLink` marks a candidate home link (localAddress is then the HoA)
 * and `homeLinkIndex` is that interface's index, for the returning-home BU sent out of it.
 */
export type CareOfCandidate = CareOf & {
  homeLink?: string | undefined;
  homeLinkIndex?: number | undefined;
};

/** A timer firing this much later than armed means the process was frozen or the host slept. */
export const LATE_TIMER_MS = 2000;
/** Wall clock moving this much against the monotonic clock: suspend/resume or a clock step. */
export const CLOCK_JUMP_MS = 2000;
/** A candidate home link whose proof failed is left alone this long (ms), doubling... */
export const RETURN_HOME_RETRY_MS = 10_000;
/** ...up to this (ms), while the link is still offered. */
export const RETURN_HOME_RETRY_MAX_MS = 600_000;

export type MovementAction =
  /** Still on the proven home link: nothing changes. */
  | { kind: 'stay-home' }
  /** The proven home link is offered: move the HoA there. */
  | { kind: 'enter-home'; candidate: CareOfCandidate }
  /** Away from `link`: the HoA goes back to the TUN before anything else is signaled. */
  | { kind: 'leave-home'; link: string }
  /** A new care-of for the tunnel (null: none usable); `from` null is the first attach. */
  | { kind: 'move'; to: CareOfCandidate | null; from: CareOfCandidate | null }
  /** The candidate home link being proven went away: cancel the returning-home BU. */
  | { kind: 'cancel-home-proof' }
  /** A candidate home link: send the returning-home BU out of it. */
  | { kind: 'prove-home'; link: string; ifindex: number }
  /** Ask the care-of source for candidates again. */
  | { kind: 'recheck' }
  /** A reachability probe (a BU refresh). */
  | { kind: 'probe'; why: 'silence'; silentMs: number }
  /** probeAttempts BUs went unanswered: look for another path to the HA. */
  | { kind: 'path-lost'; unanswered: number }
  /** The process was frozen or the host slept. */
  | { kind: 'resume'; how: 'late-timer' | 'clock-jump'; ms: number };

export interface MovementConfig {
  prefer: 'ipv4' | 'ipv6';
  /** The MN can go home at all (home-link control and an IPv6 socket). */
  canGoHome: boolean;
  /** Re-check care-of addresses this often even without events (ms, default 5000). */
  recheckIntervalMs?: number | undefined;
  /** Silence (sent, nothing received) before a reachability probe (ms, default 5000). */
  probeIntervalMs?: number | undefined;
  /** Unanswered BUs of one attempt that mean the path is lost (default 3). */
  probeAttempts?: number | undefined;
}

/** Which families the HA in use has underlay addresses for. */
export interface AgentFamilies {
  agent4?: string | undefined;
  agent6?: string | undefined;
}

/** Movement detection state of one mobile node (see the file comment). */
export class MovementDetector {
  readonly #cfg: MovementConfig;
  #careOf: CareOfCandidate | null = null;
  /** Interface holding the HoA while at home. */
  #atHome: string | undefined;
  /** The candidate home link whose returning-home BU is outstanding. */
  #homeProof: { link: string; ifindex: number } | undefined;
  /** The HA acknowledged it: the HoA moves there on the next candidate round. */
  #homeProven: { link: string; ifindex: number } | undefined;
  /** Candidate home links that failed the proof, resting until `until`. */
  readonly #homeRested = new Map<string, { until: number; waitMs: number }>();
  /** The home candidate of the last round (for the proof step after the move). */
  #home: CareOfCandidate | undefined;
  #lastHeardAt = 0;
  /** Something went to the HA since we last heard from it. */
  #sentSinceHeard = false;
  #pathLostAttempt = false;
  #armedFor = Infinity;
  #wallOffset = 0;
  #nextRecheck = 0;

  constructor(config: MovementConfig) {
    this.#cfg = config;
  }

  /** The care-of in use (the home link's candidate while at home), null when none. */
  get careOf(): CareOfCandidate | null {
    return this.#careOf;
  }

  /** The interface holding the HoA while at home. */
  get atHome(): string | undefined {
    return this.#atHome;
  }

  /** The candidate home link being proven (its returning-home BU is outstanding). */
  get homeProof(): { link: string; ifindex: number } | undefined {
    return this.#homeProof;
  }

  /** Monotonic `now` and wall-clock `wall` at start. */
  start(now: number, wall: number): void {
    this.#lastHeardAt = now;
    this.#wallOffset = wall - now;
  }

  /**
   * New candidates: what to do about the home link and the tunnel's care-of, in order. After
   * executing `move` (the registration told), call afterMove() for the home-link proof step.
   */
  onCandidates(
    candidates: CareOfCandidate[],
    agents: AgentFamilies,
    now: number,
  ): MovementAction[] {
    this.#nextRecheck = now + (this.#cfg.recheckIntervalMs ?? 5000);
    const home = this.#homeCandidate(candidates, now);
    this.#home = home;
    if (this.#atHome !== undefined && home?.homeLink === this.#atHome) {
      return [{ kind: 'stay-home' }]; // the home link wins over every other (RFC 6275 §11.5.4)
    }
    const proven = this.#homeProven;
    this.#homeProven = undefined;
    if (proven !== undefined) {
      if (home !== undefined && home.homeLink === proven.link) {
        this.#homeRested.delete(proven.link);
        return [{ kind: 'enter-home', candidate: home }];
      }
      // Proven, but the link went away before the HoA could move: register from wherever.
      this.#careOf = null;
    }
    const out: MovementAction[] = [];
    const chosen = this.#choose(candidates, agents);
    const old = this.#careOf;
    const same =
      chosen === old ||
      (chosen !== null &&
        old !== null &&
        chosen.family === old.family &&
        chosen.localAddress === old.localAddress &&
        chosen.homeLink === old.homeLink);
    if (this.#atHome !== undefined) {
      out.push({ kind: 'leave-home', link: this.#atHome });
      this.#atHome = undefined;
    }
    if (!same) out.push({ kind: 'move', to: chosen, from: old });
    return out;
  }

  /** The driver executed a `move`: the new care-of is in use. */
  moved(to: CareOfCandidate | null): void {
    this.#careOf = to;
    this.#pathLostAttempt = false;
  }

  /**
   * After a candidate round's move: cancel a proof whose link went away (or that a new
   * registration replaced: `returningHome` false), and start one for a new candidate home link.
   */
  afterMove(returningHome: boolean): MovementAction[] {
    const out: MovementAction[] = [];
    const home = this.#home;
    const proof = this.#homeProof;
    if (proof !== undefined && (home?.homeLink !== proof.link || !returningHome)) {
      this.#homeProof = undefined;
      out.push({ kind: 'cancel-home-proof' });
    }
    if (home?.homeLink !== undefined && this.#homeProof === undefined) {
      const ifindex = home.homeLinkIndex ?? 0;
      this.#homeProof = { link: home.homeLink, ifindex };
      out.push({ kind: 'prove-home', link: home.homeLink, ifindex });
    }
    return out;
  }

  /** The HoA is on the home link `candidate.homeLink` now. */
  enteredHome(candidate: CareOfCandidate): void {
    this.#atHome = candidate.homeLink;
    this.#careOf = candidate;
  }

  /** The HA acknowledged the returning-home BU: the next round moves the HoA. */
  homeProven(): void {
    this.#homeProven = this.#homeProof;
    this.#homeProof = undefined;
  }

  /** The HA refused the returning-home BU or left it unanswered: rest that link. */
  homeRefused(now: number): { link: string | undefined; waitMs: number } {
    const proof = this.#homeProof;
    this.#homeProof = undefined;
    if (proof === undefined) return { link: undefined, waitMs: RETURN_HOME_RETRY_MS };
    const prev = this.#homeRested.get(proof.link);
    const waitMs = Math.min(
      prev ? prev.waitMs * 2 : RETURN_HOME_RETRY_MS,
      RETURN_HOME_RETRY_MAX_MS,
    );
    this.#homeRested.set(proof.link, { until: now + waitMs, waitMs });
    return { link: proof.link, waitMs };
  }

  /** Another home agent: no proof with it yet, a fresh care-of choice against its addresses. */
  switchedHomeAgent(): void {
    this.#homeProof = undefined;
    this.#pathLostAttempt = false;
    this.#careOf = null;
  }

  /** The HA's addresses changed and the care-of has none of its family: choose again. */
  forgetCareOf(): void {
    this.#careOf = null;
  }

  // ---- reachability ----------------------------------------------------------------------

  /** Something authenticated arrived on the HA channel. */
  heard(now: number): void {
    this.#lastHeardAt = now;
    this.#sentSinceHeard = false;
  }

  /** Something went to the HA; true when that started the silence deadline. */
  sent(): boolean {
    const started = !this.#sentSinceHeard;
    this.#sentSinceHeard = true;
    return started;
  }

  /**
   * The driver tries the HA on another port after a lost path: the next unanswered BU of the
   * same attempt may report a lost path again.
   */
  retryPath(): void {
    this.#pathLostAttempt = false;
  }

  /** A BA registered us: the next unanswered attempt may be a lost path again. */
  registered(): void {
    this.#pathLostAttempt = false;
  }

  /** A BU went out; `unanswered` BUs of this attempt before it. Path lost once per attempt. */
  bindingUpdateSent(unanswered: number, onHomeLink: boolean): MovementAction[] {
    // An unanswered home-link BU says nothing about the path away.
    if (onHomeLink || this.#pathLostAttempt) return [];
    if (unanswered < (this.#cfg.probeAttempts ?? 3)) return [];
    this.#pathLostAttempt = true;
    return [{ kind: 'path-lost', unanswered }];
  }

  /** Ms since the HA was last heard. */
  silentMs(now: number): number {
    return now - this.#lastHeardAt;
  }

  // ---- timer -----------------------------------------------------------------------------

  /** The driver armed its timer for `deadline` (lateness counts from `now` if that is past). */
  armed(deadline: number, now: number): void {
    this.#armedFor = Math.max(deadline, now);
  }

  /** The next time poll() has something to do; `registered`: the home registration is. */
  nextDeadline(registered: boolean): number {
    return Math.min(this.#nextRecheck || Infinity, this.#silenceDeadline(registered));
  }

  /** The driver's timer fired at `now` (wall clock `wall`). */
  poll(now: number, wall: number, registered: boolean): MovementAction[] {
    const out: MovementAction[] = [];
    const late = now - this.#armedFor;
    const wallOffset = wall - now;
    const jump = wallOffset - this.#wallOffset;
    this.#wallOffset = wallOffset;
    if (late > LATE_TIMER_MS || Math.abs(jump) > CLOCK_JUMP_MS) {
      out.push({
        kind: 'resume',
        how: late > LATE_TIMER_MS ? 'late-timer' : 'clock-jump',
        ms: Math.max(late, jump),
      });
    } else if (now >= this.#silenceDeadline(registered)) {
      out.push({ kind: 'probe', why: 'silence', silentMs: now - this.#lastHeardAt });
    }
    if (this.#nextRecheck !== 0 && now >= this.#nextRecheck) {
      this.#nextRecheck = 0;
      out.push({ kind: 'recheck' });
    }
    return out;
  }

  #silenceDeadline(registered: boolean): number {
    if (!registered || !this.#sentSinceHeard) return Infinity;
    return this.#lastHeardAt + (this.#cfg.probeIntervalMs ?? 5000);
  }

  /**
   * The candidate home link to prove (or the one we are on), if any: we can go home, it names
   * its interface index, and it is not resting.
   */
  #homeCandidate(candidates: CareOfCandidate[], now: number): CareOfCandidate | undefined {
    if (!this.#cfg.canGoHome) return undefined;
    for (const link of [...this.#homeRested.keys()]) {
      if (!candidates.some((c) => c.homeLink === link)) this.#homeRested.delete(link);
    }
    const here = candidates.find((c) => c.homeLink !== undefined && c.homeLink === this.#atHome);
    return (
      here ??
      candidates.find(
        (c) =>
          c.homeLink !== undefined &&
          (c.homeLinkIndex ?? 0) > 0 &&
          (this.#homeRested.get(c.homeLink)?.until ?? 0) <= now,
      )
    );
  }

  /** The care-of for the tunnel: never a home-link candidate (that one needs its proof). */
  #choose(candidates: CareOfCandidate[], agents: AgentFamilies): CareOfCandidate | null {
    const usable = candidates.filter(
      (c) =>
        (c.family === 4 ? agents.agent4 !== undefined : agents.agent6 !== undefined) &&
        c.homeLink === undefined,
    );
    const preferred = this.#cfg.prefer === 'ipv6' ? 6 : 4;
    // Stay on the current care-of while it is still usable (no flapping between families).
    const current = this.#careOf;
    if (
      current &&
      usable.some((c) => c.family === current.family && c.localAddress === current.localAddress)
    ) {
      return current;
    }
    return usable.find((c) => c.family === preferred) ?? usable[0] ?? null;
  }
}
