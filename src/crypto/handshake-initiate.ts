/**
 * The initiator's side of the channel handshake (DESIGN.md §4): an initiation (type 1) for a
 * session, with a fresh ephemeral key, a strictly increasing TAI64N timestamp and our
 * certificate inside the Noise IK message A, MAC1 and (after a cookie reply) MAC2. Sent by
 * `connect()` and again by `poll()` (timers.ts) on retransmission and rekey; the response comes
 * back through handshake-receive.ts.
 */
import { compareBytes } from '../util/bytes.js';
import type { EndpointState } from './endpoint-state.js';
import {
  COOKIE_SECRET_LIFETIME_MS,
  HS_SENDER_SPI_OFF,
  INIT_NOISE_OFF,
  MACS_LEN,
  mac1Key,
  readMac1,
  tai64n,
  TIMESTAMP_LEN,
  writeMacs,
} from './handshake.js';
import { IkInitiator } from './noise.js';
import type { PeerSession } from './session.js';

/** Noise prologue: binds the protocol and version of mip6's channel. */
export const CHANNEL_PROLOGUE = new TextEncoder().encode('mip6 channel v1');

/**
 * How far an initiation's TAI64N timestamp may be ahead of our wall clock. Further ahead, the
 * initiation is dropped ('future-timestamp') and its timestamp never remembered: remembered, it
 * would lock its member out (timestamps must increase) until the member's clock caught up with
 * it, for good if that clock was wrong and gets corrected. Not a WireGuard rule (WireGuard takes
 * any greater timestamp). Within it, the worst lockout, after a member's clock is set back and
 * the member restarts (losing its own last timestamp; without a restart it keeps counting up),
 * is this long: shorter than one handshake attempt (REKEY_ATTEMPT_TIME, 90 s), so the member's
 * retransmissions of the same attempt get through. 60 s is far beyond the skew of hosts kept by
 * NTP (milliseconds) and absorbs a minute of drift on one without; a member further ahead is
 * refused, counted, rather than let in with a timestamp that would lock it out later.
 */
export const MAX_TIMESTAMP_AHEAD_MS = 60_000;

/** True when TAI64N `ts` is more than MAX_TIMESTAMP_AHEAD_MS ahead of the wall time `wallMs`. */
export function tooFarAhead(ts: Uint8Array, wallMs: number): boolean {
  return compareBytes(ts, tai64n(wallMs + MAX_TIMESTAMP_AHEAD_MS)) > 0;
}

/**
 * Strictly increasing TAI64N of the wall clock (WireGuard's replay defence for initiations).
 * When the clock has gone back, we count up from the last timestamp sent while that is within
 * MAX_TIMESTAMP_AHEAD_MS of the clock (responders still take it); further ahead, counting up
 * would only give timestamps every responder refuses ('future-timestamp'): the clock again.
 */
function nextTimestamp(st: EndpointState): Uint8Array {
  const wall = st.wallClock();
  let ts = st.opts.timestamp ? st.opts.timestamp(wall) : tai64n(wall);
  if (compareBytes(ts, st.lastTimestamp) <= 0 && !tooFarAhead(st.lastTimestamp, wall)) {
    const dv = new DataView(st.lastTimestamp.buffer);
    const secs = dv.getBigUint64(0);
    const ns = dv.getUint32(8) + 1;
    ts = new Uint8Array(TIMESTAMP_LEN);
    const out = new DataView(ts.buffer);
    out.setBigUint64(0, ns >= 1e9 ? secs + 1n : secs);
    out.setUint32(8, ns % 1e9);
  }
  st.lastTimestamp = ts;
  return ts;
}

/**
 * Starts (or restarts) a handshake with `session`'s peer: any pending one is abandoned, and the
 * new one is pending under a fresh SPI. Returns the initiation to send. `firstSentAt` is when
 * this handshake attempt began (kept across retransmissions, for REKEY_ATTEMPT_TIME).
 */
export function initiate(
  st: EndpointState,
  session: PeerSession,
  now: number,
  firstSentAt: number,
): Uint8Array {
  st.abandonPending(session);
  const initiator = new IkInitiator(
    st.opts.staticKey,
    session.peerPublicKey,
    CHANNEL_PROLOGUE,
    st.opts.ephemeral?.(),
  );
  const localSpi = st.newSpi();
  const payload = new Uint8Array(TIMESTAMP_LEN + st.opts.certificate.raw.length);
  payload.set(nextTimestamp(st));
  payload.set(st.opts.certificate.raw, TIMESTAMP_LEN);
  const noise = initiator.writeMessageA(payload);
  const msg = new Uint8Array(INIT_NOISE_OFF + noise.length + MACS_LEN);
  msg[0] = 1;
  new DataView(msg.buffer).setUint32(HS_SENDER_SPI_OFF, localSpi);
  msg.set(noise, INIT_NOISE_OFF);
  const cookie =
    session.cookie && now - session.cookie.at < COOKIE_SECRET_LIFETIME_MS
      ? session.cookie.value
      : null;
  writeMacs(msg, mac1Key(session.peerPublicKey), cookie);
  session.pending = {
    initiator,
    localSpi,
    firstSentAt,
    lastSentAt: now,
    mac1: readMac1(msg),
    message: msg.slice(),
    resendNow: false,
  };
  st.pendingBySpi.set(localSpi, session);
  st.touched.add(session);
  return msg;
}
