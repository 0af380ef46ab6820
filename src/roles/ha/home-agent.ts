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
 *   A Mobility Header failing RFC 6275 §9.2 (protocol/mobility-header-check.ts) gets an ICMPv6
 *   Parameter Problem (Payload Proto not 59) or a Binding Error status 2 (unknown type),
 *   rate-limited; DHAAD Requests and Mobile Prefix Solicitations are answered in the channel.
 * Timer: one, at the earliest deadline of the endpoint (handshake retransmission, rekey), the
 * binding cache (expiry, Binding Refresh Requests), path validation (challenges) and the MPA
 * schedule (unsolicited retransmissions, periodic MPAs).
 * This file is the driver; the decisions live in the engines it runs: binding-cache.ts and
 * home-agent-registration.ts (BUs), prefix-advertisement.ts via home-agent-prefixes.ts (MPAs,
 * DHAAD, home prefix lifetimes), binding-paths.ts (which locator carries a binding's data),
 * registration-log.ts (what a BU result logs and counts), home-agent-status.ts (mip6 status).
 */
import { OpenResult, type OpenBatchOutput, type PeerSession } from '../../crypto/endpoint.js';
import { DATA_HEADER_LEN, DATA_OVERHEAD } from '../../crypto/aead.js';
import type { DatagramBatch, PacketBatch, PacketSpans, UdpEndpoint } from '../../io/types.js';
import { HandshakeRateLimiter } from '../../crypto/handshake-rate-limiter.js';
import { certificateAllows } from '../../crypto/selector.js';
import {
  BindingCache,
  keyOf,
  LastKey,
  keyOfText,
  type BindingCacheEntry,
} from '../../protocol/binding-cache.js';
import { PerMemberRateLimiter } from '../../protocol/binding-update-list.js';
import { UPDATE_RATE_WINDOW_MS } from '../../protocol/constants.js';
import {
  limitToHomePrefixLifetime,
  processHomeBindingUpdate,
  unboundHomeAddresses,
  type ClusterBindingView,
  type HomeRegistrationInput,
} from '../../protocol/home-agent-registration.js';
import { formatLocator, type Locator } from '../../protocol/locator.js';
import type { HaStatus } from '../../io/control-protocol.js';
import {
  formatIpv6,
  ipv6Equal,
  linkLocalOf,
  parseIpv6,
  parsePrefix,
  prefixContains,
  type Prefix,
} from '../../wire/address.js';
import { BA_STATUS } from '../../wire/types.js';
import { buildDestinationUnreachable } from '../../wire/icmpv6.js';
import {
  checkMobilityHeader,
  ErrorRateLimiter,
  mayCarryMobilityHeader,
  mobilityHeaderAnswer,
} from '../../protocol/mobility-header-check.js';
import { mobilitySignal } from '../../wire/mobility-signal.js';
import {
  decodePathMessage,
  encodePathMessage,
  PATH_CHALLENGE,
  PATH_MESSAGE_LEN,
  PATH_RESPONSE,
} from '../../protocol/path-validation.js';
import {
  homeAgentAnycast,
  type DiscoveryConfig,
  type HomeAgentInfo,
} from '../../protocol/home-agent-discovery.js';
import { IPV6_DST_OFF, IPV6_HEADER_LEN, IPV6_SRC_OFF } from '../../wire/ipv6.js';
import { IPV4_DST_OFF, IPV4_HEADER_LEN, IPV4_SRC_OFF, IPV4_VERSION } from '../../wire/ipv4.js';
import { Ipv4HomeAddresses } from '../../protocol/ipv4-home-addresses.js';
import { answerIpv4HomeAddress } from './ipv4-home.js';
import { decodePacket, encodeMobilityPacket } from '../../wire/packet.js';
import { WireError } from '../../util/errors.js';
import {
  armTimer,
  DropCounters,
  expressCounters,
  nodeNow,
  replySource,
  sendSealed,
  TunnelWriter,
  ReceiveBatch,
  SignalingOutbox,
  type NodeEnvironment,
} from '../common.js';
import { BindingPaths, type BoundPath, type ChallengeToSend } from './binding-paths.js';
import { channelField, haChannel, haChannelIfAny } from './ha-channel.js';
import { HaExpress } from './ha-express.js';
import { systemRandom } from '../../util/random-source.js';
import { renderHaStatus } from './home-agent-status.js';
import { registrationReport } from './registration-log.js';
import { UnboundChannels } from './unbound-channels.js';
import {
  HomePrefixes,
  isDiscoveryRequest,
  type AdvertisementToSend,
} from './home-agent-prefixes.js';
import { HA_BU_RATE_PER_MEMBER, type HomeAgentOptions } from './home-agent-options.js';
import { TunnelMtu } from '../tunnel-mtu.js';
import { BASE_INNER, isPathMtuMessage, PathMtuState } from '../../protocol/path-mtu.js';
import { DEFAULT_UNDERLAY_MTU } from '../../config/common.js';
import type { ClusterPeer } from '../../protocol/ha-forwarding.js';
import { HaPeers, SpanList, type HaChannelStatus } from './ha-peers.js';

/** IPv6 Next Header / IPv4 Protocol of TCP (RFC 9293). */
const TCP = 6;
import type { StoredBinding } from '../../io/binding-store.js';
import { offloadNames } from '../offloads.js';
import type { LogLevel } from '../../util/log.js';
import { systemWallClock } from '../../util/wall-clock.js';
import {
  BindingJournal,
  restoredBinding,
  RestoreSchedule,
  toStoredBinding,
} from './binding-persistence.js';

/** At most this many ICMPv6 errors per second (RFC 4443 §2.4 (f) asks for a limit). */
const ICMP_ERRORS_PER_SECOND = 10;
/** At most this many Binding Errors per second (RFC 6275 §9.3.3: rate-limited). */
const BINDING_ERRORS_PER_SECOND = 10;
/** How long after a member came home its next binding skips DAD (#noteWentHome), ms. */
const WENT_HOME_DAD_SKIP_MS = 24 * 3600 * 1000;

export {
  HA_BU_RATE_PER_MEMBER,
  type HomeAgentOptions,
  type HomeLinkControl,
} from './home-agent-options.js';
export { certificateAllows } from '../../crypto/selector.js';

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
    /** New bindings refused with BA 134: a node on the home link holds the address. */
    dadFailed: 0,
  };
  readonly #env: NodeEnvironment;
  readonly #opts: HomeAgentOptions;
  readonly #haAddress: Uint8Array;
  readonly #homePrefix: Prefix;
  /** The home prefix's HA anycast address (DHAAD Requests go there, RFC 6275 §10.5). */
  readonly #anycast: Uint8Array;
  /** Channel, signaling and data locators of each binding (path validation), by key. */
  readonly #paths = new BindingPaths((key) => this.cache.getByKey(key));
  readonly #writer = new TunnelWriter();
  /** Channels that came up without a binding: a BRR if no BU makes one soon (issue 17). */
  readonly #unbound = new UnboundChannels();
  /** Path MTU towards each member's channel at its binding's locator (issue #21). */
  readonly #mtu: TunnelMtu<PeerSession>;
  /** Both sockets (either may be absent), for the per-batch look at their MTU reports. */
  readonly #udp: readonly (UdpEndpoint | undefined)[];
  /** What an unvalidated locator of a channel without a path MTU state gets: the base. */
  readonly #mtuBase = new PathMtuState('', 0, BASE_INNER, 0);
  readonly #rx = new ReceiveBatch();
  readonly #outbox = new SignalingOutbox();
  /** ICMPv6 errors we originate (RFC 4443 §2.4 (f)). */
  readonly #icmpErrors = new ErrorRateLimiter(ICMP_ERRORS_PER_SECOND);
  /** Binding Errors we originate (RFC 6275 §9.3.3). */
  readonly #bindingErrors = new ErrorRateLimiter(BINDING_ERRORS_PER_SECOND);
  /**
   * BUs processed per member (certificate name): beyond HA_BU_RATE_PER_MEMBER per second one
   * authenticated member is misbehaving; the excess is dropped and counted before any binding
   * cache work, without a BA (RFC 6275 §11.8 limits the MN to MAX_UPDATE_RATE).
   */
  readonly #buRate = new PerMemberRateLimiter(HA_BU_RATE_PER_MEMBER, UPDATE_RATE_WINDOW_MS);
  /** Handshake messages per source IP, before any crypto (one host cannot saturate us). */
  readonly #handshakeRate = new HandshakeRateLimiter();
  /** Members' IPv4 home addresses (RFC 5555; [home] ipv4_pool): grants and the data-path map. */
  readonly ipv4: Ipv4HomeAddresses;
  #startedAt = 0;
  #closed = false;
  /** Keys of bindings whose BA waits for Duplicate Address Detection (#detectDuplicates). */
  readonly #dadPending = new Set<string>();
  /** Members that deregistered from the home link: owner key and until when (#noteWentHome). */
  readonly #wentHome = new Map<string, { owner: string; until: number }>();
  /** Discovery contents, home prefix lifetimes and the MPA schedule (RFC 6275 §10.6). */
  readonly #prefixes: HomePrefixes;
  /** Binding changes of the current burst, for the store (binding-persistence.ts). */
  readonly #journal = new BindingJournal();
  /** Members of restored bindings whose channel is not back yet. */
  readonly #restoring = new RestoreSchedule();
  /** Channels to the cluster's other home agents on a virtual home network (ha-peers.ts). */
  readonly #peers: HaPeers | undefined;
  /** Packets of this receive batch from those channels, for the members served here. */
  readonly #fromPeers = new SpanList();
  /** The native express lane's arming (ha-express.ts), when the environment has a lane. What
   *  it carried reaches JS whenever JS runs (a timer, a status request, any callback): nothing
   *  here depends on it sooner. */
  readonly #express: HaExpress | undefined;

  constructor(env: NodeEnvironment, opts: HomeAgentOptions) {
    this.#env = env;
    this.#opts = opts;
    this.#haAddress = parseIpv6(opts.homeAgentAddress);
    this.#homePrefix = parsePrefix(opts.homePrefix);
    this.#anycast = parseIpv6(
      homeAgentAnycast(formatIpv6(this.#homePrefix.address), this.#homePrefix.length),
    );
    this.#prefixes = new HomePrefixes(
      opts,
      this.#homePrefix,
      opts.random ?? systemRandom,
      this.cache.prefixAdvertisements,
    );
    this.#udp = [env.udp4, env.udp6];
    this.#mtu = new TunnelMtu(env, this.drops, {
      underlayMtu: opts.underlayMtu ?? DEFAULT_UNDERLAY_MTU,
      icmpSource6: () => opts.homeAgentAddress,
      store: channelField('mtu'),
      // An idle member's finished path is kept as its size on the channel record (issue 17):
      // only the single-binding channel's, whose bound path holds the state alone.
      parking: {
        pathOf: (s) => haChannelIfAny(s)?.mtuBound?.mtuFor,
        park: (s, state) => {
          const c = haChannelIfAny(s);
          const bound = c?.mtuBound;
          if (typeof c?.keys !== 'string' || bound?.mtu !== state) return false;
          bound.mtu = undefined;
          return true;
        },
      },
    });
    this.ipv4 = new Ipv4HomeAddresses(opts.ipv4Pool);
    this.#express =
      env.express === undefined
        ? undefined
        : new HaExpress(env.express, {
            endpoint: env.endpoint,
            cache: this.cache,
            paths: this.#paths,
            counters: this.counters,
            drops: this.drops,
            lastLocator: (session) => haChannelIfAny(session)?.locator,
            ipv4AddressOf: (key) => this.ipv4.addressOf(key),
            dadPending: (key) => this.#dadPending.has(key),
            capturing: () => env.capture !== undefined,
            hasSocket: (family) => this.#socketFor(family) !== undefined,
            noteTraffic: (session, at) => void this.#mtu.table.noteTraffic(session, at),
          });
    if (opts.cluster !== undefined && opts.forwardToPeers === true) {
      this.#peers = new HaPeers({
        env,
        drops: this.drops,
        mtu: this.#mtu,
        cluster: opts.cluster,
        homePrefix: this.#homePrefix,
        underlayMtu: opts.underlayMtu ?? DEFAULT_UNDERLAY_MTU,
        noteLocator: (session, to) => (haChannel(session).locator = to),
      });
    }
  }

  /**
   * The cluster's live home agents changed (etcd's agents, without us): on a virtual home
   * network each gets a channel for the traffic of the members it serves.
   */
  setClusterPeers(peers: readonly ClusterPeer[]): void {
    this.#expressBegin();
    if (this.#peers === undefined || this.#closed) return;
    this.#peers.setPeers(peers, nodeNow(this.#env));
    this.#rearm();
  }

  /** The HA-to-HA channels and what each forwarded (`mip6 status`). */
  haChannels(): HaChannelStatus[] | undefined {
    return this.#peers?.status();
  }

  /**
   * After a restart, before start(): the bindings of the store come back (issue 20). Expired
   * ones, and ones whose certificate no longer holds them, are dropped (and deleted from the
   * store); the rest go into the cache with their routes and proxy-ND entries, and start() then
   * re-initiates a channel to each member's last locator, paced, each followed by a Binding
   * Refresh Request once it is up. Until then their traffic from the home side is dropped
   * silently ('channel-restoring'), without Destination Unreachable.
   */
  restore(stored: StoredBinding[]): { restored: number; members: number; dropped: number } {
    const now = nodeNow(this.#env);
    const wallMs = (this.#opts.wallClock ?? systemWallClock)();
    let restored = 0;
    let dropped = 0;
    const policy = {
      homePrefix: this.#homePrefix,
      authorityPublicKey: this.#env.endpoint.authorityPublicKey,
      maxLifetimeSeconds: this.#opts.maxLifetimeSeconds,
      isRevoked: this.#opts.isRevoked,
    };
    for (const b of stored) {
      if (this.cache.size >= this.#opts.maxBindings) {
        // The store holds more than this HA may serve: the rest is dropped (not deleted, the
        // store may be the cluster's).
        dropped++;
        this.#env.log.info('binding-not-restored', { hoa: b.homeAddress, why: 'cache-full' });
        continue;
      }
      const v = restoredBinding(b, now, wallMs, policy);
      if (!v.ok) {
        dropped++;
        this.#journal.delete(b.homeAddress);
        this.#env.log.info('binding-not-restored', { hoa: b.homeAddress, why: v.reason });
        continue;
      }
      const entry = this.cache.set(v.entry, now);
      this.#restoring.add(
        entry.ownerKey,
        entry.key,
        entry.locator,
        entry.expiresAt - entry.lifetimeSeconds * 1000,
      );
      void this.#homeLinkAdd(entry.homeAddress);
      restored++;
    }
    void this.#flushStore();
    return { restored, members: this.#restoring.size, dropped };
  }

  /** Starts receiving on the TUN and the sockets. */
  start(): void {
    this.#startedAt = nodeNow(this.#env);
    this.#restoring.start(this.#startedAt);
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
    this.#express?.begin(now);
    const rx = this.#rx;
    const out = rx.open(env.endpoint, batch, now);
    const buf = batch.buf;
    // The BAs of this batch's BUs leave together at its end (SignalingOutbox).
    this.#outbox.hold();
    try {
      this.#receive(socket, batch, out, now);
    } finally {
      const refused = this.#outbox.release();
      if (refused > 0) {
        this.counters.signalingOut -= refused;
        this.drops.add('signaling-send', refused);
      }
    }
    rx.flush(env.tun, buf, this.drops);
    if (this.#fromPeers.count > 0) {
      this.#toMembers(this.#fromPeers.view(buf), true, now);
      this.#fromPeers.clear();
    }
    if (this.#mtu.reportsWaiting(this.#udp)) this.#takeMtuReports(now);
    void this.#flushStore();
    this.#expressEnd();
    this.#rearm();
  }

  /** Outside the packet callbacks and the timer (a reload, a cluster event, a removal, a
   *  status request): the lane is emptied first, and filled again by the next data callback. */
  #expressBegin(): void {
    if (this.#express !== undefined && this.#express.armed > 0) {
      this.#express.begin(nodeNow(this.#env));
    }
  }

  /** The end of a driver callback: the lane gets what still passes every check. */
  #expressEnd(): void {
    const x = this.#express;
    if (x === undefined) return;
    x.end(nodeNow(this.#env)); // the keys' time left counts from here (the arming)
  }

  /** Binding keys of the data path: inner sources from members, destinations from the TUN. */
  readonly #sourceKey = new LastKey();
  readonly #destinationKey = new LastKey();

  /** The locator of the last datagram received (#receive): a plain object, never changed. */
  #lastFrom: Locator | undefined;

  /** The datagrams of one opened batch (see the file comment, underlay -> TUN). */
  #receive(socket: UdpEndpoint, batch: DatagramBatch, out: OpenBatchOutput, now: number): void {
    const env = this.#env;
    const n = batch.count;
    const rx = this.#rx;
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
      // One locator object for the datagram: the channel's last locator, the signaling source
      // and the path bookkeeping all read it. `local`, our address the member sent to, is where
      // everything back to it leaves from. The previous datagram's object when it names the
      // same locator (a member's run, a lone packet): nothing made per datagram (issue #16).
      // These objects are never changed in place, so sharing one is safe.
      const address = batch.remoteAddress(i);
      const port = batch.remotePort(i);
      const local = replySource(batch, i);
      let from = this.#lastFrom;
      if (
        from === undefined ||
        from.port !== port ||
        from.address !== address ||
        from.local !== local
      ) {
        from = { address, port, local };
        this.#lastFrom = from;
      }
      // Stored only when it changed (not once per packet): a new address or port, or (another
      // home agent) a new address of ours it reached.
      const channel = haChannel(session);
      const last = channel.locator;
      if (
        last === undefined ||
        last.port !== from.port ||
        last.address !== from.address ||
        (last.local !== from.local && session.peerCertificate?.role === 'ha')
      ) {
        channel.locator = from;
      }
      // else a member's locator at another of our addresses: the channel's own sends (rekeys)
      // keep their source until a challenge from there is answered (BindingPaths.reachedAt).
      if (session.peerCertificate?.role === 'ha') {
        // Another home agent of the cluster (the endpoint accepts role ha only then): data for
        // a member served here, nothing else; never signaling, never the selector's authority.
        this.#fromPeer(session, result === OpenResult.SIGNALING, buf, off, len);
        continue;
      }
      if (result === OpenResult.SIGNALING && isPathMtuMessage(buf, off)) {
        // A path MTU probe (answered to where it came from) or an ack of ours (issue #21).
        this.#mtu.onMessage(session, buf, off, len, now, (m) =>
          sendSealed(env.endpoint, session, m, socket, from, now),
        );
        continue;
      }
      if (len === PATH_MESSAGE_LEN && result === OpenResult.SIGNALING) {
        this.#onPathMessage(session, buf, off, len); // not an IPv6 packet (path-validation.ts)
        continue;
      }
      // An inner IPv4 packet (RFC 5555 IPv4 home address) is only ever data.
      const v4 = len >= IPV4_HEADER_LEN && buf[off]! >> 4 === IPV4_VERSION;
      if (!v4 && (len < IPV6_HEADER_LEN || buf[off]! >> 4 !== 6)) {
        this.drops.add('malformed-inner');
        continue;
      }
      // Signaling for us is what the member marked as its own (DataKind.SIGNALING); a Mobility
      // Header or DHAAD/MPS it merely forwards (payload) may have been written by anybody.
      const own = !v4 && result === OpenResult.SIGNALING;
      if (!v4 && !own && this.#forUs(buf, off) && mobilitySignal(buf, off, len) !== undefined) {
        this.drops.add('forwarded-signaling');
        continue;
      }
      if (
        own &&
        ipv6Equal(buf, off + IPV6_DST_OFF, this.#haAddress, 0) &&
        mayCarryMobilityHeader(buf, off)
      ) {
        const packet = buf.slice(off, off + len);
        this.#capture(packet, now);
        this.#onSignaling(packet, session, from, now, this.#onHomeLink(socket, batch, i));
        continue;
      }
      // The selector check: the inner source is a home address (IPv6, or the IPv4 one granted
      // to that binding) bound to this very channel.
      const key = v4
        ? this.ipv4.bindingKeyAt(buf, off + IPV4_SRC_OFF)
        : this.#sourceKey.at(buf, off + IPV6_SRC_OFF);
      const entry = key === undefined ? undefined : this.cache.getByKey(key);
      if (entry === undefined) {
        this.drops.add(v4 ? 'no-binding-ipv4' : 'no-binding');
        continue;
      }
      const bound = this.#paths.of(entry); // the entry in hand: no second cache lookup
      if (bound === undefined || bound.session !== session) {
        this.drops.add('selector');
        continue;
      }
      if (this.#dadPending.size > 0 && this.#dadPending.has(entry.key)) {
        // Not registered until DAD says the address is free: nothing is forwarded for it yet
        // (answers would meet a home address without route or proxy entry).
        this.drops.add('dad-pending');
        continue;
      }
      this.#paths.credit(bound, from, len);
      const moved = this.#paths.reachedAt(bound, from, now);
      if (moved !== undefined) this.#sendChallenge(moved, now);
      // From neither the data locator nor the one of the last BU (whose path is being
      // validated): a NAT rebinding, or a move whose BU is still on its way.
      const dataTo = bound.data ?? bound.locator;
      if (
        (dataTo.port !== from.port || dataTo.address !== from.address) &&
        (bound.locator.port !== from.port || bound.locator.address !== from.address)
      ) {
        this.#rebindHint(entry, bound, from, now);
      }
      if (own && this.#forUs(buf, off) && isDiscoveryRequest(buf, off, len)) {
        this.#onDiscovery(buf.slice(off, off + len), entry.key, bound, now);
        continue;
      }
      this.cache.recordIn(entry, len, now);
      this.counters.tunnelPacketsIn++;
      this.counters.tunnelBytesIn += len;
      if (env.capture) this.#capture(buf.subarray(off, off + len), now);
      rx.toTun(off, len);
      // Plain payload from the binding's validated locator, at our address it was bound at:
      // this channel may go into the express lane (ha-express.ts checks the rest).
      if (
        result === OpenResult.DATA &&
        this.#express !== undefined &&
        bound.data === bound.locator &&
        from.port === bound.port &&
        from.address === bound.address &&
        from.local === bound.local
      ) {
        this.#express.noteRx(entry, session, v4, now);
      }
    }
  }

  /** A datagram of another home agent's channel: staged for its member if served here. */
  #fromPeer(
    session: PeerSession,
    ownSignaling: boolean,
    buf: Uint8Array,
    off: number,
    len: number,
  ): void {
    const peers = this.#peers;
    if (peers === undefined) {
      this.drops.add('ha-forward-disabled');
      return;
    }
    const served = (): boolean => {
      const entry = this.cache.getByKey(keyOf(buf, off + IPV6_DST_OFF));
      return (
        entry !== undefined &&
        this.#paths.of(entry) !== undefined &&
        !this.#dadPending.has(entry.key)
      );
    };
    if (peers.receive(session, ownSignaling, buf, off, len, served)) this.#fromPeers.push(off, len);
  }

  /** True when the packet's destination is our home-prefix address or the DHAAD anycast. */
  #forUs(buf: Uint8Array, off: number): boolean {
    return (
      ipv6Equal(buf, off + IPV6_DST_OFF, this.#haAddress, 0) ||
      ipv6Equal(buf, off + IPV6_DST_OFF, this.#anycast, 0)
    );
  }

  #onHandshake(socket: UdpEndpoint, batch: DatagramBatch, i: number, now: number): void {
    const locator: Locator = {
      address: batch.remoteAddress(i),
      port: batch.remotePort(i),
      local: replySource(batch, i),
    };
    // Initiations are limited per source before any crypto. Responses and cookie replies answer
    // our own initiations (a restart re-initiating every stored binding, many members behind one
    // NAT address): the endpoint drops any whose receiver SPI is not a pending one of ours
    // before any crypto, so they need no limit, and one would throttle a restart to 20/s per
    // address.
    if (batch.packet(i)[0] === 1 && !this.#handshakeRate.allow(locator.address, now)) {
      this.drops.add('handshake-rate-limited');
      return;
    }
    const datagram = batch.packet(i).slice();
    this.#endpointDeadline = 0; // handshake state changed: poll the endpoint on the next turn
    const r = this.#env.endpoint.receive(datagram, now, undefined, formatLocator(locator));
    switch (r.kind) {
      case 'reply':
        socket.send(r.data, locator.address, locator.port, locator.local);
        break;
      case 'established':
        haChannel(r.session).locator = locator;
        if (r.session.peerCertificate?.role === 'ha') {
          // Another home agent's channel: no binding is ever restored or refreshed on it.
          if (r.reply) socket.send(r.reply, locator.address, locator.port, locator.local);
          this.#peers?.established(r.session, locator, r.reply === undefined, now);
          break;
        }
        this.#paths.handshakeCompleted(r.session, locator, now);
        if (r.reply) socket.send(r.reply, locator.address, locator.port, locator.local);
        this.#env.log.info('channel', {
          peer: r.session.peerName ?? '?',
          locator: formatLocator(locator),
        });
        this.#rebindRestored(r.session, locator, now);
        this.#unbound.add(r.session, locator, now);
        break;
      case 'cookie':
      case 'data':
      case 'drop':
        break;
    }
  }

  /**
   * A member finished a handshake UNBOUND_GRACE_MS ago and still holds no binding here. After a
   * restart of this HA without [home] state (the binding cache and the channels live in memory
   * only) its MN still believes it is registered and would refresh only near the end of its
   * lifetime; a Binding Refresh Request (RFC 6275 §6.1.2) over the new channel asks for a BU now.
   * A registering MN has sent its BU by then, so it gets none (unbound-channels.ts). Only for
   * the single home addresses (/128) of the member's certificate, at most 4.
   */
  #refreshIfUnbound(session: PeerSession, locator: Locator, now: number): void {
    if (session.peerCertificate === null) return;
    for (const hoa of unboundHomeAddresses(session.peerCertificate, this.#homePrefix, this.cache)) {
      this.#sendRefreshRequest(session, hoa, locator, now);
      this.#env.log.info('refresh-request', { hoa, why: 'channel-without-binding' });
    }
  }

  /**
   * A channel with the owner of restored bindings is up (our initiation answered, or its own):
   * the bindings carry traffic again on it, and a Binding Refresh Request asks for a BU now, so
   * the member learns of the restart and its BU repairs anything the store missed.
   */
  #rebindRestored(session: PeerSession, locator: Locator, now: number): void {
    const member = this.#restoring.take(session.peerKey);
    if (member === undefined) return;
    // The store is not trusted: the certificate this handshake proved must hold each address
    // (not the stored one), and an HA's channel never carries a member's binding.
    const cert = session.peerCertificate;
    if (cert === null || cert.role === 'ha') return;
    for (const key of member.keys) {
      const entry = this.cache.getByKey(key);
      if (entry === undefined || this.#paths.has(key)) continue;
      if (entry.owner !== session.peerKey) continue;
      if (!certificateAllows(cert, entry.homeAddress)) {
        // A stored binding this member's certificate does not hold (a forged store entry):
        // it goes, so the address's holder can register it again.
        this.drops.add('restore-not-certified');
        this.cache.delete(entry.homeAddress, now);
        void this.#removeBinding(entry, 'restore-not-certified');
        continue;
      }
      const challenge = this.#paths.bind(entry, session, 0, now);
      if (challenge !== undefined) this.#sendChallenge(challenge, now);
      this.#sendRefreshRequest(session, entry.homeAddress, locator, now);
      this.#env.log.info('binding-restored', {
        hoa: entry.homeAddress,
        member: entry.peerName,
        locator: formatLocator(locator),
      });
    }
  }

  /** Paced initiations to the members of restored bindings; unanswered ones given up. */
  #pollRestore(now: number): void {
    const { initiate, giveUp } = this.#restoring.poll(now);
    const endpoint = this.#env.endpoint;
    for (const m of initiate) {
      const existing = endpoint.session(m.ownerKey);
      if (existing?.established === true) continue; // it came back by itself
      const sock = this.#socketFor(m.locator.address.includes(':') ? 6 : 4);
      if (sock === undefined) continue;
      const init = endpoint.initiate(m.ownerKey, now);
      const session = endpoint.session(m.ownerKey);
      if (session !== undefined) haChannel(session).locator = m.locator;
      m.session = session;
      sock.send(init, m.locator.address, m.locator.port);
      this.#endpointDeadline = 0;
    }
    for (const m of giveUp) {
      const session = m.session;
      if (session === undefined || session.established) continue;
      const channel = haChannelIfAny(session);
      if (channel !== undefined) channel.locator = undefined;
      endpoint.closeSession(session);
      this.drops.add('restore-unanswered');
      this.#env.log.info('restore-unanswered', { locator: formatLocator(m.locator) });
    }
  }

  /** Hands the burst's binding changes to the store in one write. */
  #flushStore(): Promise<void> {
    const store = this.#opts.store;
    if (store === undefined || this.#journal.size === 0) return Promise.resolve();
    const changes = this.#journal.take();
    return store.write(changes).catch((err: unknown) => {
      this.drops.add('store-write', changes.put.length + changes.delete.length);
      this.#env.log.error('store', { error: err instanceof Error ? err.message : String(err) });
    });
  }

  /** The binding as the store keeps it, in this burst's write. */
  #persist(entry: BindingCacheEntry, session: PeerSession): void {
    if (this.#opts.store === undefined || session.peerCertificate === null) return;
    this.#journal.put(toStoredBinding(entry, session.peerCertificate.raw));
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

  readonly #logEnabled = (level: LogLevel): boolean => this.#env.log.enabled(level);

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
    const verdict = checkMobilityHeader(decoded);
    if (verdict.action === 'drop') {
      this.drops.add(verdict.reason === 'not-mobility' ? 'not-signaling' : verdict.reason);
      return;
    }
    this.counters.signalingIn++;
    if (verdict.action !== 'accept') {
      // RFC 6275 §9.2: Parameter Problem or Binding Error status 2, each rate-limited.
      this.drops.add(verdict.reason);
      const icmp = verdict.action === 'parameterProblem';
      if (!(icmp ? this.#icmpErrors : this.#bindingErrors).allow(now)) return;
      if (icmp) this.counters.icmpErrorsSent++;
      const answer = mobilityHeaderAnswer(verdict, packet, this.#opts.homeAgentAddress);
      this.#sendSignaling(session, answer, locator, now);
      return;
    }
    const mh = verdict.message;
    if (mh.kind !== 'bindingUpdate') {
      this.drops.add(`unexpected-${mh.kind}`);
      return;
    }
    const cert = session.peerCertificate;
    if (cert === null) {
      this.drops.add('no-certificate');
      return;
    }
    if (!this.#buRate.allow(cert.name, now)) {
      this.drops.add('bu-rate-limited');
      return;
    }
    if (
      mh.lifetimeUnits !== 0 &&
      this.#dadPending.size > 0 &&
      this.#dadPending.has(keyOfText(decoded.homeAddress ?? decoded.source))
    ) {
      // The BA of the BU that created this binding waits for DAD; the MN's retransmission
      // (InitialBindackTimeoutFirstReg 1.5 s > DAD's 1 s) finds it settled. A deregistration
      // (or a returning-home proof) is answered at once: it ends the binding or is refused.
      this.drops.add('dad-pending');
      return;
    }
    let removed: Promise<void> | undefined;
    let dad: Promise<'unique' | 'taken' | 'gone'> | undefined;
    const elsewhere = this.#servedElsewhere(decoded.homeAddress ?? decoded.source);
    const input: HomeRegistrationInput = {
      bu: mh,
      innerSource: decoded.source,
      innerDestination: decoded.destination,
      locator,
      onHomeLink,
      peer: {
        name: cert.name,
        // The owner of what this BU creates: its key as the sessions Map holds it (32 bytes as
        // a one-byte string; the bytes only when asked).
        owner: session.peerKey,
        get publicKey() {
          return session.peerPublicKey;
        },
        allowsHomeAddress: (hoa) => certificateAllows(cert, hoa),
      },
      config: this.#prefixes.registrationConfig,
    };
    // Set only when present (no conditional spreads on the per-BU path).
    if (decoded.homeAddress !== undefined) input.homeAddressOption = decoded.homeAddress;
    if (elsewhere !== undefined) input.elsewhere = elsewhere;
    const result = processHomeBindingUpdate(this.cache, input, now);
    const report = registrationReport(
      result,
      mh,
      cert.name,
      decoded.homeAddress ?? decoded.source,
      locator,
      this.#logEnabled,
    );
    if (report?.drop !== undefined) this.drops.add(report.drop);
    if (report !== undefined) env.log[report.level](report.event, report.fields);
    if (result.action === 'drop') return;
    const entry = result.entry;
    if (result.change === 'created' && elsewhere !== undefined && entry) {
      env.log.info('taken-over', {
        hoa: entry.homeAddress,
        member: cert.name,
        from: elsewhere.servingHa,
        seq: entry.sequence,
      });
    }
    if ((result.change === 'created' || result.change === 'updated') && entry) {
      // A BU after an unsolicited MPA acknowledges it (RFC 6275 §10.6.2, §11.4.3).
      if (this.#prefixes.onBindingUpdate(entry.key, now)) {
        env.log.info('mobile-prefix-acknowledged', { hoa: entry.homeAddress });
      }
      const known = this.#paths.has(entry.key);
      this.#persist(entry, session);
      // The channel's last locator, when it is the binding's (the usual case), is the binding's
      // object: one locator and address text per member, not two (issue 17).
      const channel = haChannel(session);
      const heard = channel.locator;
      if (
        heard !== undefined &&
        heard !== entry.locator &&
        heard.address === entry.locator.address &&
        heard.port === entry.locator.port &&
        heard.local === entry.locator.local
      ) {
        channel.locator = entry.locator;
      }
      const challenge = this.#paths.bind(entry, session, packet.length, now);
      if (challenge !== undefined) this.#sendChallenge(challenge, now);
      this.#searchPathMtu(entry.key, now);
      const leftHome = this.#wentHome.get(entry.key);
      this.#wentHome.delete(entry.key);
      const holder =
        leftHome !== undefined && leftHome.until > now && leftHome.owner === entry.owner;
      // A member taken over from another HA of the cluster (issue 18): that HA's proxy ND
      // answers for the address until it sees the takeover (or its host is gone): no DAD.
      const runsDad = this.#opts.homeLink?.detectDuplicates !== undefined;
      if (
        result.change === 'created' &&
        !onHomeLink &&
        !holder &&
        elsewhere === undefined &&
        runsDad
      ) {
        dad = this.#detectDuplicates(entry, mh.flags.L);
      } else if (result.change === 'created' || !known) {
        // The branches that skip DAD where it runs (a cluster takeover, a member that went
        // home, a restored binding's first BU) vouch for the home address only: its
        // link-local fe80::<IID> (the L flag) was never checked, so it is not proxied there.
        // Without DAD configured at all, L is honoured as before.
        void this.#homeLinkAdd(entry.homeAddress, mh.flags.L && !runsDad);
      }
    } else if (result.change === 'deleted' && entry) {
      removed = this.#removeBinding(entry, 'deregistration');
      if (onHomeLink) this.#noteWentHome(entry, now);
    }
    // RFC 5555 IPv4 home address: only for a BU of the member's own channel that was accepted.
    const v4 = answerIpv4HomeAddress(this.ipv4, result, mh, cert);
    if (v4 !== undefined) env.log.info('ipv4-home-address', v4);
    if (result.ack && result.reply) {
      const ba = encodeMobilityPacket({
        source: result.reply.innerSource,
        destination: result.reply.innerDestination,
        message: result.ack,
      });
      const to = result.reply.locator;
      if (dad !== undefined) {
        // A new binding on a real home link: the BA waits for DAD; 134 if the address is taken.
        const { ack, reply } = result;
        void dad.then((outcome) => {
          if (outcome === 'gone') return;
          const failed = { ...ack, status: BA_STATUS.DAD_FAILED, lifetimeUnits: 0, options: [] };
          const packet =
            outcome === 'unique'
              ? ba
              : encodeMobilityPacket({
                  source: reply.innerSource,
                  destination: reply.innerDestination,
                  message: failed,
                });
          this.#sendSignaling(session, packet, to, nodeNow(this.#env));
        });
      } else if (removed === undefined) {
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
   * In a cluster (issue 18): the binding another home agent serves for `hoa` when this one
   * holds none, as etcd last said; `unverified` while etcd is unreachable.
   */
  #servedElsewhere(hoa: string): ClusterBindingView | undefined {
    const cluster = this.#opts.cluster;
    if (cluster === undefined || this.cache.get(hoa) !== undefined) return undefined;
    const b = cluster.binding(hoa);
    if (b === undefined || b.servingHa === cluster.member) return undefined;
    return {
      servingHa: b.servingHa,
      ownerKey: b.ownerKey,
      sequence: b.sequence,
      unverified: cluster.health.state !== 'ok',
    };
  }

  /**
   * Another home agent of the cluster took `hoa` over (its BU went there, with a newer
   * sequence number): this one drops the binding, its route and proxy-ND entry (only the
   * serving home agent defends a home address on the home link). The store already knows.
   */
  clusterTookOver(hoa: string, by: string): void {
    this.#expressBegin();
    const entry = this.cache.get(hoa);
    if (entry === undefined || this.#closed) return;
    this.cache.delete(hoa, nodeNow(this.#env));
    void this.#removeBinding(entry, `served-by-${by}`);
    void this.#flushStore();
    this.#rearm();
  }

  #sendChallenge({ session, to, token }: ChallengeToSend, now: number): void {
    this.counters.pathChallenges++;
    const message = encodePathMessage(PATH_CHALLENGE, token);
    if (!sendSealed(this.#env.endpoint, session, message, this.#socketFor(to.family), to, now)) {
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
    const validated = this.#paths.onResponse(session, m.token);
    if (validated === undefined) {
      this.drops.add('path-response-unmatched');
      return;
    }
    if (validated.source !== undefined) {
      // The member receives what we send from that address: everything to it leaves from there.
      const channel = haChannel(session);
      const last = channel.locator;
      if (last !== undefined && formatLocator(last) === validated.locator) {
        channel.locator = { ...last, local: validated.source };
      }
      for (const key of validated.keys) {
        const hoa = this.cache.getByKey(key)?.homeAddress;
        this.#env.log.info('source-validated', { hoa, source: validated.source });
      }
      this.#rearm();
      return;
    }
    for (const key of validated.keys) {
      const hoa = this.cache.getByKey(key)?.homeAddress;
      this.#env.log.info('path-validated', { hoa, locator: validated.locator });
      this.#searchPathMtu(key, nodeNow(this.#env));
    }
    this.#rearm();
  }

  /** A Binding Refresh Request for `hoa` (RFC 6275 §6.1.2), sealed to `to`. */
  #sendRefreshRequest(session: PeerSession, hoa: string, to: Locator, now: number): void {
    const packet = encodeMobilityPacket({
      source: this.#opts.homeAgentAddress,
      destination: hoa,
      message: { kind: 'bindingRefreshRequest', options: [] },
    });
    this.#sendSignaling(session, packet, to, now);
  }

  #sendSignaling(session: PeerSession, packet: Uint8Array, to: Locator, now: number): void {
    const family = to.address.includes(':') ? 6 : 4;
    this.#capture(packet, now);
    const socket = this.#socketFor(family);
    if (
      socket !== undefined &&
      this.#outbox.seal(this.#env.endpoint, session, packet, socket, to, now)
    ) {
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
  #rebindHint(entry: BindingCacheEntry, bound: BoundPath, from: Locator, now: number): void {
    if (!this.#paths.rebindHintDue(entry.key, now)) return;
    this.#sendRefreshRequest(bound.session, entry.homeAddress, from, now);
    this.#env.log.info('rebind-hint', {
      hoa: entry.homeAddress,
      bound: formatLocator(bound.locator),
      from: formatLocator(from),
    });
  }

  /** DHAAD Request or Mobile Prefix Solicitation from a bound member: answer in its channel. */
  #onDiscovery(packet: Uint8Array, key: string, bound: BoundPath, now: number): void {
    this.#capture(packet, now);
    const r = this.#prefixes.answer(packet, key, now);
    if (r === 'malformed') this.drops.add('discovery-malformed');
    if (r === 'malformed' || r === null) return;
    this.counters.signalingIn++;
    this.#sendSignaling(bound.session, r.reply, bound.locator, now);
    this.#env.log.info(r.event, { hoa: r.hoa });
  }

  /** What DHAAD and MPAs currently announce. */
  get discovery(): DiscoveryConfig {
    return this.#prefixes.discovery;
  }

  /**
   * New home agents list and advertised prefixes (a reloaded ha.toml). When they differ from
   * the current ones, every registered member gets an unsolicited MPA (RFC 6275 §10.6.2).
   * Returns whether anything changed.
   */
  setDiscovery(cfg: DiscoveryConfig): boolean {
    this.#expressBegin();
    this.#configuredDiscovery = cfg;
    return this.#applyDiscovery(
      this.#clusterAgents === undefined ? cfg : { ...cfg, homeAgents: this.#clusterAgents },
    );
  }

  /** The discovery contents of ha.toml (the live cluster's home agents replace its list). */
  #configuredDiscovery: DiscoveryConfig | undefined;
  #clusterAgents: readonly HomeAgentInfo[] | undefined;

  /**
   * In a cluster (issue 18): the live home agents from etcd are what DHAAD Replies and MPAs
   * list, instead of [[home.agents]]; a change reaches every member in an unsolicited MPA.
   */
  setClusterAgents(agents: readonly HomeAgentInfo[]): boolean {
    this.#expressBegin();
    if (this.#closed) return false;
    this.#clusterAgents = agents;
    const cfg = this.#configuredDiscovery ?? this.#prefixes.discovery;
    this.#configuredDiscovery = cfg;
    return this.#applyDiscovery({ ...cfg, homeAgents: agents });
  }

  #applyDiscovery(cfg: DiscoveryConfig): boolean {
    if (!this.#prefixes.set(cfg)) return false;
    this.advertisePrefix();
    // Bindings never outlive the home prefix (RFC 6275 §10.3.1): shortened, or removed at 0.
    const now = nodeNow(this.#env);
    const valid = this.#prefixes.homePrefixLifetimes().validLifetime;
    const { shortened, removed } = limitToHomePrefixLifetime(this.cache, valid, now);
    for (const e of shortened) {
      this.#env.log.info('home-prefix-lifetime', { hoa: e.homeAddress, lifetime: valid });
      const bound = this.#paths.get(e.key);
      if (bound !== undefined) this.#persist(e, bound.session);
    }
    for (const e of removed) void this.#removeBinding(e, 'home-prefix-expired');
    void this.#flushStore();
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
    this.#expressBegin();
    const now = nodeNow(this.#env);
    for (const entry of [...this.cache.entries()]) {
      // By the binding's owner key: also a restored binding whose channel is not back yet.
      if (!isRevoked(entry.ownerKey)) continue;
      this.cache.delete(entry.homeAddress, now);
      void this.#removeBinding(entry, 'revoked');
    }
    const names: string[] = [];
    for (const session of this.#env.endpoint.allSessions()) {
      if (!isRevoked(session.peerPublicKey)) continue;
      const channel = haChannelIfAny(session);
      if (channel !== undefined) channel.locator = undefined;
      this.#paths.forgetSession(session);
      this.#env.endpoint.closeSession(session);
      names.push(session.peerName ?? '?');
    }
    void this.#flushStore();
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
    const members = [...this.cache.entries()]
      .filter((e) => this.#paths.of(e) !== undefined)
      .map((e) => ({ key: e.key, hoa: e.homeAddress }));
    this.#sendAdvertisements(this.#prefixes.advertise(members, now), now);
    this.#rearm();
  }

  #sendAdvertisements(mpas: AdvertisementToSend[], now: number): void {
    for (const a of mpas) {
      const bound = this.#paths.get(a.key);
      if (bound === undefined) continue;
      this.#sendSignaling(bound.session, a.packet, bound.locator, now);
      if (a.why !== 'retransmission') {
        this.#env.log.info('mobile-prefix-unsolicited', { hoa: a.hoa, why: a.why });
      }
    }
  }

  #removeBinding(entry: BindingCacheEntry, why: string): Promise<void> {
    this.#expressBegin();
    this.ipv4.release(entry.key);
    if (this.#opts.store !== undefined) this.#journal.delete(entry.homeAddress);
    this.#prefixes.forget(entry.key);
    const bound = this.#paths.of(entry); // out of the cache already: from the entry
    this.#paths.remove(entry);
    this.#forgetPathMtu(bound);
    const removed = this.#homeLinkRemove(entry.homeAddress);
    this.#env.log.info(why, { hoa: entry.homeAddress, member: entry.peerName });
    return removed;
  }

  /**
   * Duplicate Address Detection for a binding just created (RFC 6275 §10.3.1): for its home
   * address, and its link-local address too when the BU had L set. Resolves true when nobody
   * on the home link answered: the home link is programmed and the BA may leave. Otherwise the
   * binding goes again (BA 134). A failing probe is logged and counts as no answer: the HA's
   * own trouble must not refuse members.
   */
  #detectDuplicates(
    entry: BindingCacheEntry,
    linkLocalToo: boolean,
  ): Promise<'unique' | 'taken' | 'gone'> {
    const hoa = entry.homeAddress;
    const addresses = linkLocalToo ? [hoa, linkLocalOf(hoa)] : [hoa];
    this.#dadPending.add(entry.key);
    const probe = this.#opts.homeLink?.detectDuplicates?.(addresses) ?? Promise.resolve(null);
    return probe
      .catch((err: unknown) => {
        this.#env.log.error('dad-probe', { hoa, error: String(err) });
        return null;
      })
      .then((taken) => {
        this.#dadPending.delete(entry.key);
        // Deregistered (or replaced) while DAD ran: that BU had its own answer.
        if (this.#closed || this.cache.getByKey(entry.key) !== entry) return 'gone';
        if (taken === null) {
          // The BA leaves once the route and proxy entry are in place: the member's first
          // packets (a HoTI's answer, say) come back at once and must not meet an unrouted
          // home address (the kernel would resolve it on the home link, fail, and answer
          // Address Unreachable).
          return this.#homeLinkAdd(hoa, linkLocalToo).then(() => 'unique' as const);
        }
        this.counters.dadFailed++;
        this.#env.log.warn('dad-failed', { hoa, taken, member: entry.peerName });
        this.cache.delete(hoa, nodeNow(this.#env));
        void this.#removeBinding(entry, 'dad-failed');
        return 'taken';
      });
  }

  /**
   * The member came home (its deregistration arrived on the home link): it holds the address
   * there itself. When it leaves again, its new binding skips DAD (#detectDuplicates), or the
   * move away would wait a whole second for an answer that could only come from the member
   * itself. Deviation from RFC 6275 §10.3.1 (DAD for every new binding), within
   * WENT_HOME_DAD_SKIP_MS and for the same owner key only.
   */
  #noteWentHome(entry: BindingCacheEntry, now: number): void {
    if (this.#wentHome.size >= this.#opts.maxBindings) {
      const oldest = this.#wentHome.keys().next().value;
      if (oldest !== undefined) this.#wentHome.delete(oldest);
    }
    this.#wentHome.set(entry.key, { owner: entry.owner, until: now + WENT_HOME_DAD_SKIP_MS });
  }

  /** Route and proxy entry for `hoa`; resolves once they are in place (errors are logged). */
  #homeLinkAdd(hoa: string, linkLocalToo = false): Promise<void> {
    const alsoDefend = linkLocalToo ? [linkLocalOf(hoa)] : [];
    return (this.#opts.homeLink?.bindingAdded(hoa, alsoDefend) ?? Promise.resolve()).catch(
      (err: unknown) => {
        this.#env.log.error('home-link', { hoa, error: String(err) });
      },
    );
  }

  #homeLinkRemove(hoa: string): Promise<void> {
    return (this.#opts.homeLink?.bindingRemoved(hoa) ?? Promise.resolve()).catch((err: unknown) => {
      this.#env.log.error('home-link', { hoa, error: String(err) });
    });
  }

  // ---- TUN -> underlay -------------------------------------------------------------------

  #onTunPackets(batch: PacketBatch): void {
    const now = nodeNow(this.#env);
    this.#express?.begin(now);
    // An ICMP error or a refused send about our last datagrams: the path shrank (issue #21).
    // Looked at here too: a sender whose data vanishes gets no answers to trigger a receive.
    if (this.#mtu.reportsWaiting(this.#udp)) this.#takeMtuReports(now);
    this.#toMembers(batch, false, now);
    this.#expressEnd();
    this.#rearm();
  }

  /**
   * Packets for members, sealed in place in runs per binding (each packet needs
   * DATA_HEADER_LEN bytes before it and a tag's after). From the TUN, a destination another
   * home agent of the cluster serves goes to that one (ha-peers.ts); from another home
   * agent's channel (`fromPeer`) only members served here are reached.
   */
  /**
   * Seals and sends the writer's run to the member of `bound` (its data locator). A method, not
   * a closure made per batch: the packet path stays in optimized code (issue #16).
   */
  #sendRun(bound: BoundPath, buf: Uint8Array, now: number): void {
    const writer = this.#writer;
    const n = writer.count;
    if (n === 0) return;
    const to = this.#paths.dataLocator(bound, writer.bytes);
    const sock = to === undefined ? undefined : this.#socketFor(to.family);
    if (to === undefined || sock === undefined) {
      this.drops.add(to === undefined ? 'path-unvalidated' : 'no-socket', n);
      writer.clear();
      return;
    }
    const sent = writer.flush(this.#env.endpoint, bound.session, buf, sock, to, now);
    if (sent < n) this.drops.add(writer.lastSealed ? 'udp-send' : 'no-keys', n - sent);
  }

  #toMembers(batch: PacketSpans, fromPeer: boolean, now: number): void {
    const env = this.#env;
    const buf = batch.buf;
    const writer = this.#writer;
    writer.clear();
    let runExtra: BoundPath | undefined;
    for (let i = 0; i < batch.count; i++) {
      const off = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      const v4 = len >= IPV4_HEADER_LEN && buf[off]! >> 4 === IPV4_VERSION;
      if (!v4 && (len < IPV6_HEADER_LEN || buf[off]! >> 4 !== 6)) {
        this.drops.add('tun-not-ipv6');
        continue;
      }
      // To a member's IPv6 home address, or its IPv4 one (RFC 5555): the binding that holds it.
      const key = v4
        ? this.ipv4.bindingKeyAt(buf, off + IPV4_DST_OFF)
        : this.#destinationKey.at(buf, off + IPV6_DST_OFF);
      const entry = key === undefined ? undefined : this.cache.getByKey(key);
      const extra = entry === undefined ? undefined : this.#paths.of(entry);
      if (v4 && extra === undefined) {
        this.drops.add('unregistered-ipv4');
        continue;
      }
      if (entry !== undefined && extra === undefined) {
        this.drops.add('channel-restoring'); // restored, its channel not back yet: no ICMP
        continue;
      }
      if (entry === undefined || extra === undefined) {
        if (buf[off + IPV6_DST_OFF] === 0xff) {
          this.drops.add('multicast'); // MLD/ND of the TUN itself: nothing to tunnel
          continue;
        }
        if (this.#peers?.forward(buf, off, len, fromPeer, now) === true) continue;
        if (fromPeer) {
          this.drops.add('ha-forward-not-served'); // no ICMP back into the peer's channel
          continue;
        }
        this.drops.add('unregistered');
        this.#unreachable(buf.subarray(off, off + len), now);
        continue;
      }
      // Mobility signaling for a member travels only as our own (DataKind.SIGNALING), never
      // relayed from the home side or from another member; HoTI/HoT are the exception (RFC
      // 6275 §5.2.5 routes them through us). No kernel Redirects into a channel either.
      const sig = v4 ? undefined : mobilitySignal(buf, off, len);
      if (sig !== undefined && sig !== 'rr') {
        this.drops.add(sig === 'redirect' ? 'redirect-to-member' : 'signaling-to-member');
        continue;
      }
      if (!this.#fitsPath(extra, buf, off, len, now)) continue;
      if (extra !== runExtra) {
        if (runExtra !== undefined) this.#sendRun(runExtra, buf, now);
        runExtra = extra;
      }
      if (env.capture) this.#capture(buf.subarray(off, off + len), now);
      this.cache.recordOut(entry, len, now);
      this.counters.tunnelPacketsOut++;
      this.counters.tunnelBytesOut += len;
      writer.push(off, len);
      if (this.#express !== undefined) this.#express.noteTx(entry, extra.session, v4, now);
    }
    if (runExtra !== undefined) this.#sendRun(runExtra, buf, now);
    this.#peers?.flush(buf, now);
  }

  // ---- path MTU (issue #21, roles/tunnel-mtu.ts) ------------------------------------------

  /**
   * The path MTU state of the binding's current locator (made when the locator changed), once
   * that locator is validated: probes never go to a locator that has not shown it is the
   * member's (path-validation.ts). Until then the channel's previous state, or the base.
   */
  #mtuOf(bound: BoundPath, now: number): PathMtuState {
    if (bound.data !== bound.locator) {
      return this.#mtu.table.get(bound.session) ?? this.#mtuBase;
    }
    if (bound.mtu === undefined || bound.mtuFor !== bound.locator) {
      bound.mtu = this.#mtu.path(bound.session, bound.locator, now);
      bound.mtuFor = bound.locator;
      haChannel(bound.session).mtuBound = bound;
    }
    return bound.mtu;
  }

  /**
   * False when the inner packet does not fit the binding's path (a Packet Too Big went into
   * the TUN instead); a TCP SYN's MSS is clamped to the path.
   */
  #fitsPath(bound: BoundPath, buf: Uint8Array, off: number, len: number, now: number): boolean {
    const path = this.#mtuOf(bound, now);
    // Payload on this path: its confirmations go on (or resume: idle paths are not probed).
    if (!path.used) this.#mtu.table.noteTraffic(bound.session, now);
    const max = path.maxInner;
    if (len > max) {
      this.#mtu.tooBig(bound.session, buf, off, len, max, now);
      return false;
    }
    if (buf[off + (buf[off]! >> 4 === 6 ? 6 : 9)] === TCP) this.#mtu.clamp(buf, off, len, max);
    return true;
  }

  /**
   * A binding's locator carries data now (validated): its path MTU search starts at once, so
   * it is done before the first full-size packet (else that one meets the base, 1280).
   */
  #searchPathMtu(key: string, now: number): void {
    const bound = this.#paths.get(key);
    if (bound === undefined || bound.data !== bound.locator) return;
    const table = this.#mtu.table;
    if (table.isParked(bound.session)) {
      // Parked at this locator (a refresh BU): it stays so until payload, as the state did.
      if (table.locatorOf(bound.session) === formatLocator(bound.locator)) {
        bound.mtuFor = bound.locator;
        haChannel(bound.session).mtuBound = bound;
        return;
      }
    }
    this.#mtuOf(bound, now);
  }

  /** Probes due: to each member's current locator, sealed as our own signaling. */
  #sendProbes(now: number): void {
    for (const p of this.#mtu.poll(now)) {
      const bound = haChannelIfAny(p.owner)?.mtuBound;
      if (bound === undefined) continue;
      // An idle member's keys expired: no probe, and no handshake for one (issue 17).
      if (!this.#env.endpoint.canSeal(p.owner, now)) continue;
      const sock = this.#socketFor(bound.locator.family);
      if (!sendSealed(this.#env.endpoint, p.owner, p.message, sock, bound.locator, now)) {
        this.drops.add('pmtu-probe-unsent'); // larger than our interface: its report follows
      }
    }
    this.#takeMtuReports(now);
  }

  /**
   * A binding is gone: no more probes for its channel (made again with its next data), unless
   * another binding of the member (another home address) still uses that channel: then its path
   * MTU state stays, and probes go to that binding's locator.
   */
  #forgetPathMtu(gone: BoundPath | undefined): void {
    if (gone === undefined) return;
    const session = gone.session;
    const other = this.#paths.boundTo(session);
    const channel = haChannelIfAny(session);
    if (other !== undefined) {
      if (channel !== undefined && channel.mtuBound === gone) {
        this.#mtu.table.get(session); // a parked state made back while `gone` still says where
        channel.mtuBound = other;
      }
      return;
    }
    if (channel !== undefined) channel.mtuBound = undefined;
    this.#mtu.forget(session);
  }

  #takeMtuReports(now: number): void {
    this.#mtu.takeReports(this.#udp, this.#env.endpoint, (s) => s, now);
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

  /** The timer callback, made once (#rearm runs after every packet batch). */
  readonly #fireTimer = (): void => this.#onTimer();

  #rearm(): void {
    if (this.#closed) return;
    // A seal found no usable keys (a member's expired while it was idle): handshake now.
    if (this.#env.endpoint.pollWanted) this.#endpointDeadline = 0;
    const deadline = Math.min(
      this.cache.nextDeadline(),
      this.#endpointDeadline,
      this.#prefixes.nextDeadline(),
      this.#paths.nextDeadline(),
      this.#mtu.nextDeadline(),
      this.#restoring.nextDeadline(),
      this.#unbound.nextDeadline(),
      this.#buRate.nextDeadline(),
    );
    armTimer(this.#env, deadline, this.#fireTimer);
  }

  #endpointDeadline = 0;

  #onTimer(): void {
    if (this.#closed) return;
    const env = this.#env;
    const now = nodeNow(env);
    this.#express?.begin(now);
    this.#buRate.sweep(now);
    this.#pollRestore(now);
    for (const c of this.#unbound.due(now)) this.#refreshIfUnbound(c.session, c.locator, now);
    const polled = env.endpoint.poll(now);
    for (const { peer, data } of polled.send) {
      const to = haChannelIfAny(peer)?.locator;
      if (to === undefined) continue;
      this.#socketFor(to.address.includes(':') ? 6 : 4)?.send(data, to.address, to.port, to.local);
    }
    this.#endpointDeadline = polled.nextDeadline;
    const hoaOf = (key: string): string | undefined =>
      this.#paths.has(key) ? this.cache.getByKey(key)?.homeAddress : undefined;
    this.#sendAdvertisements(this.#prefixes.poll(now, hoaOf), now);
    for (const c of this.#paths.poll(now)) this.#sendChallenge(c, now);
    this.#sendProbes(now);
    for (const action of this.cache.poll(now)) {
      if (action.kind === 'expired') {
        void this.#removeBinding(action.entry, 'expired');
      } else {
        const bound = this.#paths.get(action.entry.key);
        if (bound) {
          this.#sendRefreshRequest(bound.session, action.entry.homeAddress, bound.locator, now);
          env.log.info('refresh-request', { hoa: action.entry.homeAddress });
        }
      }
    }
    void this.#flushStore();
    this.#expressEnd();
    this.#rearm();
  }

  // ---- status and shutdown ---------------------------------------------------------------

  status(): HaStatus {
    this.#expressBegin();
    return renderHaStatus({
      now: nodeNow(this.#env),
      startedAt: this.#startedAt,
      pid: process.pid,
      cache: this.cache,
      pathStatus: (key) => {
        const homeAddress4 = this.ipv4.addressOf(key);
        return {
          ...this.#paths.status(key, (b) =>
            haChannelIfAny(b.session)?.mtuBound === b && this.#mtu.table.isParked(b.session)
              ? this.#mtu.table.statusOf(b.session)
              : undefined,
          ),
          ...(homeAddress4 !== undefined ? { homeAddress4 } : {}),
        };
      },
      tun: this.#env.tun,
      offloads: offloadNames(this.#env.tun, this.#sockets()),
      listen: this.#sockets().map((s) => ({ address: s.localAddress, port: s.localPort })),
      homePrefix: this.#opts.homePrefix,
      homeAgentAddress: this.#opts.homeAgentAddress,
      discovery: this.#prefixes.discovery,
      counters: {
        ...this.counters,
        ...this.#mtu.counters,
        ...expressCounters(this.#env.express),
        // Answers whose source (the address the member reached) was gone: the kernel's choice.
        udpSourceFallbacks: this.#sockets().reduce(
          (n, s) => n + (s.counters().txSourceFallbacks ?? 0),
          0,
        ),
      },
      drops: this.drops.byReason,
      channelDrops: this.#env.endpoint.drops,
      homeLink: this.#opts.homeLink?.programmingStatus?.(),
    });
  }

  /**
   * Stops timers; pending binding changes are written to the store (which keeps its bindings:
   * a restart brings them back); bindings' home-link state is withdrawn. The caller closes the
   * I/O and the store.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#env.clock.clearTimer();
    this.#express?.close();
    await this.#flushStore();
    const removals: Promise<void>[] = [];
    for (const e of this.cache.entries()) {
      if (this.#opts.homeLink)
        removals.push(this.#opts.homeLink.bindingRemoved(e.homeAddress).catch(() => {}));
    }
    await Promise.all(removals);
  }
}
