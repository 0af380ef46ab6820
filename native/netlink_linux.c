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
 */
#include "mip6.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
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

void mip6_netlink_init(napi_env env, napi_value exports) {
  mip6_export(env, exports, "routeGet", route_get);
}
