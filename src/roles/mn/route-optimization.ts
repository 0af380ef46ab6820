/**
 * Route optimization for a member (RFC 6275 §5.2, §9, §11.3, §11.6-§11.7; DESIGN.md §3, §5):
 * plugged into a MobileNode, it talks to correspondents directly instead of through the home
 * agent. Both halves live behind this one façade, because a mip6 CN is an MN that also answers
 * RR, and two roaming laptops are each other's MN and CN at once (one channel carries both):
 *
 *   correspondent-client.ts        MN half: correspondent registrations, HAO rewrite towards
 *                                  CNs, RH2 data from them, direct-path liveness probes
 *   correspondent-server.ts        CN half (respond = true): RR answers and BUs through
 *                                  CorrespondentBindings, RH2 rewrite towards bound MNs, HAO
 *                                  data from them, Binding Errors
 *   direct-path.ts                 what both send on: staging slab, per-channel runs, flushDirect
 *   protocol/direct-path-liveness  the sans-IO liveness engine (probe, path failed -> tunnel)
 *   route-optimization-status.ts   status rendering
 *
 * This file routes what the MobileNode hands over and keeps the trust checks of the direct
 * channel in one place (fromDirect):
 *   - a direct channel is member to member: a session whose certificate has role 'ha' (or
 *     none) is never one;
 *   - probes, RR and binding messages are the peer's own (channel kind SIGNALING); the same
 *     bytes as payload could be anybody's packet the peer forwards, and are dropped
 *     ('forwarded-signaling'), as is data sent as signaling ('unexpected-signaling');
 *   - probes are answered and count as heard; then HAO data, HoTI/CoTI and BU go to the CN
 *     half, everything else (RH2 data, CoT, BA, BE, BRR) to the MN half of the peer.
 * Direct data received (either half) is not written to the TUN one packet at a time: the
 * driver passes a TunSink and writes it with the rest of the receive batch.
 *
 * Care-of addresses over IPv4 are IPv4-mapped IPv6 (::ffff:a.b.c.d). RFC 6275 defines route
 * optimization for IPv6 care-of addresses only; mip6 extends it to IPv4 underlays the DSMIPv6
 * way (RFC 5555 keeps IPv4 CoAs in that form too): the tokens, the BU authenticator, the HAO
 * and the RH2 simply carry the mapped address, and the real IPv4 locator (with its port) is
 * the one the channel observed.
 */
import type { PeerSession } from '../../crypto/endpoint.js';
import { nodeRrCrypto, type RrCrypto } from '../../crypto/rr-crypto.js';
import type { BindingStatus, BindingUpdateListStatus } from '../../io/control-protocol.js';
import { keyOf } from '../../protocol/binding-cache.js';
import type { CorrespondentBindings } from '../../protocol/correspondent-bindings.js';
import type { CorrespondentRegistration } from '../../protocol/correspondent-registration.js';
import { PROBE_LEN, probeAnswer } from '../../protocol/direct-path-liveness.js';
import type { CareOf } from '../../protocol/mobile-node-registration.js';
import { IPV6_DST_OFF, IPV6_HEADER_LEN } from '../../wire/ipv6.js';
import { mobilitySignal } from '../../wire/mobility-signal.js';
import { decodePacket } from '../../wire/packet.js';
import { findHomeAddressOption } from '../../wire/rewrite.js';
import { DropCounters, nodeNow, type NodeEnvironment } from '../common.js';
import {
  CorrespondentClient,
  type CorrespondentPackets,
  type CorrespondentPeerConfig,
} from './correspondent-client.js';
import { CorrespondentServer, forCorrespondentHalf } from './correspondent-server.js';
import {
  DirectPath,
  type DatagramOrigin,
  type RouteOptimizationHost,
  type TunSink,
} from './direct-path.js';
import { correspondentBindingStatus, correspondentStatus } from './route-optimization-status.js';

export {
  DIRECT_FAIL_MS,
  DIRECT_PROBE_AFTER_MS,
  DIRECT_TICK_MS,
  PROBE_REPLY,
  PROBE_REQUEST,
} from '../../protocol/direct-path-liveness.js';
export type { CorrespondentPackets, CorrespondentPeerConfig } from './correspondent-client.js';
export type { RouteOptimizationHost, TunSink } from './direct-path.js';

export interface RouteOptimizationOptions {
  homeAddress: string;
  correspondents: CorrespondentPeerConfig[];
  /** Answer return routability and keep a correspondent binding cache (the CN half). */
  respond: boolean;
  maxBindingLifetimeSeconds?: number | undefined;
  crypto?: RrCrypto | undefined;
}

export class RouteOptimization {
  readonly drops = new DropCounters();
  readonly bindings: CorrespondentBindings | undefined;
  readonly #env: NodeEnvironment;
  readonly #direct: DirectPath;
  readonly #client: CorrespondentClient;
  readonly #server: CorrespondentServer | undefined;

  constructor(env: NodeEnvironment, opts: RouteOptimizationOptions) {
    this.#env = env;
    const c = opts.crypto ?? nodeRrCrypto;
    this.#direct = new DirectPath(env, this.drops);
    this.#client = new CorrespondentClient(this.#direct, c, opts.homeAddress);
    for (const config of opts.correspondents) this.#client.add(config);
    if (opts.respond) {
      this.#server = new CorrespondentServer(this.#direct, c, {
        homeAddress: opts.homeAddress,
        maxBindingLifetimeSeconds: opts.maxBindingLifetimeSeconds,
      });
      this.#server.onBound = (session, locator) => this.#client.learned(session, locator);
      this.bindings = this.#server.bindings;
    }
  }

  /**
   * Adds a correspondent (config reload, or peers learned after start). With a care-of
   * address already known, RR towards it starts at once.
   */
  addCorrespondent(config: CorrespondentPeerConfig, now?: number): void {
    this.#client.add(config, now);
  }

  attach(host: RouteOptimizationHost): void {
    this.#direct.host = host;
  }

  /** The registration towards `correspondent` (tests, status). */
  registration(correspondent: string): CorrespondentRegistration | undefined {
    return this.#client.get(correspondent)?.reg;
  }

  /** Packet counters towards `correspondent` (tests, status). */
  packets(correspondent: string): CorrespondentPackets | undefined {
    return this.#client.get(correspondent)?.packets;
  }

  // ---- care-of changes and channels ------------------------------------------------------

  /**
   * The member's care-of changed (a move, first attach, or detach). On the home link
   * (`homeLink` set) correspondent bindings are deregistered and route optimization stops
   * until the next move away (RFC 6275 §11.5.4: at home the MN sends from its HoA).
   */
  setCareOf(careOf: (CareOf & { homeLink?: string | undefined }) | null, now: number): void {
    this.#client.setCareOf(careOf, now);
    this.#direct.host?.rearm();
  }

  /** The endpoint finished a handshake: flush what waited for that channel. */
  onSessionEstablished(session: PeerSession, now: number): void {
    this.#client.onSessionEstablished(session, now);
  }

  /** Sends a handshake message the endpoint produced for `session`; false if not ours. */
  sendHandshake(session: PeerSession, data: Uint8Array): boolean {
    const to = this.#client.handshakeLocator(session) ?? this.#server?.locatorOf(session);
    if (to === undefined) return false;
    this.#direct.socket(to)?.send(data, to.address, to.port);
    return true;
  }

  // ---- TUN -> underlay -------------------------------------------------------------------

  /**
   * A packet from the TUN. True when it was taken for the direct path (route optimized; it
   * leaves at flushDirect()); false when the caller must send it through the reverse tunnel.
   */
  fromTun(buf: Uint8Array, off: number, len: number, now: number): boolean {
    if (len < IPV6_HEADER_LEN) return false;
    const key = keyOf(buf, off + IPV6_DST_OFF);
    const toCorrespondent = this.#client.fromTun(key, buf, off, len, now);
    if (toCorrespondent !== undefined) return toCorrespondent;
    return this.#server?.fromTun(key, buf, off, len, now) ?? false;
  }

  /**
   * Seals and sends what fromTun() staged: one batch AEAD call and one sendmmsg per channel.
   * The driver calls it at the end of every TUN batch (poll() does too, as a safety net).
   */
  flushDirect(now: number): void {
    this.#direct.flush(now);
  }

  /** Counts a packet from a correspondent that came through the HA (status only). */
  noteTunnelIn(buf: Uint8Array, off: number): void {
    this.#client.noteTunnelIn(buf, off);
  }

  // ---- underlay (direct channel) -> us ---------------------------------------------------

  /**
   * An opened data message from a session that is not the HA's. Returns false when the
   * session is not a correspondent channel at all (the caller counts the drop). `signaling`:
   * it came as the peer's own signaling (DataKind.SIGNALING), not as payload. `from` says
   * where it came from when asked (only signaling needs it, data should not pay for the
   * address text; read it now, never keep it). Data for the TUN goes to `toTun` when given
   * (the driver writes it with the rest of its receive batch; the bytes stay in `buf` until
   * then), else it is written at once.
   */
  fromDirect(
    session: PeerSession,
    buf: Uint8Array,
    off: number,
    len: number,
    signaling: boolean,
    from: DatagramOrigin,
    now: number,
    toTun?: TunSink,
  ): boolean {
    const cert = session.peerCertificate;
    if (cert === null || cert.role === 'ha') return false; // a direct channel is member to member
    const p = this.#client.peerFor(session);
    // Probes, RR and binding messages on a direct channel are the peer's own (DataKind.SIGNALING);
    // as payload they could be anybody's packet the peer forwards, and are dropped.
    const own =
      len === PROBE_LEN || (len >= IPV6_HEADER_LEN && mobilitySignal(buf, off, len) !== undefined);
    if (own !== signaling) {
      this.drops.add(signaling ? 'unexpected-signaling' : 'forwarded-signaling');
      return true;
    }
    if (len === PROBE_LEN) {
      const answer = p ? p.liveness.probeReceived(buf[off], now) : probeAnswer(buf[off]);
      if (answer !== undefined) this.#direct.sendProbe(session, from.locator(), answer, now);
      return true;
    }
    if (len < IPV6_HEADER_LEN || buf[off]! >> 4 !== 6) {
      this.drops.add('direct-malformed');
      return true;
    }
    p?.liveness.heard(now);
    const server = this.#server;
    const hao = server ? findHomeAddressOption(buf, off, len) : -1;
    if (p !== undefined && !(server && forCorrespondentHalf(buf, off, len, hao))) {
      this.#client.fromCorrespondent(p, session, buf, off, len, now, toTun);
      return true;
    }
    if (server) {
      server.fromMobileNode(session, buf, off, len, hao, from, now, toTun);
      return true;
    }
    return false;
  }

  // ---- signaling that came through the HA tunnel -----------------------------------------

  /**
   * An MH packet from the reverse tunnel: HoT for our MN half, HoTI for our CN half. False
   * when it is none of ours.
   */
  fromTunnelSignaling(packet: Uint8Array, now: number): boolean {
    let d;
    try {
      d = decodePacket(packet);
    } catch {
      return false;
    }
    const m = d.mobility;
    if (m === undefined) return false;
    if (m.kind === 'homeTest') return this.#client.fromHomeTest(d, packet, now);
    if (m.kind === 'homeTestInit' && this.#server !== undefined) {
      this.#server.fromHomeTestInit(packet, now);
      return true;
    }
    return false;
  }

  // ---- timers ----------------------------------------------------------------------------

  nextDeadline(): number {
    return Math.min(this.#client.nextDeadline(), this.#server?.nextDeadline() ?? Infinity);
  }

  poll(now: number): void {
    this.#direct.flush(now);
    this.#client.poll(now);
    this.#server?.poll(now);
    this.#direct.host?.rearm();
  }

  // ---- status and shutdown ---------------------------------------------------------------

  /** Binding update list entries for the correspondents (kind 'correspondent'). */
  status(now: number): BindingUpdateListStatus[] {
    return correspondentStatus(this.#client.correspondents(), now);
  }

  /** Correspondent bindings held by the CN half. */
  bindingStatus(now: number): BindingStatus[] {
    return correspondentBindingStatus(this.#server, now);
  }

  /** Deregisters at every correspondent that holds a binding (best effort, no wait). */
  close(now: number = nodeNow(this.#env)): void {
    this.#client.close(now);
  }
}
