/**
 * The one place that loads libsodium (DESIGN.md §6: `src/crypto` is the only libsodium
 * importer). Call `initCrypto()` once at start-up (daemons, CLI, tests); every other crypto
 * function is synchronous and assumes it has run.
 *
 * `raw()` exposes the Emscripten module under the wrappers so the data path can call
 * `crypto_aead_chacha20poly1305_ietf_*_detached` on a scratch area of the WASM heap it reuses,
 * instead of the wrapper functions that allocate fresh buffers on every call.
 */
import sodium from 'libsodium-wrappers';
import { CryptoError } from '../util/errors.js';

/** The subset of the Emscripten module we call. 64-bit lengths are passed as (low, high). */
export interface RawSodium {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  _crypto_aead_chacha20poly1305_ietf_encrypt_detached(
    c: number,
    mac: number,
    maclenP: number,
    m: number,
    mlenLo: number,
    mlenHi: number,
    ad: number,
    adlenLo: number,
    adlenHi: number,
    nsec: number,
    npub: number,
    k: number,
  ): number;
  _crypto_aead_chacha20poly1305_ietf_decrypt_detached(
    m: number,
    nsec: number,
    c: number,
    clenLo: number,
    clenHi: number,
    mac: number,
    ad: number,
    adlenLo: number,
    adlenHi: number,
    npub: number,
    k: number,
  ): number;
}

let ready = false;

/** Waits for the libsodium WASM module. Idempotent; safe to call from several places. */
export async function initCrypto(): Promise<void> {
  await sodium.ready;
  ready = true;
}

/** The libsodium wrappers; throws if `initCrypto()` was never awaited (a programmer error). */
export function lib(): typeof sodium {
  if (!ready) throw new CryptoError('ERR_CRYPTO_NOT_READY', 'initCrypto() must be awaited first');
  return sodium;
}

/** The raw Emscripten module (see file comment). */
export function raw(): RawSodium {
  const mod = (lib() as unknown as { libsodium?: RawSodium }).libsodium;
  if (mod === undefined) {
    throw new CryptoError('ERR_CRYPTO_BACKEND', 'libsodium-wrappers does not expose its module');
  }
  return mod;
}
