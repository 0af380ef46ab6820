/**
 * The home agent's per-binding channel state: which channel (PeerSession) a binding belongs to,
 * where its signaling goes (the locator of its last BU) and where its data goes (a validated
 * locator, path-validation.ts), with the anti-amplification budget of a locator not validated
 * yet and the rate of rebinding hints. No I/O: challenges to send come back to the driver.
 *
 * Rules (DESIGN.md §4): a BU moves signaling at once; data follows only once the member answered
 * a challenge at the new locator (or its handshake there completed after the keys in use were
 * made). Until then data goes to the new locator within the budget (UNVALIDATED_BUDGET_FACTOR
 * times what came from it), else to the last validated locator of the same channel.
 *
 * Our own address a binding is answered from (`local`, a multi-homed home agent, issue #16) is
 * a path too: a datagram of the channel from the bound locator that arrived at another of our
 * addresses may be a copy an on-path host sent there first (the original then dies as a
 * replay), so it moves nothing by itself. A challenge goes from that address to the locator;
 * once it is answered on the channel, what goes to the locator leaves from the new address.
 * Until then it keeps leaving from the old one. Such a validation is not remembered: the next
 * move to an address needs its own answer (a NAT's mapping for it may be gone by then).
 */
import type { PeerSession } from '../../crypto/endpoint.js';
import { randomBytes } from '../../crypto/random.js';
import type { BindingStatus } from '../../io/control-protocol.js';
import type { BindingCacheEntry } from '../../protocol/binding-cache.js';
import { formatLocator, type Locator } from '../../protocol/locator.js';
import { PathValidator, UNVALIDATED_BUDGET_FACTOR } from '../../protocol/path-validation.js';
import type { PathMtuState, PathMtuStatus } from '../../protocol/path-mtu.js';
import { checkLocator, ResolvedLocator, resolveLocator, setLocalAddress } from '../common.js';
import { pathMtuStatus } from '../tunnel-mtu.js';
import { haChannel, haChannelIfAny, validationStore } from './ha-channel.js';

/** At most one rebinding hint (BRR to a new locator) per binding this often (ms). */
export const REBIND_HINT_INTERVAL_MS = 1000;

/**
 * Where a binding's traffic goes. The bound path is itself the locator of the binding's last BU
 * (a ResolvedLocator: one object per binding, not a record and a locator, issue 17), kept on
 * the binding's entry (BindingCacheEntry.path), not in a Map of its own.
 */
export class BoundPath extends ResolvedLocator {
  readonly session: PeerSession;
  /** The validated locator data goes to (path-validation.ts): this path itself once validated;
   *  undefined until there is one. */
  data: ResolvedLocator | undefined;
  /** Bytes of data `locator` may still get while unvalidated (anti-amplification budget). */
  budget: number;
  /** The path MTU state of `locator` (issue #21), and the locator object it was made for
   *  (`mtu` undefined while the state is parked: see HomeAgent's path MTU section). */
  mtu: PathMtuState | undefined = undefined;
  mtuFor: ResolvedLocator | undefined = undefined;

  constructor(session: PeerSession, at: Locator) {
    const { family, ifindex } = checkLocator(at);
    super(at.address, at.port, family, ifindex);
    setLocalAddress(this, at.local);
    this.session = session;
    this.data = undefined;
    this.budget = 0;
  }

  /** Where the member's last BU came from: where signaling (BA, BRR, MPA) goes (this path). */
  get locator(): ResolvedLocator {
    return this;
  }
}

/** The bound path kept on a binding's entry, if any. */
function pathOf(entry: BindingCacheEntry): BoundPath | undefined {
  const p = entry.path;
  return p instanceof BoundPath ? p : undefined;
}

/**
 * What a PATH_RESPONSE validated: `locator` now carries the data of the bindings `keys`, or,
 * with `source`, what goes to it leaves from that address of ours.
 */
export interface PathValidated {
  locator: string;
  keys: string[];
  source?: string | undefined;
}

/** A PATH_CHALLENGE the driver seals and sends. */
export interface ChallengeToSend {
  session: PeerSession;
  to: ResolvedLocator;
  token: Uint8Array;
}

export class BindingPaths {
  /** The binding cache's entry of a binding key (its bound path is kept there). */
  readonly #entry: (key: string) => BindingCacheEntry | undefined;
  /** Kept in each channel's record (ha-channel.ts), as its binding keys are. */
  readonly #validator = new PathValidator<PeerSession>(randomBytes, validationStore);
  /** Where and when each channel's last handshake as responder came from. */
  readonly #handshakeAt = new WeakMap<PeerSession, { address: string; port: number; at: number }>();
  /** When a rebinding hint last went out, by binding key. */
  readonly #rebindHints = new Map<string, number>();
  /** Challenges from another of our addresses (the member may reach us there now). */
  readonly #sources = new PathValidator<PeerSession>(randomBytes);
  /** The locator and new source of each channel's pending challenge in #sources. */
  readonly #sourceTargets = new Map<PeerSession, ResolvedLocator>();

  constructor(entry: (key: string) => BindingCacheEntry | undefined) {
    this.#entry = entry;
  }

  /** The bound path of the binding of `key` in the cache. */
  get(key: string): BoundPath | undefined {
    const e = this.#entry(key);
    return e === undefined ? undefined : pathOf(e);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** The bound path of `entry`, in the cache or just removed from it. */
  of(entry: BindingCacheEntry): BoundPath | undefined {
    return pathOf(entry);
  }

  /** A handshake with this channel completed, its response sent to `locator`. */
  handshakeCompleted(session: PeerSession, locator: Locator, now: number): void {
    this.#handshakeAt.set(session, { address: locator.address, port: locator.port, at: now });
  }

  /**
   * After an accepted BU: the binding's signaling goes to the BU's source at once; its data
   * only once that locator is validated. Until then data keeps going to the previous validated
   * locator of the same channel, if any, and a challenge goes out (returned).
   */
  bind(
    entry: BindingCacheEntry,
    session: PeerSession,
    buBytes: number,
    now: number,
  ): ChallengeToSend | undefined {
    const known = pathOf(entry);
    const same =
      known !== undefined &&
      known.session === session &&
      known.port === entry.locator.port &&
      known.address === entry.locator.address
        ? known
        : undefined;
    if (same !== undefined && same.data === same) {
      // A refresh from the validated locator it is bound to: nothing changes, its path MTU
      // state stays. (A challenge another binding of the channel has pending elsewhere goes
      // on: only a BU of that binding moves it.) Arrived at another of our addresses: that
      // one is challenged; the source stays until the member answers. A handshake record for
      // this very locator (an idle member's rekey before its refresh) proves nothing new.
      const hs = this.#handshakeAt.get(session);
      if (
        hs !== undefined &&
        hs.address === entry.locator.address &&
        hs.port === entry.locator.port
      )
        this.#handshakeAt.delete(session);
      return this.#challengeSource(session, same, entry.locator, now);
    }
    // The same locator keeps its source (see reachedAt); a new one is answered from where its
    // BU arrived: its validation (the challenge from there) covers that address as well.
    const bound = new BoundPath(
      session,
      same === undefined ? entry.locator : { ...entry.locator, local: same.local },
    );
    const text = formatLocator(entry.locator);
    const hs = this.#handshakeAt.get(session);
    if (
      hs !== undefined &&
      hs.address === entry.locator.address &&
      hs.port === entry.locator.port &&
      session.currentKeysCreatedAt >= hs.at
    ) {
      this.#validator.markValidated(session, text); // the handshake's response reached it
      this.#handshakeAt.delete(session); // used: validated stays in the validator's list
    }
    const challenge = this.#validator.onBindingUpdate(session, text, now);
    const validated = this.#validator.isValidated(session, text);
    // The previous validated locator of the same channel. A validated bound path (its data is
    // itself, so it holds no previous one) stays that same object: what else sends to it (the
    // path MTU probes of the channel) sees a later source change too (#onSourceResponse). Any
    // other bound path is copied, so a chain of them is never kept alive.
    const last = known?.session === session ? known.data : undefined;
    const previous =
      last instanceof BoundPath && last.data !== last
        ? resolveLocator({ address: last.address, port: last.port, local: last.local })
        : last;
    const budget =
      validated || known?.address !== bound.address || known.port !== bound.port ? 0 : known.budget;
    bound.data = validated ? bound : previous;
    bound.budget = validated ? 0 : budget + UNVALIDATED_BUDGET_FACTOR * buBytes;
    entry.path = bound;
    // One key (a string) for the usual member with one home address; a Set only for more (a
    // certificate may hold several home addresses).
    const channel = haChannel(session);
    const keys = channel.keys;
    if (keys === undefined) channel.keys = entry.key;
    else if (typeof keys === 'string') {
      if (keys !== entry.key) channel.keys = new Set([keys, entry.key]);
    } else keys.add(entry.key);
    if (challenge !== undefined) return { session, to: bound, token: challenge.token };
    return same === undefined
      ? undefined
      : this.#challengeSource(session, bound, entry.locator, now);
  }

  /**
   * Data of `bytes` arrived from the binding's locator: while that locator is unvalidated it
   * earns UNVALIDATED_BUDGET_FACTOR times as much (anti-amplification, RFC 9000 §8.1).
   */
  credit(bound: BoundPath, from: Locator, bytes: number): void {
    if (
      bound.data !== bound.locator &&
      bound.locator.port === from.port &&
      bound.locator.address === from.address
    ) {
      bound.budget += UNVALIDATED_BUDGET_FACTOR * bytes;
    }
  }

  /**
   * An authenticated datagram of the binding arrived from `from`: when that is its locator (or
   * its data locator) and it reached another of our addresses (`from.local`), the challenge to
   * send from there (or undefined: none due). The source moves only on its answer
   * (onResponse): the datagram may be a copy an on-path host sent to that address first.
   */
  reachedAt(bound: BoundPath, from: Locator, now: number): ChallengeToSend | undefined {
    const l = bound.locator;
    if (l.port === from.port && l.address === from.address) {
      return this.#challengeSource(bound.session, l, from, now);
    }
    const d = bound.data;
    if (d !== undefined && d.port === from.port && d.address === from.address) {
      return this.#challengeSource(bound.session, d, from, now);
    }
    return undefined;
  }

  /**
   * The challenge (new, or the pending one when a resend is due) that validates `from.local`
   * as the source for `bound` (a locator of `session`'s binding at from's address and port),
   * or undefined when it is that source already, unknown or of the other family.
   */
  #challengeSource(
    session: PeerSession,
    bound: ResolvedLocator,
    from: Locator,
    now: number,
  ): ChallengeToSend | undefined {
    const local = from.local;
    if (local === undefined || local === bound.local) return undefined;
    const to = resolveLocator({ address: bound.address, port: bound.port, local });
    if (to.local === undefined) return undefined; // another family: never a source for it
    const c = this.#sources.onBindingUpdate(session, `${formatLocator(to)} from ${local}`, now);
    if (c === undefined) return undefined;
    const pending = this.#sourceTargets.get(session);
    if (pending?.local === local && pending.port === to.port && pending.address === to.address) {
      return { session, to: pending, token: c.token };
    }
    this.#sourceTargets.set(session, to);
    return { session, to, token: c.token };
  }

  /**
   * Where a run of `bytes` for this binding goes: its validated locator when that is the current
   * one; else the new, unvalidated one while the anti-amplification budget lasts; else the last
   * validated one (if the member is still there it gets it; if it moved, it answers the
   * challenge within a round trip).
   */
  dataLocator(bound: BoundPath, bytes: number): ResolvedLocator | undefined {
    const data = bound.data;
    if (data === bound.locator) return data;
    if (bound.budget >= bytes) {
      bound.budget -= bytes;
      return bound.locator;
    }
    return data;
  }

  /** True (and remembered) when a rebinding hint for this binding may go out at `now`. */
  rebindHintDue(key: string, now: number): boolean {
    const last = this.#rebindHints.get(key);
    if (last !== undefined && now - last < REBIND_HINT_INTERVAL_MS) return false;
    this.#rebindHints.set(key, now);
    return true;
  }

  /** `parkedMtu`: the path MTU status of a bound path whose state is parked (no `mtu`). */
  status(
    key: string,
    parkedMtu?: (bound: BoundPath) => PathMtuStatus | undefined,
  ): Pick<BindingStatus, 'path' | 'dataLocator' | 'pathMtu'> {
    const bound = this.get(key);
    if (bound === undefined) return {};
    const found = bound.mtu?.status() ?? parkedMtu?.(bound);
    const mtu = found !== undefined ? { pathMtu: pathMtuStatus(found) } : {};
    if (bound.data === bound.locator) return { path: 'validated', ...mtu };
    return {
      path: 'validating',
      ...(bound.data !== undefined ? { dataLocator: formatLocator(bound.data) } : {}),
      ...mtu,
    };
  }

  /**
   * A PATH_RESPONSE on this channel: the bindings registered at the locator it answers for now
   * carry data (or, answering a challenge from another of our addresses, are answered from
   * it). Returns what was validated, or undefined when it matches no challenge.
   */
  onResponse(session: PeerSession, token: Uint8Array): PathValidated | undefined {
    const text = this.#validator.onResponse(session, token);
    if (text === undefined) return this.#onSourceResponse(session, token);
    const keys: string[] = [];
    for (const key of this.#keysOf(session)) {
      const bound = this.get(key);
      if (bound === undefined || formatLocator(bound.locator) !== text) continue;
      bound.data = bound.locator;
      bound.budget = 0;
      keys.push(key);
    }
    return { locator: text, keys };
  }

  /**
   * A PATH_RESPONSE answering a challenge from another of our addresses: the member receives
   * what leaves from there, so what goes to that locator does from now on.
   */
  #onSourceResponse(session: PeerSession, token: Uint8Array): PathValidated | undefined {
    const text = this.#sources.onResponse(session, token);
    const to = this.#sourceTargets.get(session);
    if (text === undefined || to === undefined) return undefined;
    this.#sources.forget(session); // not remembered: the next move is challenged again
    this.#sourceTargets.delete(session);
    const keys: string[] = [];
    for (const key of this.#keysOf(session)) {
      const bound = this.get(key);
      if (bound === undefined) continue;
      let moved = false;
      for (const l of [bound.locator, bound.data]) {
        if (l === undefined || l.port !== to.port || l.address !== to.address) continue;
        setLocalAddress(l, to.local);
        moved = true;
      }
      if (moved) keys.push(key);
    }
    return { locator: formatLocator(to), keys, source: to.local };
  }

  /** Challenge retransmissions due at `now`. */
  poll(now: number): ChallengeToSend[] {
    const out: ChallengeToSend[] = [];
    for (const c of this.#sources.poll(now)) {
      const to = this.#sourceTargets.get(c.owner);
      if (to !== undefined) out.push({ session: c.owner, to, token: c.token });
    }
    for (const c of this.#validator.poll(now)) {
      for (const key of this.#keysOf(c.owner)) {
        const bound = this.get(key);
        if (bound === undefined || formatLocator(bound.locator) !== c.locator) continue;
        out.push({ session: c.owner, to: bound.locator, token: c.token });
        break;
      }
    }
    return out;
  }

  nextDeadline(): number {
    return Math.min(this.#validator.nextDeadline(), this.#sources.nextDeadline());
  }

  /** The binding is gone (`entry`, just removed from the cache); its channel's validation state
   *  goes with its last binding. */
  remove(entry: BindingCacheEntry): void {
    const key = entry.key;
    this.#rebindHints.delete(key);
    const bound = pathOf(entry);
    entry.path = undefined;
    const channel = bound === undefined ? undefined : haChannelIfAny(bound.session);
    const keys = channel?.keys;
    if (bound !== undefined && channel !== undefined && keys !== undefined) {
      if (typeof keys === 'string' ? keys === key : keys.delete(key) && keys.size === 0) {
        channel.keys = undefined;
        this.#validator.forget(bound.session);
        this.#sources.forget(bound.session);
        this.#sourceTargets.delete(bound.session);
      }
    }
  }

  /** The binding keys of a channel. */
  #keysOf(session: PeerSession): Iterable<string> {
    const keys = haChannelIfAny(session)?.keys;
    return keys === undefined ? [] : typeof keys === 'string' ? [keys] : keys;
  }

  /** A binding of `session` still here (a member with several home addresses), if any. */
  boundTo(session: PeerSession): BoundPath | undefined {
    for (const key of this.#keysOf(session)) {
      const bound = this.get(key);
      if (bound !== undefined) return bound;
    }
    return undefined;
  }

  /** The channel is closed (revoked): its validation state goes. */
  forgetSession(session: PeerSession): void {
    this.#validator.forget(session);
    this.#sources.forget(session);
    this.#sourceTargets.delete(session);
  }
}
