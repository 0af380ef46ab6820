/**
 * The mobile node (MN) half of route optimization (RFC 6275 §5.2, §11.3, §11.6-§11.7;
 * DESIGN.md §5): one CorrespondentRegistration per configured correspondent with RO on.
 *
 *   care-of change -> HoTI through the HA (host.sendViaHomeAgent), CoTI over the direct
 *     channel (a Noise session with the CN's own certificate, to its underlay locator);
 *     until the CN's BA comes back, traffic keeps flowing through the HA.
 *   TUN -> CN (fromTun): bound -> copy into the staging slab, insert the Home Address option,
 *     source = CoA, append to the run of the CN's channel (direct-path.ts); otherwise the
 *     packet goes to the reverse tunnel.
 *   direct channel -> us (fromCorrespondent): RH2 validated (our HoA, Segments Left 1) and
 *     removed, selector check, data to the TUN; CoT, BA, BE, BRR to the registration.
 *   HoT from the HA tunnel (fromHomeTest) -> the registration.
 *   liveness: one DirectPathLiveness per correspondent (protocol/direct-path-liveness.ts),
 *     fed what is sent and heard on the direct path; its probes are sent here, and its
 *     pathFailed puts traffic back in the tunnel at once, RR retried with back-off (the
 *     registration's directPathFailed).
 */
import type { PeerSession } from '../../crypto/endpoint.js';
import type { RrCrypto } from '../../crypto/rr-crypto.js';
import { sourceAllowed } from '../../crypto/selector.js';
import type { UdpEndpoint } from '../../io/types.js';
import { keyOf, keyOfText } from '../../protocol/binding-cache.js';
import {
  CorrespondentRegistration,
  type CorrespondentRegistrationAction,
} from '../../protocol/correspondent-registration.js';
import { DirectPathLiveness } from '../../protocol/direct-path-liveness.js';
import {
  checkMobilityHeader,
  ErrorRateLimiter,
  mobilityHeaderAnswer,
} from '../../protocol/mobility-header-check.js';
import type { CareOf } from '../../protocol/mobile-node-registration.js';
import { bytesEqual } from '../../util/bytes.js';
import { ipv4Mapped, parseIpv6 } from '../../wire/address.js';
import { IPV6_DST_OFF, IPV6_NEXT_HEADER_OFF, IPV6_SRC_OFF } from '../../wire/ipv6.js';
import { decodePacket, type DecodedPacket } from '../../wire/packet.js';
import {
  REWRITE_GROWTH,
  addHomeAddressOption,
  hasRoutingHeader,
  removeType2RoutingHeader,
  upperLayer,
} from '../../wire/rewrite.js';
import { IPPROTO } from '../../wire/types.js';
import { resolveLocator, type ResolvedLocator } from '../common.js';
import type { DirectPath, TunSink } from './direct-path.js';

const ICMPV6_PARAMETER_PROBLEM = 4; // RFC 4443 §3.4
/** Signaling queued per correspondent while its channel handshake runs (oldest dropped). */
const MAX_QUEUED = 16;

/** Parameter Problems / Binding Errors sent to correspondents, per second (RFC 6275 §9.3.3). */
const ERROR_ANSWERS_PER_SECOND = 10;

/** A correspondent this member may optimize routes to (from config). */
export interface CorrespondentPeerConfig {
  /** The correspondent's home address. */
  address: string;
  /** Its underlay addresses by family and UDP port (its [underlay] port, default 4191). */
  underlay4?: string | undefined;
  underlay6?: string | undefined;
  port: number;
  /** Its X25519 public key (from its certificate / key file). */
  publicKey: Uint8Array;
  /** Route optimization on/off for this correspondent. */
  enabled: boolean;
  lifetimeSeconds?: number | undefined;
  requestAck?: boolean | undefined;
}

/** Packet counters towards one correspondent (status). */
export interface CorrespondentPackets {
  directOut: number;
  directIn: number;
  tunnelOut: number;
  tunnelIn: number;
}

/** One configured correspondent and our registration with it. */
export interface Correspondent {
  config: CorrespondentPeerConfig;
  key: string;
  reg: CorrespondentRegistration;
  locator: ResolvedLocator | undefined;
  /** The channel last used for direct data (saves the endpoint's by-key lookup per packet). */
  session?: PeerSession | undefined;
  /** Where the peer last proved reachable (its BU to our CN half), if it is mobile too. */
  learned?: ResolvedLocator;
  queue: Uint8Array[];
  packets: CorrespondentPackets;
  liveness: DirectPathLiveness;
}

export class CorrespondentClient {
  readonly #d: DirectPath;
  readonly #c: RrCrypto;
  readonly #homeAddress: string;
  readonly #hoa: Uint8Array;
  readonly #peers = new Map<string, Correspondent>();
  readonly #bySession = new Map<PeerSession, Correspondent>();
  /** Parameter Problems / Binding Errors answered on the direct paths (RFC 6275 §9.3.3). */
  readonly #errorAnswers = new ErrorRateLimiter(ERROR_ANSWERS_PER_SECOND);
  #careOfBytes: Uint8Array = new Uint8Array(16);
  #careOf: CareOf | null = null;

  constructor(direct: DirectPath, c: RrCrypto, homeAddress: string) {
    this.#d = direct;
    this.#c = c;
    this.#homeAddress = homeAddress;
    this.#hoa = parseIpv6(homeAddress);
  }

  /** Adds a correspondent; with a care-of address already known, RR towards it starts. */
  add(config: CorrespondentPeerConfig, now?: number): void {
    if (!config.enabled) return;
    const key = keyOfText(config.address);
    const p: Correspondent = {
      config,
      key,
      reg: new CorrespondentRegistration(this.#c, {
        homeAddress: this.#homeAddress,
        correspondentAddress: config.address,
        ...(config.lifetimeSeconds !== undefined
          ? { lifetimeSeconds: config.lifetimeSeconds }
          : {}),
        ...(config.requestAck !== undefined ? { requestAck: config.requestAck } : {}),
      }),
      locator: undefined,
      queue: [],
      packets: { directOut: 0, directIn: 0, tunnelOut: 0, tunnelIn: 0 },
      liveness: new DirectPathLiveness(),
    };
    this.#peers.set(key, p);
    if (this.#careOf !== null && now !== undefined) this.#startPeer(p, this.#careOf, now);
  }

  /** The correspondent with home address `address`, if configured with RO on. */
  get(address: string): Correspondent | undefined {
    return this.#peers.get(keyOfText(address));
  }

  correspondents(): IterableIterator<Correspondent> {
    return this.#peers.values();
  }

  /** The correspondent a channel belongs to (remembered by session), if any. */
  peerFor(session: PeerSession): Correspondent | undefined {
    const p = this.#bySession.get(session) ?? this.#peerByKey(session.peerPublicKey);
    if (p !== undefined) this.#bySession.set(session, p);
    return p;
  }

  #peerByKey(key: Uint8Array): Correspondent | undefined {
    for (const p of this.#peers.values()) if (bytesEqual(p.config.publicKey, key)) return p;
    return undefined;
  }

  /** Where the handshake messages of a correspondent's channel go, if it is one of ours. */
  handshakeLocator(session: PeerSession): ResolvedLocator | undefined {
    return this.#bySession.get(session)?.locator;
  }

  /** The peer on `session` proved (RR + BU to our CN half) that it is reachable at `locator`. */
  learned(session: PeerSession, locator: ResolvedLocator): void {
    const p = this.#bySession.get(session);
    if (p === undefined) return;
    p.learned = locator;
    p.locator = locator;
  }

  // ---- care-of changes ---------------------------------------------------------------------

  /** See RouteOptimization.setCareOf. */
  setCareOf(careOf: (CareOf & { homeLink?: string | undefined }) | null, now: number): void {
    if (careOf?.homeLink !== undefined) {
      for (const p of this.#peers.values()) this.#run(p, p.reg.deregister(now), now);
      careOf = null;
    }
    const coa = careOfText(careOf);
    if (coa !== null) this.#careOfBytes = parseIpv6(coa);
    this.#careOf = careOf;
    for (const p of this.#peers.values()) this.#startPeer(p, careOf, now);
  }

  #startPeer(p: Correspondent, careOf: CareOf | null, now: number): void {
    const coa = careOfText(careOf);
    p.locator = careOf === null ? undefined : this.#peerLocator(p, careOf.family);
    if (p.locator === undefined && coa !== null) {
      this.#d.drops.add('no-correspondent-locator');
      return;
    }
    this.#ensureSession(p, now);
    this.#run(p, p.reg.setCareOf(p.locator ? coa : null, now), now);
  }

  /**
   * Where to reach a correspondent from a care-of of `family`: where it last proved reachable
   * (its BU to our CN half) when that is of the same family, else its configured address of
   * that family, else whatever is left. A learned locator of the other family is not preferred:
   * after our own move to an IPv6-only network an IPv4 locator is unreachable (both mobile).
   */
  #peerLocator(p: Correspondent, family: 4 | 6): ResolvedLocator | undefined {
    const learned = p.learned && this.#d.socket(p.learned) ? p.learned : undefined;
    if (learned?.family === family) return learned;
    const a = family === 4 ? p.config.underlay4 : p.config.underlay6;
    if (a === undefined && learned) return learned;
    const other = family === 4 ? p.config.underlay6 : p.config.underlay4;
    const address = a ?? other;
    if (address === undefined) return undefined;
    const l = resolveLocator({ address, port: p.config.port });
    return this.#d.socket(l) ? l : undefined;
  }

  #ensureSession(p: Correspondent, now: number): PeerSession | undefined {
    const endpoint = this.#d.env.endpoint;
    const existing = endpoint.session(p.config.publicKey);
    if (existing?.established || existing?.pending) {
      this.#bySession.set(existing, p);
      return existing;
    }
    if (p.locator === undefined) return undefined;
    const init = endpoint.connect(p.config.publicKey, now);
    const s = endpoint.session(p.config.publicKey);
    if (s) this.#bySession.set(s, p);
    this.#d.socket(p.locator)?.send(init, p.locator.address, p.locator.port);
    return s;
  }

  // ---- actions of the registrations ------------------------------------------------------

  #run(p: Correspondent, actions: CorrespondentRegistrationAction[], now: number): void {
    const log = this.#d.env.log;
    for (const a of actions) {
      switch (a.kind) {
        case 'send':
          this.#d.capture(a.packet, now);
          if (a.path === 'tunnel') this.#d.host?.sendViaHomeAgent(a.packet, now);
          else this.#sendDirect(p, a.packet, now, true);
          break;
        case 'routeOptimized':
          p.liveness.routeOptimized(now);
          log.info('route-optimized', {
            correspondent: p.config.address,
            careOf: a.careOfAddress,
            lifetime: a.lifetimeSeconds,
          });
          break;
        case 'tunneled':
          log.info('route-tunneled', { correspondent: p.config.address, reason: a.reason });
          break;
        case 'disabled':
          log.warn('route-optimization-disabled', {
            correspondent: p.config.address,
            reason: a.reason,
          });
          break;
        case 'drop':
          this.#d.drops.add(a.reason);
          break;
      }
    }
  }

  /** Seals one packet for the CN's session; queued while the handshake is running. */
  #sendDirect(p: Correspondent, packet: Uint8Array, now: number, queueIfDown: boolean): boolean {
    const session = this.#ensureSession(p, now);
    const to = p.locator;
    if (session === undefined || to === undefined) {
      this.#d.drops.add('direct-no-path');
      return false;
    }
    if (!session.established) {
      if (queueIfDown) {
        p.queue.push(packet);
        if (p.queue.length > MAX_QUEUED) p.queue.shift();
      }
      return false;
    }
    if (!this.#d.sendSignaling(session, packet, to, now)) {
      this.#d.drops.add('direct-send');
      return false;
    }
    return true;
  }

  /** The endpoint finished a handshake: flush what waited for that channel. */
  onSessionEstablished(session: PeerSession, now: number): void {
    const p = this.peerFor(session);
    if (p === undefined) return;
    const q = p.queue;
    p.queue = [];
    for (const packet of q) this.#sendDirect(p, packet, now, false);
  }

  // ---- TUN -> underlay ---------------------------------------------------------------------

  /**
   * A TUN packet for `key` (its destination's key). Undefined when that is no correspondent
   * of ours; true when it was staged for the direct path; false when it takes the tunnel.
   */
  fromTun(
    key: string,
    buf: Uint8Array,
    off: number,
    len: number,
    now: number,
  ): boolean | undefined {
    const p = this.#peers.get(key);
    if (p === undefined) return undefined;
    const d = this.#d;
    if (p.reg.routeOptimized && buf[off + IPV6_NEXT_HEADER_OFF] !== IPPROTO.MH) {
      const path = this.#directPath(p, now);
      if (path !== undefined) {
        const at = d.stage(buf, off, len, now);
        const n = addHomeAddressOption(d.slab, at, len, this.#careOfBytes);
        if (n >= 0) {
          d.commit(path.session, path.to, path.socket, n, len + REWRITE_GROWTH, now);
          p.packets.directOut++;
          p.liveness.sent(now);
          return true;
        }
        d.drops.add(`hao-rewrite${n}`);
      } else {
        d.drops.add('direct-fallback');
      }
    }
    p.packets.tunnelOut++;
    return false;
  }

  /** The channel, locator and socket of the direct path to `p`, when it can carry data now. */
  #directPath(
    p: Correspondent,
    now: number,
  ): { session: PeerSession; to: ResolvedLocator; socket: UdpEndpoint } | undefined {
    // One channel per peer key; a closed one is no longer established, so look it up again.
    let session = p.session;
    if (session === undefined || !session.established) {
      session = this.#ensureSession(p, now);
      p.session = session;
    }
    const to = p.locator;
    if (session === undefined || to === undefined) {
      this.#d.drops.add('direct-no-path');
      return undefined;
    }
    const socket = this.#d.socket(to);
    if (!session.established || socket === undefined) return undefined;
    return { session, to, socket };
  }

  /** Counts a packet from a correspondent that came through the HA (status only). */
  noteTunnelIn(buf: Uint8Array, off: number): void {
    const p = this.#peers.get(keyOf(buf, off + IPV6_SRC_OFF));
    if (p) p.packets.tunnelIn++;
  }

  // ---- direct channel / HA tunnel -> us ----------------------------------------------------

  /**
   * RH2 data, CoT, BA, BE, BRR from a correspondent's channel (an IPv6 packet at
   * buf[off, off + len); the caller checked the channel and the own/forwarded rule).
   */
  fromCorrespondent(
    p: Correspondent,
    session: PeerSession,
    buf: Uint8Array,
    off: number,
    len: number,
    now: number,
    toTun: TunSink | undefined,
  ): void {
    const d = this.#d;
    if (d.env.capture) d.capture(buf.subarray(off, off + len), now); // with its RH2
    let start = off;
    let length = len;
    if (hasRoutingHeader(buf, off, len)) {
      const n = removeType2RoutingHeader(buf, off, len, this.#hoa);
      if (n < 0) {
        d.drops.add(`rh2${n}`);
        return;
      }
      length = len - (n - off);
      start = n;
    }
    const packet = buf.subarray(start, start + length);
    if (buf[start + IPV6_NEXT_HEADER_OFF] === IPPROTO.MH) {
      const copy = packet.slice();
      let decoded;
      try {
        decoded = decodePacket(copy);
      } catch {
        d.drops.add('direct-malformed');
        return;
      }
      this.#handle(p, decoded, copy, now);
      return;
    }
    const u = upperLayer(buf, start, length);
    if (u?.protocol === IPPROTO.ICMPV6 && buf[start + u.offset] === ICMPV6_PARAMETER_PROBLEM) {
      const code = buf[start + u.offset + 1];
      if (code === 1 || code === 2) {
        // RFC 6275 §11.3.5: the CN does not understand the MH (1) or the HAO (2).
        d.env.log.warn('correspondent-no-mipv6', { correspondent: p.config.address, code });
        this.#run(p, p.reg.peerUnsupported(`parameter-problem-${code}`), now);
      }
    }
    for (let i = 0; i < 16; i++) {
      if (buf[start + IPV6_DST_OFF + i] !== this.#hoa[i]) {
        d.drops.add('direct-not-for-home-address');
        return;
      }
    }
    // Selector check (DESIGN.md §4): data must come from an address the CN's certificate holds.
    const cert = session.peerCertificate;
    if (cert === null || !sourceAllowed(cert, buf, start, length)) {
      d.drops.add('selector');
      return;
    }
    p.packets.directIn++;
    if (toTun) toTun(start, length);
    else if (!d.env.tun.writePacket(packet)) d.drops.add('tun-write');
  }

  /** A HoT that came through the HA tunnel; false when its source is no correspondent. */
  fromHomeTest(decoded: DecodedPacket, packet: Uint8Array, now: number): boolean {
    const p = this.#peers.get(keyOfText(decoded.source));
    if (p === undefined) return false;
    this.#handle(p, decoded, packet, now);
    return true;
  }

  /** One MH packet from `p` (`decoded` from `packet`) to its registration. */
  #handle(p: Correspondent, decoded: DecodedPacket, packet: Uint8Array, now: number): void {
    const verdict = checkMobilityHeader(decoded);
    if (verdict.action === 'parameterProblem' || verdict.action === 'bindingError') {
      // RFC 6275 §9.2, answered to the correspondent on its channel, rate-limited.
      this.#d.drops.add(verdict.reason);
      if (this.#errorAnswers.allow(now)) {
        const answer = mobilityHeaderAnswer(verdict, packet, decoded.destination);
        this.#d.capture(answer, now);
        this.#sendDirect(p, answer, now, false);
      }
      return;
    }
    this.#run(p, p.reg.handle(decoded, packet.subarray(decoded.upperOffset), now), now);
    this.#d.host?.rearm();
  }

  // ---- timers and shutdown -----------------------------------------------------------------

  nextDeadline(): number {
    let d = Infinity;
    for (const p of this.#peers.values()) {
      d = Math.min(d, p.reg.nextDeadline(), p.liveness.nextDeadline());
    }
    return d;
  }

  /** The registrations' timers, then the liveness check of each optimized route. */
  poll(now: number): void {
    for (const p of this.#peers.values()) {
      this.#run(p, p.reg.poll(now), now);
      for (const a of p.liveness.poll(now, p.reg.routeOptimized)) {
        switch (a.kind) {
          case 'sendProbe': {
            const session = this.#d.env.endpoint.session(p.config.publicKey);
            if (session && p.locator) this.#d.sendProbe(session, p.locator, a.message, now);
            break;
          }
          case 'pathFailed':
            this.#d.env.log.warn('direct-path-failed', {
              correspondent: p.config.address,
              silentMs: a.silentMs,
            });
            this.#run(p, p.reg.directPathFailed('direct-silent', now), now);
            break;
        }
      }
    }
  }

  /** Deregisters at every correspondent that holds a binding (best effort, no wait). */
  close(now: number): void {
    for (const p of this.#peers.values()) this.#run(p, p.reg.deregister(now), now);
  }
}

/**
 * The CoA as text for the Mobility Header: RFC 6275 needs an IPv6 CoA; over IPv4 mip6 uses the
 * IPv4-mapped form (route-optimization.ts file comment).
 */
function careOfText(careOf: CareOf | null): string | null {
  if (careOf === null) return null;
  return careOf.family === 4 ? ipv4Mapped(careOf.localAddress) : careOf.localAddress;
}
