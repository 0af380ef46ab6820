/**
 * BatchAead on the addon: ChaCha20-Poly1305 (IETF) over whole batches in place, through the
 * OpenSSL inside node (native/aead.c). Wire-identical to libsodium's
 * crypto_aead_chacha20poly1305_ietf with the channel's nonce/AAD rules (see types.ts).
 */
import { loadAddon, type NativeAddon } from './addon.js';
import type { BatchAead } from './types.js';

/** Channel data message header length: type(1) | reserved(3) | SPI(4) | counter(8). */
export const CHANNEL_HEADER_LEN = 16;
/** Poly1305 tag length (RFC 8439 §2.5). */
export const AEAD_TAG_LEN = 16;
/** ChaCha20 key length (RFC 8439 §2.3). */
export const AEAD_KEY_LEN = 32;

export class NativeBatchAead implements BatchAead {
  readonly #addon: NativeAddon;

  constructor(addon: NativeAddon = loadAddon()) {
    this.#addon = addon;
  }

  sealBatch(
    key: Uint8Array,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
  ): void {
    this.#addon.aeadSealBatch(key, buf, offsets, lengths, count);
  }

  openBatch(
    key: Uint8Array,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    results: Uint8Array,
  ): void {
    this.#addon.aeadOpenBatch(key, buf, offsets, lengths, count, results);
  }
}

/** The batch AEAD of the addon (throws IoError ERR_ADDON_MISSING when it is not built). */
export function createNativeBatchAead(): BatchAead {
  return new NativeBatchAead();
}
