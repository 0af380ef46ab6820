/**
 * Timer work of a SecureEndpoint (DESIGN.md §4; WireGuard whitepaper §6): handshake
 * retransmission, rekeys and key expiry, pulled by the driver with `poll(now)`, which returns
 * what to send and when to call again. Sessions wait in a deadline heap keyed by `timerAt`;
 * a poll looks only at those due and those whose state changed since the last one (`touched`).
 *
 * Per session, in order: keys past REJECT_AFTER_TIME are wiped -> a pending handshake is resent
 * at once after a cookie reply, retransmitted every REKEY_TIMEOUT with a new ephemeral key, or
 * given up after REKEY_ATTEMPT_TIME -> a handshake wanted by the data path starts.
 *
 * No handshake is ever started by time alone (issue 17): rekeys are asked for by sends and
 * receives of payload (transport.ts sendKeys, keepFreshOnReceive; WireGuard's keep_key_fresh),
 * so an idle channel costs no handshakes, on either side, until its keys expire and its next
 * send (a refresh BU) needs new ones: one handshake then, not one every REKEY_AFTER_TIME.
 */
import type { EndpointState } from './endpoint-state.js';
import { initiate } from './handshake-initiate.js';
import type { PeerSession } from './session.js';

/**
 * Timers and limits. Names and defaults follow WireGuard (whitepaper §6.1), except the message
 * limits: counters must stay exact in a JS number (2^53), so we reject after 2^48 messages
 * instead of 2^64 - 2^13 - 1; at 10 Mpps that is ~325 days, far beyond REKEY_AFTER_TIME.
 */
export interface ChannelTimers {
  rekeyAfterTimeMs: number;
  rejectAfterTimeMs: number;
  rekeyAfterMessages: number;
  rejectAfterMessages: number;
  rekeyTimeoutMs: number;
  rekeyAttemptTimeMs: number;
}
export const DEFAULT_TIMERS: ChannelTimers = {
  rekeyAfterTimeMs: 120_000,
  rejectAfterTimeMs: 180_000,
  rekeyAfterMessages: 2 ** 47,
  rejectAfterMessages: 2 ** 48,
  rekeyTimeoutMs: 5_000,
  rekeyAttemptTimeMs: 90_000,
};

export interface PollResult {
  send: { peer: PeerSession; data: Uint8Array }[];
  nextDeadline: number;
}

/** See SecureEndpoint.poll. */
export function poll(st: EndpointState, now: number): PollResult {
  const send: { peer: PeerSession; data: Uint8Array }[] = [];
  const due = st.touched;
  st.touched = new Set();
  while (st.timerHeap.peek() <= now) {
    const at = st.timerHeap.peek();
    const s = st.timerHeap.pop();
    if (st.timerLive(s, at)) due.add(s); // else stale: rescheduled since
  }
  for (const s of due) {
    if (s.closed) continue;
    // A whole millisecond, never sooner than due (see PeerSession.timerAt).
    const next = Math.ceil(pollSession(st, s, now, send));
    st.touched.delete(s); // initiate() marked it; its deadline is part of `next`
    if (next === Infinity) {
      s.timerAt = undefined;
      continue;
    }
    if (Number.isNaN(st.timerBase)) st.timerBase = next;
    if (next - st.timerBase !== s.timerAt) {
      s.timerAt = next - st.timerBase;
      st.timerHeap.push(next, s);
    }
  }
  return {
    send,
    nextDeadline: st.touched.size > 0 ? now : st.timerHeap.peekLive(st.timerLive),
  };
}

/** One session's timer work (see poll); returns when it next has some. */
function pollSession(
  st: EndpointState,
  s: PeerSession,
  now: number,
  send: { peer: PeerSession; data: Uint8Array }[],
): number {
  const t = st.timers;
  let next = Infinity;
  for (const slot of ['previous', 'next', 'current'] as const) {
    const kp = s[slot];
    if (kp === null) continue;
    if (now - kp.createdAt >= t.rejectAfterTimeMs) {
      // Expired keys go; nothing is started for them: the next send asks for a handshake.
      st.retire(kp);
      s[slot] = null;
    } else {
      next = Math.min(next, kp.createdAt + t.rejectAfterTimeMs);
    }
  }
  if (s.pending?.resendNow === true) {
    s.pending.resendNow = false;
    s.pending.lastSentAt = now;
    send.push({ peer: s, data: s.pending.message.slice() });
  } else if (s.pending) {
    if (now - s.pending.lastSentAt >= t.rekeyTimeoutMs) {
      if (now - s.pending.firstSentAt >= t.rekeyAttemptTimeMs) {
        st.abandonPending(s);
        s.stats.handshakeTimeouts++;
        s.wantRekey = false;
      } else {
        send.push({ peer: s, data: initiate(st, s, now, s.pending.firstSentAt) });
      }
    }
  } else if (s.wantRekey) {
    s.wantRekey = false;
    send.push({ peer: s, data: initiate(st, s, now, now) });
  }
  if (s.pending) next = Math.min(next, s.pending.lastSentAt + t.rekeyTimeoutMs);
  return next;
}
