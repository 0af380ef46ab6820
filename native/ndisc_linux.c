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
 */
#include "mip6.h"

#include <errno.h>
#include <net/if.h>
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

void mip6_ndisc_init(napi_env env, napi_value exports) {
  mip6_export(env, exports, "ndpAdvertise", ndp_advertise);
}
