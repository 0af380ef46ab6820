/*
 * Route lookups over rtnetlink (Linux): the mobile node's "which local address and interface
 * would the kernel use to reach the home agent" question, answered in microseconds instead of
 * spawning `ip route get` (which took 100-500 ms on a loaded box and delayed every handover).
 *
 * routeGet(family, dst[, mark]) -> [type, ifname, prefsrc] | null
 *   One RTM_GETROUTE request (like `ip route get DST`) on a fresh NETLINK_ROUTE socket in the
 *   calling thread's network namespace; synchronous, bounded by a 1 s receive timeout.
 *   type: the route type (RTN_UNICAST = 1, ...); ifname: the output interface ("" if none);
 *   prefsrc: the preferred source address as text ("" if the kernel gave none).
 *   null when the kernel answers with an error (no route: ENETUNREACH, EHOSTUNREACH, ...).
 *   Throws (code = errno name) only when the netlink socket itself fails.
 *   mark (optional, non-zero): the lookup of a packet carrying that firewall mark (RTA_MARK,
 *   `ip route get DST mark M`), i.e. the route the mobile node's own marked UDP socket gets
 *   past a full tunnel's policy rules.
 *
 * rtnlBatch(ops, count, results) -> Promise<number>
 *   The home agent's home-link programming (src/io/home-link.ts): `count` host-route and
 *   proxy-neighbour operations, RTNL_OP_LEN bytes each in `ops` (layout below), sent as many
 *   netlink messages per sendmsg as the socket buffers allow, each with NLM_F_ACK and its own
 *   sequence number; every ACK is read and results[i] set to 0 or -errno for ops[i]. The
 *   promise resolves with the microseconds the batch took on its thread.
 *   Each call opens its own NETLINK_ROUTE socket in the caller's network namespace, with the
 *   caller's credentials (CAP_NET_ADMIN is checked against the socket's opener), then runs on a
 *   thread of its own (mip6_run_on_thread), never libuv's pool: a batch must not queue behind
 *   whatever else the pool's four threads are busy with. Throws synchronously
 *   (code = errno name) when the socket cannot be opened, TypeError/RangeError on bad input.
 *   What each kind sends, the same messages as the `ip` command named (iproute2 6.x):
 *     1 route replace  RTM_NEWROUTE CREATE|REPLACE, table main, protocol boot, type unicast,
 *                      scope universe (IPv4: link), RTA_DST /32 or /128, RTA_OIF; no metric
 *                      (the kernel's default: 1024 for IPv6, 0 for IPv4)
 *                      = `ip route replace ADDR/128 dev IF`
 *     2 route add      the same with CREATE|EXCL = `ip route add`; EEXIST counts as done (0)
 *     3 route delete   RTM_DELROUTE, table main, scope nowhere, RTA_DST, RTA_OIF
 *                      = `ip route del ADDR/128 dev IF`; ESRCH (no such route) counts as done
 *     4 proxy add      RTM_NEWNEIGH CREATE|REPLACE, NTF_PROXY, NUD_PERMANENT, NDA_DST
 *                      = `ip neigh replace proxy ADDR dev IF` (the kernel's proxy add is
 *                      idempotent by itself)
 *     5 proxy delete   RTM_DELNEIGH, NTF_PROXY = `ip neigh del proxy ADDR dev IF`; ENOENT
 *                      counts as done
 *   Any other error is the op's own (ENODEV for an unknown ifindex, EPERM without
 *   CAP_NET_ADMIN); an op whose ACK never came (receive buffer overrun, 2 s without an answer)
 *   gets -ENOBUFS / -ETIMEDOUT: every kind is safe to send again.
 *   Op layout (RTNL_OP_LEN = 24 bytes): [0] kind, [1] family 4 or 6, [2..3] zero,
 *   [4..7] ifindex (uint32 little-endian), [8..23] address (IPv4: the first 4 bytes).
 */
#include "mip6.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NL_BUF_LEN 8192

struct route_request {
  struct nlmsghdr nh;
  struct rtmsg rt;
  char attrs[64];
};

/* Appends one attribute to the request; the pointer arithmetic starts from the whole request
 * (not its nlmsghdr member), so the compiler sees the attrs room it writes into. Returns -1
 * when the attribute does not fit. */
static int add_attr(struct route_request *req, unsigned short type, const void *data, size_t len) {
  size_t off = NLMSG_ALIGN(req->nh.nlmsg_len);
  if (off + RTA_SPACE(len) > sizeof *req) return -1;
  struct rtattr *rta = (struct rtattr *)((char *)req + off);
  rta->rta_type = type;
  rta->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(rta), data, len);
  req->nh.nlmsg_len = (uint32_t)(off + RTA_ALIGN(rta->rta_len));
  return 0;
}

static napi_value route_get(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    mip6_throw_type(env, "routeGet(family, dst) needs two arguments");
    return NULL;
  }
  uint32_t family;
  if (mip6_arg_u32(env, argv[0], "family", &family) != 0) return NULL;
  if (family != 4 && family != 6) {
    mip6_throw_range(env, "family must be 4 or 6");
    return NULL;
  }
  void *dst;
  size_t dst_len;
  if (mip6_arg_typed(env, argv[1], napi_uint8_array, "dst", &dst, &dst_len, NULL) != 0) return NULL;
  uint32_t mark = 0;
  if (argc >= 3) {
    napi_valuetype mt;
    napi_typeof(env, argv[2], &mt);
    if (mt != napi_undefined && mip6_arg_u32(env, argv[2], "mark", &mark) != 0) return NULL;
  }
  size_t want = family == 4 ? 4 : 16;
  if (dst_len != want) {
    mip6_throw_range(env, family == 4 ? "dst must be 4 bytes" : "dst must be 16 bytes");
    return NULL;
  }

  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    mip6_throw_errno(env, errno, "socket", "NETLINK_ROUTE");
    return NULL;
  }
  struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  struct route_request req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
  req.nh.nlmsg_type = RTM_GETROUTE;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = 1;
  req.rt.rtm_family = family == 4 ? AF_INET : AF_INET6;
  req.rt.rtm_dst_len = family == 4 ? 32 : 128;
  /* 16 + 4 bytes always fit the 64 bytes of attrs. */
  (void)add_attr(&req, RTA_DST, dst, want);
  if (mark != 0) (void)add_attr(&req, RTA_MARK, &mark, sizeof mark);

  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    int err = errno;
    close(fd);
    mip6_throw_errno(env, err, "sendto", "RTM_GETROUTE");
    return NULL;
  }
  static __thread char buf[NL_BUF_LEN];
  ssize_t n;
  do {
    n = recv(fd, buf, sizeof buf, 0);
  } while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (n < 0) {
    mip6_throw_errno(env, err, "recv", "RTM_GETROUTE");
    return NULL;
  }

  napi_value result;
  napi_get_null(env, &result);
  int len = (int)n;
  for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (unsigned)len);
       nh = NLMSG_NEXT(nh, len)) {
    if (nh->nlmsg_type == NLMSG_ERROR) return result; /* no route: null */
    if (nh->nlmsg_type != RTM_NEWROUTE) continue;
    struct rtmsg *rt = NLMSG_DATA(nh);
    int alen = (int)RTM_PAYLOAD(nh);
    char ifname[IF_NAMESIZE] = "";
    char src[INET6_ADDRSTRLEN] = "";
    for (struct rtattr *a = RTM_RTA(rt); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
      if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= sizeof(int)) {
        int oif;
        memcpy(&oif, RTA_DATA(a), sizeof oif);
        if (if_indextoname((unsigned)oif, ifname) == NULL) ifname[0] = '\0';
      } else if (a->rta_type == RTA_PREFSRC && RTA_PAYLOAD(a) >= want) {
        inet_ntop(rt->rtm_family, RTA_DATA(a), src, sizeof src);
      }
    }
    napi_value type, name, pref;
    napi_create_uint32(env, rt->rtm_type, &type);
    napi_create_string_utf8(env, ifname, NAPI_AUTO_LENGTH, &name);
    napi_create_string_utf8(env, src, NAPI_AUTO_LENGTH, &pref);
    napi_create_array_with_length(env, 3, &result);
    napi_set_element(env, result, 0, type);
    napi_set_element(env, result, 1, name);
    napi_set_element(env, result, 2, pref);
    return result;
  }
  return result;
}


/* ---- rtnlBatch: home-link programming ------------------------------------------------ */

#define RTNL_OP_LEN 24
#define RTNL_MAX_OPS (1u << 20)
#define RTNL_ROUTE_REPLACE 1
#define RTNL_ROUTE_ADD 2
#define RTNL_ROUTE_DELETE 3
#define RTNL_PROXY_ADD 4
#define RTNL_PROXY_DELETE 5
/* The largest request: nlmsghdr 16 + rtmsg 12 + RTA_DST 20 + RTA_OIF 8 = 56 bytes. */
#define RTNL_MSG_MAX 64
/* Receive-buffer room one queued ACK takes (its skb's truesize: ~770 bytes on Linux 6.x, rounded
 * up): a chunk holds no more requests than the receive buffer has room for ACKs, since the kernel
 * queues them all while sendmsg runs and drops (ENOBUFS) those that do not fit. */
#define RTNL_ACK_ROOM 1024
/* Socket buffers asked for (SO_RCVBUFFORCE / SO_SNDBUFFORCE need CAP_NET_ADMIN, which
 * programming routes needs anyway; without it the kernel caps them at rmem_max / wmem_max). */
#define RTNL_WANT_BUF (4 << 20)
#define RTNL_ACK_TIMEOUT_S 2
#define RTNL_RECV_LEN 65536
#define RTNL_PENDING 1 /* results[i] while ops[i] waits for its ACK (real results are <= 0) */
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

struct rtnl_work {
  napi_deferred deferred;
  napi_ref results_ref;
  int fd;
  uint32_t count;
  uint8_t *ops;
  int32_t *results;
  double busy_us;
};

/* Appends one attribute to the message at `msg` (RTNL_MSG_MAX bytes of room). */
static void put_attr(char *msg, unsigned short type, const void *data, size_t len) {
  struct nlmsghdr *nh = (struct nlmsghdr *)msg;
  size_t off = NLMSG_ALIGN(nh->nlmsg_len);
  if (off + RTA_SPACE(len) > RTNL_MSG_MAX) return; /* cannot happen: sizes are fixed */
  struct rtattr *rta = (struct rtattr *)(msg + off);
  rta->rta_type = type;
  rta->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(rta), data, len);
  nh->nlmsg_len = (uint32_t)(off + RTA_ALIGN(rta->rta_len));
}

/* Writes the request for one op at `out` (RTNL_MSG_MAX bytes); returns its aligned length. */
static size_t encode_op(const uint8_t *op, uint32_t seq, char *out) {
  uint8_t kind = op[0];
  int v4 = op[1] == 4;
  size_t alen = v4 ? 4 : 16;
  uint32_t ifindex;
  memcpy(&ifindex, op + 4, 4);
  ifindex = le32toh(ifindex);
  memset(out, 0, RTNL_MSG_MAX);
  struct nlmsghdr *nh = (struct nlmsghdr *)out;
  nh->nlmsg_seq = seq;
  nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  if (kind == RTNL_ROUTE_REPLACE || kind == RTNL_ROUTE_ADD || kind == RTNL_ROUTE_DELETE) {
    struct rtmsg *rt = NLMSG_DATA(nh);
    nh->nlmsg_len = NLMSG_LENGTH(sizeof *rt);
    rt->rtm_family = v4 ? AF_INET : AF_INET6;
    rt->rtm_dst_len = (unsigned char)(alen * 8);
    rt->rtm_table = RT_TABLE_MAIN;
    if (kind == RTNL_ROUTE_DELETE) {
      nh->nlmsg_type = RTM_DELROUTE;
      rt->rtm_scope = RT_SCOPE_NOWHERE;
    } else {
      nh->nlmsg_type = RTM_NEWROUTE;
      nh->nlmsg_flags |= NLM_F_CREATE | (kind == RTNL_ROUTE_ADD ? NLM_F_EXCL : NLM_F_REPLACE);
      rt->rtm_protocol = RTPROT_BOOT;
      rt->rtm_type = RTN_UNICAST;
      rt->rtm_scope = v4 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
    }
    put_attr(out, RTA_DST, op + 8, alen);
    put_attr(out, RTA_OIF, &ifindex, sizeof ifindex);
  } else {
    struct ndmsg *nd = NLMSG_DATA(nh);
    nh->nlmsg_len = NLMSG_LENGTH(sizeof *nd);
    nd->ndm_family = v4 ? AF_INET : AF_INET6;
    nd->ndm_ifindex = (int)ifindex;
    nd->ndm_flags = NTF_PROXY;
    nd->ndm_state = NUD_PERMANENT;
    if (kind == RTNL_PROXY_ADD) {
      nh->nlmsg_type = RTM_NEWNEIGH;
      nh->nlmsg_flags |= NLM_F_CREATE | NLM_F_REPLACE;
    } else {
      nh->nlmsg_type = RTM_DELNEIGH;
    }
    put_attr(out, NDA_DST, op + 8, alen);
  }
  return NLMSG_ALIGN(nh->nlmsg_len);
}

/* The kernel's answer as the op's result: "already there" / "already gone" are done. */
static int32_t settle(uint8_t kind, int32_t error) {
  if (kind == RTNL_ROUTE_ADD && error == -EEXIST) return 0;
  if (kind == RTNL_ROUTE_DELETE && error == -ESRCH) return 0;
  if (kind == RTNL_PROXY_DELETE && error == -ENOENT) return 0;
  return error;
}

static int sock_size(int fd, int opt) {
  int v = 0;
  socklen_t l = sizeof v;
  return getsockopt(fd, SOL_SOCKET, opt, &v, &l) == 0 ? v : 0;
}

/* Sends ops [first, first + n) in one sendmsg and reads their ACKs. */
static void run_chunk(struct rtnl_work *w, uint32_t first, uint32_t n, char *out, char *in) {
  size_t len = 0;
  for (uint32_t i = first; i < first + n; i++) {
    w->results[i] = RTNL_PENDING;
    len += encode_op(w->ops + (size_t)i * RTNL_OP_LEN, i + 1, out + len);
  }
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = sendto(w->fd, out, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    int err = errno;
    for (uint32_t i = first; i < first + n; i++) w->results[i] = -err;
    return;
  }
  uint32_t pending = n;
  int overrun = 0;
  while (pending > 0) {
    /* rtnetlink handles the requests inside sendmsg, so every ACK that was not dropped is
     * queued by now; after an overrun, an empty queue means the rest were dropped. */
    ssize_t r = recv(w->fd, in, RTNL_RECV_LEN, overrun ? MSG_DONTWAIT : 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        overrun = 1;
        continue;
      }
      break; /* EAGAIN: the receive timeout (or, after an overrun, the queue is empty) */
    }
    int left = (int)r;
    for (struct nlmsghdr *nh = (struct nlmsghdr *)in; NLMSG_OK(nh, (unsigned)left);
         nh = NLMSG_NEXT(nh, left)) {
      if (nh->nlmsg_type != NLMSG_ERROR || nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
        continue;
      uint32_t seq = nh->nlmsg_seq;
      if (seq <= first || seq > first + n || w->results[seq - 1] != RTNL_PENDING) continue;
      const struct nlmsgerr *e = NLMSG_DATA(nh);
      w->results[seq - 1] = settle(w->ops[(size_t)(seq - 1) * RTNL_OP_LEN], e->error);
      pending--;
    }
  }
  for (uint32_t i = first; i < first + n; i++) {
    if (w->results[i] == RTNL_PENDING) w->results[i] = overrun ? -ENOBUFS : -ETIMEDOUT;
  }
}

static void run_batch(struct rtnl_work *w) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint32_t by_rcv = (uint32_t)(sock_size(w->fd, SO_RCVBUF) / RTNL_ACK_ROOM);
  uint32_t by_snd = (uint32_t)((sock_size(w->fd, SO_SNDBUF) - 64) / RTNL_MSG_MAX);
  uint32_t chunk = by_rcv < by_snd ? by_rcv : by_snd;
  if (chunk > w->count) chunk = w->count;
  if (chunk == 0) chunk = 1;
  char *out = malloc((size_t)chunk * RTNL_MSG_MAX);
  char *in = malloc(RTNL_RECV_LEN);
  if (out == NULL || in == NULL) {
    for (uint32_t i = 0; i < w->count; i++) w->results[i] = -ENOMEM;
  } else {
    for (uint32_t first = 0; first < w->count; first += chunk) {
      uint32_t n = w->count - first < chunk ? w->count - first : chunk;
      run_chunk(w, first, n, out, in);
    }
  }
  free(out);
  free(in);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  w->busy_us = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
}

static void rtnl_free(napi_env env, struct rtnl_work *w) {
  if (env != NULL && w->results_ref != NULL) napi_delete_reference(env, w->results_ref);
  if (w->fd >= 0) close(w->fd);
  free(w->ops);
  free(w->results);
  free(w);
}

/* On the JS thread once the batch thread is done: results out, promise resolved. */
static void rtnl_complete(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)context;
  struct rtnl_work *w = data;
  if (env == NULL) { /* the environment is going away */
    rtnl_free(NULL, w);
    return;
  }
  napi_value arr, busy;
  void *dst = NULL;
  size_t len = 0;
  if (napi_get_reference_value(env, w->results_ref, &arr) == napi_ok && arr != NULL &&
      napi_get_typedarray_info(env, arr, NULL, &len, &dst, NULL, NULL) == napi_ok && dst != NULL &&
      len >= w->count) {
    memcpy(dst, w->results, (size_t)w->count * sizeof(int32_t));
  }
  napi_create_double(env, w->busy_us, &busy);
  napi_resolve_deferred(env, w->deferred, busy);
  rtnl_free(env, w);
}

/* On its own thread (mip6_run_on_thread). */
static void rtnl_execute(void *data) {
  struct rtnl_work *w = data;
  run_batch(w);
  close(w->fd);
  w->fd = -1;
}

static int open_rtnl(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -1;
  int size = RTNL_WANT_BUF, one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  /* Error ACKs carry the request's header only, not the whole request. */
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  struct timeval tv = {.tv_sec = RTNL_ACK_TIMEOUT_S, .tv_usec = 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static napi_value rtnl_batch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    mip6_throw_type(env, "rtnlBatch(ops, count, results) needs three arguments");
    return NULL;
  }
  void *ops;
  size_t ops_len, res_len;
  void *res;
  uint32_t count;
  if (mip6_arg_typed(env, argv[0], napi_uint8_array, "ops", &ops, &ops_len, NULL) != 0) return NULL;
  if (mip6_arg_u32(env, argv[1], "count", &count) != 0) return NULL;
  if (mip6_arg_typed(env, argv[2], napi_int32_array, "results", &res, &res_len, NULL) != 0)
    return NULL;
  if (count > RTNL_MAX_OPS || ops_len < (size_t)count * RTNL_OP_LEN || res_len < count) {
    mip6_throw_range(env, "count exceeds ops (24 bytes each), results or 2^20");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *op = (const uint8_t *)ops + (size_t)i * RTNL_OP_LEN;
    if (op[0] < RTNL_ROUTE_REPLACE || op[0] > RTNL_PROXY_DELETE || (op[1] != 4 && op[1] != 6) ||
        op[2] != 0 || op[3] != 0) {
      char msg[96];
      snprintf(msg, sizeof msg, "ops[%u]: kind must be 1-5, family 4 or 6, bytes 2-3 zero", i);
      mip6_throw_range(env, msg);
      return NULL;
    }
  }
  int fd = open_rtnl();
  if (fd < 0) {
    mip6_throw_errno(env, errno, "socket", "NETLINK_ROUTE");
    return NULL;
  }
  napi_value promise;
  if (count == 0) { /* a probe: the socket opens */
    close(fd);
    napi_deferred d;
    napi_value zero;
    napi_create_promise(env, &d, &promise);
    napi_create_double(env, 0, &zero);
    napi_resolve_deferred(env, d, zero);
    return promise;
  }
  struct rtnl_work *w = calloc(1, sizeof *w);
  if (w != NULL) {
    w->fd = fd;
    w->count = count;
    w->ops = malloc((size_t)count * RTNL_OP_LEN);
    w->results = calloc(count, sizeof(int32_t));
  }
  if (w == NULL || w->ops == NULL || w->results == NULL) {
    if (w != NULL) rtnl_free(env, w);
    else close(fd);
    mip6_throw_errno(env, ENOMEM, "malloc", "rtnlBatch");
    return NULL;
  }
  memcpy(w->ops, ops, (size_t)count * RTNL_OP_LEN);
  if (napi_create_reference(env, argv[2], 1, &w->results_ref) != napi_ok) {
    rtnl_free(env, w);
    napi_throw_error(env, "ERR_NAPI", "internal N-API failure in rtnlBatch");
    return NULL;
  }
  /* The promise exists before the thread runs; rtnl_complete runs on this thread's loop, so
   * not before this function has returned. */
  napi_create_promise(env, &w->deferred, &promise);
  int rc = mip6_run_on_thread(env, "mip6.rtnlBatch", rtnl_execute, rtnl_complete, w);
  if (rc != 0) {
    napi_value err, code, msg;
    napi_create_string_utf8(env, rc == ENOMEM ? "ENOMEM" : "EAGAIN", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, "no thread for rtnlBatch", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &err);
    napi_reject_deferred(env, w->deferred, err);
    rtnl_free(env, w);
  }
  return promise;
}

void mip6_netlink_init(napi_env env, napi_value exports) {
  mip6_export(env, exports, "routeGet", route_get);
  mip6_export(env, exports, "rtnlBatch", rtnl_batch);
}
