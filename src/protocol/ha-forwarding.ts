/**
 * Forwarding between the home agents of a cluster on a virtual home network (issue 18), the
 * decisions only; `roles/ha/ha-peers.ts` executes them.
 *
 * On a virtual home network the whole home prefix is routed into every home agent's TUN, so a
 * packet for a member can reach a home agent that does not serve it (a member of another home
 * agent sends it, or a host routed to this one does). That home agent looks the destination up
 * in the cluster (etcd's binding names the serving home agent) and seals the packet as payload
 * on a channel to the serving one: Noise IK to the static key that home agent announced in
 * etcd, at its underlay address. The receiving home agent trusts such a channel only through
 * the certificate of its handshake: role `ha`, signed by the authority, holding our home
 * prefix. And even then the channel carries exactly one thing: data for a member this home
 * agent serves. It never carries signaling (a home agent's certificate holds the whole prefix,
 * so a BU on it could claim any home address), never data for an address bound elsewhere, and
 * a packet that came in on it never goes out on another (no loops).
 *
 * Sending side:   servingPeer()      which live home agent to seal a packet for, or why none.
 * Receiving side: acceptForwarded()  whether a datagram of a home agent's channel is delivered.
 *                 isClusterPeer()    whether a handshake's certificate makes it such a channel.
 */
import type { MemberCertificate } from '../crypto/certificate.js';
import { prefixContains, type Prefix } from '../wire/address.js';
import type { MobilitySignal } from '../wire/mobility-signal.js';

/** A live home agent of the cluster that can be forwarded to (from its etcd entry). */
export interface ClusterPeer {
  /** Its member name in the cluster ([cluster] member). */
  member: string;
  /** Its static key (X25519): the channel's Noise IK responder key. */
  publicKey: Uint8Array;
  /** Its underlay addresses (either may be absent) and port. */
  address4?: string | undefined;
  address6?: string | undefined;
  port: number;
}

/** Why a packet with no binding here is not forwarded to another home agent. */
export type NotForwarded =
  /** Nobody serves the address (or the cluster's record names us): the usual unreachable. */
  | 'unregistered'
  /** It came from another home agent's channel: never forwarded again. */
  | 'ha-forward-loop'
  /** The serving home agent is not among the live ones, or has no key or usable address. */
  | 'ha-forward-peer-unknown';

export type ServingDecision = { kind: 'forward'; peer: ClusterPeer } | { kind: NotForwarded };

/**
 * For a packet whose destination has no binding at this home agent: the home agent to seal it
 * for. `servingHa` is the cluster's record of the destination (undefined: none); `peers` the
 * live home agents other than us, by member name; `families` the underlay families we can
 * send on. A packet that arrived on a home agent's channel (`fromPeer`) is never forwarded.
 */
export function servingPeer(input: {
  servingHa: string | undefined;
  self: string;
  peers: ReadonlyMap<string, ClusterPeer>;
  families: { v4: boolean; v6: boolean };
  fromPeer: boolean;
}): ServingDecision {
  if (input.servingHa === undefined || input.servingHa === input.self) {
    return { kind: 'unregistered' };
  }
  if (input.fromPeer) return { kind: 'ha-forward-loop' };
  const peer = input.peers.get(input.servingHa);
  if (peer === undefined || peerLocator(peer, input.families) === undefined) {
    return { kind: 'ha-forward-peer-unknown' };
  }
  return { kind: 'forward', peer };
}

/** Where a peer home agent is reached: IPv6 when both sides have it, else IPv4. */
export function peerLocator(
  peer: ClusterPeer,
  families: { v4: boolean; v6: boolean },
): { address: string; port: number; family: 4 | 6 } | undefined {
  if (families.v6 && peer.address6 !== undefined) {
    return { address: peer.address6, port: peer.port, family: 6 };
  }
  if (families.v4 && peer.address4 !== undefined) {
    return { address: peer.address4, port: peer.port, family: 4 };
  }
  return undefined;
}

/**
 * The certificate of a channel's handshake makes it a home agent peer's channel: role `ha`
 * (the endpoint checked the authority's signature, validity and that its key is the Noise
 * static key) and a prefix that holds our whole home prefix, so a home agent of another
 * prefix under the same authority is not one of ours.
 */
export function isClusterPeer(cert: MemberCertificate | null, homePrefix: Prefix): boolean {
  if (cert === null || cert.role !== 'ha') return false;
  return cert.addresses.some(
    (p) =>
      p.prefixLength <= homePrefix.length &&
      prefixContains({ address: p.address, length: p.prefixLength }, homePrefix.address, 0),
  );
}

/** Why a datagram of a home agent's channel is dropped (counted by these names). */
export type ForwardedDrop =
  /** The channel's certificate is role `ha` but not for our home prefix. */
  | 'ha-forward-other-prefix'
  /** Sealed as the peer's own signaling: a home agent has nothing to say to us in-band. */
  | 'ha-forward-signaling-kind'
  /** Not an IPv6 packet (the cluster has no IPv4 home addresses). */
  | 'ha-forward-not-ipv6'
  /** Mobility signaling, discovery, or a Redirect inside: never relayed to a member. */
  | 'ha-forward-signaling'
  /** For an address with no binding served here: not ours to deliver, and never sent on. */
  | 'ha-forward-not-served';

/**
 * Whether the inner packet of a datagram on a home agent's channel is delivered to the member
 * it is for. `servedHere`: its destination has a binding at this home agent that carries data
 * (a channel to its member); `signal`: mobilitySignal() of the inner packet.
 */
export function acceptForwarded(input: {
  peerOfPrefix: boolean;
  ownSignaling: boolean;
  ipv6: boolean;
  servedHere: boolean;
  signal: MobilitySignal | undefined;
}): 'accept' | ForwardedDrop {
  if (!input.peerOfPrefix) return 'ha-forward-other-prefix';
  if (input.ownSignaling) return 'ha-forward-signaling-kind';
  if (!input.ipv6) return 'ha-forward-not-ipv6';
  // HoTI / HoT pass as they do from the home side (RFC 6275 §5.2.5 routes them through us).
  if (input.signal !== undefined && input.signal !== 'rr') return 'ha-forward-signaling';
  if (!input.servedHere) return 'ha-forward-not-served';
  return 'accept';
}
