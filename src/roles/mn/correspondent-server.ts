/**
 * The correspondent (CN) half of route optimization (RFC 6275 §5.2, §9; DESIGN.md §4-§5): a
 * mip6 CN is a member that answers return routability and keeps a correspondent binding cache
 * (CorrespondentBindings), so mobile members reach it directly instead of through their HA.
 *
 *   HoTI from the HA tunnel -> HoT back through it (fromHomeTestInit), rate-limited per member
 *     whose certificate holds the HoTI's source (memberOrigin), anonymous otherwise.
 *   CoTI on a direct channel -> CoT to the locator it came from, with a care-of token over
 *     that locator (return-routability.ts).
 *   BU on a direct channel -> checks (a HoA the certificate holds, a HAO, the binding owner's
 *     key, and a token that only verifies from the locator that got the CoT), BA to the locator
 *     the BU came from, which becomes the MN's locator for data (a locator changes only after
 *     RR, DESIGN.md §4); onBound tells the MN half, which follows a mobile peer there too.
 *   direct data with a HAO: binding must match (HoA, CoA, session) -> option stripped, source =
 *     HoA, selector check against the peer's certificate, TUN; else Binding Error status 1.
 *   TUN -> bound HoA (fromTun): copy into the staging slab, Type 2 Routing Header inserted,
 *     destination = CoA, appended to the MN's channel run (direct-path.ts).
 */
import type { PeerSession } from '../../crypto/endpoint.js';
import type { RrCrypto } from '../../crypto/rr-crypto.js';
import { sourceAllowed } from '../../crypto/selector.js';
import { keyOf, keyOfText } from '../../protocol/binding-cache.js';
import {
  CorrespondentBindings,
  type CorrespondentAction,
  type CorrespondentOrigin,
} from '../../protocol/correspondent-bindings.js';
import { formatLocator } from '../../protocol/locator.js';
import { formatIpv6 } from '../../wire/address.js';
import { IPV6_DST_OFF, IPV6_HEADER_LEN, IPV6_SRC_OFF } from '../../wire/ipv6.js';
import { MH_TYPE_OFF } from '../../wire/mobility.js';
import {
  REWRITE_GROWTH,
  addType2RoutingHeader,
  removeHomeAddressOption,
  upperLayer,
} from '../../wire/rewrite.js';
import { IPPROTO, MH_TYPE } from '../../wire/types.js';
import { resolveLocator, type ResolvedLocator } from '../common.js';
import type { DatagramOrigin, DirectPath, TunSink } from './direct-path.js';

/** The channel and locator a bound MN is reached on. */
export interface Bound {
  session: PeerSession;
  locator: ResolvedLocator;
}

export interface CorrespondentServerOptions {
  homeAddress: string;
  maxBindingLifetimeSeconds?: number | undefined;
}

/** A member's identity for per-member limits: its static public key (PeerSession.peerKey, 32 bytes as a one-byte string). */
function memberKey(session: PeerSession): string {
  return session.peerKey;
}

/**
 * Between two mobile members one channel carries both halves: HAO data (`hao` >= 0, its
 * offset), HoTI, CoTI and BU are for the CN half; everything else (RH2 data, CoT, BA, BE, BRR)
 * for the MN half.
 */
export function forCorrespondentHalf(
  buf: Uint8Array,
  off: number,
  len: number,
  hao: number,
): boolean {
  if (hao >= 0) return true;
  const u = upperLayer(buf, off, len);
  if (u === undefined || u.protocol !== IPPROTO.MH) return false;
  const type = buf[off + u.offset + MH_TYPE_OFF];
  return type === MH_TYPE.HOTI || type === MH_TYPE.COTI || type === MH_TYPE.BU;
}

export class CorrespondentServer {
  readonly bindings: CorrespondentBindings;
  /** An MN proved (RR + BU) that it is reachable at `locator` over `session`. */
  onBound: ((session: PeerSession, locator: ResolvedLocator) => void) | undefined;
  readonly #d: DirectPath;
  readonly #homeAddress: string;
  /** The channel and locator of each bound MN, by HoA key. */
  readonly #bound = new Map<string, Bound>();

  constructor(direct: DirectPath, c: RrCrypto, opts: CorrespondentServerOptions) {
    this.#d = direct;
    this.#homeAddress = opts.homeAddress;
    this.bindings = new CorrespondentBindings(c, {
      addresses: [opts.homeAddress],
      ...(opts.maxBindingLifetimeSeconds !== undefined
        ? { maxLifetimeSeconds: opts.maxBindingLifetimeSeconds }
        : {}),
    });
  }

  /** The channel and locator of the MN bound with `homeAddress` (status). */
  boundTo(homeAddress: string): Bound | undefined {
    return this.#bound.get(keyOfText(homeAddress));
  }

  /** Where a bound MN on `session` is reached (its handshake messages go there). */
  locatorOf(session: PeerSession): ResolvedLocator | undefined {
    for (const b of this.#bound.values()) if (b.session === session) return b.locator;
    return undefined;
  }

  // ---- TUN -> bound MN ---------------------------------------------------------------------

  /**
   * A TUN packet for `key` (its destination's key): true when it was staged for a bound MN's
   * channel with an RH2; false when it takes the tunnel.
   */
  fromTun(key: string, buf: Uint8Array, off: number, len: number, now: number): boolean {
    const b = this.bindings.lookup(buf, off + IPV6_DST_OFF);
    if (b === undefined || now >= b.expiresAt) return false;
    const ch = this.#bound.get(key);
    if (ch === undefined || !ch.session.established) return false;
    const d = this.#d;
    const socket = d.socket(ch.locator);
    if (socket === undefined) {
      d.drops.add('direct-send');
      return false;
    }
    const at = d.stage(buf, off, len, now);
    const n = addType2RoutingHeader(d.slab, at, len, b.careOfBytes);
    if (n < 0) {
      d.drops.add(`rh2-rewrite${n}`);
      return false;
    }
    d.commit(ch.session, ch.locator, socket, n, len + REWRITE_GROWTH, now);
    this.bindings.noteSent(b, now);
    return true;
  }

  // ---- direct channel -> us ----------------------------------------------------------------

  /**
   * CoTI, BU and HAO data from an MN's channel (`hao`: offset of its Home Address option, or
   * -1). The caller checked the channel is a member's (not an HA's) and the own/forwarded rule.
   */
  fromMobileNode(
    session: PeerSession,
    buf: Uint8Array,
    off: number,
    len: number,
    hao: number,
    from: DatagramOrigin,
    now: number,
    toTun: TunSink | undefined,
  ): void {
    const d = this.#d;
    const bindings = this.bindings;
    const cert = session.peerCertificate!;
    if (upperLayer(buf, off, len)?.protocol === IPPROTO.MH) {
      // CoTI and BU (issue #13): the engine binds the care-of token to the locator the packet
      // came from, takes a BU only for a HoA the certificate holds, with a HAO, and only from
      // the key that owns the binding (counted as cn-<reason> drops otherwise).
      const packet = buf.slice(off, off + len);
      d.capture(packet, now);
      const via: Bound = { session, locator: resolveLocator(from.locator()) };
      const origin: CorrespondentOrigin = {
        member: memberKey(session),
        ownerKey: session.peerPublicKey,
        allowsHomeAddress: (hoa: Uint8Array) => certAllows(cert, hoa, 0),
        locator: via.locator,
      };
      this.#run(bindings.handle(packet, now, origin), now, via);
      return;
    }
    if (hao < 0) {
      d.drops.add('direct-without-hao');
      return;
    }
    const b = bindings.acceptHomeAddressOption(buf, hao, off + IPV6_SRC_OFF, now);
    const ch = b ? this.#bound.get(keyOf(buf, hao)) : undefined;
    if (b === undefined || ch === undefined || ch.session !== session) {
      // RFC 6275 §9.3.1: no binding for this HAO -> Binding Error status 1, to the source.
      const home = formatIpv6(buf, hao);
      const source = formatIpv6(buf, off + IPV6_SRC_OFF);
      const be = bindings.bindingErrorFor(home, source, this.#homeAddress, now);
      d.drops.add('hao-without-binding');
      if (be) this.#run([be], now, { session, locator: resolveLocator(from.locator()) });
      return;
    }
    if (d.env.capture) d.capture(buf.subarray(off, off + len), now); // with its HAO
    const n = removeHomeAddressOption(buf, off, len, hao);
    if (n < 0) {
      d.drops.add(`hao${n}`);
      return;
    }
    const length = len - (n - off);
    if (!sourceAllowed(cert, buf, n, length)) {
      d.drops.add('selector');
      return;
    }
    if (toTun) toTun(n, length);
    else if (!d.env.tun.writePacket(buf.subarray(n, n + length))) d.drops.add('tun-write');
  }

  /** A HoTI that came through the HA tunnel: the HoT goes back the same way. */
  fromHomeTestInit(packet: Uint8Array, now: number): void {
    this.#run(this.bindings.handle(packet, now, this.#memberOrigin(packet)), now);
  }

  /**
   * The member whose certificate holds a HoTI's source address, for its own RR rate bucket
   * (CorrespondentBindings.handle); none (anonymous) for anyone else. Home agents are skipped:
   * their certificates hold whole home prefixes.
   */
  #memberOrigin(packet: Uint8Array): { member?: string } {
    for (const s of this.#d.env.endpoint.allSessions()) {
      const cert = s.peerCertificate;
      if (cert === null || cert.role === 'ha') continue;
      if (sourceAllowed(cert, packet, 0, packet.length)) return { member: memberKey(s) };
    }
    return {};
  }

  // ---- timers ------------------------------------------------------------------------------

  nextDeadline(): number {
    return this.bindings.nextDeadline();
  }

  poll(now: number): void {
    this.#run(this.bindings.poll(now, this.#homeAddress), now);
  }

  // ---- actions -----------------------------------------------------------------------------

  /** Executes binding actions; `via` is the channel the triggering packet came on. */
  #run(actions: CorrespondentAction[], now: number, via?: Bound): void {
    const d = this.#d;
    for (const a of actions) {
      switch (a.kind) {
        case 'send': {
          d.capture(a.packet, now);
          if (a.message === 'homeTest') {
            d.host?.sendViaHomeAgent(a.packet, now);
            break;
          }
          const ch = via ?? this.#bound.get(keyOfText(a.homeAddress));
          if (ch === undefined) {
            d.drops.add('cn-no-channel');
            break;
          }
          d.sendSignaling(ch.session, a.packet, ch.locator, now);
          break;
        }
        case 'bindingAdded':
        case 'bindingUpdated': {
          if (via) {
            this.#bound.set(keyOfText(a.binding.homeAddress), via);
            // A mobile correspondent proved (RR + BU) it is reachable there: our MN half
            // follows it too (the configured underlay address is only where to start).
            this.onBound?.(via.session, via.locator);
          }
          d.env.log.info('correspondent-binding', {
            homeAddress: a.binding.homeAddress,
            careOf: a.binding.careOfAddress,
            lifetime: a.binding.lifetimeSeconds,
            ...(via ? { locator: formatLocator(via.locator) } : {}),
          });
          break;
        }
        case 'bindingDeleted':
          this.#bound.delete(keyOfText(a.homeAddress));
          d.env.log.info('correspondent-binding-deleted', {
            homeAddress: a.homeAddress,
            reason: a.reason,
          });
          break;
        case 'drop':
          d.drops.add(`cn-${a.reason}`);
          break;
      }
    }
    d.host?.rearm();
  }
}

/** True when `cert` holds the home address at buf[hao, hao + 16) (as a packet source). */
function certAllows(
  cert: NonNullable<PeerSession['peerCertificate']>,
  buf: Uint8Array,
  hao: number,
): boolean {
  const probe = new Uint8Array(IPV6_HEADER_LEN);
  probe[0] = 0x60;
  probe.set(buf.subarray(hao, hao + 16), IPV6_SRC_OFF);
  return sourceAllowed(cert, probe, 0, IPV6_HEADER_LEN);
}
