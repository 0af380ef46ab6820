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
 * Node's other threads (V8 platform workers, libuv's pool) did not set keep-caps: the uid
 * change leaves them with no capability at all, which is fewer, never more. Threads created
 * later inherit this thread's credentials.
 * Throws Error with code (errno name), errno and syscall on the first step that fails; the
 * process is then in an unknown state and the caller must exit.
 */
#define _GNU_SOURCE /* setresuid, getresuid */
#include "mip6.h"

#include <errno.h>
#include <grp.h>
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

  /* 1. Bounding set: drop all but `keep` (needs CAP_SETPCAP, so before the uid change). */
  for (unsigned cap = 0; cap < 64; cap++) {
    if (keep & (1ULL << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break; /* past the kernel's last capability */
      mip6_throw_errno(env, errno, "prctl", "PR_CAPBSET_DROP");
      return NULL;
    }
  }
  /* 2. Keep the permitted set across the switch away from uid 0. */
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
    mip6_throw_errno(env, errno, "prctl", "PR_SET_KEEPCAPS");
    return NULL;
  }
  gid_t g = (gid_t)gid;
  if (setgroups(1, &g) != 0) {
    mip6_throw_errno(env, errno, "setgroups", NULL);
    return NULL;
  }
  if (setresgid(g, g, g) != 0) {
    mip6_throw_errno(env, errno, "setresgid", NULL);
    return NULL;
  }
  if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) {
    mip6_throw_errno(env, errno, "setresuid", NULL);
    return NULL;
  }
  /* 3. Exactly `keep`, effective now and inheritable (a precondition of ambient). */
  if (cap_set(keep, keep, keep) != 0) {
    mip6_throw_errno(env, errno, "capset", NULL);
    return NULL;
  }
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) {
    mip6_throw_errno(env, errno, "prctl", "PR_SET_KEEPCAPS 0");
    return NULL;
  }
  /* 4. Ambient: what exec'd children without file capabilities start with. */
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    mip6_throw_errno(env, errno, "prctl", "PR_CAP_AMBIENT_CLEAR_ALL");
    return NULL;
  }
  for (unsigned cap = 0; cap < 64; cap++) {
    if (!(keep & (1ULL << cap))) continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) {
      mip6_throw_errno(env, errno, "prctl", "PR_CAP_AMBIENT_RAISE");
      return NULL;
    }
  }
  /* 5. Nothing exec'd later gains privileges. */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    mip6_throw_errno(env, errno, "prctl", "PR_SET_NO_NEW_PRIVS");
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
