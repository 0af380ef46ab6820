/**
 * The receiver checks of a Mobility Header common to every role (RFC 6275 §9.2; digest §3
 * "Receiver validation order"), on a packet decoded by wire/packet.ts:
 *   1. checksum wrong ........................................ drop, silently
 *   2. Payload Proto is not 59 (IPPROTO_NONE) ................. ICMPv6 Parameter Problem, code 0,
 *                                                                pointer to Payload Proto; drop
 *   3. Header Len below the minimum for the type .............. ICMPv6 Parameter Problem, code 0,
 *                                                                pointer to Header Len; drop
 *      (decodePacket leaves such a header undecoded in `shortMobilityHeader`)
 *   4. MH Type unknown ........................................ Binding Error status 2; drop
 * Both answers are ICMP-like errors: the driver sends them through an ErrorRateLimiter
 * (RFC 6275 §9.3.3 asks to rate-limit Binding Errors, RFC 4443 §2.4 (f) ICMPv6 errors).
 * Every role calls it right after decodePacket: the home agent (BUs from members), the mobile
 * node (signaling from its HA, return routability forwarded by it, the direct path) and the
 * correspondent (HoTI / CoTI / BU).
 */
import {
  MH_HEADER_LEN_OFF,
  MH_PAYLOAD_PROTO_NONE,
  MH_PAYLOAD_PROTO_OFF,
  type DecodedMobilityMessage,
} from '../wire/mobility.js';
import { buildParameterProblem } from '../wire/icmpv6.js';
import { encodeMobilityPacket, type DecodedPacket } from '../wire/packet.js';
import { BE_STATUS, IPPROTO } from '../wire/types.js';
import { IPV6_HEADER_LEN, IPV6_NEXT_HEADER_OFF } from '../wire/ipv6.js';

/** Unspecified address: the Home Address field of a Binding Error without a HAO (§6.1.9). */
const UNSPECIFIED = '::';

export type MobilityHeaderVerdict =
  | { action: 'accept'; message: DecodedMobilityMessage }
  | { action: 'drop'; reason: 'not-mobility' | 'mh-checksum' }
  | {
      action: 'parameterProblem';
      reason: 'mh-payload-proto' | 'mh-header-len';
      /** ICMPv6 Parameter Problem code (0: erroneous header field). */
      code: 0;
      /** Offset of the offending byte in the packet (RFC 4443 §3.4). */
      pointer: number;
    }
  | {
      action: 'bindingError';
      reason: 'mh-unknown-type';
      status: typeof BE_STATUS.UNRECOGNIZED_MH_TYPE;
      /** The HAO's home address of the offending packet, else '::' (RFC 6275 §6.1.9). */
      homeAddress: string;
      /** Where the Binding Error goes: the offending packet's source. */
      destination: string;
    };

/** Checks the Mobility Header of a decoded packet in RFC 6275 §9.2 order. */
export function checkMobilityHeader(packet: DecodedPacket): MobilityHeaderVerdict {
  const short = packet.shortMobilityHeader;
  if (short !== undefined) {
    if (short.checksumValid !== true) return { action: 'drop', reason: 'mh-checksum' };
    const payloadProto = short.payloadProto !== MH_PAYLOAD_PROTO_NONE;
    return {
      action: 'parameterProblem',
      reason: payloadProto ? 'mh-payload-proto' : 'mh-header-len',
      code: 0,
      pointer: packet.upperOffset + (payloadProto ? MH_PAYLOAD_PROTO_OFF : MH_HEADER_LEN_OFF),
    };
  }
  const mh = packet.mobility;
  if (mh === undefined) return { action: 'drop', reason: 'not-mobility' };
  if (mh.checksumValid === false) return { action: 'drop', reason: 'mh-checksum' };
  if (mh.payloadProto !== MH_PAYLOAD_PROTO_NONE) {
    return {
      action: 'parameterProblem',
      reason: 'mh-payload-proto',
      code: 0,
      pointer: packet.upperOffset + MH_PAYLOAD_PROTO_OFF,
    };
  }
  if (mh.kind === 'unknown') {
    return {
      action: 'bindingError',
      reason: 'mh-unknown-type',
      status: BE_STATUS.UNRECOGNIZED_MH_TYPE,
      homeAddress: packet.homeAddress ?? UNSPECIFIED,
      destination: packet.source,
    };
  }
  return { action: 'accept', message: mh };
}

/**
 * Data-path pre-filter: true when the IPv6 packet at `off` may carry a Mobility Header (right
 * after the fixed header, or after a Destination Options / Routing header: HAO then MH, or RH2
 * then HAO); decodePacket and checkMobilityHeader decide properly on the slow path.
 */
export function mayCarryMobilityHeader(buf: Uint8Array, off: number): boolean {
  const nh = buf[off + IPV6_NEXT_HEADER_OFF];
  if (nh === IPPROTO.MH) return true;
  if (nh === IPPROTO.DSTOPTS || nh === IPPROTO.ROUTING) {
    const next = buf[off + IPV6_HEADER_LEN];
    return next === IPPROTO.MH || next === IPPROTO.DSTOPTS;
  }
  return false;
}

/**
 * The answer a failed check asks for, as a whole IPv6 packet from `source` (the receiver's
 * address) about the offending `packet`: the Parameter Problem or the Binding Error.
 */
export function mobilityHeaderAnswer(
  verdict: Extract<MobilityHeaderVerdict, { action: 'parameterProblem' | 'bindingError' }>,
  packet: Uint8Array,
  source: string,
): Uint8Array {
  if (verdict.action === 'parameterProblem') {
    return buildParameterProblem(packet, verdict.code, verdict.pointer, source);
  }
  return encodeMobilityPacket({
    source,
    destination: verdict.destination,
    message: {
      kind: 'bindingError',
      status: verdict.status,
      homeAddress: verdict.homeAddress,
      options: [],
    },
  });
}

/**
 * At most `perSecond` error messages (Binding Errors, ICMPv6 errors) per one-second window,
 * all peers together. Time comes from the caller.
 */
export class ErrorRateLimiter {
  readonly #perSecond: number;
  #windowStart = -Infinity;
  #inWindow = 0;

  constructor(perSecond: number) {
    this.#perSecond = perSecond;
  }

  /** True (and counted) when one more error may be sent at `now` (ms). */
  allow(now: number): boolean {
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow >= this.#perSecond) return false;
    this.#inWindow++;
    return true;
  }
}
