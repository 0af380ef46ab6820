/**
 * Noise_IK_25519_ChaChaPoly_BLAKE2b (The Noise Protocol Framework, rev. 34), written as a plain
 * state machine: `writeMessageA()` returns bytes, `readMessageA(bytes)` consumes them. No I/O,
 * no clock; ephemeral keys may be injected for known-answer tests.
 *
 *   IK:
 *     <- s
 *     ...
 *     -> e, es, s, ss
 *     <- e, ee, se
 *
 * Why IK (DESIGN.md §4): a mobile node is always configured with its home agent's public key,
 * so the responder's static key is known in advance ("<- s"). That gives a 1-RTT handshake
 * (two messages, data can flow right after the response), the initiator's static key travels
 * encrypted under es (hidden from passive observers; XX would need 1.5 RTT for that), and the
 * ephemeral-ephemeral DH gives forward secrecy. It is the pattern WireGuard uses (without the
 * PSK), so its analysis and its replay defence (a timestamp in the first payload) carry over.
 *
 * Reads commit only on success: `readMessageA` / `readMessageB` work on a copy of the symmetric
 * state and keep it only when the message authenticates, so a message that fails (a forged one:
 * MAC1 is keyed by a public key, anyone can compute it) leaves the handshake exactly as it was
 * and the genuine message can still be read after it.
 *
 * BLAKE2b (HASHLEN 64) rather than BLAKE2s because it is what libsodium offers; HMAC-BLAKE2b and
 * HKDF are built exactly as Noise §4.3 specifies; cipher keys are the first 32 bytes of HKDF
 * outputs (Noise §5.2, HASHLEN 64 truncation).
 *
 * Backends (measured per call in CPU time on the 2-core bench machine, see the bench results of
 * the home-agent scale): X25519 and HMAC-BLAKE2b run in node's OpenSSL, which is 2-3x cheaper
 * than libsodium's WebAssembly build once the private key is an OpenSSL key object (made once per
 * key pair and kept beside it); key generation draws from node's CSPRNG (random.ts). BLAKE2b
 * itself, the AEAD and the scalar base multiplication stay in libsodium, where they are as cheap
 * or cheaper for handshake-sized inputs, and libsodium stays the reference: the unit and
 * property tests check that both backends give the same bytes.
 */
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  type KeyObject,
} from 'node:crypto';
import { randomBytes } from './random.js';
import { lib } from './sodium.js';

export const NOISE_PROTOCOL_NAME = 'Noise_IK_25519_ChaChaPoly_BLAKE2b';
/** BLAKE2b output length (Noise §4.3 HASHLEN). */
export const HASH_LEN = 64;
/** BLAKE2b block length (Noise §4.3 BLOCKLEN). */
export const BLOCK_LEN = 128;
/** X25519 key length (Noise §4.1 DHLEN). */
export const DH_LEN = 32;
/** AEAD tag length. */
const AEAD_TAG_LEN = 16;
/** Initiation body (Noise part): e | enc(s) ; the encrypted payload follows. */
export const IK_MSG_A_FIXED = DH_LEN + DH_LEN + AEAD_TAG_LEN;
/** Response body (Noise part): e ; the encrypted payload follows. */
export const IK_MSG_B_FIXED = DH_LEN;

export interface KeyPair {
  publicKey: Uint8Array;
  privateKey: Uint8Array;
}

/** X25519 private and public key length (RFC 7748 §5). */
const X25519_KEY_LEN = 32;

/** OpenSSL key object of each key pair's private half (a JWK import costs more than a DH). */
const privateKeyObjects = new WeakMap<KeyPair, KeyObject>();

function base64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/**
 * A fresh X25519 key pair: 32 bytes from the CSPRNG, the public half by libsodium's base point
 * multiplication; `dh` makes the OpenSSL key object on first use. Not `generateKeyPairSync`: on
 * Node 20 a key made by it can deadlock the process for good when a later export of that key
 * runs a garbage collection that destroys the finished key generation job, which then waits for
 * the key's mutex the export holds (seen in the HA under bench/ha-scale.ts after ~12 000
 * handshakes: main thread in KeyGenJob::~KeyGenJob <- GC <- ExportJWKEdKey, never to return).
 * Keys imported from bytes have no such job.
 */
export function generateX25519(): KeyPair {
  return x25519FromPrivate(randomBytes(X25519_KEY_LEN));
}

/** Builds the X25519 key pair for a given private key (deterministic; tests and key files). */
export function x25519FromPrivate(privateKey: Uint8Array): KeyPair {
  return { publicKey: lib().crypto_scalarmult_base(privateKey), privateKey };
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function blake2b(data: Uint8Array, outLen = HASH_LEN, key: Uint8Array | null = null) {
  return lib().crypto_generichash(outLen, data, key);
}

/**
 * HMAC-BLAKE2b (RFC 2104 with B = BLOCK_LEN = 128, L = 64), Noise §4.3: OpenSSL's HMAC over its
 * BLAKE2b-512, whose block size is 128 bytes, so keys up to 128 bytes are zero-padded and longer
 * ones hashed first, exactly as the RFC says (test/unit/crypto-native.test.ts checks it against
 * the construction written out over libsodium's BLAKE2b). `more` is appended to `data`.
 */
export function hmac(key: Uint8Array, data: Uint8Array, more?: Uint8Array): Uint8Array {
  const h = createHmac('blake2b512', key).update(data);
  if (more !== undefined) h.update(more);
  const d = h.digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

const BYTE_1 = Uint8Array.of(1);
const BYTE_2 = Uint8Array.of(2);
const BYTE_3 = Uint8Array.of(3);

/** HKDF as Noise §4.3 defines it (two or three outputs of HASHLEN bytes). */
export function hkdf(chainingKey: Uint8Array, ikm: Uint8Array, outputs: 2 | 3): Uint8Array[] {
  const temp = hmac(chainingKey, ikm);
  const o1 = hmac(temp, BYTE_1);
  const o2 = hmac(temp, o1, BYTE_2);
  if (outputs === 2) return [o1, o2];
  return [o1, o2, hmac(temp, o2, BYTE_3)];
}

/** Noise ChaChaPoly nonce: 32 zero bits then the 64-bit counter little-endian (Noise §12.3). */
function nonceFor(n: number): Uint8Array {
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setBigUint64(4, BigInt(n), true);
  return nonce;
}

export function aeadEncrypt(k: Uint8Array, n: number, ad: Uint8Array, pt: Uint8Array) {
  return lib().crypto_aead_chacha20poly1305_ietf_encrypt(pt, ad, null, nonceFor(n), k);
}

/** Returns null when the tag does not verify. */
export function aeadDecrypt(
  k: Uint8Array,
  n: number,
  ad: Uint8Array,
  ct: Uint8Array,
): Uint8Array | null {
  if (ct.length < AEAD_TAG_LEN) return null;
  try {
    return lib().crypto_aead_chacha20poly1305_ietf_decrypt(null, ct, ad, nonceFor(n), k);
  } catch {
    return null;
  }
}

/**
 * X25519 of our key pair with a peer's public key (OpenSSL). A low-order peer key gives an
 * all-zero shared secret, which OpenSSL refuses by throwing, as libsodium's crypto_scalarmult
 * does; readers of hostile messages catch that and report the message as not authenticating.
 */
export function dh(own: KeyPair, peerPublic: Uint8Array): Uint8Array {
  let key = privateKeyObjects.get(own);
  if (key === undefined) {
    key = createPrivateKey({
      key: { kty: 'OKP', crv: 'X25519', d: base64url(own.privateKey), x: base64url(own.publicKey) },
      format: 'jwk',
    });
    privateKeyObjects.set(own, key);
  }
  const peer = createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: base64url(peerPublic) },
    format: 'jwk',
  });
  const out = diffieHellman({ privateKey: key, publicKey: peer });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Noise §5.2 SymmetricState (CipherState folded in: at most one key at a time here). */
class SymmetricState {
  ck: Uint8Array;
  h: Uint8Array;
  private k: Uint8Array | null = null;
  private n = 0;

  private constructor(ck: Uint8Array, h: Uint8Array) {
    this.ck = ck;
    this.h = h;
  }

  /** Noise §5.2 InitializeSymmetric, then MixHash(prologue). */
  static initialize(prologue: Uint8Array): SymmetricState {
    const name = new TextEncoder().encode(NOISE_PROTOCOL_NAME);
    // Name <= HASHLEN is zero-padded to HASHLEN.
    const h = new Uint8Array(HASH_LEN);
    h.set(name);
    const ss = new SymmetricState(h.slice(), h);
    ss.mixHash(prologue);
    return ss;
  }

  /** An independent copy (own buffers: wiping one never touches the other). */
  copy(): SymmetricState {
    const c = new SymmetricState(this.ck.slice(), this.h.slice());
    c.k = this.k === null ? null : this.k.slice();
    c.n = this.n;
    return c;
  }

  mixHash(data: Uint8Array): void {
    this.h = blake2b(concat(this.h, data));
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, tk] = hkdf(this.ck, ikm, 2);
    this.ck = ck!;
    this.k = tk!.slice(0, 32);
    this.n = 0;
  }

  encryptAndHash(pt: Uint8Array): Uint8Array {
    const ct = this.k === null ? pt : aeadEncrypt(this.k, this.n++, this.h, pt);
    this.mixHash(ct);
    return ct;
  }

  decryptAndHash(ct: Uint8Array): Uint8Array | null {
    let pt: Uint8Array | null = ct;
    if (this.k !== null) {
      pt = aeadDecrypt(this.k, this.n, this.h, ct);
      if (pt === null) return null;
      this.n++;
    }
    this.mixHash(ct);
    return pt;
  }

  /** Noise §5.2 Split: the initiator sends with the first key, receives with the second. */
  split(): [Uint8Array, Uint8Array] {
    const [t1, t2] = hkdf(this.ck, new Uint8Array(0), 2);
    return [t1!.slice(0, 32), t2!.slice(0, 32)];
  }

  wipe(): void {
    const s = lib();
    s.memzero(this.ck);
    if (this.k) s.memzero(this.k);
  }
}

/**
 * Reads a message on a copy of `ss` (commit on success): returns the copy, now past the message,
 * with what `read` returned, or null (the copy wiped, `ss` untouched) when `read` returns null or
 * throws (X25519 refuses a low-order peer key by throwing, see dh()).
 */
function readOnCopy<T>(
  ss: SymmetricState,
  read: (copy: SymmetricState) => T | null,
): { state: SymmetricState; result: T } | null {
  const copy = ss.copy();
  let result: T | null;
  try {
    result = read(copy);
  } catch {
    result = null;
  }
  if (result === null) {
    copy.wipe();
    return null;
  }
  return { state: copy, result };
}

/** Transport keys from a finished handshake, plus the handshake hash (channel binding). */
export interface TransportKeys {
  sendKey: Uint8Array;
  receiveKey: Uint8Array;
  handshakeHash: Uint8Array;
}

/** Initiator side of IK. One instance per handshake attempt. */
export class IkInitiator {
  private ss: SymmetricState;
  private readonly e: KeyPair;
  private readonly s: KeyPair;
  private readonly rs: Uint8Array;

  /** `ephemeral` is for known-answer tests only; its private key is wiped when done. */
  constructor(s: KeyPair, rs: Uint8Array, prologue: Uint8Array, ephemeral?: KeyPair) {
    this.s = s;
    this.rs = rs;
    this.ss = SymmetricState.initialize(prologue);
    this.ss.mixHash(rs); // pre-message "<- s"
    this.e = ephemeral ?? generateX25519();
  }

  /** -> e, es, s, ss, then the encrypted payload. */
  writeMessageA(payload: Uint8Array): Uint8Array {
    const ss = this.ss;
    ss.mixHash(this.e.publicKey);
    ss.mixKey(dh(this.e, this.rs));
    const encS = ss.encryptAndHash(this.s.publicKey);
    ss.mixKey(dh(this.s, this.rs));
    const encP = ss.encryptAndHash(payload);
    return concat(this.e.publicKey, encS, encP);
  }

  /**
   * <- e, ee, se, then the payload. Null if the message does not authenticate; the state is then
   * unchanged, so the genuine response can still be read (see the file comment).
   */
  readMessageB(msg: Uint8Array): { payload: Uint8Array; keys: TransportKeys } | null {
    if (msg.length < IK_MSG_B_FIXED + AEAD_TAG_LEN) return null;
    const read = readOnCopy(this.ss, (ss) => this.readB(ss, msg));
    if (read === null) return null;
    this.ss.wipe();
    this.ss = read.state;
    const [send, receive] = this.ss.split();
    const keys = { sendKey: send, receiveKey: receive, handshakeHash: this.ss.h.slice() };
    this.wipe();
    return { payload: read.result, keys };
  }

  private readB(ss: SymmetricState, msg: Uint8Array): Uint8Array | null {
    const re = msg.subarray(0, DH_LEN);
    ss.mixHash(re);
    ss.mixKey(dh(this.e, re));
    ss.mixKey(dh(this.s, re));
    return ss.decryptAndHash(msg.subarray(DH_LEN));
  }

  wipe(): void {
    this.ss.wipe();
    lib().memzero(this.e.privateKey);
  }
}

/** Responder side of IK. One instance per received initiation. */
export class IkResponder {
  private ss: SymmetricState;
  private re: Uint8Array | null = null;
  private rsKey: Uint8Array | null = null;
  private readonly s: KeyPair;
  private readonly e: KeyPair;

  /** `ephemeral` is for known-answer tests only; its private key is wiped when done. */
  constructor(s: KeyPair, prologue: Uint8Array, ephemeral?: KeyPair) {
    this.s = s;
    this.e = ephemeral ?? generateX25519();
    this.ss = SymmetricState.initialize(prologue);
    this.ss.mixHash(s.publicKey); // pre-message "<- s"
  }

  /** The initiator's static key, once message A was read. */
  get remoteStatic(): Uint8Array | null {
    return this.rsKey;
  }

  /**
   * Reads e, es, s, ss and the payload. Null if it does not authenticate; the state is then
   * unchanged (see the file comment).
   */
  readMessageA(msg: Uint8Array): { payload: Uint8Array; remoteStatic: Uint8Array } | null {
    if (msg.length < IK_MSG_A_FIXED + AEAD_TAG_LEN) return null;
    const read = readOnCopy(this.ss, (ss) => this.readA(ss, msg));
    if (read === null) return null;
    this.ss.wipe();
    this.ss = read.state;
    this.re = read.result.re;
    this.rsKey = read.result.rs;
    return { payload: read.result.payload, remoteStatic: read.result.rs };
  }

  private readA(
    ss: SymmetricState,
    msg: Uint8Array,
  ): { re: Uint8Array; rs: Uint8Array; payload: Uint8Array } | null {
    const re = msg.slice(0, DH_LEN);
    ss.mixHash(re);
    ss.mixKey(dh(this.s, re));
    const rs = ss.decryptAndHash(msg.subarray(DH_LEN, IK_MSG_A_FIXED));
    if (rs === null) return null;
    ss.mixKey(dh(this.s, rs));
    const payload = ss.decryptAndHash(msg.subarray(IK_MSG_A_FIXED));
    if (payload === null) return null;
    return { re, rs, payload };
  }

  /** -> e, ee, se and the payload; returns the message and the transport keys. */
  writeMessageB(payload: Uint8Array): { message: Uint8Array; keys: TransportKeys } {
    if (this.re === null || this.rsKey === null) {
      throw new Error('writeMessageB before a successful readMessageA');
    }
    const ss = this.ss;
    ss.mixHash(this.e.publicKey);
    ss.mixKey(dh(this.e, this.re));
    ss.mixKey(dh(this.e, this.rsKey));
    const encP = ss.encryptAndHash(payload);
    const [initToResp, respToInit] = ss.split();
    const keys = { sendKey: respToInit, receiveKey: initToResp, handshakeHash: ss.h.slice() };
    this.wipe();
    return { message: concat(this.e.publicKey, encP), keys };
  }

  wipe(): void {
    this.ss.wipe();
    lib().memzero(this.e.privateKey);
  }
}
