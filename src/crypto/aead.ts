/**
 * The channel's data-message AEAD and its fixed wire format (DESIGN.md §4). This layout is
 * shared with the native batched AEAD in the addon: do not change it.
 *
 *   0      1      2      4              8                              16
 *   +------+------+------+--------------+------------------------------+----------------+-----+
 *   | type | kind | rsvd | receiver SPI | counter (64-bit little-end.) | ciphertext ... | tag |
 *   |  =4  | 0/1  | =0   | (big-endian) |                              |                | 16  |
 *   +------+------+------+--------------+------------------------------+----------------+-----+
 *
 * `kind` (DataKind) says who wrote the inner packet: 0 = PAYLOAD, a packet the sender forwards
 * (from its TUN, from another member: anybody may have written it); 1 = SIGNALING, a packet the
 * sending endpoint originated itself (a BA, BRR, MPA from a home agent; a BU from a member). The
 * header is the AEAD's associated data, so the kind is as authentic as the payload: this is how
 * mip6 keeps signaling and payload apart inside one channel, as IPsec does with separate SAs.
 *
 * AEAD: IETF ChaCha20-Poly1305 (RFC 8439 §2.8), nonce = 4 zero bytes | counter (LE, 8 bytes),
 * associated data = the 16-byte header. One key per direction.
 *
 * `SodiumBatchAead` is the libsodium reference backend. It keeps a scratch region in the WASM
 * heap (key, nonce, header, payload) allocated once and grown rarely, copies each packet in,
 * runs the detached primitive in place and copies the result back: no buffers are created per
 * packet (the only per-packet objects are transient typed-array views for the copies).
 */
import { raw, type RawSodium } from './sodium.js';

export const MSG_TYPE_OFF = 0;
/** Data message kind byte (DataKind), authenticated as part of the header. */
export const MSG_KIND_OFF = 1;
export const MSG_RECEIVER_SPI_OFF = 4;
export const MSG_COUNTER_OFF = 8;
/** Data message header length (type, reserved, receiver SPI, counter). */
export const DATA_HEADER_LEN = 16;
/** Poly1305 tag length (RFC 8439 §2.8). */
export const TAG_LEN = 16;
/** ChaCha20-Poly1305 key length (RFC 8439 §2.8). */
export const KEY_LEN = 32;
/** IETF nonce length (RFC 8439 §2.8). */
export const NONCE_LEN = 12;
/** Header + tag: the per-packet overhead of the channel. */
export const DATA_OVERHEAD = DATA_HEADER_LEN + TAG_LEN;

/** Channel message types (byte 0). */
export const MessageType = {
  INITIATION: 1,
  RESPONSE: 2,
  COOKIE_REPLY: 3,
  DATA: 4,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Data message kinds (header byte 1): who wrote the inner packet (see the layout above). */
export const DataKind = {
  /** Forwarded traffic: the inner packet's addresses prove nothing about its author. */
  PAYLOAD: 0,
  /** Originated by the sending endpoint itself: its signaling. */
  SIGNALING: 1,
} as const;
export type DataKind = (typeof DataKind)[keyof typeof DataKind];

export interface BatchAead {
  /** For i < count: message i occupies buf[offsets[i], offsets[i] + 16 + lengths[i] + 16).
   *  The 16-byte header is already written (AAD; counter read from it); plaintext of
   *  lengths[i] bytes at offsets[i] + 16 is encrypted in place and the tag written after it. */
  sealBatch(
    key: Uint8Array,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
  ): void;
  /** lengths[i] = whole message length (header + ciphertext + tag). Decrypts in place;
   *  results[i] = 1 if the tag verified, 0 otherwise (that packet's bytes are then garbage). */
  openBatch(
    key: Uint8Array,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    results: Uint8Array,
  ): void;
}

/** Writes a data header at `off`. `counter` must be a safe integer (< 2^53). */
export function writeDataHeader(
  buf: Uint8Array,
  off: number,
  spi: number,
  counter: number,
  kind: DataKind = DataKind.PAYLOAD,
): void {
  buf[off] = MessageType.DATA;
  buf[off + 1] = kind;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf[off + 4] = spi >>> 24;
  buf[off + 5] = (spi >>> 16) & 0xff;
  buf[off + 6] = (spi >>> 8) & 0xff;
  buf[off + 7] = spi & 0xff;
  const lo = counter >>> 0;
  const hi = Math.floor(counter / 0x1_0000_0000) >>> 0;
  buf[off + 8] = lo & 0xff;
  buf[off + 9] = (lo >>> 8) & 0xff;
  buf[off + 10] = (lo >>> 16) & 0xff;
  buf[off + 11] = lo >>> 24;
  buf[off + 12] = hi & 0xff;
  buf[off + 13] = (hi >>> 8) & 0xff;
  buf[off + 14] = (hi >>> 16) & 0xff;
  buf[off + 15] = hi >>> 24;
}

/** Receiver SPI of the message at `off` (big-endian). */
export function readSpi(buf: Uint8Array, off: number): number {
  return (
    ((buf[off + 4]! << 24) | (buf[off + 5]! << 16) | (buf[off + 6]! << 8) | buf[off + 7]!) >>> 0
  );
}

/** Counter of the data message at `off`; values >= 2^53 come back as Infinity (never valid). */
export function readCounter(buf: Uint8Array, off: number): number {
  const lo =
    (buf[off + 8]! | (buf[off + 9]! << 8) | (buf[off + 10]! << 16) | (buf[off + 11]! << 24)) >>> 0;
  const hi =
    (buf[off + 12]! | (buf[off + 13]! << 8) | (buf[off + 14]! << 16) | (buf[off + 15]! << 24)) >>>
    0;
  if (hi >= 0x20_0000) return Infinity;
  return hi * 0x1_0000_0000 + lo;
}

/** Initial scratch payload capacity; grows to the largest packet seen. */
const INITIAL_SCRATCH = 2048;

/** libsodium reference implementation of `BatchAead` (see file comment). */
export class SodiumBatchAead implements BatchAead {
  private readonly mod: RawSodium;
  /** key(32) | nonce(12) | pad(4) | header(16) | tag(16), allocated once. */
  private readonly fixed: number;
  private data = 0;
  private dataCap = 0;

  constructor() {
    this.mod = raw();
    this.fixed = this.mod._malloc(KEY_LEN + 16 + DATA_HEADER_LEN + TAG_LEN);
    this.ensure(INITIAL_SCRATCH);
  }

  private get keyPtr(): number {
    return this.fixed;
  }
  private get noncePtr(): number {
    return this.fixed + KEY_LEN;
  }
  private get headerPtr(): number {
    return this.fixed + KEY_LEN + 16;
  }
  private get tagPtr(): number {
    return this.fixed + KEY_LEN + 16 + DATA_HEADER_LEN;
  }

  private ensure(len: number): void {
    if (len <= this.dataCap) return;
    if (this.data !== 0) {
      this.mod.HEAPU8.fill(0, this.data, this.data + this.dataCap); // no plaintext left behind
      this.mod._free(this.data);
    }
    let cap = Math.max(this.dataCap, INITIAL_SCRATCH);
    while (cap < len) cap *= 2;
    this.data = this.mod._malloc(cap);
    this.dataCap = cap;
  }

  private loadKey(key: Uint8Array): void {
    if (key.length !== KEY_LEN) throw new RangeError(`AEAD key must be ${KEY_LEN} bytes`);
    this.mod.HEAPU8.set(key, this.keyPtr);
  }

  /** Copies header (AAD) and builds the nonce 0^4 | counter LE from header bytes 8..15. */
  private loadHeader(heap: Uint8Array, buf: Uint8Array, off: number): void {
    const h = this.headerPtr;
    const n = this.noncePtr;
    for (let j = 0; j < DATA_HEADER_LEN; j++) heap[h + j] = buf[off + j]!;
    heap[n] = 0;
    heap[n + 1] = 0;
    heap[n + 2] = 0;
    heap[n + 3] = 0;
    for (let j = 0; j < 8; j++) heap[n + 4 + j] = buf[off + MSG_COUNTER_OFF + j]!;
  }

  sealBatch(
    key: Uint8Array,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
  ): void {
    // Every message is checked before the key enters the heap (as native/aead.c does): a
    // throw must not leave it there.
    for (let i = 0; i < count; i++) {
      const end = offsets[i]! + DATA_HEADER_LEN + lengths[i]! + TAG_LEN;
      if (end > buf.length) throw new RangeError(`message ${i} exceeds the buffer`);
    }
    this.loadKey(key);
    for (let i = 0; i < count; i++) {
      const off = offsets[i]!;
      const len = lengths[i]!;
      this.ensure(len);
      const heap = this.mod.HEAPU8; // re-read: the heap may have grown
      this.loadHeader(heap, buf, off);
      const p = off + DATA_HEADER_LEN;
      heap.set(buf.subarray(p, p + len), this.data);
      this.mod._crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        this.data,
        this.tagPtr,
        0,
        this.data,
        len,
        0,
        this.headerPtr,
        DATA_HEADER_LEN,
        0,
        0,
        this.noncePtr,
        this.keyPtr,
      );
      const out = this.mod.HEAPU8;
      buf.set(out.subarray(this.data, this.data + len), p);
      buf.set(out.subarray(this.tagPtr, this.tagPtr + TAG_LEN), p + len);
    }
    this.mod.HEAPU8.fill(0, this.keyPtr, this.keyPtr + KEY_LEN);
  }

  openBatch(
    key: Uint8Array,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    results: Uint8Array,
  ): void {
    this.loadKey(key);
    let opened = 0; // the longest plaintext left in the scratch area
    for (let i = 0; i < count; i++) {
      const off = offsets[i]!;
      const total = lengths[i]!;
      if (total < DATA_OVERHEAD || off + total > buf.length) {
        results[i] = 0;
        continue;
      }
      const len = total - DATA_OVERHEAD;
      this.ensure(len);
      const heap = this.mod.HEAPU8;
      this.loadHeader(heap, buf, off);
      const p = off + DATA_HEADER_LEN;
      heap.set(buf.subarray(p, p + len), this.data);
      heap.set(buf.subarray(p + len, p + len + TAG_LEN), this.tagPtr);
      const rc = this.mod._crypto_aead_chacha20poly1305_ietf_decrypt_detached(
        this.data,
        0,
        this.data,
        len,
        0,
        this.tagPtr,
        this.headerPtr,
        DATA_HEADER_LEN,
        0,
        this.noncePtr,
        this.keyPtr,
      );
      if (rc !== 0) {
        results[i] = 0;
        continue;
      }
      buf.set(this.mod.HEAPU8.subarray(this.data, this.data + len), p);
      results[i] = 1;
      if (len > opened) opened = len;
    }
    // Neither the key nor a decrypted payload stays in the WASM heap after the call.
    this.mod.HEAPU8.fill(0, this.keyPtr, this.keyPtr + KEY_LEN);
    if (opened > 0) this.mod.HEAPU8.fill(0, this.data, this.data + opened);
  }

  /** Wipes and frees the WASM scratch area. */
  dispose(): void {
    const heap = this.mod.HEAPU8;
    heap.fill(0, this.fixed, this.fixed + KEY_LEN + 16 + DATA_HEADER_LEN + TAG_LEN);
    heap.fill(0, this.data, this.data + this.dataCap);
    this.mod._free(this.fixed);
    this.mod._free(this.data);
    this.data = 0;
    this.dataCap = 0;
  }
}
