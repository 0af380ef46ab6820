/**
 * The mobile node's channel to its home agent: which session is the HA's (its key and a
 * certificate of role `ha` holding our home address), the locator and socket it is reached on,
 * the handshake, and sealed signaling (queued until the channel is up). While a candidate home
 * link is being proven and there is no path away, handshakes and the returning-home BU go out
 * of that link only, to the solicited-node group of the HA's home address (see mobile-node.ts).
 */
import { DataKind } from '../../crypto/aead.js';
import type { PeerSession } from '../../crypto/endpoint.js';
import { isHomeAgentFor } from '../../crypto/selector.js';
import type { UdpEndpoint } from '../../io/types.js';
import { formatLocator, type Locator } from '../../protocol/locator.js';
import {
  decodePathMessage,
  encodePathMessage,
  PATH_CHALLENGE,
  PATH_RESPONSE,
} from '../../protocol/path-validation.js';
import { byteString } from '../../util/bytes.js';
import { solicitedNodeMulticast } from '../../wire/address.js';
import {
  resolveLocator,
  sendSealed,
  type DropCounters,
  type NodeEnvironment,
  type ResolvedLocator,
} from '../common.js';

/** The HA's locator as the channel holds it (a new object after every move). */
export type ResolvedAgent = ResolvedLocator;

/** BUs kept while the channel is not up yet (the oldest dropped beyond). */
const PENDING_MAX = 8;

/** What the channel needs from the mobile node around it. */
export interface HomeAgentChannelHost {
  readonly env: NodeEnvironment;
  readonly drops: DropCounters;
  readonly counters: { signalingOut: number };
  readonly homeAddress: Uint8Array;
  /** The home-prefix address of the HA in use. */
  homeAgentAddress(): string;
  /** The candidate home link being proven, and whether there is no path away meanwhile. */
  homeProof(): { link: string; ifindex: number } | undefined;
  awayPathless(): boolean;
  /** Something went to the HA (the silence deadline of movement detection). */
  sent(): void;
  capture(packet: Uint8Array, now: number): void;
  /** A handshake that completed with somebody else (a correspondent). */
  otherSession(session: PeerSession, now: number): void;
}

export class HomeAgentChannel {
  /** A handshake still in flight or a verified home-agent channel. */
  session: PeerSession | undefined;
  /** The HA's underlay locator of the care-of family in use. */
  agent: ResolvedLocator | undefined;
  /** Re-poll the endpoint at once (0) after anything that may have armed its timers. */
  endpointDeadline = 0;
  #key: Uint8Array;
  /** `#key` as a session names its peer (PeerSession.peerKey, a byteString). */
  #keyString: string;
  #port: number;
  #pending: Uint8Array[] = [];
  /** The returning-home BU produced while the channel was not up yet (sent on the link). */
  #pendingOnHomeLink: Uint8Array | undefined;
  readonly #host: HomeAgentChannelHost;

  constructor(host: HomeAgentChannelHost, key: Uint8Array, port: number) {
    this.#host = host;
    this.#key = key;
    this.#keyString = byteString(key);
    this.#port = port;
  }

  /** Another home agent: its key and port, nothing pending, a new channel on the next send. */
  useHomeAgent(key: Uint8Array, port: number): void {
    this.#key = key;
    this.#keyString = byteString(key);
    this.#port = port;
    this.session = undefined;
    this.#pending = [];
    this.#pendingOnHomeLink = undefined;
  }

  /** The HA's UDP port in use. */
  get port(): number {
    return this.#port;
  }

  /** Another port of the same HA ([home] agent_port list): the locator follows at once. */
  setPort(port: number): void {
    this.#port = port;
    if (this.agent !== undefined)
      this.agent = resolveLocator({ address: this.agent.address, port });
  }

  /** Reach the HA at `address` (its underlay address of the care-of family in use). */
  setAgent(address: string): void {
    this.agent = resolveLocator({ address, port: this.#port });
  }

  get established(): boolean {
    return this.session?.established === true;
  }

  socket(): UdpEndpoint | undefined {
    if (this.agent === undefined) return undefined;
    return this.agent.family === 4 ? this.#host.env.udp4 : this.#host.env.udp6;
  }

  /** The channel exists or is being set up (a handshake goes out when neither). */
  ensure(now: number): void {
    const endpoint = this.#host.env.endpoint;
    const existing = endpoint.session(this.#key);
    // Keys past REJECT_AFTER_TIME (an idle channel's) count as none: a new handshake, once.
    if (existing !== undefined && endpoint.canSeal(existing, now)) {
      this.session = this.isHomeAgentSession(existing) ? existing : undefined;
      return;
    }
    if (existing?.pending) {
      this.session = existing;
      return;
    }
    const init = endpoint.connect(this.#key, now);
    this.session = endpoint.session(this.#key);
    this.sendRaw(init);
    this.endpointDeadline = 0;
  }

  /** A fresh handshake (the HA may have lost our channel); the old keys are kept meanwhile. */
  reconnect(now: number): void {
    this.sendRaw(this.#host.env.endpoint.connect(this.#key, now));
    this.endpointDeadline = 0;
  }

  sendRaw(data: Uint8Array): void {
    const sock = this.socket();
    // No path away while a home link is being proven (we start there): a handshake goes
    // out of that link, like the returning-home BU it is needed for.
    if (this.#host.awayPathless() && this.#host.homeProof() !== undefined)
      this.#sendOnHomeLink(data);
    else if (sock && this.agent) sock.send(data, this.agent.address, this.agent.port);
  }

  /** Signaling to the HA, sealed as SIGNALING (queued until the channel is up). */
  sendSignaling(packet: Uint8Array, now: number): void {
    const host = this.#host;
    host.capture(packet, now);
    host.sent();
    const session = this.session;
    if (session === undefined || !host.env.endpoint.canSeal(session, now)) {
      this.#pending.push(packet);
      if (this.#pending.length > PENDING_MAX) this.#pending.shift();
      // The channel's keys expired while it was idle (nothing rekeys an idle channel): this
      // send (a refresh BU) brings it back with one handshake; the BU goes when it completes.
      if (session !== undefined) this.ensure(now);
      return;
    }
    if (this.#sendSealed(session, packet, now)) host.counters.signalingOut++;
    else host.drops.add('signaling-send');
  }

  /** A returning-home BU: sealed in the HA channel, out of the candidate home link only. */
  sendSignalingOnHomeLink(packet: Uint8Array, now: number): void {
    const host = this.#host;
    host.capture(packet, now);
    const session = this.session;
    if (session === undefined || !session.established) {
      this.#pendingOnHomeLink = packet; // the latest: it carries the newest sequence number
      return;
    }
    const msg = host.env.endpoint.seal(session, packet, now, DataKind.SIGNALING);
    if (msg !== null && this.#sendOnHomeLink(msg)) host.counters.signalingOut++;
    else host.drops.add('signaling-send');
  }

  /** A handshake message (NOT_DATA) from `from`; true when it established the HA channel. */
  onHandshake(socket: UdpEndpoint, datagram: Uint8Array, from: Locator, now: number): void {
    const host = this.#host;
    const r = host.env.endpoint.receive(datagram, now, undefined, formatLocator(from));
    this.endpointDeadline = 0;
    switch (r.kind) {
      case 'reply':
        socket.send(r.data, from.address, from.port);
        break;
      case 'established':
        if (r.reply) socket.send(r.reply, from.address, from.port);
        if (r.session === this.session && !this.isHomeAgentSession(r.session)) {
          // We opened it to the HA key we were given, and the certificate behind that key is no
          // home agent of ours: nothing goes to it (a later attempt starts from scratch).
          this.session = undefined;
        } else if (this.isHomeAgentSession(r.session)) {
          this.session = r.session;
          host.env.log.info('channel', {
            peer: r.session.peerName ?? '?',
            locator: formatLocator(from),
          });
          this.#flushPending(now);
        } else {
          host.otherSession(r.session, now);
        }
        break;
      case 'cookie':
      case 'data':
      case 'drop':
        break;
    }
  }

  /**
   * The home-agent channel is the one with the key of the HA in use (configured, or learned from
   * an authenticated MPA of our HA for failover) whose certificate has role `ha` and holds our
   * home address. Any other handshake, whoever completes it first, is at most a correspondent.
   */
  isHomeAgentSession(session: PeerSession): boolean {
    const host = this.#host;
    if (session.peerKey !== this.#keyString) return false;
    if (isHomeAgentFor(session.peerCertificate, host.homeAddress)) return true;
    host.drops.add('home-agent-certificate');
    host.env.log.warn('home-agent-refused', {
      peer: session.peerName ?? '?',
      role: session.peerCertificate?.role ?? '?',
      why: 'certificate is not a home agent for our home address',
    });
    return false;
  }

  /**
   * The HA checks that we receive what it sends to our new locator before it sends data there
   * (src/protocol/path-validation.ts): the challenge's token goes back on the channel at once.
   */
  answerPathChallenge(buf: Uint8Array, off: number, len: number, now: number): void {
    const host = this.#host;
    const m = decodePathMessage(buf, off, len);
    const session = this.session;
    if (m === undefined || m.type !== PATH_CHALLENGE || session === undefined || !this.agent) {
      host.drops.add('path-message-unexpected');
      return;
    }
    const response = encodePathMessage(PATH_RESPONSE, m.token);
    if (this.#sendSealed(session, response, now)) host.counters.signalingOut++;
    else host.drops.add('signaling-send');
  }

  /**
   * A message this node wrote itself (a path MTU probe or ack, issue #21), sealed as SIGNALING
   * in `session` (the HA's) and sent to the HA's current locator.
   */
  sendOwn(session: PeerSession, message: Uint8Array, now: number): boolean {
    if (session !== this.session) return false;
    const ok = this.#sendSealed(session, message, now);
    if (ok) this.#host.counters.signalingOut++;
    return ok;
  }

  #sendSealed(session: PeerSession, packet: Uint8Array, now: number): boolean {
    const agent = this.agent;
    return (
      agent !== undefined &&
      sendSealed(this.#host.env.endpoint, session, packet, this.socket(), agent, now)
    );
  }

  #flushPending(now: number): void {
    const pending = this.#pending;
    this.#pending = [];
    const onLink = this.#pendingOnHomeLink;
    this.#pendingOnHomeLink = undefined;
    if (onLink !== undefined && this.#host.homeProof() !== undefined) {
      this.sendSignalingOnHomeLink(onLink, now);
    }
    const session = this.session;
    for (const p of pending) {
      if (session && this.#sendSealed(session, p, now)) this.#host.counters.signalingOut++;
    }
  }

  /**
   * Out of the candidate home link only (never routed: hop limit 255, native/udp.c) to the
   * solicited-node group of the HA's home address (RFC 4291 §2.7.1): like the Neighbor
   * Solicitation for it, this needs no route, and only the holder of that address listens.
   * The HA answers to our link-local address on that link.
   */
  #sendOnHomeLink(data: Uint8Array): boolean {
    const proof = this.#host.homeProof();
    const sock = this.#host.env.udp6;
    if (proof === undefined || sock === undefined) return false;
    const group = solicitedNodeMulticast(this.#host.homeAgentAddress());
    return sock.send(data, `${group}%${proof.ifindex}`, this.#port);
  }
}
