/**
 * Liveness of a route-optimized direct path (DESIGN.md §5: "fall back to the tunnel when the
 * direct path fails"). Not MIPv6: RFC 6275 leaves detecting a dead direct path to the MN
 * (§11.3.5 only covers ICMP errors), and a silent black hole sends no ICMP. mip6 watches the
 * direct channel itself, one engine per correspondent:
 *
 *   routeOptimized(now)    the CN's BA arrived: the path counts as heard now, checks start.
 *   sent(now)              a data packet left on the direct path.
 *   heard(now)             anything authenticated came back from the CN on its channel.
 *   probeReceived(m, now)  a probe message came from the CN (counts as heard; a request
 *                          is answered: the reply goes back where the request came from).
 *   poll(now, active)      the clock, every DIRECT_TICK_MS while `active` (the registration
 *                          is route optimized): while we are sending and the CN is silent,
 *                          DIRECT_PROBE_AFTER_MS brings a probe request (at most one per
 *                          tick), DIRECT_FAIL_MS a pathFailed action (-> tunnel at once).
 *   nextDeadline()         when poll() wants to run next (Infinity when idle).
 *
 * "Sending" means the last direct packet out is newer than the last thing heard: a path
 * nobody sends on cannot be judged, and an idle one is not probed.
 *
 * Probe messages (channel payload of kind SIGNALING, one byte whose first nibble is not 6,
 * so it can never be taken for IPv6): PROBE_REQUEST 0x01, PROBE_REPLY 0x02.
 *
 * Sans-IO: times in, actions out; the driver seals and sends probes and moves traffic to the
 * tunnel (CorrespondentRegistration.directPathFailed).
 */

/** mip6 choice: probe the direct path after this much silence from the CN while sending. */
export const DIRECT_PROBE_AFTER_MS = 300;
/** mip6 choice: silence after which the direct path counts as failed (issue: "within a second"). */
export const DIRECT_FAIL_MS = 700;
/** mip6 choice: liveness check period while a route is optimized. */
export const DIRECT_TICK_MS = 100;
/** Overlay liveness probe: "are you there?" (not MIPv6: the RFC has no such message). */
export const PROBE_REQUEST = 0x01;
/** Overlay liveness probe: the answer to a PROBE_REQUEST, on the same channel. */
export const PROBE_REPLY = 0x02;
/** Length of a probe message on the channel. */
export const PROBE_LEN = 1;

export type ProbeMessage = typeof PROBE_REQUEST | typeof PROBE_REPLY;

/** What the driver must do. */
export type DirectPathAction =
  /** Seal `message` as the channel's own signaling and send it to the CN's locator. */
  | { kind: 'sendProbe'; message: ProbeMessage }
  /** The CN has been silent `silentMs` while we sent: traffic goes back to the tunnel. */
  | { kind: 'pathFailed'; silentMs: number };

/** The answer a probe message `message` asks for, if any (a request is answered). */
export function probeAnswer(message: number | undefined): ProbeMessage | undefined {
  return message === PROBE_REQUEST ? PROBE_REPLY : undefined;
}

export class DirectPathLiveness {
  #lastIn = 0;
  #lastOut = 0;
  #lastProbe = 0;
  /** Next check while active, else 0. */
  #checkAt = 0;

  /** The route became optimized: the CN counts as heard now; checks start. */
  routeOptimized(now: number): void {
    this.#lastIn = now;
    if (this.#checkAt === 0) this.#checkAt = now + DIRECT_TICK_MS;
  }

  /** A packet left on the direct path. */
  sent(now: number): void {
    this.#lastOut = now;
  }

  /** Something authenticated arrived from the CN on its direct channel. */
  heard(now: number): void {
    this.#lastIn = now;
  }

  /**
   * A probe message arrived from the CN (a reply to ours, or its own request): it counts as
   * heard. Returns the answer to send back on the same channel, if any.
   */
  probeReceived(message: number | undefined, now: number): ProbeMessage | undefined {
    this.heard(now);
    return probeAnswer(message);
  }

  /**
   * The periodic check. `active`: the registration is route optimized now (the driver asks
   * it after its own poll); when not, the engine goes idle until routeOptimized().
   */
  poll(now: number, active: boolean): DirectPathAction[] {
    if (!active) {
      this.#checkAt = 0;
      return [];
    }
    this.#checkAt = now + DIRECT_TICK_MS;
    if (this.#lastOut <= this.#lastIn) return []; // not sending, or answered since
    const silent = now - this.#lastIn;
    if (silent >= DIRECT_FAIL_MS) return [{ kind: 'pathFailed', silentMs: silent }];
    if (silent >= DIRECT_PROBE_AFTER_MS && now - this.#lastProbe >= DIRECT_TICK_MS) {
      this.#lastProbe = now;
      return [{ kind: 'sendProbe', message: PROBE_REQUEST }];
    }
    return [];
  }

  /** When poll() should run next; Infinity while idle. */
  nextDeadline(): number {
    return this.#checkAt || Infinity;
  }
}
