/**
 * The home agent's channels to the other home agents of its cluster on a virtual home network
 * (issue 18); the decisions are protocol/ha-forwarding.ts's, this file executes them for
 * roles/ha/home-agent.ts.
 *
 * Sending (the HA's TUN -> member loop, for a destination with no binding here):
 *   1. etcd's record of the destination names the serving home agent; servingPeer() says
 *      whether to forward and to whom (never a packet that came from a home agent's channel);
 *      mobility signaling, discovery and Redirects are dropped here already, as the peer would.
 *   2. The packet is staged in that peer's run (TCP MSS clamped to the HA-to-HA path; a packet
 *      too big for it gets a Packet Too Big into the TUN), and flush() seals each run as
 *      PAYLOAD on the peer's channel in place and sends it in one batch.
 *   The channels are opened as soon as etcd lists a peer (setPeers: Noise IK to the key it
 *   announced, at its underlay address), and kept up by the endpoint (persistent sessions).
 * Receiving (the HA's receive loop, for a datagram on a channel whose certificate is role ha):
 *   receive() runs acceptForwarded(): only data for a member served here passes; the HA then
 *   hands it to its member loop with forwarding to other home agents switched off.
 */
import { DATA_OVERHEAD, DataKind } from '../../crypto/aead.js';
import type { PeerSession } from '../../crypto/endpoint.js';
import type { MemberCertificate } from '../../crypto/certificate.js';
import type { ClusterStatus } from '../../io/control-protocol.js';
import type { PacketSpans, UdpEndpoint } from '../../io/types.js';
import {
  acceptForwarded,
  isClusterPeer,
  peerLocator,
  servingPeer,
  type ClusterPeer,
} from '../../protocol/ha-forwarding.js';
import { locatorEqual, type Locator } from '../../protocol/locator.js';
import { formatIpv6, type Prefix } from '../../wire/address.js';
import { IPV6_DST_OFF } from '../../wire/ipv6.js';
import { mobilitySignal } from '../../wire/mobility-signal.js';
import { byteString, bytesEqual } from '../../util/bytes.js';
import {
  resolveLocator,
  setLocalAddress,
  TunnelWriter,
  type DropCounters,
  type NodeEnvironment,
  type ResolvedLocator,
} from '../common.js';
import type { TunnelMtu } from '../tunnel-mtu.js';

/** IPv4 / IPv6 + UDP header bytes on the HA-to-HA path. */
const UDP4_OVERHEAD = 28;
const UDP6_OVERHEAD = 48;
/** A channel that did not come up is tried again at most this often (ms). */
const RECONNECT_MS = 5_000;
/** IPv6 Next Header of TCP (RFC 9293). */
const TCP = 6;

/** What the peers need of the cluster (src/io/etcd-binding-store.ts). */
export interface PeerCluster {
  readonly member: string;
  binding(homeAddress: string): { servingHa: string } | undefined;
}

/** One peer home agent's channel, as `mip6 status` shows it. */
export type HaChannelStatus = NonNullable<ClusterStatus['channels']>[number];

interface Peer {
  peer: ClusterPeer;
  to: ResolvedLocator;
  writer: TunnelWriter;
  connectedAt: number;
  forwardedOut: number;
  bytesOut: number;
  forwardedIn: number;
  bytesIn: number;
}

export class HaPeers {
  readonly #env: NodeEnvironment;
  readonly #drops: DropCounters;
  readonly #mtu: TunnelMtu<PeerSession>;
  readonly #cluster: PeerCluster;
  readonly #homePrefix: Prefix;
  readonly #underlayMtu: number;
  readonly #noteLocator: (session: PeerSession, to: Locator) => void;
  /** Live peers by member name, and by static key (PeerSession.peerKey: its 32 bytes as a one-byte string) for the receive side. */
  readonly #byMember = new Map<string, Peer>();
  readonly #byKey = new Map<string, Peer>();
  /** The members' ClusterPeer view of #byMember, for servingPeer(). */
  readonly #peers = new Map<string, ClusterPeer>();
  /** Peers with packets staged in this TUN batch. */
  readonly #staged = new Set<Peer>();
  /** isClusterPeer per certificate (a new handshake may bring a new one), not per packet. */
  readonly #clusterPeer = new WeakMap<MemberCertificate, boolean>();

  constructor(deps: {
    env: NodeEnvironment;
    drops: DropCounters;
    mtu: TunnelMtu<PeerSession>;
    cluster: PeerCluster;
    homePrefix: Prefix;
    underlayMtu: number;
    /** The channel's locator, where the endpoint's retransmissions and rekeys go. */
    noteLocator: (session: PeerSession, to: Locator) => void;
  }) {
    this.#env = deps.env;
    this.#drops = deps.drops;
    this.#mtu = deps.mtu;
    this.#cluster = deps.cluster;
    this.#homePrefix = deps.homePrefix;
    this.#underlayMtu = deps.underlayMtu;
    this.#noteLocator = deps.noteLocator;
  }

  get #families(): { v4: boolean; v6: boolean } {
    return { v4: this.#env.udp4 !== undefined, v6: this.#env.udp6 !== undefined };
  }

  #socket(family: 4 | 6): UdpEndpoint | undefined {
    return family === 4 ? this.#env.udp4 : this.#env.udp6;
  }

  /**
   * The live home agents other than us (etcd's agents): a channel to each new one is opened at
   * once; the channel of one that left, or whose key or address changed, is closed.
   */
  setPeers(list: readonly ClusterPeer[], now: number): void {
    const seen = new Set<string>();
    for (const p of list) {
      if (p.member === this.#cluster.member) continue;
      const where = peerLocator(p, this.#families);
      if (where === undefined) continue;
      seen.add(p.member);
      const old = this.#byMember.get(p.member);
      if (
        old !== undefined &&
        bytesEqual(old.peer.publicKey, p.publicKey) &&
        old.to.address === where.address &&
        old.to.port === where.port
      ) {
        continue;
      }
      if (old !== undefined) this.#forget(old);
      const peer: Peer = {
        peer: p,
        to: resolveLocator(where),
        writer: new TunnelWriter(),
        connectedAt: -Infinity,
        forwardedOut: 0,
        bytesOut: 0,
        forwardedIn: 0,
        bytesIn: 0,
      };
      this.#byMember.set(p.member, peer);
      this.#byKey.set(byteString(p.publicKey), peer);
      this.#peers.set(p.member, p);
      this.#connect(peer, now);
      this.#env.log.info('ha-channel-open', {
        peer: p.member,
        locator: `${where.address}:${where.port}`,
      });
    }
    for (const peer of [...this.#byMember.values()]) {
      if (!seen.has(peer.peer.member)) this.#forget(peer);
    }
  }

  #forget(peer: Peer): void {
    this.#byMember.delete(peer.peer.member);
    this.#byKey.delete(byteString(peer.peer.publicKey));
    this.#peers.delete(peer.peer.member);
    const session = this.#env.endpoint.session(peer.peer.publicKey);
    if (session !== undefined) this.#env.endpoint.closeSession(session);
    this.#env.log.info('ha-channel-closed', { peer: peer.peer.member });
  }

  #connect(peer: Peer, now: number): void {
    const sock = this.#socket(peer.to.family);
    if (sock === undefined) return;
    peer.connectedAt = now;
    const init = this.#env.endpoint.connect(peer.peer.publicKey, now);
    const session = this.#env.endpoint.session(peer.peer.publicKey);
    if (session !== undefined) this.#noteLocator(session, peer.to);
    sock.send(init, peer.to.address, peer.to.port);
  }

  /**
   * A destination at buf[off, off + len) with no binding here: true when the packet was taken
   * (staged for a peer, or dropped and counted); false when nobody in the cluster serves it
   * (the caller answers it as unregistered). `fromPeer`: it came in on a home agent's channel.
   */
  forward(buf: Uint8Array, off: number, len: number, fromPeer: boolean, now: number): boolean {
    const d = servingPeer({
      servingHa: this.#cluster.binding(formatIpv6(buf.subarray(off + IPV6_DST_OFF, off + 40)))
        ?.servingHa,
      self: this.#cluster.member,
      peers: this.#peers,
      families: this.#families,
      fromPeer,
    });
    if (d.kind === 'unregistered') return false;
    if (d.kind !== 'forward') {
      this.#drops.add(d.kind);
      return true;
    }
    // What the peer would drop (acceptForwarded) does not leave: mobility signaling,
    // discovery and Redirects are never relayed towards a member.
    const signal = mobilitySignal(buf, off, len);
    if (signal !== undefined && signal !== 'rr') {
      this.#drops.add('ha-forward-signaling');
      return true;
    }
    const peer = this.#byMember.get(d.peer.member)!;
    const session = this.#env.endpoint.session(peer.peer.publicKey);
    if (session !== undefined && !this.#isClusterPeer(session)) {
      // The key etcd announced answered with a certificate that is not an HA of this prefix
      // (a wrong or forged etcd entry): nothing of the members' goes to it.
      this.#drops.add('ha-forward-not-peer');
      return true;
    }
    if (session === undefined || !this.#env.endpoint.canSeal(session, now)) {
      // Not up yet, or idle past its keys' life (nothing rekeys an idle channel): a new
      // handshake, at most every RECONNECT_MS; this packet is lost, as in WireGuard without
      // its queue, and TCP's retransmission finds the channel up.
      this.#drops.add('ha-forward-no-channel');
      if (now - peer.connectedAt >= RECONNECT_MS) this.#connect(peer, now);
      return true;
    }
    const max =
      this.#underlayMtu - (peer.to.family === 4 ? UDP4_OVERHEAD : UDP6_OVERHEAD) - DATA_OVERHEAD;
    if (len > max) {
      this.#mtu.tooBig(session, buf, off, len, max, now);
      return true;
    }
    if (buf[off + 6] === TCP) this.#mtu.clamp(buf, off, len, max);
    peer.writer.push(off, len);
    peer.forwardedOut++;
    peer.bytesOut += len;
    this.#staged.add(peer);
    return true;
  }

  /** Seals and sends every peer's staged run (the end of a TUN batch). */
  flush(buf: Uint8Array, now: number): void {
    if (this.#staged.size === 0) return;
    for (const peer of this.#staged) {
      const n = peer.writer.count;
      const session = this.#env.endpoint.session(peer.peer.publicKey);
      const sock = this.#socket(peer.to.family);
      if (session === undefined || sock === undefined) {
        peer.writer.clear();
        this.#drops.add('ha-forward-no-channel', n);
        continue;
      }
      const sent = peer.writer.flush(this.#env.endpoint, session, buf, sock, peer.to, now);
      if (sent < n) this.#drops.add(peer.writer.lastSealed ? 'udp-send' : 'no-keys', n - sent);
    }
    this.#staged.clear();
  }

  /**
   * A datagram opened on `session`, a channel whose handshake certificate is role `ha`: true
   * when its inner packet at buf[off, off + len) is to be delivered to the member it is for
   * (`servedHere` says whether that member's binding is here and carries data); otherwise it
   * is dropped and counted by reason.
   */
  #isClusterPeer(session: PeerSession): boolean {
    const cert = session.peerCertificate;
    if (cert === null) return false;
    let known = this.#clusterPeer.get(cert);
    if (known === undefined) {
      known = isClusterPeer(cert, this.#homePrefix);
      this.#clusterPeer.set(cert, known);
    }
    return known;
  }

  receive(
    session: PeerSession,
    ownSignaling: boolean,
    buf: Uint8Array,
    off: number,
    len: number,
    servedHere: () => boolean,
  ): boolean {
    if (len === 0) return false; // a keepalive (established()): it confirmed the keys, no more
    const ipv6 = len >= 40 && buf[off]! >> 4 === 6;
    const verdict = acceptForwarded({
      peerOfPrefix: this.#isClusterPeer(session),
      ownSignaling,
      ipv6,
      signal: ipv6 ? mobilitySignal(buf, off, len) : undefined,
      // Asked last and only when everything else passed: it looks the binding up.
      get servedHere() {
        return servedHere();
      },
    });
    if (verdict !== 'accept') {
      this.#drops.add(verdict);
      return false;
    }
    const peer = this.#byKey.get(session.peerKey);
    if (peer !== undefined) {
      peer.forwardedIn++;
      peer.bytesIn += len;
    }
    return true;
  }

  /**
   * A peer home agent's channel came up (either side initiated). When we initiated (`initiator`:
   * its response came in), an empty payload goes out at once: the peer takes new keys as
   * current only on data under them (key confirmation), and until then keeps sending under
   * the keys of its previous session with us, which a restarted home agent no longer has.
   */
  established(session: PeerSession, locator: Locator, initiator: boolean, now: number): void {
    if (initiator) {
      const keepalive = this.#env.endpoint.seal(session, new Uint8Array(0), now, DataKind.PAYLOAD);
      const sock = this.#socket(locator.address.includes(':') ? 6 : 4);
      if (keepalive !== null && sock !== undefined) {
        sock.send(keepalive, locator.address, locator.port, locator.local);
      }
    }
    const peer = this.#byKey.get(session.peerKey);
    // What we forward to it leaves from the address its handshake reached.
    if (peer !== undefined && locatorEqual(peer.to, locator))
      setLocalAddress(peer.to, locator.local);
    this.#env.log.info('ha-channel', {
      peer: session.peerName ?? '?',
      member: peer?.peer.member ?? '?',
      locator: `${locator.address}:${locator.port}`,
    });
  }

  status(): HaChannelStatus[] {
    return [...this.#byMember.values()]
      .sort((a, b) => a.peer.member.localeCompare(b.peer.member))
      .map((p) => ({
        member: p.peer.member,
        locator: `${p.to.address}:${p.to.port}`,
        established: this.#env.endpoint.session(p.peer.publicKey)?.established === true,
        forwardedOut: p.forwardedOut,
        bytesOut: p.bytesOut,
        forwardedIn: p.forwardedIn,
        bytesIn: p.bytesIn,
      }));
  }
}

/** Packets of one buffer collected for a later pass (offsets and lengths, grown as needed). */
export class SpanList {
  #offsets = new Uint32Array(64);
  #lengths = new Uint32Array(64);
  count = 0;

  push(offset: number, length: number): void {
    if (this.count === this.#offsets.length) {
      const offsets = new Uint32Array(this.count * 2);
      const lengths = new Uint32Array(this.count * 2);
      offsets.set(this.#offsets);
      lengths.set(this.#lengths);
      this.#offsets = offsets;
      this.#lengths = lengths;
    }
    this.#offsets[this.count] = offset;
    this.#lengths[this.count] = length;
    this.count++;
  }

  view(buf: Uint8Array): PacketSpans {
    return { count: this.count, buf, offsets: this.#offsets, lengths: this.#lengths };
  }

  clear(): void {
    this.count = 0;
  }
}
