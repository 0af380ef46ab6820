/*
 * mip6 native data path: shared declarations.
 *
 * The addon moves bytes and runs the cipher over batches; every decision is TypeScript's
 * (DESIGN.md §6, "fast path / slow path"). The express lane (express.c) repeats, for an
 * armed channel's plain payload, checks JS has just made, until JS empties it. Parts:
 *   tun_<platform>.c  the TUN device (Linux now; a macOS utun file later, same JS surface)
 *   udp.c             IPv4/IPv6 UDP sockets with recvmmsg/sendmmsg batches and pktinfo
 *   aead.c            ChaCha20-Poly1305 (IETF) seal/open over a batch, in place
 *
 * Receive design shared by TUN and UDP: JS allocates a slab (one ArrayBuffer cut into
 * fixed slots) and Uint32Array offsets/lengths; on each readiness event the addon drains
 * up to maxBatch packets into the slots, fills offsets/lengths and makes ONE call into JS
 * with the count. The slab is reused by the next batch, so JS consumes (or copies) the
 * packets before the callback returns.
 */
#ifndef MIP6_H
#define MIP6_H

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Throws a JS Error with .code (errno name, e.g. "EPERM"), .errno and .syscall. */
void mip6_throw_errno(napi_env env, int err, const char *syscall, const char *detail);
/* Throws a TypeError / RangeError with a fixed code. */
void mip6_throw_type(napi_env env, const char *msg);
void mip6_throw_range(napi_env env, const char *msg);

/* Argument helpers: return 0 on success, or throw and return -1. */
int mip6_arg_u32(napi_env env, napi_value v, const char *what, uint32_t *out);
int mip6_arg_bool(napi_env env, napi_value v, const char *what, int *out);
/* Typed array of the expected element type; ptr/len in elements; optional strong ref. */
int mip6_arg_typed(napi_env env, napi_value v, napi_typedarray_type type, const char *what,
                   void **ptr, size_t *len, napi_ref *ref);
/* Unwraps a handle created by mip6_make_handle; throws if it is not ours. */
int mip6_arg_handle(napi_env env, napi_value v, const char *kind, void **out);

/*
 * A polled fd whose readiness drains a batch into a JS slab and calls JS once. Owned by
 * an external JS value (finalizer) and by the libuv handle (close callback); freed when
 * both have let go.
 */
typedef struct mip6_poller mip6_poller;
typedef uint32_t (*mip6_drain_fn)(mip6_poller *p);   /* returns packets read into the slab */
typedef void (*mip6_error_fn)(mip6_poller *p);       /* poll reported an error */
typedef void (*mip6_free_fn)(mip6_poller *p);        /* release kind-specific memory */
/* The express lane (express.c): takes packets [0, k) of a drained batch itself; returns k. */
typedef uint32_t (*mip6_express_fn)(mip6_poller *p, uint32_t n, void *data);
/* Moves packets [from, n) of a drained batch (and what the kind keeps per packet) to [0, n - from). */
typedef void (*mip6_compact_fn)(mip6_poller *p, uint32_t from, uint32_t n);

struct mip6_poller {
  const char *kind;       /* "tun" or "udp": checked when a handle comes back from JS */
  napi_env env;
  uv_poll_t poll;
  int fd;
  int poll_inited;
  uv_timer_t backlog_timer; /* continues a backlog in the next loop turn (see on_poll) */
  int timer_inited;
  int open_handles;       /* uv handles not yet closed (the poll and the timer) */
  int reading;            /* JS wants packets (not paused) */
  int polling;            /* uv_poll_start is in effect */
  int closed;             /* fd closed, refs dropped */
  int handle_closed;      /* uv close callback ran (or the handle was never initialized) */
  int finalized;          /* the JS external was collected */
  napi_ref cb_ref;
  napi_ref refs[12];      /* typed arrays kept alive while we hold their pointers */
  int nrefs;
  napi_async_context actx;
  uint8_t *slab;
  size_t slab_len;
  uint32_t *offsets;
  uint32_t *lengths;
  double *counters;
  size_t ncounters;
  uint32_t max_batch;
  uint32_t slot_size;
  uint32_t headroom;
  uint32_t tailroom;
  uint32_t backlog;       /* drain() kept packets for the next call (split offloads): drain on */
  mip6_drain_fn drain;
  mip6_error_fn on_error;
  mip6_free_fn free_kind;
  void *kind_data;
  mip6_compact_fn compact; /* NULL: offsets and lengths are all the kind keeps per packet */
  mip6_express_fn express; /* set while an express lane is attached (express.c) */
  /* While the lane carries a channel, the TUN's first read of a readiness event takes this
   * many packets (1), so a lone packet leaves before the read that finds the queue empty. */
  uint32_t express_first;
  void *express_data;
  void (*express_unlink)(void *data, mip6_poller *p); /* the poller is being freed */
};

/* Initializes the poller around fd (takes ownership) and returns the JS handle. */
napi_value mip6_poller_attach(napi_env env, mip6_poller *p, napi_value callback);
/* Starts/stops delivering batches (pause/resume for backpressure). */
void mip6_poller_set_reading(mip6_poller *p, int on);
/* Idempotent close: stops polling, closes the fd, drops references. */
void mip6_poller_close(mip6_poller *p);
/* Calls drain() (through the poller's timer) in ms milliseconds, for a kind that drain()s
 * timed work of its own (the ND proxy's MLD reports); re-arming replaces the last deadline. */
void mip6_poller_wake(mip6_poller *p, uint64_t ms);
/* Keeps a typed array alive for the life of the poller. */
int mip6_poller_keep(mip6_poller *p, napi_ref ref);

/* Module parts. */
void mip6_tun_init(napi_env env, napi_value exports);
void mip6_udp_init(napi_env env, napi_value exports);
void mip6_aead_init(napi_env env, napi_value exports);
void mip6_netlink_init(napi_env env, napi_value exports); /* netlink_linux.c: route lookups */
void mip6_ndisc_init(napi_env env, napi_value exports);   /* ndisc_linux.c: unsolicited NA */
void mip6_ndproxy_init(napi_env env, napi_value exports);  /* ndproxy_linux.c: NS answers */
void mip6_privileges_init(napi_env env, napi_value exports); /* privileges_linux.c: privDrop */

/* 1 when the environment's MIP6_OFFLOAD_OFF (comma list: udp-gso, udp-gro, tun, all) names
 * `what`: that offload stays off (fallback path), for tests and misbehaving kernels. */
int mip6_offload_off(const char *what);

int mip6_export(napi_env env, napi_value exports, const char *name, napi_callback fn);

/* aead.c: a context of the express lane's own: keyed once per arming (enc 1 seal, 0 open), a
 * nonce per message; scrub sets a zero key (the channel's key gone from it). open_ctx: 1 opened,
 * 0 the tag did not verify (out zeroed), -1 OpenSSL failed before the tag (out zeroed). */
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
EVP_CIPHER_CTX *mip6_aead_ctx_new(void);
int mip6_aead_ctx_key(EVP_CIPHER_CTX *ctx, const uint8_t *key, int enc);
void mip6_aead_ctx_scrub(EVP_CIPHER_CTX *ctx, int enc);
int mip6_aead_seal_ctx(EVP_CIPHER_CTX *ctx, uint8_t *msg, uint32_t n);
int mip6_aead_open_ctx(EVP_CIPHER_CTX *ctx, const uint8_t *msg, uint32_t total, uint8_t *out);
/* udp.c: the socket's family (4 or 6); datagram k's sender address (16-byte slot, IPv4 in the
 * first 4 bytes), port and the local address it reached (zeros when unknown). */
int mip6_udp_family(mip6_poller *p);
/* udp.c: one datagram (msg, len) to dst (16-byte slot) and port, from src (a slot, or NULL: the
 * kernel's choice), with udpSend's recovery (a pending ICMP error cleared and the send tried
 * again, a gone source replaced, EMSGSIZE kept as an MTU report) and counters; 1 when sent. */
uint32_t mip6_udp_send1(mip6_poller *p, uint8_t *msg, uint32_t len, const uint8_t *dst, uint16_t port,
                        const uint8_t *src);
/* udp.c: MTU reports queued for JS (udpTakeMtuReports) and not taken yet. */
uint32_t mip6_udp_mtu_reports(mip6_poller *p);
void mip6_udp_peer(mip6_poller *p, uint32_t k, const uint8_t **addr, uint16_t *port, const uint8_t **local);
/* tun_linux.c: 1 when the device's reads and writes carry a virtio-net header. */
int mip6_tun_vnet(mip6_poller *p);
void mip6_express_init(napi_env env, napi_value exports); /* express.c */

/*
 * Blocking work on a thread of its own, not libuv's pool (4 threads, which a few slow jobs,
 * e.g. one-second DAD probes, would hold for everyone): execute(data) runs on a new detached
 * thread, then complete(env, NULL, NULL, data) on the JS thread (env NULL when the environment
 * is going away: complete then only frees data). The new thread inherits the calling thread's
 * credentials and network namespace. Returns 0, or an errno when no thread could be started
 * (then neither function runs and data stays the caller's).
 */
typedef void (*mip6_thread_fn)(void *data);
int mip6_run_on_thread(napi_env env, const char *name, mip6_thread_fn execute,
                       napi_threadsafe_function_call_js complete, void *data);

#endif
