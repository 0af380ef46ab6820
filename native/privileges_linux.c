/*
 * Least privilege for the daemons (Linux): give up root but keep a chosen few capabilities
 * (CAP_NET_ADMIN, CAP_NET_RAW) for the daemon's whole life, and hand them to the `ip` /
 * `ping` children it spawns. Node's process.setuid() cannot do this: a switch away from uid 0
 * clears the permitted set unless the keep-caps flag is set first, and Node cannot set it.
 *
 * privDrop(uid, gid, keep) -> void        keep: array of capability numbers (<linux/capability.h>)
 *   1. bounding set: every capability not in `keep` is dropped (PR_CAPBSET_DROP), so nothing
 *      the daemon execs can ever get it back, file capabilities included;
 *   2. PR_SET_KEEPCAPS 1, then setgroups([gid]), setresgid(gid), setresuid(uid) (glibc applies
 *      the id changes to every thread of the process);
 *   3. capset: effective = permitted = inheritable = keep (this thread: the one running JS,
 *      which is also the one libuv forks children from); PR_SET_KEEPCAPS 0 again;
 *   4. ambient set = keep (PR_CAP_AMBIENT_RAISE), so an exec'd program without file
 *      capabilities (`ip`) starts with exactly `keep` in its effective set;
 *   5. PR_SET_NO_NEW_PRIVS: no setuid binary or file capability can raise privileges later;
 *   6. checks: uid/gid really changed, root cannot be regained, capget reports exactly keep.
 * Capabilities are per thread. libuv's pool threads run native work too (an addon's async
 * work, fs calls), so they get the same treatment: before the switch one work item per pool
 * thread (UV_THREADPOOL_SIZE, default 4) parks on a barrier after dropping the bounding set and
 * setting keep-caps; after the switch each sets exactly `keep` (and ambient, no_new_privs) on
 * its thread. Node's other threads (V8 platform workers) keep no capability at all (the uid
 * change clears them), which is fewer, never more. Threads created later inherit the
 * credentials of the thread that creates them.
 * Throws Error with code (errno name), errno and syscall on the first step that fails; the
 * process is then in an unknown state and the caller must exit.
 */
#define _GNU_SOURCE /* setresuid, getresuid */
#include "mip6.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <time.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_KEEP 8

static int cap_get(struct __user_cap_data_struct data[2]) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  return (int)syscall(SYS_capget, &hdr, data);
}

static int cap_set(uint64_t eff, uint64_t prm, uint64_t inh) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  data[0].effective = (uint32_t)eff;
  data[1].effective = (uint32_t)(eff >> 32);
  data[0].permitted = (uint32_t)prm;
  data[1].permitted = (uint32_t)(prm >> 32);
  data[0].inheritable = (uint32_t)inh;
  data[1].inheritable = (uint32_t)(inh >> 32);
  return (int)syscall(SYS_capset, &hdr, data);
}

/* ---- the libuv pool threads -------------------------------------------------------- */

#define POOL_DEFAULT 4
#define POOL_MAX 1024
#define POOL_WAIT_MS 3000

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t keep;
  int expected;
  int arrived;  /* pool threads parked with keep-caps set */
  int phase;    /* 0: wait for the switch, 1: switched, apply `keep`, 2: give up */
  int applied;  /* pool threads done with phase 1 */
  int failed;   /* pool threads whose phase 1 failed */
  int released; /* after-work callbacks run (the last one frees everything) */
  uv_work_t *reqs;
} pool_sync;

static int drop_bounding(uint64_t keep) {
  for (unsigned cap = 0; cap < 64; cap++) {
    if (keep & (1ULL << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) return 0; /* past the kernel's last capability */
      return -1;
    }
  }
  return 0;
}

/* After the uid switch, on the calling thread: exactly `keep`, ambient, no_new_privs. */
static int apply_keep(uint64_t keep, const char **step) {
  *step = "capset";
  if (cap_set(keep, keep, keep) != 0) return -1;
  *step = "PR_SET_KEEPCAPS 0";
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return -1;
  *step = "PR_CAP_AMBIENT_CLEAR_ALL";
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return -1;
  *step = "PR_CAP_AMBIENT_RAISE";
  for (unsigned cap = 0; cap < 64; cap++) {
    if ((keep & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
      return -1;
  }
  *step = "PR_SET_NO_NEW_PRIVS";
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

static void pool_work(uv_work_t *req) {
  pool_sync *s = req->data;
  pthread_mutex_lock(&s->mu);
  if (s->phase != 0) { /* came too late: the switch was given up (or done) without us */
    pthread_mutex_unlock(&s->mu);
    return;
  }
  int ok = drop_bounding(s->keep) == 0 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == 0;
  if (!ok) s->failed++;
  s->arrived++;
  pthread_cond_broadcast(&s->cv);
  while (s->phase == 0) pthread_cond_wait(&s->cv, &s->mu);
  if (s->phase == 1 && ok) {
    const char *step;
    if (apply_keep(s->keep, &step) != 0) s->failed++;
  }
  s->applied++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void pool_after(uv_work_t *req, int status) {
  (void)status;
  pool_sync *s = req->data;
  if (++s->released < s->expected) return; /* the loop thread: no lock needed against itself */
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->reqs);
  free(s);
}

static void deadline_in(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Waits (mutex held) until *counter reaches s->expected; -1 on timeout. */
static int pool_wait(pool_sync *s, const int *counter) {
  struct timespec ts;
  deadline_in(&ts, POOL_WAIT_MS);
  while (*counter < s->expected) {
    if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) return -1;
  }
  return 0;
}

/* Queues one parking work item per pool thread; NULL (errno set) when that fails. */
static pool_sync *pool_park(napi_env env, uint64_t keep) {
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    errno = EINVAL;
    return NULL;
  }
  int n = POOL_DEFAULT;
  const char *v = getenv("UV_THREADPOOL_SIZE"); /* read by libuv the same way */
  if (v != NULL && *v != '\0') n = atoi(v);
  if (n < 1) n = 1;
  if (n > POOL_MAX) n = POOL_MAX;
  pool_sync *s = calloc(1, sizeof *s);
  uv_work_t *reqs = s ? calloc((size_t)n, sizeof *reqs) : NULL;
  if (reqs == NULL) {
    free(s);
    errno = ENOMEM;
    return NULL;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->keep = keep;
  s->expected = n;
  s->reqs = reqs;
  for (int i = 0; i < n; i++) {
    reqs[i].data = s;
    int rc = uv_queue_work(loop, &reqs[i], pool_work, pool_after);
    if (rc != 0) {
      /* Cannot happen on a live loop; the queued ones must still be let go. */
      pthread_mutex_lock(&s->mu);
      s->phase = 2;
      s->expected = i; /* only i after-work callbacks will come */
      pthread_cond_broadcast(&s->cv);
      pthread_mutex_unlock(&s->mu);
      if (i == 0) {
        free(reqs);
        free(s);
      }
      errno = -rc;
      return NULL;
    }
  }
  pthread_mutex_lock(&s->mu);
  int parked = pool_wait(s, &s->arrived);
  int failed = s->failed;
  pthread_mutex_unlock(&s->mu);
  if (parked != 0 || failed != 0) {
    pthread_mutex_lock(&s->mu);
    s->phase = 2;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    errno = parked != 0 ? ETIMEDOUT : EPERM;
    return NULL;
  }
  return s;
}

/* Lets the parked pool threads apply `keep` (phase 1) or just go (phase 2); 0 when all did. */
static int pool_release(pool_sync *s, int phase) {
  pthread_mutex_lock(&s->mu);
  s->phase = phase;
  pthread_cond_broadcast(&s->cv);
  int rc = pool_wait(s, &s->applied);
  if (rc == 0 && s->failed != 0) rc = -1;
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static napi_value priv_drop(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    mip6_throw_type(env, "privDrop(uid, gid, keep) needs three arguments");
    return NULL;
  }
  uint32_t uid, gid;
  if (mip6_arg_u32(env, argv[0], "uid", &uid) != 0) return NULL;
  if (mip6_arg_u32(env, argv[1], "gid", &gid) != 0) return NULL;
  bool is_array = false;
  uint32_t nkeep = 0;
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[2], &nkeep) != napi_ok) {
    mip6_throw_type(env, "keep must be an array of capability numbers");
    return NULL;
  }
  if (nkeep > MAX_KEEP) {
    mip6_throw_range(env, "keep holds too many capabilities");
    return NULL;
  }
  uint64_t keep = 0;
  for (uint32_t i = 0; i < nkeep; i++) {
    napi_value v;
    uint32_t cap;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok) return NULL;
    if (mip6_arg_u32(env, v, "capability", &cap) != 0) return NULL;
    if (cap > 63 || !cap_valid(cap)) {
      mip6_throw_range(env, "capability number out of range");
      return NULL;
    }
    keep |= 1ULL << cap;
  }

  /* 0. Park one work item on every libuv pool thread (they get the same treatment). */
  pool_sync *pool = pool_park(env, keep);
  if (pool == NULL) {
    mip6_throw_errno(env, errno, "uv_queue_work", "parking the libuv pool threads");
    return NULL;
  }
  /* 1. Bounding set: drop all but `keep` (needs CAP_SETPCAP, so before the uid change). */
  if (drop_bounding(keep) != 0) {
    int err = errno;
    pool_release(pool, 2);
    mip6_throw_errno(env, err, "prctl", "PR_CAPBSET_DROP");
    return NULL;
  }
  /* 2. Keep the permitted set across the switch away from uid 0; switch every thread. */
  const char *failed = NULL;
  gid_t g = (gid_t)gid;
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) failed = "prctl";
  else if (setgroups(1, &g) != 0) failed = "setgroups";
  else if (setresgid(g, g, g) != 0) failed = "setresgid";
  else if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) failed = "setresuid";
  if (failed != NULL) {
    int err = errno;
    pool_release(pool, 2);
    mip6_throw_errno(env, err, failed, "switching user");
    return NULL;
  }
  /* 3.-5. Exactly `keep` here (effective, permitted, inheritable: a precondition of ambient),
   * the ambient set, no_new_privs; then the same on the pool threads. */
  const char *step;
  if (apply_keep(keep, &step) != 0) {
    int err = errno;
    pool_release(pool, 2);
    mip6_throw_errno(env, err, "prctl/capset", step);
    return NULL;
  }
  if (pool_release(pool, 1) != 0) {
    mip6_throw_errno(env, EPERM, "capset", "on a libuv pool thread");
    return NULL;
  }
  /* 6. Checks. */
  uid_t r, e, s;
  gid_t rg, eg, sg;
  if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid ||
      getresgid(&rg, &eg, &sg) != 0 || rg != g || eg != g || sg != g) {
    mip6_throw_errno(env, EPERM, "getresuid", "ids did not change");
    return NULL;
  }
  /* Raw syscall: glibc's setuid() would try the other threads too and abort on a mismatch. */
  if (uid != 0 && syscall(SYS_setresuid, 0, 0, 0) == 0) {
    mip6_throw_errno(env, EPERM, "setresuid", "root could be regained");
    return NULL;
  }
  struct __user_cap_data_struct now[2];
  if (cap_get(now) != 0) {
    mip6_throw_errno(env, errno, "capget", NULL);
    return NULL;
  }
  uint64_t eff = ((uint64_t)now[1].effective << 32) | now[0].effective;
  uint64_t prm = ((uint64_t)now[1].permitted << 32) | now[0].permitted;
  if (eff != keep || prm != keep) {
    mip6_throw_errno(env, EPERM, "capget", "capability sets differ from the requested ones");
    return NULL;
  }
  return NULL;
}

void mip6_privileges_init(napi_env env, napi_value exports) {
  mip6_export(env, exports, "privDrop", priv_drop);
}
