/*
 * mip6 native addon: module entry, argument helpers and the batch poller shared by the
 * TUN and UDP parts (see mip6.h for the receive design).
 *
 * Flow of one readiness event: libuv reports the fd readable on the environment's own loop
 * -> drain() reads up to max_batch packets into the JS slab and fills offsets/lengths ->
 * one napi_make_callback(count, offsets, lengths) -> JS consumes the batch synchronously ->
 * repeat (at most MAX_ROUNDS batches per event, so other handles get their turn). When drain()
 * still reports a backlog then (datagrams / segments it split out of one read that did not fit
 * the batch, which no new readiness event would bring back), a zero timer continues it in the
 * next loop turn: never an unbounded loop here, whatever a sender keeps queued.
 */
#include "mip6.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ROUNDS 4
#define POLLER_MAGIC "mip6-poller"

static const char *errno_code(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
    case ENOBUFS: return "ENOBUFS";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case EEXIST: return "EEXIST";
    case ENOTTY: return "ENOTTY";
    default: return "EIO";
  }
}

void mip6_throw_errno(napi_env env, int err, const char *syscall, const char *detail) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s failed: %s%s%s", syscall, strerror(err), detail ? " (" : "",
           detail ? detail : "");
  if (detail) strncat(msg, ")", sizeof msg - strlen(msg) - 1);
  napi_value m, code, e, no, sc;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, errno_code(err), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, m, &e);
  napi_create_int32(env, -err, &no);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, e, "errno", no);
  napi_set_named_property(env, e, "syscall", sc);
  napi_throw(env, e);
}

void mip6_throw_type(napi_env env, const char *msg) { napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg); }
void mip6_throw_range(napi_env env, const char *msg) { napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg); }

int mip6_arg_u32(napi_env env, napi_value v, const char *what, uint32_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d < 0 || d > 4294967295.0 || d != (double)(uint32_t)d) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be an integer in [0, 2^32)", what);
    mip6_throw_type(env, msg);
    return -1;
  }
  *out = (uint32_t)d;
  return 0;
}

int mip6_arg_bool(napi_env env, napi_value v, const char *what, int *out) {
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be a boolean", what);
    mip6_throw_type(env, msg);
    return -1;
  }
  *out = b ? 1 : 0;
  return 0;
}

int mip6_arg_typed(napi_env env, napi_value v, napi_typedarray_type type, const char *what,
                   void **ptr, size_t *len, napi_ref *ref) {
  bool is = false;
  napi_typedarray_type t;
  size_t n;
  void *data;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &t, &n, &data, NULL, NULL) != napi_ok || t != type) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s has the wrong type", what);
    mip6_throw_type(env, msg);
    return -1;
  }
  *ptr = data;
  *len = n;
  if (ref && napi_create_reference(env, v, 1, ref) != napi_ok) return -1;
  return 0;
}

int mip6_arg_handle(napi_env env, napi_value v, const char *kind, void **out) {
  napi_valuetype t;
  void *data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, &data) != napi_ok || data == NULL ||
      strcmp(((mip6_poller *)data)->kind, kind) != 0) {
    mip6_throw_type(env, "not a handle of this kind");
    return -1;
  }
  *out = data;
  return 0;
}

int mip6_export(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f) != napi_ok) return -1;
  return napi_set_named_property(env, exports, name, f) == napi_ok ? 0 : -1;
}

int mip6_offload_off(const char *what) {
  const char *v = getenv("MIP6_OFFLOAD_OFF");
  size_t n = strlen(what);
  while (v && *v) {
    const char *end = strchr(v, ',');
    size_t len = end ? (size_t)(end - v) : strlen(v);
    if ((len == n && memcmp(v, what, n) == 0) || (len == 3 && memcmp(v, "all", 3) == 0)) return 1;
    v = end ? end + 1 : NULL;
  }
  return 0;
}

/* ---- work on a thread of its own ---------------------------------------------------- */

struct thread_job {
  mip6_thread_fn execute;
  napi_threadsafe_function tsfn;
  void *data;
};

static void *thread_job_main(void *arg) {
  struct thread_job job = *(struct thread_job *)arg;
  free(arg);
  job.execute(job.data);
  /* job.data belongs to the completion from here on. */
  napi_call_threadsafe_function(job.tsfn, job.data, napi_tsfn_blocking);
  napi_release_threadsafe_function(job.tsfn, napi_tsfn_release);
  return NULL;
}

int mip6_run_on_thread(napi_env env, const char *name, mip6_thread_fn execute,
                       napi_threadsafe_function_call_js complete, void *data) {
  struct thread_job *job = malloc(sizeof *job);
  if (job == NULL) return ENOMEM;
  napi_value resource;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  if (napi_create_threadsafe_function(env, NULL, NULL, resource, 0, 1, NULL, NULL, NULL, complete,
                                      &job->tsfn) != napi_ok) {
    free(job);
    return ENOMEM;
  }
  job->execute = execute;
  job->data = data;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  int rc = pthread_create(&thread, &attr, thread_job_main, job);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    napi_release_threadsafe_function(job->tsfn, napi_tsfn_abort);
    free(job);
  }
  return rc;
}

/* ---- poller ---------------------------------------------------------------------- */

static void poller_free(mip6_poller *p) {
  if (p->express_unlink) p->express_unlink(p->express_data, p);
  if (p->free_kind) p->free_kind(p);
  free(p);
}

static void on_uv_closed(uv_handle_t *h) {
  mip6_poller *p = h->data;
  if (--p->open_handles > 0) return;
  p->handle_closed = 1;
  if (p->finalized) poller_free(p);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  mip6_poller *p = data;
  p->finalized = 1;
  mip6_poller_close(p);
  if (p->handle_closed) poller_free(p);
}

static void deliver(mip6_poller *p, uint32_t count) {
  napi_env env = p->env;
  napi_value cb, recv, argv[3], result;
  if (napi_get_reference_value(env, p->cb_ref, &cb) != napi_ok || cb == NULL) return;
  napi_get_global(env, &recv); /* napi_make_callback needs an object receiver */
  napi_create_uint32(env, count, &argv[0]);
  napi_get_reference_value(env, p->refs[1], &argv[1]);
  napi_get_reference_value(env, p->refs[2], &argv[2]);
  napi_status st = napi_make_callback(env, p->actx, recv, cb, 3, argv, &result);
  if (st == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err); /* becomes 'uncaughtException', like any callback */
  }
}

static void continue_backlog(mip6_poller *p);

/* Up to MAX_ROUNDS batches from the fd (or the drain's backlog) into JS. */
static void pump(mip6_poller *p) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(p->env, &scope) != napi_ok) return;
  for (int round = 0; round < MAX_ROUNDS && p->reading && !p->closed; round++) {
    uint32_t limit = p->max_batch;
    if (round == 0 && p->express_first > 0 && p->express_first < limit) limit = p->express_first;
    uint32_t full = p->max_batch;
    p->max_batch = limit; /* the drains read up to max_batch */
    uint32_t n = p->drain(p);
    p->max_batch = full;
    if (n == 0) break;
    /* The express lane takes a prefix of the batch (an established channel's plain data);
     * JS gets the rest, in order, as a batch of its own. */
    uint32_t done = p->express ? p->express(p, n, p->express_data) : 0;
    if (done > n) done = n;
    if (done > 0 && done < n) {
      if (p->compact) p->compact(p, done, n);
      memmove(p->offsets, p->offsets + done, (n - done) * sizeof *p->offsets);
      memmove(p->lengths, p->lengths + done, (n - done) * sizeof *p->lengths);
    }
    if (done < n) deliver(p, n - done);
    if (n < limit && !p->backlog) break;
  }
  napi_close_handle_scope(p->env, scope);
  continue_backlog(p);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  mip6_poller *p = h->data;
  if (p->closed) return;
  if (status < 0) {
    /* libuv stops a poll handle for good when the fd reports POLLERR. Read and clear the
     * error (the kind-specific hook), then start polling again. */
    p->polling = 0;
    if (p->on_error) p->on_error(p);
    if (!p->closed && p->reading && uv_poll_start(&p->poll, UV_READABLE, on_poll) == 0) p->polling = 1;
  }
  pump(p);
}

static void on_backlog_timer(uv_timer_t *t) {
  mip6_poller *p = t->data;
  if (!p->closed) pump(p);
}

/* Leftover pieces of a split read: go on in the next loop turn (timers run before the poll). */
static void continue_backlog(mip6_poller *p) {
  if (p->backlog && p->reading && !p->closed && p->timer_inited)
    uv_timer_start(&p->backlog_timer, on_backlog_timer, 0, 0);
}

void mip6_poller_wake(mip6_poller *p, uint64_t ms) {
  if (!p->closed && p->timer_inited) uv_timer_start(&p->backlog_timer, on_backlog_timer, ms, 0);
}

int mip6_poller_keep(mip6_poller *p, napi_ref ref) {
  if (p->nrefs >= (int)(sizeof p->refs / sizeof p->refs[0])) return -1;
  p->refs[p->nrefs++] = ref;
  return 0;
}

napi_value mip6_poller_attach(napi_env env, mip6_poller *p, napi_value callback) {
  napi_value handle, name;
  uv_loop_t *loop;
  p->env = env;
  p->handle_closed = 1; /* until uv_poll_init succeeds */
  if (napi_create_reference(env, callback, 1, &p->cb_ref) != napi_ok) goto fail;
  napi_create_string_utf8(env, p->kind, NAPI_AUTO_LENGTH, &name);
  if (napi_async_init(env, NULL, name, &p->actx) != napi_ok) goto fail;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) goto fail;
  int rc = uv_poll_init(loop, &p->poll, p->fd);
  if (rc != 0) {
    mip6_poller_close(p);
    poller_free(p);
    mip6_throw_errno(env, -rc, "uv_poll_init", NULL);
    return NULL;
  }
  p->poll.data = p;
  p->poll_inited = 1;
  p->handle_closed = 0;
  p->open_handles = 1;
  if (uv_timer_init(loop, &p->backlog_timer) == 0) {
    p->backlog_timer.data = p;
    p->timer_inited = 1;
    p->open_handles = 2;
    uv_unref((uv_handle_t *)&p->backlog_timer); /* never keeps the process alive by itself */
  }
  if (napi_create_external(env, p, on_finalize, NULL, &handle) != napi_ok) goto fail;
  return handle;
fail:
  mip6_poller_close(p);
  if (p->handle_closed) poller_free(p);
  else p->finalized = 1; /* freed by the close callback */
  napi_throw_error(env, "ERR_NAPI", "internal N-API failure while creating a handle");
  return NULL;
}

void mip6_poller_set_reading(mip6_poller *p, int on) {
  if (p->closed) return;
  p->reading = on;
  if (on && !p->polling) {
    if (uv_poll_start(&p->poll, UV_READABLE, on_poll) == 0) p->polling = 1;
    continue_backlog(p); /* pieces kept while paused: no readiness event brings them */
  } else if (!on && p->polling) {
    uv_poll_stop(&p->poll);
    p->polling = 0;
  }
}

void mip6_poller_close(mip6_poller *p) {
  if (p->closed) return;
  p->closed = 1;
  p->reading = 0;
  if (p->poll_inited) {
    uv_poll_stop(&p->poll);
    p->polling = 0;
    uv_close((uv_handle_t *)&p->poll, on_uv_closed);
  }
  if (p->timer_inited) {
    uv_timer_stop(&p->backlog_timer);
    uv_close((uv_handle_t *)&p->backlog_timer, on_uv_closed);
  }
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  napi_env env = p->env;
  if (env) {
    if (p->cb_ref) napi_delete_reference(env, p->cb_ref);
    for (int i = 0; i < p->nrefs; i++) napi_delete_reference(env, p->refs[i]);
    if (p->actx) napi_async_destroy(env, p->actx);
  }
  p->cb_ref = NULL;
  p->nrefs = 0;
  p->actx = NULL;
  p->slab = NULL;
  p->offsets = p->lengths = NULL;
  p->counters = NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  mip6_tun_init(env, exports);
  mip6_udp_init(env, exports);
  mip6_aead_init(env, exports);
#ifdef __linux__
  mip6_netlink_init(env, exports);
  mip6_ndisc_init(env, exports);
  mip6_ndproxy_init(env, exports);
  mip6_privileges_init(env, exports);
  mip6_express_init(env, exports);
#endif
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
