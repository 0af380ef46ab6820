/**
 * Handshake messages received by a SecureEndpoint (DESIGN.md §4), each checked in this order and
 * dropped, counted, at the first check it fails; nothing changes before the message
 * authenticates (noise.ts reads on a copy):
 *   initiation (type 1): MAC1 -> (under load) MAC2 or a cookie reply -> Noise -> certificate
 *               (authority, validity, role, key = Noise static key, not revoked) -> timestamp
 *               not too far ahead of our wall clock, and greater than the last one -> response,
 *               new keys installed as `next` (or `current` when there are none) -> `established`
 *               with the reply to send.
 *   response (type 2): pending handshake by receiver SPI -> MAC1 -> Noise -> certificate ->
 *               keys installed as `current` -> `established`.
 *   cookie reply (type 3): pending handshake by receiver SPI -> cookie decrypted -> the same
 *               initiation goes again from `poll()` with MAC2.
 */
import { byteString } from '../util/bytes.js';
import { TAG_LEN, readSpi } from './aead.js';
import {
  certificateIs,
  checkValidityAndRole,
  decodeCertificate,
  verifyCertificate,
  type CertificateVerdict,
  type MemberCertificate,
} from './certificate.js';
import { DEFAULT_MAX_HANDSHAKES_PER_SECOND, type EndpointState } from './endpoint-state.js';
import {
  checkMac1,
  checkMac2,
  CookieChecker,
  COOKIE_LEN,
  HS_SENDER_SPI_OFF,
  INIT_NOISE_OFF,
  MACS_LEN,
  mac1Key,
  openCookieReply,
  RESP_NOISE_OFF,
  RESP_RECEIVER_SPI_OFF,
  tai64n,
  TIMESTAMP_LEN,
  writeMacs,
} from './handshake.js';
import { CHANNEL_PROLOGUE, MAX_TIMESTAMP_AHEAD_MS, tooFarAhead } from './handshake-initiate.js';
import { IkResponder, IK_MSG_A_FIXED } from './noise.js';
import { Keypair, type DropReason, type ReceiveResult } from './session.js';
import { lib } from './sodium.js';

const MIN_INITIATION = INIT_NOISE_OFF + IK_MSG_A_FIXED + TIMESTAMP_LEN + TAG_LEN + MACS_LEN;
const MIN_RESPONSE = RESP_NOISE_OFF + 32 + TAG_LEN + MACS_LEN;

/**
 * Checks a peer certificate carried in a handshake; a DropReason or the certificate. `known`
 * is the certificate this peer's session already holds: when a rekey presents the very same
 * bytes, their signature was verified at the earlier handshake, so only validity and role are
 * checked again (a home agent rekeys with every member every REKEY_AFTER_TIME). Validity is
 * checked at `wallMs`, the wall clock.
 */
function checkPeerCertificate(
  st: EndpointState,
  bytes: Uint8Array,
  noiseStatic: Uint8Array,
  wallMs: number,
  known: MemberCertificate | null,
): MemberCertificate | DropReason {
  let cert: MemberCertificate;
  let verdict: CertificateVerdict;
  if (known !== null && certificateIs(known, bytes)) {
    cert = known;
    verdict = checkValidityAndRole(cert, wallMs, st.opts.allowedPeerRoles);
  } else {
    try {
      cert = decodeCertificate(bytes);
    } catch {
      return 'bad-certificate';
    }
    verdict = verifyCertificate(cert, st.opts.authorityPublicKey, wallMs, st.opts.allowedPeerRoles);
  }
  if (verdict !== 'ok') return verdict;
  if (!lib().memcmp(cert.publicKey, noiseStatic)) return 'key-mismatch';
  if (st.opts.isRevoked?.(cert.publicKey) === true) return 'revoked';
  return cert;
}

export function onInitiation(
  st: EndpointState,
  msg: Uint8Array,
  now: number,
  underLoad: boolean | undefined,
  source: string,
): ReceiveResult {
  if (msg.length < MIN_INITIATION) return st.drop('malformed');
  if (!checkMac1(msg, st.mac1KeyOwn)) return st.drop('bad-mac1');
  if (now - st.loadWindowStart >= 1000) {
    st.loadWindowStart = now;
    st.loadCount = 0;
  }
  const busy =
    underLoad ??
    st.loadCount >= (st.opts.maxHandshakesPerSecond ?? DEFAULT_MAX_HANDSHAKES_PER_SECOND);
  if (busy) {
    st.cookies ??= new CookieChecker(now);
    const locator = new TextEncoder().encode(source);
    if (!checkMac2(msg, st.cookies.cookieFor(locator, now))) {
      st.drops['cookie-required']++;
      const reply = st.cookies.reply(msg, locator, st.opts.staticKey.publicKey, now);
      return { kind: 'reply', data: reply };
    }
  }
  st.loadCount++;
  const responder = new IkResponder(st.opts.staticKey, CHANNEL_PROLOGUE, st.opts.ephemeral?.());
  const read = responder.readMessageA(msg.subarray(INIT_NOISE_OFF, msg.length - MACS_LEN));
  if (read === null) {
    responder.wipe();
    return st.drop('bad-handshake');
  }
  const timestamp = read.payload.subarray(0, TIMESTAMP_LEN);
  const peerKey = byteString(read.remoteStatic);
  const known = st.sessions.get(peerKey);
  const wall = st.wallClock();
  const cert = checkPeerCertificate(
    st,
    read.payload.subarray(TIMESTAMP_LEN),
    read.remoteStatic,
    wall,
    known?.peerCertificate ?? null,
  );
  if (typeof cert === 'string') {
    responder.wipe();
    return st.drop(cert, known);
  }
  if (tooFarAhead(timestamp, wall)) {
    responder.wipe();
    return st.drop('future-timestamp', known);
  }
  const stamp = String.fromCharCode(...timestamp);
  // While the peer's session is open its timestamp is kept there, else in peerTimestamps.
  let last = known?.acceptedTimestamp ?? st.peerTimestamps.get(peerKey);
  // A remembered timestamp too far ahead of our clock was taken while our clock was ahead
  // (it was within MAX_TIMESTAMP_AHEAD_MS of it then) and has been set back since: kept, it
  // would lock this member out until our clock caught up again. Forgotten instead: the state a
  // restart gives (the only way out before), where an old initiation of this member could be
  // replayed once until a new one is remembered (as after any restart, and as in WireGuard; the
  // replayer lacks the initiator's ephemeral key, so it gains no keys).
  if (last !== undefined && last > String.fromCharCode(...tai64n(wall + MAX_TIMESTAMP_AHEAD_MS)))
    last = undefined;
  if (last !== undefined && stamp <= last) {
    responder.wipe();
    return st.drop('stale-timestamp', known);
  }
  // The certificate's key is the Noise static key (checked above).
  const session = st.sessionFor(read.remoteStatic, peerKey);
  session.peerCertificate = cert;
  session.acceptedTimestamp = stamp;
  st.peerTimestamps.delete(peerKey); // a closed session's, if any: the session's now

  const localSpi = st.newSpi();
  const remoteSpi = readSpi(msg, 0);
  const { message, keys } = responder.writeMessageB(st.opts.certificate.raw);
  const reply = new Uint8Array(RESP_NOISE_OFF + message.length + MACS_LEN);
  reply[0] = 2;
  const dv = new DataView(reply.buffer);
  dv.setUint32(HS_SENDER_SPI_OFF, localSpi);
  dv.setUint32(RESP_RECEIVER_SPI_OFF, remoteSpi);
  reply.set(message, RESP_NOISE_OFF);
  writeMacs(reply, mac1Key(read.remoteStatic), null);

  const kp = new Keypair(session, keys, localSpi, remoteSpi, now, false);
  st.bySpi.set(localSpi, kp);
  if (session.current === null) {
    session.current = kp;
  } else {
    // Key confirmation: keep sending with the current keys until the initiator uses these.
    st.retire(session.next);
    session.next = kp;
  }
  session.stats.handshakes++;
  st.touched.add(session);
  return { kind: 'established', session, reply };
}

export function onResponse(st: EndpointState, msg: Uint8Array, now: number): ReceiveResult {
  if (msg.length < MIN_RESPONSE) return st.drop('malformed');
  const session = st.pendingBySpi.get(readSpi(msg, RESP_RECEIVER_SPI_OFF - 4));
  if (session === undefined || session.pending === null) return st.drop('unknown-spi');
  if (!checkMac1(msg, st.mac1KeyOwn)) return st.drop('bad-mac1', session);
  const pending = session.pending;
  const read = pending.initiator.readMessageB(msg.subarray(RESP_NOISE_OFF, msg.length - MACS_LEN));
  if (read === null) return st.drop('bad-handshake', session);
  st.pendingBySpi.delete(pending.localSpi);
  session.pending = null;
  const cert = checkPeerCertificate(
    st,
    read.payload,
    session.peerPublicKey,
    st.wallClock(),
    session.peerCertificate,
  );
  if (typeof cert === 'string') {
    lib().memzero(read.keys.sendKey);
    lib().memzero(read.keys.receiveKey);
    return st.drop(cert, session);
  }
  session.peerCertificate = cert;
  const kp = new Keypair(session, read.keys, pending.localSpi, readSpi(msg, 0), now, true);
  st.bySpi.set(kp.localSpi, kp);
  st.retire(session.next);
  session.next = null;
  st.retire(session.previous);
  session.previous = session.current;
  session.current = kp;
  session.wantRekey = false;
  session.stats.handshakes++;
  st.touched.add(session);
  return { kind: 'established', session };
}

export function onCookieReply(st: EndpointState, msg: Uint8Array, now: number): ReceiveResult {
  if (msg.length !== 64) return st.drop('malformed');
  const session = st.pendingBySpi.get(readSpi(msg, 0));
  if (session === undefined || session.pending === null) return st.drop('unknown-spi');
  const cookie = openCookieReply(msg, session.peerPublicKey, session.pending.mac1);
  if (cookie === null || cookie.length !== COOKIE_LEN) return st.drop('bad-cookie', session);
  session.cookie = { value: cookie, at: now };
  // The responder did no Diffie-Hellman for it and kept no state: the same initiation (same
  // ephemeral key and timestamp) goes again at once from poll(), now with MAC2. Cheaper for
  // the initiator than a whole new one, and what it answers (mac1) stays the same.
  writeMacs(session.pending.message, mac1Key(session.peerPublicKey), cookie);
  session.pending.resendNow = true;
  st.touched.add(session);
  return { kind: 'cookie', session };
}
