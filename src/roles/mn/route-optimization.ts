/**
 * Route optimization for a member (RFC 6275 §5.2, §9, §11.3, §11.6-§11.7; DESIGN.md §3, §5):
 * plugged into a MobileNode, it talks to correspondents directly instead of through the home
 * agent. Both halves live here, because a mip6 CN is an MN that also answers RR, and two
 * roaming laptops are each other's MN and CN at once.
 *
 * MN half (one CorrespondentRegistration per configured correspondent with RO on):
 *   care-of change -> HoTI through the HA (host.sendViaHomeAgent), CoTI over the direct
 *     channel (a Noise session with the CN's own certificate, to its underlay locator);
 *     until the CN's BA comes back, traffic keeps flowing through the HA.
 *   TUN -> CN: bound -> copy into the staging slab, insert the Home Address option, source =
 *     CoA, append to the run of the CN's channel; otherwise the packet goes to the reverse
 *     tunnel. At the end of the TUN batch the driver calls flushDirect(): each channel's run is
 *     sealed in one batch AEAD call and sent with one sendmmsg (as the tunnel path does).
 *   direct channel -> us: RH2 validated (our HoA, Segments Left 1) and removed, data to the
 *     TUN; CoT, BA, BE, BRR to the registration.
 *   liveness: while sending directly, silence from the CN for DIRECT_PROBE_AFTER_MS brings a
 *     probe; for DIRECT_FAIL_MS, the path is declared failed -> tunnel at once, RR retried
 *     with back-off (the registration's directPathFailed).
 * CN half (respond = true; CorrespondentBindings):
 *   HoTI from the HA tunnel -> HoT back through it; CoTI on a direct channel -> CoT to the
 *     locator it came from, with a care-of token over that locator (return-routability.ts);
 *     BU -> checks (a HoA the certificate holds, a HAO, the binding owner's key, and a token
 *     that only verifies from the locator that got the CoT), BA to the locator the BU came
 *     from, which becomes the MN's locator for data (a locator changes only after RR,
 *     DESIGN.md §4).
 *   direct data with a HAO: binding must match (HoA, CoA, session) -> option stripped, source
 *     = HoA, selector check against the peer's certificate, TUN; else Binding Error status 1.
 *   TUN -> bound HoA: copy, Type 2 Routing Header inserted, destination = CoA, appended to
 *     the MN's channel run (sealed and sent at flushDirect(), like the MN half).
 * Direct data received (either half) is not written to the TUN one packet at a time: the
 *   driver passes a TunSink and writes it with the rest of the receive batch.
 *
 * Care-of addresses over IPv4 are IPv4-mapped IPv6 (::ffff:a.b.c.d). RFC 6275 defines route
 * optimization for IPv6 care-of addresses only; mip6 extends it to IPv4 underlays the DSMIPv6
 * way (RFC 5555 keeps IPv4 CoAs in that form too): the tokens, the BU authenticator, the HAO
 * and the RH2 simply carry the mapped address, and the real IPv4 locator (with its port) is
 * the one the channel observed.
 */
import type { PeerSession } from '../../crypto/endpoint.js';
import { nodeRrCrypto, type RrCrypto } from '../../crypto/rr-crypto.js';
import { sourceAllowed } from '../../crypto/selector.js';
import { DATA_HEADER_LEN, DataKind, TAG_LEN } from '../../crypto/aead.js';
import type { BindingStatus, BindingUpdateListStatus } from '../../io/control-protocol.js';
import type { UdpEndpoint } from '../../io/types.js';
import { keyOf, keyOfText } from '../../protocol/binding-cache.js';
import {
  CorrespondentBindings,
  type CorrespondentAction,
} from '../../protocol/correspondent-bindings.js';
import {
  CorrespondentRegistration,
  type CorrespondentRegistrationAction,
} from '../../protocol/correspondent-registration.js';
import { formatLocator, type Locator } from '../../protocol/locator.js';
import type { CareOf } from '../../protocol/mobile-node-registration.js';
import { formatIpv6, ipv4Mapped, parseIpv6 } from '../../wire/address.js';
import {
  IPV6_DST_OFF,
  IPV6_HEADER_LEN,
  IPV6_NEXT_HEADER_OFF,
  IPV6_SRC_OFF,
} from '../../wire/ipv6.js';
import { decodePacket } from '../../wire/packet.js';
import {
  REWRITE_GROWTH,
  addHomeAddressOption,
  addType2RoutingHeader,
  findHomeAddressOption,
  hasRoutingHeader,
  removeHomeAddressOption,
  removeType2RoutingHeader,
  upperLayer,
} from '../../wire/rewrite.js';
import { IPPROTO, MH_TYPE } from '../../wire/types.js';
import { MH_TYPE_OFF } from '../../wire/mobility.js';
import { mobilitySignal } from '../../wire/mobility-signal.js';
import {
  DropCounters,
  nodeNow,
  resolveLocator,
  TunnelWriter,
  type NodeEnvironment,
  type ResolvedLocator,
} from '../common.js';

const ICMPV6_PARAMETER_PROBLEM = 4; // RFC 4443 §3.4
/** mip6 choice: probe the direct path after this much silence from the CN while sending. */
export const DIRECT_PROBE_AFTER_MS = 300;
/** mip6 choice: silence after which the direct path counts as failed (issue: "within a second"). */
export const DIRECT_FAIL_MS = 700;
/** mip6 choice: liveness check period while a route is optimized. */
export const DIRECT_TICK_MS = 100;
/**
 * Overlay liveness probes on the direct channel (not MIPv6: the RFC has no such message).
 * A one-byte channel payload whose first nibble is not 6, so it can never be taken for IPv6.
 */
export const PROBE_REQUEST = 0x01;
export const PROBE_REPLY = 0x02;
const MAX_QUEUED = 16;

/** A member's identity for per-member limits: its static public key, hex. */
function memberKey(session: PeerSession): string {
  let s = '';
  for (const b of session.peerPublicKey) s += b.toString(16).padStart(2, '0');
  return s;
}
/** Room in front of a staged packet: the HAO / RH2 the rewrite inserts, then the channel header. */
const STAGE_HEADROOM = REWRITE_GROWTH + DATA_HEADER_LEN;
/** Staging slab for one TUN batch of direct packets (grows for a packet that does not fit). */
const STAGE_SLAB_LEN = 256 * 1024;
/** Channels with a reusable run kept between batches (more are dropped after a flush). */
const MAX_RUNS = 64;

/**
 * Where the driver collects decrypted inner packets for one batched TUN write: the packet at
 * buf[offset, offset + length) of the receive batch being processed.
 */
export type TunSink = (offset: number, length: number) => void;

/** Direct packets staged for one channel during a TUN batch. */
interface DirectRun {
  session: PeerSession;
  to: ResolvedLocator;
  socket: UdpEndpoint;
  writer: TunnelWriter;
}

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

export interface RouteOptimizationOptions {
  homeAddress: string;
  correspondents: CorrespondentPeerConfig[];
  /** Answer return routability and keep a correspondent binding cache (the CN half). */
  respond: boolean;
  maxBindingLifetimeSeconds?: number | undefined;
  crypto?: RrCrypto | undefined;
}

/** What the route optimization needs from the MobileNode it is plugged into. */
export interface RouteOptimizationHost {
  /** Seals an inner packet to the HA: it leaves through the reverse tunnel. */
  sendViaHomeAgent(packet: Uint8Array, now: number): void;
  /** A deadline moved: re-arm the node's timer. */
  rearm(): void;
}

interface Peer {
  config: CorrespondentPeerConfig;
  key: string;
  reg: CorrespondentRegistration;
  locator: ResolvedLocator | undefined;
  /** The channel last used for direct data (saves the endpoint's by-key lookup per packet). */
  session?: PeerSession | undefined;
  /** Where the peer last proved reachable (its BU to our CN half), if it is mobile too. */
  learned?: ResolvedLocator;
  queue: Uint8Array[];
  packets: { directOut: number; directIn: number; tunnelOut: number; tunnelIn: number };
  lastDirectIn: number;
  lastDirectOut: number;
  lastProbe: number;
  routeOptimizedAt: number;
}

interface Bound {
  session: PeerSession;
  locator: ResolvedLocator;
}

export class RouteOptimization {
  readonly drops = new DropCounters();
  readonly bindings: CorrespondentBindings | undefined;
  readonly #env: NodeEnvironment;
  readonly #opts: RouteOptimizationOptions;
  readonly #c: RrCrypto;
  readonly #hoa: Uint8Array;
  readonly #peers = new Map<string, Peer>();
  readonly #bySession = new Map<PeerSession, Peer>();
  /** CN half: the channel and locator of each bound MN, by HoA key. */
  readonly #bound = new Map<string, Bound>();
  #host: RouteOptimizationHost | undefined;
  #careOfBytes: Uint8Array = new Uint8Array(16);
  #careOf: CareOf | null = null;
  #tickAt = 0;
  /** Direct packets of the current TUN batch, rewritten, with room for header and tag. */
  #stage = new Uint8Array(STAGE_SLAB_LEN);
  #staged = 0;
  readonly #runs = new Map<PeerSession, DirectRun>();

  constructor(env: NodeEnvironment, opts: RouteOptimizationOptions) {
    this.#env = env;
    this.#opts = opts;
    this.#c = opts.crypto ?? nodeRrCrypto;
    this.#hoa = parseIpv6(opts.homeAddress);
    for (const config of opts.correspondents) this.addCorrespondent(config);
    if (opts.respond) {
      this.bindings = new CorrespondentBindings(this.#c, {
        addresses: [opts.homeAddress],
        ...(opts.maxBindingLifetimeSeconds !== undefined
          ? { maxLifetimeSeconds: opts.maxBindingLifetimeSeconds }
          : {}),
      });
    }
  }

  /**
   * Adds a correspondent (config reload, or peers learned after start). With a care-of
   * address already known, RR towards it starts at once.
   */
  addCorrespondent(config: CorrespondentPeerConfig, now?: number): void {
    if (!config.enabled) return;
    const key = keyOfText(config.address);
    const p: Peer = {
      config,
      key,
      reg: new CorrespondentRegistration(this.#c, {
        homeAddress: this.#opts.homeAddress,
        correspondentAddress: config.address,
        ...(config.lifetimeSeconds !== undefined
          ? { lifetimeSeconds: config.lifetimeSeconds }
          : {}),
        ...(config.requestAck !== undefined ? { requestAck: config.requestAck } : {}),
      }),
      locator: undefined,
      queue: [],
      packets: { directOut: 0, directIn: 0, tunnelOut: 0, tunnelIn: 0 },
      lastDirectIn: 0,
      lastDirectOut: 0,
      lastProbe: 0,
      routeOptimizedAt: 0,
    };
    this.#peers.set(key, p);
    if (this.#careOf !== null && now !== undefined) this.#startPeer(p, this.#careOf, now);
  }

  attach(host: RouteOptimizationHost): void {
    this.#host = host;
  }

  /** The registration towards `correspondent` (tests, status). */
  registration(correspondent: string): CorrespondentRegistration | undefined {
    return this.#peers.get(keyOfText(correspondent))?.reg;
  }

  /** Packet counters towards `correspondent` (tests, status). */
  packets(correspondent: string): Peer['packets'] | undefined {
    return this.#peers.get(keyOfText(correspondent))?.packets;
  }

  // ---- care-of changes --------------------------------------------------------------------

  /**
   * The member's care-of changed (a move, first attach, or detach). On the home link
   * (`homeLink` set) correspondent bindings are deregistered and route optimization stops
   * until the next move away (RFC 6275 §11.5.4: at home the MN sends from its HoA).
   */
  setCareOf(careOf: (CareOf & { homeLink?: string | undefined }) | null, now: number): void {
    if (careOf?.homeLink !== undefined) {
      for (const p of this.#peers.values()) this.#run(p, p.reg.deregister(now), now);
      careOf = null;
    }
    // RFC 6275 needs an IPv6 CoA; over IPv4 mip6 uses the IPv4-mapped form (file comment).
    const coa =
      careOf === null
        ? null
        : careOf.family === 4
          ? ipv4Mapped(careOf.localAddress)
          : careOf.localAddress;
    if (coa !== null) this.#careOfBytes = parseIpv6(coa);
    this.#careOf = careOf;
    for (const p of this.#peers.values()) this.#startPeer(p, careOf, now);
    this.#host?.rearm();
  }

  #startPeer(p: Peer, careOf: CareOf | null, now: number): void {
    // RFC 6275 needs an IPv6 CoA; over IPv4 mip6 uses the IPv4-mapped form (file comment).
    const coa =
      careOf === null
        ? null
        : careOf.family === 4
          ? ipv4Mapped(careOf.localAddress)
          : careOf.localAddress;
    p.locator = careOf === null ? undefined : this.#peerLocator(p, careOf.family);
    if (p.locator === undefined && coa !== null) {
      this.drops.add('no-correspondent-locator');
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
  #peerLocator(p: Peer, family: 4 | 6): ResolvedLocator | undefined {
    const learned = p.learned && this.#socket(p.learned) ? p.learned : undefined;
    if (learned?.family === family) return learned;
    const a = family === 4 ? p.config.underlay4 : p.config.underlay6;
    if (a === undefined && learned) return learned;
    const other = family === 4 ? p.config.underlay6 : p.config.underlay4;
    const address = a ?? other;
    if (address === undefined) return undefined;
    const l = resolveLocator({ address, port: p.config.port });
    return this.#socket(l) ? l : undefined;
  }

  #socket(l: ResolvedLocator): NodeEnvironment['udp4'] {
    return l.family === 4 ? this.#env.udp4 : this.#env.udp6;
  }

  #ensureSession(p: Peer, now: number): PeerSession | undefined {
    const endpoint = this.#env.endpoint;
    const existing = endpoint.session(p.config.publicKey);
    if (existing?.established || existing?.pending) {
      this.#bySession.set(existing, p);
      return existing;
    }
    if (p.locator === undefined) return undefined;
    const init = endpoint.connect(p.config.publicKey, now);
    const s = endpoint.session(p.config.publicKey);
    if (s) this.#bySession.set(s, p);
    this.#socket(p.locator)?.send(init, p.locator.address, p.locator.port);
    return s;
  }

  // ---- actions of the MN half ------------------------------------------------------------

  #run(p: Peer, actions: CorrespondentRegistrationAction[], now: number): void {
    const log = this.#env.log;
    for (const a of actions) {
      switch (a.kind) {
        case 'send':
          this.#capture(a.packet, now);
          if (a.path === 'tunnel') this.#host?.sendViaHomeAgent(a.packet, now);
          else this.#sendDirect(p, a.packet, now, true);
          break;
        case 'routeOptimized':
          p.routeOptimizedAt = now;
          p.lastDirectIn = now;
          if (this.#tickAt === 0) this.#tickAt = now + DIRECT_TICK_MS;
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
          this.drops.add(a.reason);
          break;
      }
    }
  }

  /** Seals one packet for the CN's session; queued while the handshake is running. */
  #sendDirect(p: Peer, packet: Uint8Array, now: number, queueIfDown: boolean): boolean {
    const session = this.#ensureSession(p, now);
    const to = p.locator;
    if (session === undefined || to === undefined) {
      this.drops.add('direct-no-path');
      return false;
    }
    if (!session.established) {
      if (queueIfDown) {
        p.queue.push(packet);
        if (p.queue.length > MAX_QUEUED) p.queue.shift();
      }
      return false;
    }
    const msg = this.#env.endpoint.seal(session, packet, now, DataKind.SIGNALING);
    if (msg === null || !this.#socket(to)?.send(msg, to.address, to.port)) {
      this.drops.add('direct-send');
      return false;
    }
    return true;
  }

  /** The endpoint finished a handshake: flush what waited for that channel. */
  onSessionEstablished(session: PeerSession, now: number): void {
    const p = this.#bySession.get(session) ?? this.#peerByKey(session.peerPublicKey);
    if (p === undefined) return;
    this.#bySession.set(session, p);
    const q = p.queue;
    p.queue = [];
    for (const packet of q) this.#sendDirect(p, packet, now, false);
  }

  #peerByKey(key: Uint8Array): Peer | undefined {
    for (const p of this.#peers.values()) {
      const k = p.config.publicKey;
      if (k.length === key.length && k.every((b, i) => b === key[i])) return p;
    }
    return undefined;
  }

  /** Sends a handshake message the endpoint produced for `session`; false if not ours. */
  sendHandshake(session: PeerSession, data: Uint8Array): boolean {
    const p = this.#bySession.get(session);
    const to = p?.locator ?? this.#bound.get(this.#boundKeyOf(session) ?? '')?.locator;
    if (to === undefined) return false;
    this.#socket(to)?.send(data, to.address, to.port);
    return true;
  }

  #boundKeyOf(session: PeerSession): string | undefined {
    for (const [k, b] of this.#bound) if (b.session === session) return k;
    return undefined;
  }

  // ---- TUN -> underlay -------------------------------------------------------------------

  /**
   * A packet from the TUN. True when it was sent directly (route optimized); false when the
   * caller must send it through the reverse tunnel.
   */
  fromTun(buf: Uint8Array, off: number, len: number, now: number): boolean {
    if (len < IPV6_HEADER_LEN) return false;
    const key = keyOf(buf, off + IPV6_DST_OFF);
    const p = this.#peers.get(key);
    if (p !== undefined) {
      if (p.reg.routeOptimized && buf[off + IPV6_NEXT_HEADER_OFF] !== IPPROTO.MH) {
        const path = this.#directPath(p, now);
        if (path !== undefined) {
          const at = this.#stagePacket(buf, off, len, now);
          const n = addHomeAddressOption(this.#stage, at, len, this.#careOfBytes);
          if (n >= 0) {
            this.#commit(path.session, path.to, path.socket, n, len + REWRITE_GROWTH, now);
            p.packets.directOut++;
            p.lastDirectOut = now;
            return true;
          }
          this.drops.add(`hao-rewrite${n}`);
        } else {
          this.drops.add('direct-fallback');
        }
      }
      p.packets.tunnelOut++;
      return false;
    }
    const bindings = this.bindings;
    if (bindings === undefined) return false;
    const b = bindings.lookup(buf, off + IPV6_DST_OFF);
    if (b === undefined || now >= b.expiresAt) return false;
    const ch = this.#bound.get(key);
    if (ch === undefined || !ch.session.established) return false;
    const socket = this.#socket(ch.locator);
    if (socket === undefined) {
      this.drops.add('direct-send');
      return false;
    }
    const at = this.#stagePacket(buf, off, len, now);
    const n = addType2RoutingHeader(this.#stage, at, len, b.careOfBytes);
    if (n < 0) {
      this.drops.add(`rh2-rewrite${n}`);
      return false;
    }
    this.#commit(ch.session, ch.locator, socket, n, len + REWRITE_GROWTH, now);
    bindings.noteSent(b, now);
    return true;
  }

  /** The channel, locator and socket of the direct path to `p`, when it can carry data now. */
  #directPath(
    p: Peer,
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
      this.drops.add('direct-no-path');
      return undefined;
    }
    const socket = this.#socket(to);
    if (!session.established || socket === undefined) return undefined;
    return { session, to, socket };
  }

  /**
   * Copies a TUN packet into the staging slab, STAGE_HEADROOM bytes after the last staged one
   * (the rewrite grows it forwards into that room, the channel header goes in front of it),
   * and returns its offset there. A full slab is flushed first.
   */
  #stagePacket(buf: Uint8Array, off: number, len: number, now: number): number {
    const need = STAGE_HEADROOM + len + TAG_LEN;
    if (this.#staged + need > this.#stage.length) {
      this.flushDirect(now);
      if (need > this.#stage.length) this.#stage = new Uint8Array(need * 2);
    }
    const at = this.#staged + STAGE_HEADROOM;
    this.#stage.set(buf.subarray(off, off + len), at);
    return at;
  }

  /** Appends the rewritten packet at stage[n, n + len) to the run of `session` towards `to`. */
  #commit(
    session: PeerSession,
    to: ResolvedLocator,
    socket: UdpEndpoint,
    n: number,
    len: number,
    now: number,
  ): void {
    let run = this.#runs.get(session);
    if (run === undefined) {
      run = { session, to, socket, writer: new TunnelWriter() };
      this.#runs.set(session, run);
    } else if (run.to.address !== to.address || run.to.port !== to.port) {
      this.#flushRun(run, now); // the locator changed mid-batch: what came before goes first
      run.to = to;
      run.socket = socket;
    }
    if (this.#env.capture) this.#capture(this.#stage.subarray(n, n + len), now);
    run.writer.push(n, len);
    this.#staged = (n + len + TAG_LEN + 7) & ~7;
  }

  /**
   * Seals and sends what fromTun() staged: one batch AEAD call and one sendmmsg per channel.
   * The driver calls it at the end of every TUN batch (poll() does too, as a safety net).
   */
  flushDirect(now: number): void {
    if (this.#staged === 0) return;
    for (const run of this.#runs.values()) this.#flushRun(run, now);
    this.#staged = 0;
    if (this.#runs.size > MAX_RUNS) this.#runs.clear();
  }

  #flushRun(run: DirectRun, now: number): void {
    const n = run.writer.count;
    if (n === 0) return;
    const sent = run.writer.flush(
      this.#env.endpoint,
      run.session,
      this.#stage,
      run.socket,
      run.to,
      now,
    );
    if (sent < n) this.drops.add('direct-send', n - sent);
  }

  /** Counts a packet from a correspondent that came through the HA (status only). */
  noteTunnelIn(buf: Uint8Array, off: number): void {
    const p = this.#peers.get(keyOf(buf, off + IPV6_SRC_OFF));
    if (p) p.packets.tunnelIn++;
  }

  // ---- underlay (direct channel) -> us ---------------------------------------------------

  /**
   * An opened data message from a session that is not the HA's. Returns false when the
   * session is not a correspondent channel at all (the caller counts the drop). `from` is
   * where it came from (a function: only signaling needs it, data should not pay for the
   * address text). Data for the TUN goes to `toTun` when given (the driver writes it with the
   * rest of its receive batch; the bytes stay in `buf` until then), else it is written at once.
   */
  fromDirect(
    session: PeerSession,
    buf: Uint8Array,
    off: number,
    len: number,
    signaling: boolean,
    from: Locator | (() => Locator),
    now: number,
    toTun?: TunSink,
  ): boolean {
    const cert = session.peerCertificate;
    if (cert === null || cert.role === 'ha') return false; // a direct channel is member to member
    const p = this.#bySession.get(session) ?? this.#peerByKey(session.peerPublicKey);
    if (p !== undefined) this.#bySession.set(session, p);
    const source = (): Locator => (typeof from === 'function' ? from() : from);
    // Probes, RR and binding messages on a direct channel are the peer's own (DataKind.SIGNALING);
    // as payload they could be anybody's packet the peer forwards, and are dropped.
    const own =
      len === 1 || (len >= IPV6_HEADER_LEN && mobilitySignal(buf, off, len) !== undefined);
    if (own !== signaling) {
      this.drops.add(signaling ? 'unexpected-signaling' : 'forwarded-signaling');
      return true;
    }
    if (len === 1) {
      if (p) p.lastDirectIn = now;
      if (buf[off] === PROBE_REQUEST) this.#sendProbe(session, source(), PROBE_REPLY, now);
      return true;
    }
    if (len < IPV6_HEADER_LEN || buf[off]! >> 4 !== 6) {
      this.drops.add('direct-malformed');
      return true;
    }
    if (p !== undefined) p.lastDirectIn = now;
    const cnHalf = this.bindings !== undefined && session.peerCertificate !== null;
    const hao = cnHalf ? findHomeAddressOption(buf, off, len) : -1;
    // Between two mobile members one channel carries both halves: HAO data, HoTI/CoTI and BU
    // are for our CN half, everything else (RH2 data, CoT, BA, BE, BRR) for our MN half.
    if (p !== undefined && !(cnHalf && this.#forCorrespondentHalf(buf, off, len, hao))) {
      this.#fromCorrespondent(p, session, buf, off, len, now, toTun);
      return true;
    }
    if (cnHalf) {
      this.#fromMobileNode(session, buf, off, len, hao, source, now, toTun);
      return true;
    }
    return false;
  }

  #forCorrespondentHalf(buf: Uint8Array, off: number, len: number, hao: number): boolean {
    if (hao >= 0) return true;
    const u = upperLayer(buf, off, len);
    if (u === undefined || u.protocol !== IPPROTO.MH) return false;
    const type = buf[off + u.offset + MH_TYPE_OFF];
    return type === MH_TYPE.HOTI || type === MH_TYPE.COTI || type === MH_TYPE.BU;
  }

  #sendProbe(session: PeerSession, to: Locator, kind: number, now: number): void {
    const msg = this.#env.endpoint.seal(session, Uint8Array.of(kind), now, DataKind.SIGNALING);
    const l = resolveLocator(to);
    if (msg !== null) this.#socket(l)?.send(msg, to.address, to.port);
  }

  /** MN half: RH2 data, CoT, BA, BE, BRR from a correspondent's channel. */
  #fromCorrespondent(
    p: Peer,
    session: PeerSession,
    buf: Uint8Array,
    off: number,
    len: number,
    now: number,
    toTun: TunSink | undefined,
  ): void {
    if (this.#env.capture) this.#capture(buf.subarray(off, off + len), now); // with its RH2
    let start = off;
    let length = len;
    if (hasRoutingHeader(buf, off, len)) {
      const n = removeType2RoutingHeader(buf, off, len, this.#hoa);
      if (n < 0) {
        this.drops.add(`rh2${n}`);
        return;
      }
      length = len - (n - off);
      start = n;
    }
    const packet = buf.subarray(start, start + length);
    if (buf[start + IPV6_NEXT_HEADER_OFF] === IPPROTO.MH) {
      this.#signalingFromCorrespondent(p, packet.slice(), now);
      return;
    }
    const u = upperLayer(buf, start, length);
    if (u?.protocol === IPPROTO.ICMPV6 && buf[start + u.offset] === ICMPV6_PARAMETER_PROBLEM) {
      const code = buf[start + u.offset + 1];
      if (code === 1 || code === 2) {
        // RFC 6275 §11.3.5: the CN does not understand the MH (1) or the HAO (2).
        this.#env.log.warn('correspondent-no-mipv6', { correspondent: p.config.address, code });
        this.#run(p, p.reg.peerUnsupported(`parameter-problem-${code}`), now);
      }
    }
    for (let i = 0; i < 16; i++) {
      if (buf[start + IPV6_DST_OFF + i] !== this.#hoa[i]) {
        this.drops.add('direct-not-for-home-address');
        return;
      }
    }
    // Selector check (DESIGN.md §4): data must come from an address the CN's certificate holds.
    const cert = session.peerCertificate;
    if (cert === null || !sourceAllowed(cert, buf, start, length)) {
      this.drops.add('selector');
      return;
    }
    p.packets.directIn++;
    if (toTun) toTun(start, length);
    else if (!this.#env.tun.writePacket(packet)) this.drops.add('tun-write');
  }

  #signalingFromCorrespondent(p: Peer, packet: Uint8Array, now: number): void {
    let d;
    try {
      d = decodePacket(packet);
    } catch {
      this.drops.add('direct-malformed');
      return;
    }
    this.#run(p, p.reg.handle(d, packet.subarray(d.upperOffset), now), now);
    this.#host?.rearm();
  }

  /** CN half: CoTI, BU and HAO data from an MN's channel. */
  #fromMobileNode(
    session: PeerSession,
    buf: Uint8Array,
    off: number,
    len: number,
    hao: number,
    from: () => Locator,
    now: number,
    toTun: TunSink | undefined,
  ): void {
    const bindings = this.bindings!;
    const cert = session.peerCertificate!;
    const isMh = this.#upperIsMh(buf, off, len);
    if (isMh) {
      // CoTI and BU (issue #13): the engine binds the care-of token to the locator the packet
      // came from, takes a BU only for a HoA the certificate holds, with a HAO, and only from
      // the key that owns the binding (counted as cn-<reason> drops otherwise).
      const packet = buf.slice(off, off + len);
      this.#capture(packet, now);
      const via: Bound = { session, locator: resolveLocator(from()) };
      const origin = {
        member: memberKey(session),
        ownerKey: session.peerPublicKey,
        allowsHomeAddress: (hoa: Uint8Array) => this.#certAllows(cert, hoa, 0),
        locator: via.locator,
      };
      this.#runCn(bindings.handle(packet, now, origin), now, via);
      return;
    }
    if (hao < 0) {
      this.drops.add('direct-without-hao');
      return;
    }
    const b = bindings.acceptHomeAddressOption(buf, hao, off + IPV6_SRC_OFF, now);
    const ch = b ? this.#bound.get(keyOf(buf, hao)) : undefined;
    if (b === undefined || ch === undefined || ch.session !== session) {
      // RFC 6275 §9.3.1: no binding for this HAO -> Binding Error status 1, to the source.
      const d = this.#texts(buf, off, hao);
      const be = bindings.bindingErrorFor(d.home, d.source, this.#opts.homeAddress, now);
      this.drops.add('hao-without-binding');
      if (be) this.#runCn([be], now, { session, locator: resolveLocator(from()) });
      return;
    }
    if (this.#env.capture) this.#capture(buf.subarray(off, off + len), now); // with its HAO
    const n = removeHomeAddressOption(buf, off, len, hao);
    if (n < 0) {
      this.drops.add(`hao${n}`);
      return;
    }
    const length = len - (n - off);
    if (!sourceAllowed(cert, buf, n, length)) {
      this.drops.add('selector');
      return;
    }
    if (toTun) toTun(n, length);
    else if (!this.#env.tun.writePacket(buf.subarray(n, n + length))) this.drops.add('tun-write');
  }

  #texts(buf: Uint8Array, off: number, hao: number): { home: string; source: string } {
    return { home: formatIpv6(buf, hao), source: formatIpv6(buf, off + IPV6_SRC_OFF) };
  }

  #certAllows(
    cert: NonNullable<PeerSession['peerCertificate']>,
    buf: Uint8Array,
    hao: number,
  ): boolean {
    const probe = new Uint8Array(IPV6_HEADER_LEN);
    probe[0] = 0x60;
    probe.set(buf.subarray(hao, hao + 16), IPV6_SRC_OFF);
    return sourceAllowed(cert, probe, 0, IPV6_HEADER_LEN);
  }

  #upperIsMh(buf: Uint8Array, off: number, len: number): boolean {
    return upperLayer(buf, off, len)?.protocol === IPPROTO.MH;
  }

  /** CN half: executes binding actions; `via` is the channel the triggering packet came on. */
  #runCn(actions: CorrespondentAction[], now: number, via?: Bound): void {
    for (const a of actions) {
      switch (a.kind) {
        case 'send': {
          this.#capture(a.packet, now);
          if (a.message === 'homeTest') {
            this.#host?.sendViaHomeAgent(a.packet, now);
            break;
          }
          const ch = via ?? this.#bound.get(keyOfText(a.homeAddress));
          if (ch === undefined) {
            this.drops.add('cn-no-channel');
            break;
          }
          const msg = this.#env.endpoint.seal(ch.session, a.packet, now, DataKind.SIGNALING);
          if (msg !== null)
            this.#socket(ch.locator)?.send(msg, ch.locator.address, ch.locator.port);
          break;
        }
        case 'bindingAdded':
        case 'bindingUpdated': {
          if (via) this.#bound.set(keyOfText(a.binding.homeAddress), via);
          // A mobile correspondent proved (RR + BU) it is reachable there: our MN half
          // follows it too (the configured underlay address is only where to start).
          const peer = via ? this.#bySession.get(via.session) : undefined;
          if (peer && via) {
            peer.learned = via.locator;
            peer.locator = via.locator;
          }
          this.#env.log.info('correspondent-binding', {
            homeAddress: a.binding.homeAddress,
            careOf: a.binding.careOfAddress,
            lifetime: a.binding.lifetimeSeconds,
            ...(via ? { locator: formatLocator(via.locator) } : {}),
          });
          break;
        }
        case 'bindingDeleted':
          this.#bound.delete(keyOfText(a.homeAddress));
          this.#env.log.info('correspondent-binding-deleted', {
            homeAddress: a.homeAddress,
            reason: a.reason,
          });
          break;
        case 'drop':
          this.drops.add(`cn-${a.reason}`);
          break;
      }
    }
    this.#host?.rearm();
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
    if (m.kind === 'homeTest') {
      const p = this.#peers.get(keyOfText(d.source));
      if (p === undefined) return false;
      this.#run(p, p.reg.handle(d, packet.subarray(d.upperOffset), now), now);
      this.#host?.rearm();
      return true;
    }
    if (m.kind === 'homeTestInit' && this.bindings !== undefined) {
      this.#runCn(this.bindings.handle(packet, now, this.#memberOrigin(packet)), now);
      return true;
    }
    return false;
  }

  /**
   * The member whose certificate holds a HoTI's source address, for its own RR rate bucket
   * (CorrespondentBindings.handle); none (anonymous) for anyone else. Home agents are skipped:
   * their certificates hold whole home prefixes.
   */
  #memberOrigin(packet: Uint8Array): { member?: string } {
    for (const s of this.#env.endpoint.allSessions()) {
      const cert = s.peerCertificate;
      if (cert === null || cert.role === 'ha') continue;
      if (sourceAllowed(cert, packet, 0, packet.length)) return { member: memberKey(s) };
    }
    return {};
  }

  // ---- timers ----------------------------------------------------------------------------

  nextDeadline(): number {
    let d = this.#tickAt || Infinity;
    for (const p of this.#peers.values()) d = Math.min(d, p.reg.nextDeadline());
    if (this.bindings) d = Math.min(d, this.bindings.nextDeadline());
    return d;
  }

  poll(now: number): void {
    this.flushDirect(now);
    this.#tickAt = 0;
    let optimized = false;
    for (const p of this.#peers.values()) {
      this.#run(p, p.reg.poll(now), now);
      if (!p.reg.routeOptimized) continue;
      optimized = true;
      const sending = p.lastDirectOut > p.lastDirectIn;
      const silent = now - p.lastDirectIn;
      if (sending && silent >= DIRECT_FAIL_MS) {
        this.#env.log.warn('direct-path-failed', {
          correspondent: p.config.address,
          silentMs: silent,
        });
        this.#run(p, p.reg.directPathFailed('direct-silent', now), now);
        continue;
      }
      const session = this.#env.endpoint.session(p.config.publicKey);
      if (
        sending &&
        silent >= DIRECT_PROBE_AFTER_MS &&
        now - p.lastProbe >= DIRECT_TICK_MS &&
        session &&
        p.locator
      ) {
        p.lastProbe = now;
        this.#sendProbe(session, p.locator, PROBE_REQUEST, now);
      }
    }
    if (this.bindings) this.#runCn(this.bindings.poll(now, this.#opts.homeAddress), now);
    if (optimized) this.#tickAt = now + DIRECT_TICK_MS;
    this.#host?.rearm();
  }

  // ---- status and shutdown ---------------------------------------------------------------

  /** Binding update list entries for the correspondents (kind 'correspondent'). */
  status(now: number): BindingUpdateListStatus[] {
    const out: BindingUpdateListStatus[] = [];
    for (const p of this.#peers.values()) {
      const s = p.reg.status(now);
      const rr: Record<string, string> = {};
      const stamps: [string, number][] = [
        ['homeTestInit', s.lastHomeTestInit],
        ['homeTest', s.lastHomeTest],
        ['careOfTestInit', s.lastCareOfTestInit],
        ['careOfTest', s.lastCareOfTest],
        ['bindingUpdate', s.lastBindingUpdate],
        ['bindingAck', s.lastBindingAck],
      ];
      for (const [name, ms] of stamps) if (ms !== 0) rr[name] = new Date(ms).toISOString();
      out.push({
        peer: p.config.address,
        kind: 'correspondent',
        careOfAddress: s.careOfAddress ?? '',
        ...(p.locator ? { locator: formatLocator(p.locator) } : {}),
        state: s.state,
        lifetimeRemaining: s.lifetimeRemainingSeconds,
        sequence: s.sequence,
        ...(s.lastStatus !== null ? { lastStatus: s.lastStatus } : {}),
        routeOptimization: s.routeOptimized ? 'direct' : 'tunnel',
        returnRoutability: rr,
        packets: { ...p.packets },
      });
    }
    return out;
  }

  /** Correspondent bindings held by the CN half. */
  bindingStatus(now: number): BindingStatus[] {
    const out: BindingStatus[] = [];
    if (!this.bindings) return out;
    for (const b of this.bindings.bindings()) {
      const ch = this.#bound.get(keyOfText(b.homeAddress));
      out.push({
        homeAddress: b.homeAddress,
        ...(ch?.session.peerName ? { member: ch.session.peerName } : {}),
        locator: ch ? formatLocator(ch.locator) : '',
        careOfAddress: b.careOfAddress,
        lifetimeRemaining: Math.max(0, Math.round((b.expiresAt - now) / 1000)),
        sequence: b.sequence,
        packetsIn: b.packetsIn,
        packetsOut: b.packetsOut,
      });
    }
    return out;
  }

  /** Deregisters at every correspondent that holds a binding (best effort, no wait). */
  close(now: number = nodeNow(this.#env)): void {
    for (const p of this.#peers.values()) this.#run(p, p.reg.deregister(now), now);
  }

  #capture(packet: Uint8Array, now: number): void {
    this.#env.capture?.write(packet, now * 1000);
  }
}
