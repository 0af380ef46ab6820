/**
 * Handshake message framing, MAC1/MAC2 and cookies (the DoS layer WireGuard puts around Noise;
 * DESIGN.md §4 "cookie / rate limit before expensive crypto"). Pure functions over bytes.
 *
 * Initiation (type 1):  type | 0 0 0 | sender SPI | e(32) | enc s(48) | enc payload | mac1 | mac2
 *                       payload = TAI64N timestamp (12) | initiator certificate
 * Response   (type 2):  type | 0 0 0 | sender SPI | receiver SPI | e(32) | enc payload | mac1 | mac2
 *                       payload = responder certificate
 * Cookie reply (type 3): type | 0 0 0 | receiver SPI | nonce(24) | enc cookie(16 + 16)
 *
 * MAC1 = BLAKE2b-128 keyed by BLAKE2b-256("mac1----" | receiver static public key) over the
 * message up to mac1: anyone who knows the receiver's public key can compute it, so checking it
 * costs one hash and rejects random junk before any Diffie-Hellman. MAC2 = BLAKE2b-128 keyed by
 * a cookie over the message up to mac2; a responder under load demands it. The cookie is
 * BLAKE2b-128(secret rotated every 2 minutes, sender's locator), sent back encrypted with
 * XChaCha20-Poly1305 under BLAKE2b-256("cookie--" | responder public key), bound to the MAC1 it
 * answers (AD), so only the real sender at that locator can use it (WireGuard whitepaper §5.4.7).
 *
 * The SPIs are not covered by the Noise transcript (as in WireGuard): changing them in flight
 * only breaks that handshake, which an on-path attacker can do anyway.
 */
import { blake2b, concat } from './noise.js';
import { randomBytes } from './random.js';
import { lib } from './sodium.js';

export const HS_TYPE_OFF = 0;
export const HS_SENDER_SPI_OFF = 4;
export const INIT_NOISE_OFF = 8;
export const RESP_RECEIVER_SPI_OFF = 8;
export const RESP_NOISE_OFF = 12;
export const MAC_LEN = 16;
/** mac1 | mac2 trailer. */
export const MACS_LEN = 2 * MAC_LEN;
export const COOKIE_NONCE_OFF = 8;
export const COOKIE_NONCE_LEN = 24;
export const COOKIE_BOX_OFF = 32;
export const COOKIE_LEN = 16;
/** Cookie reply length: header 8 | nonce 24 | cookie 16 + tag 16. */
export const COOKIE_REPLY_LEN = 64;
/** TAI64N timestamp length (8 bytes seconds label, 4 bytes nanoseconds). */
export const TIMESTAMP_LEN = 12;
/** Cookie secret rotation and cookie lifetime: 2 minutes (WireGuard's COOKIE_REFRESH_TIME). */
export const COOKIE_SECRET_LIFETIME_MS = 120_000;

const LABEL_MAC1 = new TextEncoder().encode('mac1----');
const LABEL_COOKIE = new TextEncoder().encode('cookie--');

export function mac1Key(receiverPublic: Uint8Array): Uint8Array {
  return blake2b(concat(LABEL_MAC1, receiverPublic), 32);
}

export function cookieKey(responderPublic: Uint8Array): Uint8Array {
  return blake2b(concat(LABEL_COOKIE, responderPublic), 32);
}

/** Writes mac1 (and mac2 when a cookie is given, zeros otherwise) into the message trailer. */
export function writeMacs(msg: Uint8Array, key1: Uint8Array, cookie: Uint8Array | null): void {
  const m1 = msg.length - MACS_LEN;
  msg.set(blake2b(msg.subarray(0, m1), MAC_LEN, key1), m1);
  const m2 = m1 + MAC_LEN;
  if (cookie === null) msg.fill(0, m2);
  else msg.set(blake2b(msg.subarray(0, m2), MAC_LEN, cookie), m2);
}

export function checkMac1(msg: Uint8Array, key1: Uint8Array): boolean {
  const m1 = msg.length - MACS_LEN;
  const want = blake2b(msg.subarray(0, m1), MAC_LEN, key1);
  return lib().memcmp(want, msg.subarray(m1, m1 + MAC_LEN));
}

export function checkMac2(msg: Uint8Array, cookie: Uint8Array): boolean {
  const m2 = msg.length - MAC_LEN;
  const want = blake2b(msg.subarray(0, m2), MAC_LEN, cookie);
  return lib().memcmp(want, msg.subarray(m2));
}

export function readMac1(msg: Uint8Array): Uint8Array {
  const m1 = msg.length - MACS_LEN;
  return msg.slice(m1, m1 + MAC_LEN);
}

/** Responder side: a rotating secret and the cookie for a locator. */
export class CookieChecker {
  private secret: Uint8Array;
  private secretAt: number;

  constructor(now: number) {
    this.secret = randomBytes(32);
    this.secretAt = now;
  }

  cookieFor(locator: Uint8Array, now: number): Uint8Array {
    if (now - this.secretAt >= COOKIE_SECRET_LIFETIME_MS) {
      lib().memzero(this.secret);
      this.secret = randomBytes(32);
      this.secretAt = now;
    }
    return blake2b(locator, COOKIE_LEN, this.secret);
  }

  /** Builds the cookie reply for `msg` (whose sender SPI and mac1 it echoes). */
  reply(
    msg: Uint8Array,
    locator: Uint8Array,
    responderPublic: Uint8Array,
    now: number,
  ): Uint8Array {
    const s = lib();
    const out = new Uint8Array(COOKIE_REPLY_LEN);
    out[0] = 3;
    out.set(msg.subarray(HS_SENDER_SPI_OFF, HS_SENDER_SPI_OFF + 4), 4);
    const nonce = randomBytes(COOKIE_NONCE_LEN);
    out.set(nonce, COOKIE_NONCE_OFF);
    const box = s.crypto_aead_xchacha20poly1305_ietf_encrypt(
      this.cookieFor(locator, now),
      readMac1(msg),
      null,
      nonce,
      cookieKey(responderPublic),
    );
    out.set(box, COOKIE_BOX_OFF);
    return out;
  }

  wipe(): void {
    lib().memzero(this.secret);
  }
}

/** Initiator side: decrypts a cookie reply; null if it does not authenticate. */
export function openCookieReply(
  reply: Uint8Array,
  responderPublic: Uint8Array,
  sentMac1: Uint8Array,
): Uint8Array | null {
  if (reply.length !== COOKIE_REPLY_LEN) return null;
  try {
    return lib().crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      reply.subarray(COOKIE_BOX_OFF),
      sentMac1,
      reply.subarray(COOKIE_NONCE_OFF, COOKIE_NONCE_OFF + COOKIE_NONCE_LEN),
      cookieKey(responderPublic),
    );
  } catch {
    return null;
  }
}

/** TAI64N label for Unix milliseconds `ms` plus `extraNs` nanoseconds (http://cr.yp.to/libtai/tai64.html). */
export function tai64n(ms: number, extraNs = 0): Uint8Array {
  const out = new Uint8Array(TIMESTAMP_LEN);
  const dv = new DataView(out.buffer);
  const secs = Math.floor(ms / 1000);
  const ns = (ms - secs * 1000) * 1_000_000 + extraNs;
  dv.setBigUint64(0, 0x400000000000000an + BigInt(secs + Math.floor(ns / 1e9)));
  dv.setUint32(8, ns % 1e9);
  return out;
}
