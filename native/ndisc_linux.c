/*
 * Unsolicited Neighbor Advertisements (RFC 4861 §7.2.6) on a link (Linux), for the two moments
 * Mobile IPv6 needs them and the kernel sends none:
 *   - the home agent starts defending an away MN's home address by proxy ND (RFC 6275 §10.4.1):
 *     hosts on the home link that cached the MN's own link-layer address must switch to the HA;
 *   - the MN is back home and deregistered (RFC 6275 §11.5.4): they must switch back to the MN.
 *
 * ndpAdvertise(ifname, target) -> void
 *   One NA to all-nodes (ff02::1) out of `ifname`: Override set, Solicited and Router clear,
 *   target = the 16-byte address, Target Link-Layer Address option = the interface's MAC.
 *   Hop limit 255 (receivers drop anything else, §7.1.2); the kernel fills the ICMPv6 checksum
 *   on raw ICMPv6 sockets. Throws (code = errno name) when the interface or the socket fails.
 *
 * ndpSolicit(ifname, target, timeoutMs) -> Promise<boolean>
 *   Neighbor Solicitations for `target` to its solicited-node group out of `ifname` until a
 *   Neighbor Advertisement for it arrives there. Only an NA received with IPv6 hop limit 255
 *   counts (RFC 4861 §7.1.2: anything else was forwarded by a router, so it is not from this
 *   link); the raw socket's hop limit comes from IPV6_RECVHOPLIMIT. An answer only says that
 *   something on the link claims the address: the mobile node treats it as a candidate home
 *   link, never as proof (src/roles/mn/mobile-node.ts asks the home agent for that).
 */
#include "mip6.h"

#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define NA_LEN 32 /* 24-byte NA + 8-byte TLLA option for a 6-byte MAC */

static napi_value ndp_advertise(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    mip6_throw_type(env, "ndpAdvertise(ifname, target) needs two arguments");
    return NULL;
  }
  char ifname[IF_NAMESIZE];
  size_t n = 0;
  if (napi_get_value_string_utf8(env, argv[0], ifname, sizeof ifname, &n) != napi_ok || n == 0) {
    mip6_throw_type(env, "ifname must be an interface name");
    return NULL;
  }
  void *target;
  size_t target_len;
  if (mip6_arg_typed(env, argv[1], napi_uint8_array, "target", &target, &target_len, NULL) != 0)
    return NULL;
  if (target_len != 16) {
    mip6_throw_range(env, "target must be 16 bytes");
    return NULL;
  }
  unsigned ifindex = if_nametoindex(ifname);
  if (ifindex == 0) {
    mip6_throw_errno(env, errno, "if_nametoindex", ifname);
    return NULL;
  }
  int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
  if (fd < 0) {
    mip6_throw_errno(env, errno, "socket", "raw ICMPv6");
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, n < IF_NAMESIZE ? n : IF_NAMESIZE - 1);
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
    int err = errno;
    close(fd);
    mip6_throw_errno(env, err, "ioctl", "SIOCGIFHWADDR");
    return NULL;
  }
  int hops = 255;
  int loop = 0; /* our own NA must not come back to our stack: it would rewrite our own cache */
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop) < 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0) {
    int err = errno;
    close(fd);
    mip6_throw_errno(env, err, "setsockopt", "IPV6_MULTICAST_HOPS/LOOP/IF");
    return NULL;
  }
  uint8_t msg[NA_LEN];
  memset(msg, 0, sizeof msg);
  msg[0] = ND_NEIGHBOR_ADVERT; /* type 136 */
  msg[4] = 0x20;               /* R=0 S=0 O=1 */
  memcpy(msg + 8, target, 16);
  msg[24] = ND_OPT_TARGET_LINKADDR; /* option 2 */
  msg[25] = 1;                      /* length in units of 8 bytes */
  memcpy(msg + 26, ifr.ifr_hwaddr.sa_data, 6);
  struct sockaddr_in6 dst;
  memset(&dst, 0, sizeof dst);
  dst.sin6_family = AF_INET6;
  dst.sin6_addr.s6_addr[0] = 0xff;
  dst.sin6_addr.s6_addr[1] = 0x02;
  dst.sin6_addr.s6_addr[15] = 0x01;
  dst.sin6_scope_id = ifindex;
  ssize_t sent = sendto(fd, msg, sizeof msg, 0, (struct sockaddr *)&dst, sizeof dst);
  int err = errno;
  close(fd);
  if (sent < 0) {
    mip6_throw_errno(env, err, "sendto", "Neighbor Advertisement");
    return NULL;
  }
  return NULL;
}

#define NS_LEN 32       /* 24-byte NS + 8-byte SLLA option for a 6-byte MAC */
#define NS_REPEAT_MS 100 /* a link that has just come up often loses the first exchange */

struct solicit_work {
  napi_deferred deferred;
  char ifname[IF_NAMESIZE];
  uint8_t target[16];
  uint32_t timeout_ms;
  int answered;
  int err;             /* errno of a failure, 0 if none */
  const char *syscall; /* what failed */
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void solicit_fail(struct solicit_work *w, int fd, const char *syscall) {
  w->err = errno;
  w->syscall = syscall;
  if (fd >= 0) close(fd);
}

/* On a thread of its own (mip6_run_on_thread): no N-API calls here. */
static void solicit_execute(void *data) {
  struct solicit_work *w = data;
  unsigned ifindex = if_nametoindex(w->ifname);
  if (ifindex == 0) {
    solicit_fail(w, -1, "if_nametoindex");
    return;
  }
  int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
  if (fd < 0) {
    solicit_fail(w, -1, "socket");
    return;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, w->ifname, strnlen(w->ifname, IF_NAMESIZE - 1));
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
    solicit_fail(w, fd, "ioctl(SIOCGIFHWADDR)");
    return;
  }
  struct icmp6_filter filter;
  ICMP6_FILTER_SETBLOCKALL(&filter);
  ICMP6_FILTER_SETPASS(ND_NEIGHBOR_ADVERT, &filter);
  int hops = 255;
  int loop = 0;
  int on = 1;
  if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) < 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, w->ifname, (socklen_t)strlen(w->ifname)) < 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop) < 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0) {
    solicit_fail(w, fd, "setsockopt");
    return;
  }
  uint8_t ns[NS_LEN];
  memset(ns, 0, sizeof ns);
  ns[0] = ND_NEIGHBOR_SOLICIT; /* type 135 */
  memcpy(ns + 8, w->target, 16);
  ns[24] = ND_OPT_SOURCE_LINKADDR; /* option 1 */
  ns[25] = 1;
  memcpy(ns + 26, ifr.ifr_hwaddr.sa_data, 6);
  struct sockaddr_in6 dst; /* solicited-node multicast ff02::1:ffXX:XXXX (RFC 4291 §2.7.1) */
  memset(&dst, 0, sizeof dst);
  dst.sin6_family = AF_INET6;
  dst.sin6_addr.s6_addr[0] = 0xff;
  dst.sin6_addr.s6_addr[1] = 0x02;
  dst.sin6_addr.s6_addr[11] = 0x01;
  dst.sin6_addr.s6_addr[12] = 0xff;
  memcpy(&dst.sin6_addr.s6_addr[13], w->target + 13, 3);
  dst.sin6_scope_id = ifindex;

  int64_t deadline = now_ms() + w->timeout_ms;
  int64_t next_send = 0;
  uint8_t buf[1500];
  for (;;) {
    int64_t now = now_ms();
    if (now >= deadline) break;
    if (now >= next_send) {
      /* A send error (e.g. the link-local is still tentative) is retried on the next round. */
      (void)sendto(fd, ns, sizeof ns, 0, (struct sockaddr *)&dst, sizeof dst);
      next_send = now + NS_REPEAT_MS;
    }
    int64_t wait = (next_send < deadline ? next_send : deadline) - now;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)(wait > 0 ? wait : 0));
    if (r < 0 && errno != EINTR) {
      solicit_fail(w, fd, "poll");
      return;
    }
    if (r <= 0) continue;
    ssize_t n;
    for (;;) {
      uint8_t ctrl[128];
      struct iovec iov = {buf, sizeof buf};
      struct msghdr m;
      memset(&m, 0, sizeof m);
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctrl;
      m.msg_controllen = sizeof ctrl;
      if ((n = recvmsg(fd, &m, MSG_DONTWAIT)) <= 0) break;
      int hop_limit = -1;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)
          memcpy(&hop_limit, CMSG_DATA(c), sizeof hop_limit);
      }
      /* Raw ICMPv6 sockets deliver the ICMPv6 message without the IPv6 header. */
      if (n >= 24 && hop_limit == 255 && buf[0] == ND_NEIGHBOR_ADVERT && buf[1] == 0 &&
          memcmp(buf + 8, w->target, 16) == 0) {
        w->answered = 1;
        close(fd);
        return;
      }
    }
  }
  close(fd);
}

static void solicit_complete(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)context;
  struct solicit_work *w = data;
  if (env == NULL) { /* the environment is going away */
    free(w);
    return;
  }
  if (w->err != 0) {
    napi_value msg, code, error;
    char text[160];
    snprintf(text, sizeof text, "%s %s: %s", w->syscall ? w->syscall : "ndpSolicit", w->ifname,
             strerror(w->err));
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, "ERR_NDISC", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &error);
    napi_value errnum;
    napi_create_int32(env, -w->err, &errnum);
    napi_set_named_property(env, error, "errno", errnum);
    napi_reject_deferred(env, w->deferred, error);
  } else {
    napi_value result;
    napi_get_boolean(env, w->answered != 0, &result);
    napi_resolve_deferred(env, w->deferred, result);
  }
  free(w);
}

static napi_value ndp_solicit(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    mip6_throw_type(env, "ndpSolicit(ifname, target, timeoutMs) needs three arguments");
    return NULL;
  }
  struct solicit_work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    mip6_throw_errno(env, ENOMEM, "calloc", "ndpSolicit");
    return NULL;
  }
  size_t n = 0;
  if (napi_get_value_string_utf8(env, argv[0], w->ifname, sizeof w->ifname, &n) != napi_ok ||
      n == 0) {
    free(w);
    mip6_throw_type(env, "ifname must be an interface name");
    return NULL;
  }
  void *target;
  size_t target_len;
  if (mip6_arg_typed(env, argv[1], napi_uint8_array, "target", &target, &target_len, NULL) != 0) {
    free(w);
    return NULL;
  }
  if (target_len != 16) {
    free(w);
    mip6_throw_range(env, "target must be 16 bytes");
    return NULL;
  }
  memcpy(w->target, target, 16);
  if (mip6_arg_u32(env, argv[2], "timeoutMs", &w->timeout_ms) != 0) {
    free(w);
    return NULL;
  }
  if (w->timeout_ms > 60000) w->timeout_ms = 60000;
  /* A thread per probe, not libuv's pool: a probe sleeps up to timeoutMs, and the home agent runs
   * one per new binding, a few hundred at once in a registration burst; four pool threads
   * allowed ~4 new bindings a second (bench/ha-scale.ts --home-link). */
  napi_value promise;
  napi_create_promise(env, &w->deferred, &promise);
  int rc = mip6_run_on_thread(env, "mip6.ndpSolicit", solicit_execute, solicit_complete, w);
  if (rc != 0) {
    w->err = rc;
    w->syscall = "pthread_create";
    solicit_complete(env, NULL, NULL, w);
  }
  return promise;
}

void mip6_ndisc_init(napi_env env, napi_value exports) {
  mip6_export(env, exports, "ndpAdvertise", ndp_advertise);
  mip6_export(env, exports, "ndpSolicit", ndp_solicit);
}
