/**
 * Which signaling a mobile node accepts from its home agent's channel (DESIGN.md §4, issue
 * #13), as one pure function: the HA forwards anybody's packets to our home address into the
 * channel, so only what the HA marked as its own (DataKind.SIGNALING) is home-agent signaling.
 *   HA's own:  Mobility Header (BA, BRR; anything else is counted and refused by the driver),
 *              DHAAD Reply / MPA (ICMPv6 144-147); HoT / HoTI never (return routability's
 *              messages come from correspondents, so only ever forwarded).
 *   Forwarded: only a correspondent's HoT / HoTI (authenticated by return routability); the
 *              driver drops any other mobility signaling before it gets here.
 */
import { WireError } from '../util/errors.js';
import type { DecodedIcmpv6 } from '../wire/icmpv6.js';
import type { DecodedMobilityMessage } from '../wire/mobility.js';
import { mobilitySignal } from '../wire/mobility-signal.js';
import { decodePacket, type DecodedPacket } from '../wire/packet.js';
import { checkMobilityHeader, mobilityHeaderAnswer } from './mobility-header-check.js';

export type MobileNodeSignal =
  /** Not signaling the HA may send at all: refused without a look inside. */
  | { kind: 'ignored'; reason: 'unexpected-signaling' }
  /** Refused after decoding (the packet was seen: captured, not counted as signaling). */
  | { kind: 'refused'; reason: string }
  /**
   * A Mobility Header that fails the RFC 6275 §9.2 checks: `packet` is the Parameter Problem or
   * Binding Error to send back (to the HA in its channel, or through it to a forwarded
   * packet's source), rate-limited by the driver.
   */
  | { kind: 'answer'; reason: string; packet: Uint8Array }
  /** A Mobility Header message to act on (counted as signaling in). */
  | { kind: 'mobility'; message: DecodedMobilityMessage }
  /** A DHAAD Reply or Mobile Prefix Advertisement (counted as signaling in). */
  | { kind: 'discovery'; message: DecodedIcmpv6 };

/**
 * Classifies the inner IPv6 `packet` from the HA channel: `fromHomeAgent` = the HA marked it as
 * its own signaling, else it came as payload and mobilitySignal() called it 'rr'.
 */
export function classifyMobileNodeSignal(
  packet: Uint8Array,
  fromHomeAgent: boolean,
): MobileNodeSignal {
  const sig = fromHomeAgent ? mobilitySignal(packet, 0, packet.length) : 'rr';
  if (sig === 'discovery') {
    let msg: DecodedIcmpv6 | undefined;
    try {
      msg = decodePacket(packet).icmpv6;
    } catch {
      msg = undefined;
    }
    if (msg === undefined || msg.checksumValid === false) {
      return { kind: 'refused', reason: 'discovery-malformed' };
    }
    return { kind: 'discovery', message: msg };
  }
  if (sig !== 'mh' && sig !== 'rr') return { kind: 'ignored', reason: 'unexpected-signaling' };
  let decoded: DecodedPacket;
  try {
    decoded = decodePacket(packet);
  } catch (err) {
    return {
      kind: 'refused',
      reason: err instanceof WireError ? `wire-${err.code}` : 'malformed-inner',
    };
  }
  const verdict = checkMobilityHeader(decoded);
  if (verdict.action === 'drop') return { kind: 'refused', reason: 'mh-invalid' };
  if (verdict.action !== 'accept') {
    // RFC 6275 §9.2: answered (rate-limited by the driver) from the address it was sent to.
    return {
      kind: 'answer',
      reason: verdict.reason,
      packet: mobilityHeaderAnswer(verdict, packet, decoded.destination),
    };
  }
  const mh = verdict.message;
  const rr = mh.kind === 'homeTest' || mh.kind === 'homeTestInit';
  if (fromHomeAgent === rr) {
    // Return routability's HoT/HoTI only ever come forwarded; everything else only from the HA.
    return {
      kind: 'refused',
      reason: fromHomeAgent ? `unexpected-${mh.kind}` : 'forwarded-signaling',
    };
  }
  return { kind: 'mobility', message: mh };
}
