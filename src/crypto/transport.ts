/**
 * Data messages (type 4) of a SecureEndpoint (DESIGN.md §4): sealing and opening, in batches.
 *
 * Send: keys usable (current, not past REJECT_AFTER_TIME / REJECT_AFTER_MESSAGES, else a
 *   handshake is asked of `poll()`; past the REKEY limits a rekey, see sendKeys) -> header
 *   (receiver SPI, next counter, kind) -> the batch encrypted under one key by the BatchAead
 *   backend.
 * Receive: keys by receiver SPI -> key age -> replay pre-check -> tag (consecutive messages
 *   under the same keys in one backend call) -> window update -> key confirmation (a responder's
 *   `next` keys become current on the first message under them) -> keep the keys fresh (see
 *   keepFreshOnReceive) -> counters. Decrypted in place:
 *   the inner packet is at offset 16 of the message.
 */
import {
  DATA_HEADER_LEN,
  DATA_OVERHEAD,
  DataKind,
  MSG_KIND_OFF,
  readCounter,
  readSpi,
  writeDataHeader,
} from './aead.js';
import type { EndpointState } from './endpoint-state.js';
import {
  RECEIVE,
  SEND,
  type DropReason,
  type Keypair,
  type PeerSession,
  type ReceiveResult,
} from './session.js';

/**
 * Per-packet outcome codes of `openBatch`: DATA is forwarded payload (DataKind.PAYLOAD), SIGNALING
 * a packet the peer originated itself (DataKind.SIGNALING). Both are authenticated; only the
 * second may be taken as the peer's own signaling.
 */
export const OpenResult = { DROPPED: 0, DATA: 1, NOT_DATA: 2, SIGNALING: 3 } as const;

export interface OpenBatchOutput {
  /** OpenResult per message. */
  results: Uint8Array;
  /** The peer session of each accepted message (undefined otherwise). */
  sessions: (PeerSession | undefined)[];
}

/** Scratch arrays for the single-message and batch paths (grown, never shrunk). */
export class TransportScratch {
  readonly oneOffset = new Uint32Array(1);
  readonly oneLength = new Uint32Array(1);
  readonly oneResult = new Uint8Array(1);
  /** The key of the AEAD call being made (Keypair.copyKey), zeroed after it. */
  readonly key = new Uint8Array(32);
  runOffsets = new Uint32Array(64);
  runLengths = new Uint32Array(64);
  runIndex = new Uint32Array(64);
  runResults = new Uint8Array(64);

  grow(n: number): void {
    if (n <= this.runOffsets.length) return;
    let cap = this.runOffsets.length;
    while (cap < n) cap *= 2;
    this.runOffsets = new Uint32Array(cap);
    this.runLengths = new Uint32Array(cap);
    this.runIndex = new Uint32Array(cap);
    this.runResults = new Uint8Array(cap);
  }
}

// ---- receive -------------------------------------------------------------------------------

/** One data message through `receive()`: opened in place, or dropped (counted). */
export function onData(st: EndpointState, msg: Uint8Array, now: number): ReceiveResult {
  if (msg.length < DATA_OVERHEAD) return st.drop('malformed');
  st.scratch.oneOffset[0] = 0;
  st.scratch.oneLength[0] = msg.length;
  const kp = st.bySpi.get(readSpi(msg, 0));
  if (kp === undefined) return st.drop('unknown-spi');
  const reason = openOne(st, kp.session, kp, msg, 0, msg.length, now);
  if (reason !== null) return st.drop(reason, kp.session);
  return {
    kind: 'data',
    session: kp.session,
    offset: DATA_HEADER_LEN,
    length: msg.length - DATA_OVERHEAD,
    signaling: msg[1] === DataKind.SIGNALING,
  };
}

/** Pre-checks (age, window) for a data message; null if it may be decrypted. */
function precheck(
  st: EndpointState,
  kp: Keypair,
  buf: Uint8Array,
  off: number,
  now: number,
): DropReason | null {
  if (now - kp.createdAt >= st.timers.rejectAfterTimeMs) return 'expired-keys';
  const counter = readCounter(buf, off);
  if (counter >= st.timers.rejectAfterMessages) return 'too-old';
  const v = kp.replay.check(counter);
  return v === 'ok' ? null : v;
}

/** Post-tag bookkeeping: window update, key confirmation, counters. */
function accept(
  st: EndpointState,
  session: PeerSession,
  kp: Keypair,
  buf: Uint8Array,
  off: number,
  len: number,
  now: number,
): DropReason | null {
  const v = kp.replay.update(readCounter(buf, off));
  if (v !== 'ok') return v;
  if (kp === session.next) {
    st.retire(session.previous);
    session.previous = session.current;
    session.current = kp;
    session.next = null;
    session.wantRekey = false;
  }
  // Fresh keys confirmed both ways (also keys that became current at once, having none before):
  // a handshake of our own still being retransmitted is moot (wireguard-go stops its
  // retransmissions here too, timersHandshakeComplete).
  if (
    session.pending !== null &&
    kp === session.current &&
    kp.createdAt >= session.pending.firstSentAt
  ) {
    st.abandonPending(session);
  }
  keepFreshOnReceive(st, session, kp, buf[off + MSG_KIND_OFF] === DataKind.SIGNALING, now);
  session.stats.packetsIn++;
  session.stats.bytesIn += len - DATA_OVERHEAD;
  return null;
}

function openOne(
  st: EndpointState,
  session: PeerSession,
  kp: Keypair,
  buf: Uint8Array,
  off: number,
  len: number,
  now: number,
): DropReason | null {
  const pre = precheck(st, kp, buf, off, now);
  if (pre !== null) return pre;
  if (kp.wiped) return 'expired-keys'; // never an AEAD call under the zeros a wiped key reads
  const sc = st.scratch;
  sc.oneOffset[0] = off;
  sc.oneLength[0] = len;
  try {
    st.aead.openBatch(
      kp.copyKey(RECEIVE, sc.key),
      buf,
      sc.oneOffset,
      sc.oneLength,
      1,
      sc.oneResult,
    );
  } finally {
    sc.key.fill(0);
  }
  if (sc.oneResult[0] !== 1) return 'bad-tag';
  return accept(st, session, kp, buf, off, len, now);
}

/**
 * Opens a run of datagrams under one keypair (sc.run* [0, run)) and records each outcome; returns
 * how many were accepted. A plain function, not a closure per call: the packet path stays in
 * optimized code (a closure made per batch kept this part in Sparkplug, issue #16).
 */
function openRun(
  st: EndpointState,
  kp: Keypair,
  buf: Uint8Array,
  run: number,
  now: number,
  out: OpenBatchOutput,
): number {
  if (run === 0) return 0;
  const sc = st.scratch;
  const session = kp.session;
  if (kp.wiped) {
    // Staged before an earlier run of this batch confirmed newer keys and retired these: a
    // wiped keypair's key reads zeros, which anyone can seal with, so nothing is opened.
    for (let j = 0; j < run; j++) {
      st.drop('expired-keys', session);
      out.results[sc.runIndex[j]!] = OpenResult.DROPPED;
    }
    return 0;
  }
  try {
    const key = kp.copyKey(RECEIVE, sc.key);
    st.aead.openBatch(key, buf, sc.runOffsets, sc.runLengths, run, sc.runResults);
  } finally {
    sc.key.fill(0);
  }
  let accepted = 0;
  for (let j = 0; j < run; j++) {
    const i = sc.runIndex[j]!;
    const off = sc.runOffsets[j]!;
    let reason: DropReason | null = sc.runResults[j] === 1 ? null : 'bad-tag';
    if (reason === null) reason = accept(st, session, kp, buf, off, sc.runLengths[j]!, now);
    if (reason === null) {
      out.results[i] =
        buf[off + MSG_KIND_OFF] === DataKind.SIGNALING ? OpenResult.SIGNALING : OpenResult.DATA;
      out.sessions[i] = session;
      accepted++;
    } else {
      st.drop(reason, session);
      out.results[i] = OpenResult.DROPPED;
    }
  }
  return accepted;
}

/** See SecureEndpoint.openBatch. */
export function openBatch(
  st: EndpointState,
  buf: Uint8Array,
  offsets: Uint32Array,
  lengths: Uint32Array,
  count: number,
  now: number,
  out: OpenBatchOutput,
): number {
  const sc = st.scratch;
  sc.grow(count);
  let accepted = 0;
  let run = 0;
  let runKp: Keypair | null = null;
  for (let i = 0; i < count; i++) {
    const off = offsets[i]!;
    const len = lengths[i]!;
    out.sessions[i] = undefined;
    if (len < 1 || off + len > buf.length) {
      st.drop('malformed');
      out.results[i] = OpenResult.DROPPED;
      continue;
    }
    if (buf[off] !== 4) {
      out.results[i] = OpenResult.NOT_DATA;
      continue;
    }
    if (
      len < DATA_OVERHEAD ||
      (buf[off + 1] !== DataKind.PAYLOAD && buf[off + 1] !== DataKind.SIGNALING) ||
      buf[off + 2] !== 0 ||
      buf[off + 3] !== 0
    ) {
      st.drop('malformed');
      out.results[i] = OpenResult.DROPPED;
      continue;
    }
    const kp = st.bySpi.get(readSpi(buf, off));
    if (kp === undefined) {
      st.drop('unknown-spi');
      out.results[i] = OpenResult.DROPPED;
      continue;
    }
    const pre = precheck(st, kp, buf, off, now);
    if (pre !== null) {
      st.drop(pre, kp.session);
      out.results[i] = OpenResult.DROPPED;
      continue;
    }
    if (kp !== runKp) {
      if (runKp !== null) accepted += openRun(st, runKp, buf, run, now, out);
      run = 0;
      runKp = kp;
    }
    sc.runOffsets[run] = off;
    sc.runLengths[run] = len;
    sc.runIndex[run] = i;
    run++;
  }
  if (runKp !== null) accepted += openRun(st, runKp, buf, run, now, out);
  return accepted;
}

// ---- send ----------------------------------------------------------------------------------

/**
 * The keys to send with, or null when there are none usable: none yet, wiped, or past
 * REJECT_AFTER_TIME / REJECT_AFTER_MESSAGES. Payload then asks `poll()` for a handshake, once
 * (WireGuard: a packet with no current keypair starts one), so traffic brings an expired channel
 * back on either side. Signaling does not: a node's own periodic messages (path MTU
 * confirmations, a home agent's BRRs) must not revive an idle channel; a driver whose signaling
 * needs the channel (the MN's BU) checks `canSeal` and connects itself.
 *
 * Rekeys (WireGuard's keep_key_fresh on send): past REKEY_AFTER_MESSAGES on either side; past
 * REKEY_AFTER_TIME only on a PAYLOAD send of the side that keeps the channel up (it initiated
 * these keys, or it connect()ed). Signaling the node writes itself (refresh BUs, which are also
 * the NAT keepalives, path MTU probes, BRRs) rides on the keys it finds: an idle member's
 * channel is never rekeyed by time, and the home agent (responder) never rekeys by time.
 */
function sendKeys(
  st: EndpointState,
  session: PeerSession,
  count: number,
  now: number,
  kind: DataKind,
): Keypair | null {
  const kp = session.current;
  const t = st.timers;
  if (
    kp === null ||
    now - kp.createdAt >= t.rejectAfterTimeMs ||
    kp.sendCounter + count > t.rejectAfterMessages
  ) {
    if (kind === DataKind.PAYLOAD) wantHandshake(st, session);
    return null;
  }
  if (
    kp.sendCounter + count >= t.rekeyAfterMessages ||
    (kind === DataKind.PAYLOAD && keepsUp(session, kp) && now - kp.createdAt >= t.rekeyAfterTimeMs)
  ) {
    wantHandshake(st, session);
  }
  return kp;
}

/** The side that rekeys by time: the initiator of these keys, or the one that connect()ed. */
function keepsUp(session: PeerSession, kp: Keypair): boolean {
  return kp.isInitiator || session.persistent;
}

/** Asks `poll()` for a handshake unless one is already wanted or in flight. */
function wantHandshake(st: EndpointState, session: PeerSession): void {
  if (session.wantRekey || session.pending !== null || session.closed) return;
  session.wantRekey = true;
  st.touched.add(session);
}

/**
 * WireGuard's keep_key_fresh on receive: payload arriving under current keys this side keeps up
 * that are REJECT_AFTER_TIME - 3 REKEY_TIMEOUT old (wireguard: - KEEPALIVE_TIMEOUT -
 * REKEY_TIMEOUT, the same 165 s) asks for a rekey, so a flow that only comes in (a download) gets
 * new keys before the old ones are rejected. Signaling (a BA) does not.
 */
function keepFreshOnReceive(
  st: EndpointState,
  session: PeerSession,
  kp: Keypair,
  signaling: boolean,
  now: number,
): void {
  if (signaling || kp !== session.current || !keepsUp(session, kp)) return;
  const t = st.timers;
  if (now - kp.createdAt >= t.rejectAfterTimeMs - 3 * t.rekeyTimeoutMs) wantHandshake(st, session);
}

/** See SecureEndpoint.sealBatch. */
export function sealBatch(
  st: EndpointState,
  session: PeerSession,
  buf: Uint8Array,
  offsets: Uint32Array,
  lengths: Uint32Array,
  count: number,
  now: number,
  kind: DataKind,
): number {
  const kp = sendKeys(st, session, count, now, kind);
  if (kp === null) return 0;
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    writeDataHeader(buf, offsets[i]!, kp.remoteSpi, kp.sendCounter++, kind);
    bytes += lengths[i]!;
  }
  try {
    st.aead.sealBatch(kp.copyKey(SEND, st.scratch.key), buf, offsets, lengths, count);
  } finally {
    st.scratch.key.fill(0);
  }
  session.stats.packetsOut += count;
  session.stats.bytesOut += bytes;
  return count;
}

/** See SecureEndpoint.seal. */
export function seal(
  st: EndpointState,
  session: PeerSession,
  plaintext: Uint8Array,
  now: number,
  kind: DataKind,
): Uint8Array | null {
  const msg = new Uint8Array(DATA_OVERHEAD + plaintext.length);
  msg.set(plaintext, DATA_HEADER_LEN);
  const sc = st.scratch;
  sc.oneOffset[0] = 0;
  sc.oneLength[0] = plaintext.length;
  return sealBatch(st, session, msg, sc.oneOffset, sc.oneLength, 1, now, kind) === 1 ? msg : null;
}
