/**
 * The home agent (RFC 6275 §10, RFC 5555 §4; DESIGN.md §2-§5): binding cache, home
 * registration, bidirectional tunneling.
 *
 * Underlay -> TUN (onDatagrams):
 *   1. The endpoint opens the batch in place (handshake messages go to `receive`, replies back
 *      to the sender's locator; a new session is remembered with the locator it came from).
 *   2. Inner packets addressed to the HA's own home-prefix address that carry a Mobility Header
 *      are signaling: decoded, and a BU goes to processHomeBindingUpdate with the channel's
 *      certificate as the authority on which home addresses the member may register, and the
 *      channel's static key as the owner of the binding it creates (a BU from another key for
 *      an existing binding gets BA 129, counted as 'binding-owner-mismatch'). The BA is
 *      sealed back to the locator the BU came from. A BU saying the MN is home (CoA == HoA)
 *      counts only when its datagram arrived on the home-link interface with hop limit 255
 *      (else BA 129, counted as 'home-not-on-link'); its BA goes back on that link, to the
 *      MN's link-local address (zoned locator).
 *   3. Everything else is reverse-tunneled data: its source must be a home address bound to
 *      this very channel (the selector check; an unauthenticated packet never moves a binding),
 *      then it is written to the TUN and the HA host's kernel routes it on. Arriving from
 *      another locator than the bound one (a NAT rebinding) it earns a Binding Refresh Request
 *      sent there, rate-limited; the binding moves only with the BU that answers it.
 * TUN -> underlay (onPackets):
 *   packets the kernel routes into the TUN (the home prefix, or host routes for away MNs on a
 *   real home link) are looked up by destination in the binding cache, sealed in runs for the
 *   binding's channel in place and sent to the binding's locator in one batch. A destination
 *   with no binding is dropped, counted, and answered with ICMPv6 Destination Unreachable
 *   (code 3, address unreachable; RFC 4443 §3.1), rate-limited.
 * Timer: one, at the earliest of the endpoint's and the binding cache's deadlines: handshake
 * retransmission and rekey, binding expiry (routes withdrawn), Binding Refresh Requests.
 */
import { OpenResult, type OpenBatchOutput, type PeerSession } from '../../crypto/endpoint.js';
import { DATA_HEADER_LEN, DATA_OVERHEAD } from '../../crypto/aead.js';
import type { MemberCertificate } from '../../crypto/certificate.js';
import type { DatagramBatch, PacketBatch, UdpEndpoint } from '../../io/types.js';
import { HandshakeRateLimiter } from '../../crypto/handshake-rate-limiter.js';
import { BindingCache, keyOf, type BindingCacheEntry } from '../../protocol/binding-cache.js';
import { UpdateRateLimiter } from '../../protocol/binding-update-list.js';
import { baStatusName, MAX_UPDATE_RATE, UPDATE_RATE_WINDOW_MS } from '../../protocol/constants.js';
import {
  limitToHomePrefixLifetime,
  processHomeBindingUpdate,
  type HomeAgentRegistrationConfig,
} from '../../protocol/home-agent-registration.js';
import { formatLocator, type Locator } from '../../protocol/locator.js';
import { lifetimeUnitsToSeconds } from '../../protocol/sequence.js';
import type { HaStatus, BindingStatus } from '../../io/control-protocol.js';
import {
  formatIpv6,
  ipv6Equal,
  parseIpv6,
  parsePrefix,
  prefixContains,
  type Prefix,
} from '../../wire/address.js';
import {
  buildDestinationUnreachable,
  buildParameterProblem,
  ICMPV6_TYPE,
} from '../../wire/icmpv6.js';
import {
  checkMobilityHeader,
  ErrorRateLimiter,
  type MobilityHeaderVerdict,
} from '../../protocol/mobility-header-check.js';
import { mobilitySignal } from '../../wire/mobility-signal.js';
import { randomBytes } from '../../crypto/random.js';
import {
  decodePathMessage,
  encodePathMessage,
  PATH_CHALLENGE,
  PATH_MESSAGE_LEN,
  PATH_RESPONSE,
  PathValidator,
  UNVALIDATED_BUDGET_FACTOR,
} from '../../protocol/path-validation.js';
import {
  answerDiscovery,
  DEFAULT_HA_LIFETIME_S,
  discoveryChanged,
  homeAgentAnycast,
  mobilePrefixAdvertisement,
  PREFIX_LIFETIME_INFINITE,
  type DiscoveryConfig,
} from '../../protocol/home-agent-discovery.js';
import {
  IPV6_DST_OFF,
  IPV6_HEADER_LEN,
  IPV6_NEXT_HEADER_OFF,
  IPV6_SRC_OFF,
} from '../../wire/ipv6.js';
import { decodePacket, encodeIcmpv6Packet, encodeMobilityPacket } from '../../wire/packet.js';
import { WireError } from '../../util/errors.js';
import {
  armTimer,
  DropCounters,
  nodeNow,
  resolveLocator,
  sendSealed,
  TunnelWriter,
  writeToTun,
  type NodeEnvironment,
  type ResolvedLocator,
} from '../common.js';
import { IPPROTO, type MobilityMessage } from '../../wire/types.js';
import {
  PrefixAdvertiser,
  type PrefixAdvertisementAction,
} from '../../protocol/prefix-advertisement.js';
import { systemRandom, type RandomSource } from '../../util/random-source.js';
import { renderHaStatus } from './home-agent-status.js';

/** At most this many ICMPv6 errors per second (RFC 4443 §2.4 (f) asks for a limit). */
const ICMP_ERRORS_PER_SECOND = 10;
/** At most this many Binding Errors per second (RFC 6275 §9.3.3: rate-limited). */
const BINDING_ERRORS_PER_SECOND = 10;
/** At most one rebinding hint (BRR to a new locator) per binding this often (ms). */
const REBIND_HINT_INTERVAL_MS = 1000;

/**
 * BUs per second one member may have processed at the HA. A conforming MN sends at most
 * MAX_UPDATE_RATE per second (RFC 6275 §11.8), but network jitter can bunch three BUs sent
 * just over a second apart into less than a second on arrival, and a conforming move BU must
 * never be dropped; twice the MN's rate still stops a flood after a handful.
 */
export const HA_BU_RATE_PER_MEMBER = 2 * MAX_UPDATE_RATE;

/** Home-link side effects of a binding (routes, proxy ND); real one in src/io/home-link.ts. */
export interface HomeLinkControl {
  bindingAdded(homeAddress: string): Promise<void>;
  bindingRemoved(homeAddress: string): Promise<void>;
}

export interface HomeAgentOptions extends HomeAgentRegistrationConfig {
  homeLink?: HomeLinkControl | undefined;
  /**
   * True for the interface index of the real home link ([home] link). A BU that says the MN is
   * home (CoA == HoA) is accepted only from a datagram that arrived there with hop limit 255;
   * without this option (a virtual home network) never.
   */
  isHomeLink?: ((ifindex: number) => boolean) | undefined;
  /**
   * What DHAAD Replies and MPAs announce: the home agents of the prefix (ourselves included)
   * and the advertised prefixes. Default: ourselves alone (preference 0) and the home prefix
   * with infinite lifetimes. Changed at run time with setDiscovery().
   */
  discovery?: DiscoveryConfig | undefined;
  /** Randomness for DHAAD tie-breaking, MPA identifiers and MPA jitter (default systemRandom). */
  random?: RandomSource | undefined;
  /** MinMobPfxAdvInterval / MaxMobPfxAdvInterval in seconds (RFC 6275 §13 defaults). */
  prefixAdvertisementIntervals?: { minSeconds: number; maxSeconds: number } | undefined;
}

interface BindingExtra {
  session: PeerSession;
  /** Where the member's last BU came from: where signaling (BA, BRR, MPA) goes. */
  locator: ResolvedLocator;
  /** The validated locator data goes to (path-validation.ts); undefined until there is one. */
  data: ResolvedLocator | undefined;
  /** Bytes of data `locator` may still get while unvalidated (anti-amplification budget). */
  budget: number;
}

export class HomeAgent {
  readonly cache = new BindingCache();
  readonly drops = new DropCounters();
  readonly counters = {
    tunnelPacketsIn: 0,
    tunnelPacketsOut: 0,
    tunnelBytesIn: 0,
    tunnelBytesOut: 0,
    signalingIn: 0,
    signalingOut: 0,
    icmpErrorsSent: 0,
    pathChallenges: 0,
  };
  readonly #env: NodeEnvironment;
  readonly #opts: HomeAgentOptions;
  readonly #random: RandomSource;
  readonly #haAddress: Uint8Array;
  readonly #homePrefix: Prefix;
  /** The home prefix's HA anycast address (DHAAD Requests go there, RFC 6275 §10.5). */
  readonly #anycast: Uint8Array;
  /** Channel and resolved locator of each binding, by binding key. */
  readonly #extra = new Map<string, BindingExtra>();
  /** Locators carry data only once the member answered a challenge sent there. */
  readonly #paths = new PathValidator<PeerSession>(randomBytes);
  /** Where and when each channel's last handshake as responder came from (path validation). */
  readonly #handshakeAt = new WeakMap<PeerSession, { locator: string; at: number }>();
  /** The binding keys of each channel (a certificate may hold several home addresses). */
  readonly #bySession = new Map<PeerSession, Set<string>>();
  /** Last locator each channel was heard from (for handshake replies and rekeys). */
  readonly #sessionLocator = new Map<PeerSession, Locator>();
  /** When a rebinding hint (BRR) last went out, by binding key. */
  readonly #rebindHints = new Map<string, number>();
  readonly #writer = new TunnelWriter();
  #openOut: OpenBatchOutput = { results: new Uint8Array(64), sessions: [] };
  #tunOffsets = new Uint32Array(64);
  #tunLengths = new Uint32Array(64);
  /** ICMPv6 errors we originate (RFC 4443 §2.4 (f)). */
  readonly #icmpErrors = new ErrorRateLimiter(ICMP_ERRORS_PER_SECOND);
  /** Binding Errors we originate (RFC 6275 §9.3.3). */
  readonly #bindingErrors = new ErrorRateLimiter(BINDING_ERRORS_PER_SECOND);
  /** BUs accepted for processing per member (certificate name) in the last window. */
  readonly #buRate = new Map<string, { limiter: UpdateRateLimiter; lastAt: number }>();
  #buRateSweptAt = -Infinity;
  /** Handshake messages per source IP, before any crypto (one host cannot saturate us). */
  readonly #handshakeRate = new HandshakeRateLimiter();
  #startedAt = 0;
  #closed = false;
  #discovery: DiscoveryConfig;
  /** The options, plus the home prefix's valid lifetime from `#discovery` (§10.3.1). */
  #registrationConfig: HomeAgentRegistrationConfig;
  /** Unsolicited and periodic MPAs to members (RFC 6275 §10.6.2), by binding key. */
  readonly #advertiser: PrefixAdvertiser;

  constructor(env: NodeEnvironment, opts: HomeAgentOptions) {
    this.#env = env;
    this.#opts = opts;
    this.#random = opts.random ?? systemRandom;
    this.#advertiser = new PrefixAdvertiser({
      random: this.#random,
      minIntervalSeconds: opts.prefixAdvertisementIntervals?.minSeconds,
      maxIntervalSeconds: opts.prefixAdvertisementIntervals?.maxSeconds,
    });
    this.#haAddress = parseIpv6(opts.homeAgentAddress);
    this.#homePrefix = parsePrefix(opts.homePrefix);
    this.#anycast = parseIpv6(
      homeAgentAnycast(formatIpv6(this.#homePrefix.address), this.#homePrefix.length),
    );
    this.#discovery = opts.discovery ?? {
      homeAgents: [
        { address: opts.homeAgentAddress, preference: 0, lifetime: DEFAULT_HA_LIFETIME_S },
      ],
      prefixes: [
        {
          address: formatIpv6(this.#homePrefix.address),
          length: this.#homePrefix.length,
          validLifetime: PREFIX_LIFETIME_INFINITE,
          preferredLifetime: PREFIX_LIFETIME_INFINITE,
        },
      ],
    };
    this.#registrationConfig = this.#opts;
    this.#applyHomePrefixLifetimes();
  }

  /** The home prefix's lifetimes from `#discovery` reach registration and the MPA schedule. */
  #applyHomePrefixLifetimes(): void {
    const { validLifetime, preferredLifetime } = this.#homePrefixLifetimes();
    this.#registrationConfig = { ...this.#opts, homePrefixValidLifetimeSeconds: validLifetime };
    this.#advertiser.setPreferredLifetime(preferredLifetime);
  }

  /** The advertised lifetimes of the home prefix (infinite when it is not listed). */
  #homePrefixLifetimes(): { validLifetime: number; preferredLifetime: number } {
    const p = this.#discovery.prefixes.find(
      (x) =>
        x.length === this.#homePrefix.length &&
        ipv6Equal(parseIpv6(x.address), 0, this.#homePrefix.address, 0),
    );
    return (
      p ?? { validLifetime: PREFIX_LIFETIME_INFINITE, preferredLifetime: PREFIX_LIFETIME_INFINITE }
    );
  }

  /** Starts receiving on the TUN and the sockets. */
  start(): void {
    this.#startedAt = nodeNow(this.#env);
    this.#env.tun.onPackets((b) => this.#onTunPackets(b));
    for (const s of this.#sockets()) s.onDatagrams((b) => this.#onDatagrams(s, b));
    this.#rearm();
  }

  #sockets(): UdpEndpoint[] {
    return [this.#env.udp4, this.#env.udp6].filter((s): s is UdpEndpoint => s !== undefined);
  }

  #socketFor(family: 4 | 6): UdpEndpoint | undefined {
    return family === 4 ? this.#env.udp4 : this.#env.udp6;
  }

  // ---- underlay -> TUN -------------------------------------------------------------------

  #onDatagrams(socket: UdpEndpoint, batch: DatagramBatch): void {
    const env = this.#env;
    const now = nodeNow(env);
    const n = batch.count;
    if (this.#openOut.results.length < n) {
      this.#openOut = { results: new Uint8Array(n * 2), sessions: [] };
      this.#tunOffsets = new Uint32Array(n * 2);
      this.#tunLengths = new Uint32Array(n * 2);
    }
    const out = this.#openOut;
    env.endpoint.openBatch(batch.buf, batch.offsets, batch.lengths, n, now, out);
    let w = 0;
    const buf = batch.buf;
    for (let i = 0; i < n; i++) {
      const result = out.results[i];
      if (result === OpenResult.NOT_DATA) {
        this.#onHandshake(socket, batch, i, now);
        continue;
      }
      if (result !== OpenResult.DATA && result !== OpenResult.SIGNALING) continue; // counted
      const session = out.sessions[i]!;
      const off = batch.offsets[i]! + DATA_HEADER_LEN;
      const len = batch.lengths[i]! - DATA_OVERHEAD;
      this.#sessionLocator.set(session, {
        address: batch.remoteAddress(i),
        port: batch.remotePort(i),
      });
      if (len === PATH_MESSAGE_LEN && result === OpenResult.SIGNALING) {
        this.#onPathMessage(session, buf, off, len); // not an IPv6 packet (path-validation.ts)
        continue;
      }
      if (len < IPV6_HEADER_LEN || buf[off]! >> 4 !== 6) {
        this.drops.add('malformed-inner');
        continue;
      }
      // Signaling for us is what the member marked as its own (DataKind.SIGNALING); a Mobility
      // Header or DHAAD/MPS it merely forwards (payload) may have been written by anybody.
      const own = result === OpenResult.SIGNALING;
      if (!own && this.#forUs(buf, off) && mobilitySignal(buf, off, len) !== undefined) {
        this.drops.add('forwarded-signaling');
        continue;
      }
      if (
        own &&
        ipv6Equal(buf, off + IPV6_DST_OFF, this.#haAddress, 0) &&
        this.#isSignaling(buf, off)
      ) {
        const packet = buf.slice(off, off + len);
        this.#capture(packet, now);
        this.#onSignaling(
          packet,
          session,
          { address: batch.remoteAddress(i), port: batch.remotePort(i) },
          now,
          this.#onHomeLink(socket, batch, i),
        );
        continue;
      }
      const entry = this.cache.getByKey(keyOf(buf, off + IPV6_SRC_OFF));
      if (entry === undefined) {
        this.drops.add('no-binding');
        continue;
      }
      const bound = this.#extra.get(entry.key);
      if (bound === undefined || bound.session !== session) {
        this.drops.add('selector');
        continue;
      }
      if (
        bound.data !== bound.locator &&
        bound.locator.port === batch.remotePort(i) &&
        bound.locator.address === batch.remoteAddress(i)
      ) {
        bound.budget += UNVALIDATED_BUDGET_FACTOR * len; // anti-amplification (RFC 9000 §8.1)
      }
      const dataTo = bound.data ?? bound.locator;
      if (dataTo.port !== batch.remotePort(i) || dataTo.address !== batch.remoteAddress(i)) {
        this.#rebindHint(
          entry,
          bound,
          { address: batch.remoteAddress(i), port: batch.remotePort(i) },
          now,
        );
      }
      if (
        own &&
        buf[off + IPV6_NEXT_HEADER_OFF] === IPPROTO.ICMPV6 &&
        len > IPV6_HEADER_LEN &&
        (buf[off + IPV6_HEADER_LEN] === ICMPV6_TYPE.HAAD_REQUEST ||
          buf[off + IPV6_HEADER_LEN] === ICMPV6_TYPE.MOBILE_PREFIX_SOLICITATION) &&
        (ipv6Equal(buf, off + IPV6_DST_OFF, this.#haAddress, 0) ||
          ipv6Equal(buf, off + IPV6_DST_OFF, this.#anycast, 0))
      ) {
        this.#onDiscovery(buf.slice(off, off + len), entry.key, bound, now);
        continue;
      }
      this.cache.recordIn(entry, len, now);
      this.counters.tunnelPacketsIn++;
      this.counters.tunnelBytesIn += len;
      if (env.capture) this.#capture(buf.subarray(off, off + len), now);
      this.#tunOffsets[w] = off;
      this.#tunLengths[w] = len;
      w++;
    }
    writeToTun(env.tun, buf, this.#tunOffsets, this.#tunLengths, w, this.drops);
    this.#rearm();
  }

  /** True when the packet's destination is our home-prefix address or the DHAAD anycast. */
  #forUs(buf: Uint8Array, off: number): boolean {
    return (
      ipv6Equal(buf, off + IPV6_DST_OFF, this.#haAddress, 0) ||
      ipv6Equal(buf, off + IPV6_DST_OFF, this.#anycast, 0)
    );
  }

  /** True for a Mobility Header right after the fixed header or after one Destination Options header (HAO). */
  #isSignaling(buf: Uint8Array, off: number): boolean {
    const nh = buf[off + IPV6_NEXT_HEADER_OFF];
    if (nh === IPPROTO.MH) return true;
    if (nh === IPPROTO.DSTOPTS || nh === IPPROTO.ROUTING) {
      const next = buf[off + IPV6_HEADER_LEN];
      // HAO then MH, or RH2 then HAO (decoded properly on the slow path).
      return next === IPPROTO.MH || next === IPPROTO.DSTOPTS;
    }
    return false;
  }

  #onHandshake(socket: UdpEndpoint, batch: DatagramBatch, i: number, now: number): void {
    const locator: Locator = { address: batch.remoteAddress(i), port: batch.remotePort(i) };
    if (!this.#handshakeRate.allow(locator.address, now)) {
      this.drops.add('handshake-rate-limited');
      return;
    }
    const datagram = batch.packet(i).slice();
    this.#endpointDeadline = 0; // handshake state changed: poll the endpoint on the next turn
    const r = this.#env.endpoint.receive(datagram, now, undefined, formatLocator(locator));
    switch (r.kind) {
      case 'reply':
        socket.send(r.data, locator.address, locator.port);
        break;
      case 'established':
        this.#sessionLocator.set(r.session, locator);
        this.#handshakeAt.set(r.session, { locator: formatLocator(locator), at: now });
        if (r.reply) socket.send(r.reply, locator.address, locator.port);
        this.#env.log.info('channel', {
          peer: r.session.peerName ?? '?',
          locator: formatLocator(locator),
        });
        this.#refreshIfUnbound(r.session, locator, now);
        break;
      case 'cookie':
      case 'data':
      case 'drop':
        break;
    }
  }

  /**
   * A member finished a handshake but holds no binding here. After a restart of this HA (the
   * binding cache and the channels live in memory only) its MN still believes it is registered
   * and would refresh only near the end of its lifetime; a Binding Refresh Request (RFC 6275
   * §6.1.2) over the new channel asks for a BU now. An MN that is registering anyway ignores it.
   * Only for the single home addresses (/128) of the member's certificate, at most 4.
   */
  #refreshIfUnbound(session: PeerSession, locator: Locator, now: number): void {
    const cert = session.peerCertificate;
    if (cert === null) return;
    let sent = 0;
    for (const p of cert.addresses) {
      if (p.prefixLength !== 128 || sent >= 4) continue;
      if (!prefixContains(this.#homePrefix, p.address, 0)) continue;
      const hoa = formatIpv6(p.address);
      if (this.cache.get(hoa) !== undefined) continue;
      const brr = encodeMobilityPacket({
        source: this.#opts.homeAgentAddress,
        destination: hoa,
        message: { kind: 'bindingRefreshRequest', options: [] },
      });
      this.#sendSignaling(session, brr, locator, now);
      this.#env.log.info('refresh-request', { hoa, why: 'channel-without-binding' });
      sent++;
    }
  }

  /**
   * Sent on the home link and never routed: arrived on the home-link interface with IPv6 hop
   * limit 255 (RFC 4861 §7.1.2's rule; a router on the way would have decremented it).
   */
  #onHomeLink(socket: UdpEndpoint, batch: DatagramBatch, i: number): boolean {
    const isHomeLink = this.#opts.isHomeLink;
    return (
      socket.family === 6 &&
      isHomeLink !== undefined &&
      batch.hopLimits[i] === 255 &&
      isHomeLink(batch.ifindexes[i] ?? 0)
    );
  }

  #onSignaling(
    packet: Uint8Array,
    session: PeerSession,
    locator: Locator,
    now: number,
    onHomeLink = false,
  ): void {
    const env = this.#env;
    let decoded;
    try {
      decoded = decodePacket(packet);
    } catch (err) {
      this.drops.add(err instanceof WireError ? `wire-${err.code}` : 'malformed-inner');
      return;
    }
    const mh = decoded.mobility;
    const verdict = checkMobilityHeader(decoded);
    if (mh === undefined || verdict.action === 'drop') {
      this.drops.add(mh === undefined ? 'not-signaling' : 'mh-checksum');
      return;
    }
    this.counters.signalingIn++;
    if (verdict.action !== 'accept') {
      this.drops.add(verdict.reason);
      this.#answerBadMobilityHeader(verdict, packet, session, locator, now);
      return;
    }
    if (mh.kind !== 'bindingUpdate') {
      this.drops.add(`unexpected-${mh.kind}`);
      return;
    }
    const cert = session.peerCertificate;
    if (cert === null) {
      this.drops.add('no-certificate');
      return;
    }
    if (!this.#buRateAllows(cert.name, now)) {
      this.drops.add('bu-rate-limited');
      return;
    }
    let removed: Promise<void> | undefined;
    const result = processHomeBindingUpdate(
      this.cache,
      {
        bu: mh,
        innerSource: decoded.source,
        innerDestination: decoded.destination,
        ...(decoded.homeAddress !== undefined ? { homeAddressOption: decoded.homeAddress } : {}),
        locator,
        onHomeLink,
        peer: {
          name: cert.name,
          publicKey: session.peerPublicKey, // the owner of what this BU creates
          allowsHomeAddress: (hoa) => certificateAllows(cert, hoa),
        },
        config: this.#registrationConfig,
      },
      now,
    );
    const fields = {
      member: cert.name,
      hoa: result.entry?.homeAddress ?? decoded.homeAddress ?? decoded.source,
      locator: formatLocator(locator),
      seq: mh.sequence,
      lifetime: lifetimeUnitsToSeconds(mh.lifetimeUnits),
    };
    if (result.action === 'drop') {
      this.drops.add(`bu-${result.code}`);
      env.log.warn('bu-dropped', { ...fields, reason: result.reason });
      return;
    }
    const entry = result.entry;
    if (result.change === 'created' || result.change === 'updated') {
      // A BU after an unsolicited MPA acknowledges it (RFC 6275 §10.6.2, §11.4.3).
      if (entry && this.#advertiser.onBindingUpdate(entry.key, now)) {
        env.log.info('mobile-prefix-acknowledged', { hoa: entry.homeAddress });
      }
      if (entry) {
        const known = this.#extra.get(entry.key);
        this.#bindPath(entry, session, known, packet.length, now);
        if (result.change === 'created' || known === undefined)
          this.#homeLinkAdd(entry.homeAddress);
      }
      env.log.info(
        result.change === 'created' ? 'registration' : result.previousLocator ? 'move' : 'refresh',
        {
          ...fields,
          nat: entry?.natDetected ?? false,
          granted: entry?.lifetimeSeconds ?? 0,
          ...(result.previousLocator ? { from: formatLocator(result.previousLocator) } : {}),
        },
      );
    } else if (result.change === 'deleted' && entry) {
      removed = this.#removeBinding(entry, 'deregistration');
    } else if ((result.status ?? 0) >= 128) {
      // A BU for a binding another key owns: answered (129), and counted where `mip6 status
      // --json` shows refusals an operator should see (an old certificate still in use?).
      if (result.code === 'bindingOwnerMismatch') this.drops.add('binding-owner-mismatch');
      // "I am home" from anywhere but the home link itself (an evil twin relaying it?).
      if (result.code === 'homeNotOnLink') this.drops.add('home-not-on-link');
      env.log.warn('bu-rejected', {
        ...fields,
        status: result.status ?? 0,
        statusName: baStatusName(result.status ?? 0),
        reason: result.reason,
      });
    }
    if (result.ack && result.reply) {
      const ba = encodeMobilityPacket({
        source: result.reply.innerSource,
        destination: result.reply.innerDestination,
        message: result.ack,
      });
      const to = result.reply.locator;
      if (removed === undefined) {
        this.#sendSignaling(session, ba, to, now);
      } else {
        // A deregistration, maybe from the home link itself (RFC 6275 §11.5.4): the BA leaves
        // once the host route of the HoA into our TUN is gone, or the kernel would route it
        // into the TUN instead of onto the home link.
        void removed.then(() => this.#sendSignaling(session, ba, to, nodeNow(this.#env)));
      }
    }
  }

  /**
   * A Mobility Header that fails RFC 6275 §9.2 (mobility-header-check.ts): a bad Payload Proto
   * gets an ICMPv6 Parameter Problem, an unknown MH type a Binding Error status 2, each
   * rate-limited, sealed back in the member's channel to where it came from.
   */
  #answerBadMobilityHeader(
    verdict: Exclude<MobilityHeaderVerdict, { action: 'accept' | 'drop' }>,
    packet: Uint8Array,
    session: PeerSession,
    locator: Locator,
    now: number,
  ): void {
    let answer: Uint8Array;
    if (verdict.action === 'parameterProblem') {
      if (!this.#icmpErrors.allow(now)) return;
      answer = buildParameterProblem(
        packet,
        verdict.code,
        verdict.pointer,
        this.#opts.homeAgentAddress,
      );
      this.counters.icmpErrorsSent++;
    } else {
      if (!this.#bindingErrors.allow(now)) return;
      answer = encodeMobilityPacket({
        source: this.#opts.homeAgentAddress,
        destination: verdict.destination,
        message: {
          kind: 'bindingError',
          status: verdict.status,
          homeAddress: verdict.homeAddress,
          options: [],
        },
      });
    }
    this.#sendSignaling(session, answer, locator, now);
  }

  /**
   * Per-member BU rate limit: a member may send at most MAX_UPDATE_RATE BUs per second to one
   * destination (RFC 6275 §11.8); beyond HA_BU_RATE_PER_MEMBER (twice that, for jitter) one
   * authenticated member is misbehaving, and the excess is dropped and counted before any
   * binding cache work, without a BA. Entries of members idle for a window are pruned when the map grows, so its size stays
   * bounded by the members active in the last second.
   */
  #buRateAllows(member: string, now: number): boolean {
    let r = this.#buRate.get(member);
    if (r === undefined) {
      // At most one sweep per window: with many members each refreshing once, every BU comes
      // from a member not in the map, and a sweep per BU would cost O(active members) each.
      if (this.#buRate.size >= 1024 && now - this.#buRateSweptAt >= UPDATE_RATE_WINDOW_MS) {
        this.#buRateSweptAt = now;
        for (const [k, v] of this.#buRate) {
          if (now - v.lastAt >= UPDATE_RATE_WINDOW_MS) this.#buRate.delete(k);
        }
      }
      r = {
        limiter: new UpdateRateLimiter(HA_BU_RATE_PER_MEMBER, UPDATE_RATE_WINDOW_MS),
        lastAt: now,
      };
      this.#buRate.set(member, r);
    }
    r.lastAt = now;
    if (!r.limiter.allows(now)) return false;
    r.limiter.record(now);
    return true;
  }

  /**
   * After an accepted BU: the binding's signaling goes to the BU's source at once; its data
   * only once that locator is validated (path-validation.ts). Until then data keeps going to
   * the previous validated locator of the same channel, if any, and a challenge goes out.
   */
  #bindPath(
    entry: BindingCacheEntry,
    session: PeerSession,
    known: BindingExtra | undefined,
    buBytes: number,
    now: number,
  ): void {
    const locator = resolveLocator(entry.locator);
    const text = formatLocator(entry.locator);
    const hs = this.#handshakeAt.get(session);
    if (hs !== undefined && hs.locator === text && session.currentKeysCreatedAt >= hs.at) {
      this.#paths.markValidated(session, text); // the handshake's response reached it
    }
    const challenge = this.#paths.onBindingUpdate(session, text, now);
    const validated = this.#paths.isValidated(session, text);
    const previous = known?.session === session ? known.data : undefined;
    const budget =
      validated || known?.locator.address !== locator.address || known.locator.port !== locator.port
        ? 0
        : known.budget;
    this.#extra.set(entry.key, {
      session,
      locator,
      data: validated ? locator : previous,
      budget: validated ? 0 : budget + UNVALIDATED_BUDGET_FACTOR * buBytes,
    });
    let keys = this.#bySession.get(session);
    if (keys === undefined) this.#bySession.set(session, (keys = new Set()));
    keys.add(entry.key);
    if (challenge !== undefined) this.#sendChallenge(session, locator, challenge.token, now);
  }

  /**
   * Where a run of `bytes` for this binding goes: its validated locator when that is the current
   * one; else the new, unvalidated one while the anti-amplification budget lasts; else the last
   * validated one (if the member is still there it gets it; if it moved, it answers the
   * challenge within a round trip).
   */
  #dataLocator(extra: BindingExtra, bytes: number): ResolvedLocator | undefined {
    const data = extra.data;
    if (data === extra.locator) return data;
    if (extra.budget >= bytes) {
      extra.budget -= bytes;
      return extra.locator;
    }
    return data;
  }

  #pathStatus(key: string): Pick<BindingStatus, 'path' | 'dataLocator'> {
    const extra = this.#extra.get(key);
    if (extra === undefined) return {};
    if (extra.data === extra.locator) return { path: 'validated' };
    return {
      path: 'validating',
      ...(extra.data !== undefined ? { dataLocator: formatLocator(extra.data) } : {}),
    };
  }

  #sendChallenge(session: PeerSession, to: Locator, token: Uint8Array, now: number): void {
    this.counters.pathChallenges++;
    const family = to.address.includes(':') ? 6 : 4;
    if (
      !sendSealed(
        this.#env.endpoint,
        session,
        encodePathMessage(PATH_CHALLENGE, token),
        this.#socketFor(family),
        to,
        now,
      )
    ) {
      this.drops.add('signaling-send');
    }
  }

  /** A PATH_RESPONSE: the bindings of that channel registered at that locator now carry data. */
  #onPathMessage(session: PeerSession, buf: Uint8Array, off: number, len: number): void {
    const m = decodePathMessage(buf, off, len);
    if (m === undefined || m.type !== PATH_RESPONSE) {
      this.drops.add('path-message-unexpected');
      return;
    }
    const text = this.#paths.onResponse(session, m.token);
    if (text === undefined) {
      this.drops.add('path-response-unmatched');
      return;
    }
    for (const key of this.#bySession.get(session) ?? []) {
      const extra = this.#extra.get(key);
      const entry = this.cache.getByKey(key);
      if (extra === undefined || entry === undefined || formatLocator(entry.locator) !== text)
        continue;
      extra.data = extra.locator;
      extra.budget = 0;
      this.#env.log.info('path-validated', { hoa: entry.homeAddress, locator: text });
    }
    this.#rearm();
  }

  #sendSignaling(session: PeerSession, packet: Uint8Array, to: Locator, now: number): void {
    const family = to.address.includes(':') ? 6 : 4;
    this.#capture(packet, now);
    if (sendSealed(this.#env.endpoint, session, packet, this.#socketFor(family), to, now)) {
      this.counters.signalingOut++;
    } else {
      this.drops.add('signaling-send');
    }
  }

  /**
   * Authenticated data of a binding arrived from another locator than the bound one: most
   * likely a NAT rebinding (new public port) or a move whose BU is still on its way. The
   * locator is NOT changed here (only an authenticated BU moves a binding, DESIGN §4); instead
   * a Binding Refresh Request goes to where the data came from, so the MN answers with a BU
   * through the new mapping at once (RFC 6275 §11.7.4) rather than after its silence probe.
   * At most one per binding per REBIND_HINT_INTERVAL_MS.
   */
  #rebindHint(entry: BindingCacheEntry, bound: BindingExtra, from: Locator, now: number): void {
    const last = this.#rebindHints.get(entry.key);
    if (last !== undefined && now - last < REBIND_HINT_INTERVAL_MS) return;
    this.#rebindHints.set(entry.key, now);
    const packet = encodeMobilityPacket({
      source: this.#opts.homeAgentAddress,
      destination: entry.homeAddress,
      message: { kind: 'bindingRefreshRequest', options: [] },
    });
    this.#sendSignaling(bound.session, packet, from, now);
    this.#env.log.info('rebind-hint', {
      hoa: entry.homeAddress,
      bound: formatLocator(bound.locator),
      from: formatLocator(from),
    });
  }

  /** DHAAD Request or Mobile Prefix Solicitation from a bound member: answer in its channel. */
  #onDiscovery(packet: Uint8Array, key: string, bound: BindingExtra, now: number): void {
    this.#capture(packet, now);
    let decoded;
    try {
      decoded = decodePacket(packet);
    } catch {
      this.drops.add('discovery-malformed');
      return;
    }
    const msg = decoded.icmpv6;
    if (msg === undefined || msg.checksumValid === false) {
      this.drops.add('discovery-malformed');
      return;
    }
    const answer = answerDiscovery(msg, this.#discovery, this.#random);
    if (answer === null) return;
    if (answer.kind === 'mobilePrefixAdvertisement') this.#advertiser.onSolicitedSent(key, now);
    this.counters.signalingIn++;
    const reply = encodeIcmpv6Packet({
      source: this.#opts.homeAgentAddress,
      destination: decoded.source,
      message: answer,
    });
    this.#sendSignaling(bound.session, reply, bound.locator, now);
    this.#env.log.info(msg.kind === 'haadRequest' ? 'dhaad' : 'mobile-prefix', {
      hoa: decoded.source,
    });
  }

  /** What DHAAD and MPAs currently announce. */
  get discovery(): DiscoveryConfig {
    return this.#discovery;
  }

  /**
   * New home agents list and advertised prefixes (a reloaded ha.toml). When they differ from
   * the current ones, every registered member gets an unsolicited MPA (RFC 6275 §10.6.2).
   * Returns whether anything changed.
   */
  setDiscovery(cfg: DiscoveryConfig): boolean {
    if (!discoveryChanged(this.#discovery, cfg)) return false;
    this.#discovery = cfg;
    this.#applyHomePrefixLifetimes();
    this.advertisePrefix();
    // Bindings never outlive the home prefix (RFC 6275 §10.3.1): shortened, or removed at 0.
    const now = nodeNow(this.#env);
    const valid = this.#homePrefixLifetimes().validLifetime;
    const { shortened, removed } = limitToHomePrefixLifetime(this.cache, valid, now);
    for (const e of shortened) {
      this.#env.log.info('home-prefix-lifetime', { hoa: e.homeAddress, lifetime: valid });
    }
    for (const e of removed) void this.#removeBinding(e, 'home-prefix-expired');
    this.#rearm();
    return true;
  }

  /**
   * Cuts off every member whose key `isRevoked` says is revoked (a revocation list reloaded on
   * SIGHUP, issue 19): its bindings are removed (routes and proxy ND withdrawn, logged as
   * 'revoked') and its channel closed with its keys wiped; its next handshake is refused by the
   * endpoint's own check ('revoked'). Returns the names of the members cut off.
   */
  revokeMembers(isRevoked: (publicKey: Uint8Array) => boolean): string[] {
    const now = nodeNow(this.#env);
    for (const entry of [...this.cache.entries()]) {
      const extra = this.#extra.get(entry.key);
      if (extra === undefined || !isRevoked(extra.session.peerPublicKey)) continue;
      this.cache.delete(entry.homeAddress, now);
      void this.#removeBinding(entry, 'revoked');
    }
    const names: string[] = [];
    for (const session of this.#env.endpoint.allSessions()) {
      if (!isRevoked(session.peerPublicKey)) continue;
      this.#sessionLocator.delete(session);
      this.#paths.forget(session);
      this.#env.endpoint.closeSession(session);
      names.push(session.peerName ?? '?');
    }
    this.#rearm();
    return names;
  }

  /**
   * Unsolicited Mobile Prefix Advertisement to every registered member (RFC 6275 §10.6.2),
   * retransmitted from PREFIX_ADV_TIMEOUT doubling, at most PREFIX_ADV_RETRIES times, until the
   * member's next BU acknowledges it or its binding goes away (prefix-advertisement.ts).
   */
  advertisePrefix(): void {
    const now = nodeNow(this.#env);
    const keys = [...this.cache.entries()].map((e) => e.key).filter((k) => this.#extra.has(k));
    this.#sendAdvertisements(this.#advertiser.advertise(keys, now), now);
    this.#rearm();
  }

  #sendAdvertisements(actions: PrefixAdvertisementAction[], now: number): void {
    for (const a of actions) {
      const entry = this.cache.getByKey(a.key);
      const bound = this.#extra.get(a.key);
      if (entry === undefined || bound === undefined) {
        this.#advertiser.forget(a.key);
        continue;
      }
      const mpa = encodeIcmpv6Packet({
        source: this.#opts.homeAgentAddress,
        destination: entry.homeAddress,
        message: mobilePrefixAdvertisement(a.identifier, this.#discovery),
      });
      this.#sendSignaling(bound.session, mpa, bound.locator, now);
      if (a.why !== 'retransmission') {
        this.#env.log.info('mobile-prefix-unsolicited', { hoa: entry.homeAddress, why: a.why });
      }
    }
  }

  #removeBinding(entry: BindingCacheEntry, why: string): Promise<void> {
    this.#rebindHints.delete(entry.key);
    this.#advertiser.forget(entry.key);
    const extra = this.#extra.get(entry.key);
    this.#extra.delete(entry.key);
    const keys = extra === undefined ? undefined : this.#bySession.get(extra.session);
    if (extra !== undefined && keys !== undefined) {
      keys.delete(entry.key);
      if (keys.size === 0) {
        this.#bySession.delete(extra.session);
        this.#paths.forget(extra.session);
      }
    }
    const removed = this.#homeLinkRemove(entry.homeAddress);
    this.#env.log.info(why, { hoa: entry.homeAddress, member: entry.peerName });
    return removed;
  }

  #homeLinkAdd(hoa: string): void {
    this.#opts.homeLink?.bindingAdded(hoa).catch((err: unknown) => {
      this.#env.log.error('home-link', { hoa, error: String(err) });
    });
  }

  #homeLinkRemove(hoa: string): Promise<void> {
    return (this.#opts.homeLink?.bindingRemoved(hoa) ?? Promise.resolve()).catch((err: unknown) => {
      this.#env.log.error('home-link', { hoa, error: String(err) });
    });
  }

  // ---- TUN -> underlay -------------------------------------------------------------------

  #onTunPackets(batch: PacketBatch): void {
    const env = this.#env;
    const now = nodeNow(env);
    const buf = batch.buf;
    const writer = this.#writer;
    writer.clear();
    let runExtra: BindingExtra | undefined;
    const flush = (): void => {
      if (runExtra === undefined || writer.count === 0) return;
      const n = writer.count;
      const to = this.#dataLocator(runExtra, writer.bytes);
      const sock = to === undefined ? undefined : this.#socketFor(to.family);
      if (to === undefined || sock === undefined) {
        this.drops.add(to === undefined ? 'path-unvalidated' : 'no-socket', n);
        writer.clear();
        return;
      }
      const sent = writer.flush(env.endpoint, runExtra.session, buf, sock, to, now);
      if (sent < n) this.drops.add(sent === 0 ? 'no-keys' : 'udp-send', n - sent);
    };
    for (let i = 0; i < batch.count; i++) {
      const off = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      if (len < IPV6_HEADER_LEN || buf[off]! >> 4 !== 6) {
        this.drops.add('tun-not-ipv6');
        continue;
      }
      const entry = this.cache.getByKey(keyOf(buf, off + IPV6_DST_OFF));
      const extra = entry === undefined ? undefined : this.#extra.get(entry.key);
      if (entry === undefined || extra === undefined) {
        if (buf[off + IPV6_DST_OFF] === 0xff) {
          this.drops.add('multicast'); // MLD/ND of the TUN itself: nothing to tunnel
          continue;
        }
        this.drops.add('unregistered');
        this.#unreachable(buf.subarray(off, off + len), now);
        continue;
      }
      // Mobility signaling for a member travels only as our own (DataKind.SIGNALING), never
      // relayed from the home side or from another member; HoTI/HoT are the exception (RFC
      // 6275 §5.2.5 routes them through us). No kernel Redirects into a channel either.
      const sig = mobilitySignal(buf, off, len);
      if (sig !== undefined && sig !== 'rr') {
        this.drops.add(sig === 'redirect' ? 'redirect-to-member' : 'signaling-to-member');
        continue;
      }
      if (extra !== runExtra) {
        flush();
        runExtra = extra;
      }
      if (env.capture) this.#capture(buf.subarray(off, off + len), now);
      this.cache.recordOut(entry, len, now);
      this.counters.tunnelPacketsOut++;
      this.counters.tunnelBytesOut += len;
      writer.push(off, len);
    }
    flush();
    this.#rearm();
  }

  /** ICMPv6 Destination Unreachable (address unreachable) for a packet to an away-less HoA. */
  #unreachable(packet: Uint8Array, now: number): void {
    if (!prefixContains(this.#homePrefix, packet, IPV6_DST_OFF)) return;
    let reply: Uint8Array | null;
    try {
      reply = buildDestinationUnreachable(packet, 3, this.#opts.homeAgentAddress);
    } catch {
      return;
    }
    if (reply === null) return; // never about an ICMPv6 error or multicast (RFC 4443 §2.4 (e))
    if (!this.#icmpErrors.allow(now)) return;
    this.counters.icmpErrorsSent++;
    this.#env.tun.writePacket(reply);
  }

  #capture(packet: Uint8Array, now: number): void {
    this.#env.capture?.write(packet, now * 1000);
  }

  // ---- timers ----------------------------------------------------------------------------

  #rearm(): void {
    if (this.#closed) return;
    const deadline = Math.min(
      this.cache.nextDeadline(),
      this.#endpointDeadline,
      this.#advertiser.nextDeadline(),
      this.#paths.nextDeadline(),
    );
    armTimer(this.#env, deadline, () => this.#onTimer());
  }

  #endpointDeadline = 0;

  #onTimer(): void {
    if (this.#closed) return;
    const env = this.#env;
    const now = nodeNow(env);
    const polled = env.endpoint.poll(now);
    for (const { peer, data } of polled.send) {
      const to = this.#sessionLocator.get(peer);
      if (to) this.#socketFor(to.address.includes(':') ? 6 : 4)?.send(data, to.address, to.port);
    }
    this.#endpointDeadline = polled.nextDeadline;
    this.#sendAdvertisements(this.#advertiser.poll(now), now);
    for (const c of this.#paths.poll(now)) {
      for (const key of this.#bySession.get(c.owner) ?? []) {
        const extra = this.#extra.get(key);
        if (extra === undefined || formatLocator(extra.locator) !== c.locator) continue;
        this.#sendChallenge(c.owner, extra.locator, c.token, now);
        break;
      }
    }
    for (const action of this.cache.poll(now)) {
      if (action.kind === 'expired') {
        void this.#removeBinding(action.entry, 'expired');
      } else {
        const extra = this.#extra.get(action.entry.key);
        if (extra) {
          const brr: MobilityMessage = { kind: 'bindingRefreshRequest', options: [] };
          const packet = encodeMobilityPacket({
            source: this.#opts.homeAgentAddress,
            destination: action.entry.homeAddress,
            message: brr,
          });
          this.#sendSignaling(extra.session, packet, extra.locator, now);
          env.log.info('refresh-request', { hoa: action.entry.homeAddress });
        }
      }
    }
    this.#rearm();
  }

  // ---- status and shutdown ---------------------------------------------------------------

  status(): HaStatus {
    return renderHaStatus({
      now: nodeNow(this.#env),
      startedAt: this.#startedAt,
      pid: process.pid,
      cache: this.cache,
      pathStatus: (key) => this.#pathStatus(key),
      tun: this.#env.tun,
      listen: this.#sockets().map((s) => ({ address: s.localAddress, port: s.localPort })),
      homePrefix: this.#opts.homePrefix,
      homeAgentAddress: this.#opts.homeAgentAddress,
      discovery: this.#discovery,
      counters: this.counters,
      drops: this.drops.byReason,
      channelDrops: this.#env.endpoint.drops,
    });
  }

  /** Stops timers; bindings' home-link state is withdrawn. The caller closes the I/O. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#env.clock.clearTimer();
    const removals: Promise<void>[] = [];
    for (const e of this.cache.entries()) {
      if (this.#opts.homeLink)
        removals.push(this.#opts.homeLink.bindingRemoved(e.homeAddress).catch(() => {}));
    }
    await Promise.all(removals);
  }
}

/** True when the member certificate allows this home address (one of its prefixes holds it). */
export function certificateAllows(cert: MemberCertificate, homeAddress: string): boolean {
  let bytes: Uint8Array;
  try {
    bytes = parseIpv6(homeAddress);
  } catch {
    return false;
  }
  return cert.addresses.some((p) =>
    prefixContains({ address: p.address, length: p.prefixLength }, bytes, 0),
  );
}
