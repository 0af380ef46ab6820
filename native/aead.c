/*
 * Batched ChaCha20-Poly1305 (IETF, RFC 8439) over the mip6 channel data format, in place,
 * through the OpenSSL that the node binary exports. Byte-compatible with libsodium's
 * crypto_aead_chacha20poly1305_ietf_{encrypt,decrypt}.
 *
 * Channel data message (fixed, DESIGN.md §4):
 *   [0]      type = 4
 *   [1..4)   reserved
 *   [4..8)   receiver SPI, big-endian
 *   [8..16)  counter, little-endian
 *   [16..16+n)  ciphertext
 *   [16+n..16+n+16)  Poly1305 tag
 * nonce (12) = 00 00 00 00 | counter (8 LE) = header bytes 8..15; AAD = the 16-byte header.
 *
 *   aeadSealBatch(key, buf, offsets, lengths, count)           lengths[i] = plaintext length
 *   aeadOpenBatch(key, buf, offsets, lengths, count, results)  lengths[i] = whole message;
 *       results[i] = 1 (tag verified, plaintext in place) or 0 (bad tag / too short; the
 *       payload bytes are zeroed so unauthenticated plaintext never reaches the caller).
 */
#include "mip6.h"

#include <openssl/evp.h>
#include <string.h>

#define HDR_LEN 16
#define TAG_LEN 16
#define KEY_LEN 32
#define NONCE_LEN 12

/* The cipher, fetched once, and one context per direction, kept per thread (an addon may be
 * loaded by several worker threads): OpenSSL 3 looks a cipher up by name on every init with
 * EVP_chacha20_poly1305() and allocates a context each time, which a batch of one packet (the
 * lone packet of an interactive session) paid in full. The key is set on every call; after
 * it the context is set to a zero key and nonce (scrub), which replaces the channel key,
 * the last message's one-time Poly1305 key and any keystream left, so none of them outlives
 * its batch here. Freed when the node environment (thread) ends. */
static __thread EVP_CIPHER *cipher;
static __thread EVP_CIPHER_CTX *ctx_seal, *ctx_open;

static EVP_CIPHER_CTX *context(EVP_CIPHER_CTX **slot, int enc, const uint8_t *key) {
  if (!cipher) cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  if (!cipher) return NULL;
  if (!*slot) *slot = EVP_CIPHER_CTX_new();
  if (!*slot) return NULL;
  if (EVP_CipherInit_ex(*slot, cipher, NULL, key, NULL, enc) != 1) {
    /* A context in an unknown state is not reused. */
    EVP_CIPHER_CTX_free(*slot);
    *slot = NULL;
    return NULL;
  }
  return *slot;
}

static void scrub(EVP_CIPHER_CTX **slot, int enc) {
  static const uint8_t zero_key[KEY_LEN], zero_nonce[NONCE_LEN];
  if (*slot && EVP_CipherInit_ex(*slot, NULL, NULL, zero_key, zero_nonce, enc) != 1) {
    EVP_CIPHER_CTX_free(*slot);
    *slot = NULL;
  }
}

static void make_nonce(const uint8_t *hdr, uint8_t nonce[NONCE_LEN]) {
  memset(nonce, 0, 4);
  memcpy(nonce + 4, hdr + 8, 8);
}

typedef struct {
  uint8_t *key, *buf;
  uint32_t *offsets, *lengths;
  size_t buf_len;
  uint32_t count;
} batch_args;

static int parse_batch(napi_env env, napi_value *argv, batch_args *a) {
  void *key, *buf, *off, *len;
  size_t key_len, off_len, len_len;
  if (mip6_arg_typed(env, argv[0], napi_uint8_array, "key", &key, &key_len, NULL) ||
      mip6_arg_typed(env, argv[1], napi_uint8_array, "buf", &buf, &a->buf_len, NULL) ||
      mip6_arg_typed(env, argv[2], napi_uint32_array, "offsets", &off, &off_len, NULL) ||
      mip6_arg_typed(env, argv[3], napi_uint32_array, "lengths", &len, &len_len, NULL) ||
      mip6_arg_u32(env, argv[4], "count", &a->count))
    return -1;
  if (key_len != KEY_LEN) {
    mip6_throw_range(env, "key must be 32 bytes");
    return -1;
  }
  if (a->count > off_len || a->count > len_len) {
    mip6_throw_range(env, "count exceeds offsets/lengths");
    return -1;
  }
  a->key = key;
  a->buf = buf;
  a->offsets = off;
  a->lengths = len;
  return 0;
}

static napi_value seal_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  batch_args a;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) {
    mip6_throw_type(env, "sealBatch needs 5 arguments");
    return NULL;
  }
  if (parse_batch(env, argv, &a)) return NULL;
  for (uint32_t i = 0; i < a.count; i++) {
    if ((uint64_t)a.offsets[i] + HDR_LEN + a.lengths[i] + TAG_LEN > a.buf_len || a.lengths[i] > 0x7fffffffu) {
      mip6_throw_range(env, "message i does not fit in buf (offset + 16 + length + 16)");
      return NULL;
    }
  }
  if (a.count == 0) return NULL;
  EVP_CIPHER_CTX *ctx = context(&ctx_seal, 1, a.key);
  if (!ctx) {
    napi_throw_error(env, "ERR_CRYPTO", "ChaCha20-Poly1305 is not available in this node's OpenSSL");
    return NULL;
  }
  int ok = 1;
  for (uint32_t i = 0; i < a.count && ok; i++) {
    uint8_t *msg = a.buf + a.offsets[i];
    uint8_t nonce[NONCE_LEN];
    int outl;
    int n = (int)a.lengths[i];
    make_nonce(msg, nonce);
    ok = EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
         EVP_EncryptUpdate(ctx, NULL, &outl, msg, HDR_LEN) == 1 &&
         (n == 0 || EVP_EncryptUpdate(ctx, msg + HDR_LEN, &outl, msg + HDR_LEN, n) == 1) &&
         EVP_EncryptFinal_ex(ctx, msg + HDR_LEN + n, &outl) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, msg + HDR_LEN + n) == 1;
  }
  if (!ok) {
    EVP_CIPHER_CTX_free(ctx_seal);
    ctx_seal = NULL;
    napi_throw_error(env, "ERR_CRYPTO", "ChaCha20-Poly1305 seal failed inside OpenSSL");
  } else {
    scrub(&ctx_seal, 1);
  }
  return NULL;
}

static napi_value open_batch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  batch_args a;
  void *res;
  size_t res_len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) {
    mip6_throw_type(env, "openBatch needs 6 arguments");
    return NULL;
  }
  if (parse_batch(env, argv, &a) ||
      mip6_arg_typed(env, argv[5], napi_uint8_array, "results", &res, &res_len, NULL))
    return NULL;
  uint8_t *results = res;
  if (a.count > res_len) {
    mip6_throw_range(env, "count exceeds results");
    return NULL;
  }
  for (uint32_t i = 0; i < a.count; i++) {
    if ((uint64_t)a.offsets[i] + a.lengths[i] > a.buf_len || a.lengths[i] > 0x7fffffffu) {
      mip6_throw_range(env, "message i does not fit in buf (offset + length)");
      return NULL;
    }
  }
  if (a.count == 0) return NULL;
  EVP_CIPHER_CTX *ctx = context(&ctx_open, 0, a.key);
  if (!ctx) {
    napi_throw_error(env, "ERR_CRYPTO", "ChaCha20-Poly1305 is not available in this node's OpenSSL");
    return NULL;
  }
  for (uint32_t i = 0; i < a.count; i++) {
    uint8_t *msg = a.buf + a.offsets[i];
    uint32_t total = a.lengths[i];
    results[i] = 0;
    if (total < HDR_LEN + TAG_LEN) continue;
    int n = (int)(total - HDR_LEN - TAG_LEN);
    uint8_t nonce[NONCE_LEN];
    uint8_t tag[TAG_LEN];
    int outl;
    make_nonce(msg, nonce);
    memcpy(tag, msg + HDR_LEN + n, TAG_LEN);
    int ok = EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &outl, msg, HDR_LEN) == 1 &&
             (n == 0 || EVP_DecryptUpdate(ctx, msg + HDR_LEN, &outl, msg + HDR_LEN, n) == 1) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) == 1 &&
             EVP_DecryptFinal_ex(ctx, msg + HDR_LEN + n, &outl) > 0;
    if (ok) results[i] = 1;
    else memset(msg + HDR_LEN, 0, (size_t)n);
  }
  scrub(&ctx_open, 0);
  return NULL;
}

/* A context of the express lane's own (express.c): keyed once when a channel is armed, then only
 * a nonce per message, as a VPN's data channel usually runs; scrubbed (a zero key) and kept when
 * the lane is emptied, freed with the lane. */
EVP_CIPHER_CTX *mip6_aead_ctx_new(void) {
  if (!cipher) cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  return cipher ? EVP_CIPHER_CTX_new() : NULL;
}

int mip6_aead_ctx_key(EVP_CIPHER_CTX *ctx, const uint8_t *key, int enc) {
  return ctx != NULL && cipher != NULL && EVP_CipherInit_ex(ctx, cipher, NULL, key, NULL, enc) == 1;
}

void mip6_aead_ctx_scrub(EVP_CIPHER_CTX *ctx, int enc) {
  static const uint8_t zero_key[KEY_LEN], zero_nonce[NONCE_LEN];
  if (ctx != NULL && cipher != NULL) EVP_CipherInit_ex(ctx, cipher, NULL, zero_key, zero_nonce, enc);
}

int mip6_aead_seal_ctx(EVP_CIPHER_CTX *ctx, uint8_t *msg, uint32_t n) {
  uint8_t nonce[NONCE_LEN];
  int outl;
  make_nonce(msg, nonce);
  return EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
         EVP_EncryptUpdate(ctx, NULL, &outl, msg, HDR_LEN) == 1 &&
         (n == 0 || EVP_EncryptUpdate(ctx, msg + HDR_LEN, &outl, msg + HDR_LEN, (int)n) == 1) &&
         EVP_EncryptFinal_ex(ctx, msg + HDR_LEN + n, &outl) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, msg + HDR_LEN + n) == 1;
}

int mip6_aead_open_ctx(EVP_CIPHER_CTX *ctx, const uint8_t *msg, uint32_t total, uint8_t *out) {
  if (total < HDR_LEN + TAG_LEN) return -1;
  int n = (int)(total - HDR_LEN - TAG_LEN);
  uint8_t nonce[NONCE_LEN], tag[TAG_LEN];
  int outl;
  make_nonce(msg, nonce);
  memcpy(tag, msg + HDR_LEN + n, TAG_LEN);
  int ready = EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
              EVP_DecryptUpdate(ctx, NULL, &outl, msg, HDR_LEN) == 1 &&
              (n == 0 || EVP_DecryptUpdate(ctx, out, &outl, msg + HDR_LEN, n) == 1) &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) == 1;
  int ok = ready && EVP_DecryptFinal_ex(ctx, out + n, &outl) > 0;
  if (!ok) memset(out, 0, (size_t)n);
  return ok ? 1 : ready ? 0 : -1;
}

static void free_contexts(void *arg) {
  (void)arg;
  EVP_CIPHER_CTX_free(ctx_seal);
  EVP_CIPHER_CTX_free(ctx_open);
  EVP_CIPHER_free(cipher);
  ctx_seal = ctx_open = NULL;
  cipher = NULL;
}

void mip6_aead_init(napi_env env, napi_value exports) {
  napi_add_env_cleanup_hook(env, free_contexts, NULL);
  mip6_export(env, exports, "aeadSealBatch", seal_batch);
  mip6_export(env, exports, "aeadOpenBatch", open_batch);
}
