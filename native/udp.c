/*
 * UDP sockets owned by the addon, one per address family, with batched system calls.
 *
 * Receive: recvmmsg drains up to maxBatch datagrams into the JS slab; for each one the
 * remote address/port and the local address it arrived on (IP_PKTINFO / IPV6_RECVPKTINFO)
 * go into per-slot arrays, then one callback per batch. Truncated datagrams are dropped
 * and counted. IPv6 sockets also record, when given the arrays, the interface each datagram
 * arrived on (in6_pktinfo ipi6_ifindex) and its hop limit (IPV6_RECVHOPLIMIT; 0 = unknown):
 * a datagram that arrived on a given link with hop limit 255 was sent on that link and never
 * routed (RFC 4861 §7.1.2 uses the same rule for Neighbor Discovery), which is how the home
 * agent recognises a mobile node standing on its home link.
 * Send: sendmmsg in chunks; each message may carry a chosen source address
 * (IP_PKTINFO / IPV6_PKTINFO cmsg) so a multi-homed host answers from the address the
 * peer used (the home agent answers every member from the local address it last reached us
 * on: a NAT or a connected socket on the member's side takes replies only from there). A
 * message refused for its source (the address went away: EINVAL, EADDRNOTAVAIL; ENETUNREACH
 * only when the address cannot be bound any more, since a forged ICMP error can leave that
 * errno pending) goes once more with the kernel's choice; if that passes, so do the call's
 * other datagrams from that source, counted as txSourceFallbacks. On IPv6 a message may name
 * an interface (ifindexes[i] != 0): it leaves that
 * interface (IPV6_PKTINFO ipi6_ifindex, and the scope of a link-local or multicast
 * destination) with hop limit 255 (IPV6_HOPLIMIT cmsg), i.e. on-link only. EAGAIN drops the
 * rest of the batch (counted); a per-message error skips that message (counted) and
 * continues.
 * Errors: IP_RECVERR / IPV6_RECVERR queue ICMP errors; the fd then polls POLLERR, which makes
 * libuv stop the poll handle for good. The poller's error hook reads and clears SO_ERROR,
 * drains the error queue (counted as icmpErrors) and polling restarts, so receiving goes on.
 * Path MTU (issue #21): every datagram leaves with Don't Fragment and is never fragmented here
 * (IP_MTU_DISCOVER / IPV6_MTU_DISCOVER = PMTUDISC_PROBE: DF set, the kernel's cached path MTU
 * ignored, only the interface MTU limits a send; IPV6_DONTFRAG). A send too big for the
 * interface fails with EMSGSIZE (counted as txTooBig, the batch goes on). ICMP Fragmentation
 * Needed / Packet Too Big found in the error queue are kept (the latest MTU_REPORTS_MAX) with
 * the destination of the datagram they quote, the MTU and the first bytes of its UDP payload,
 * counted as mtuReports, and so is each send refused with EMSGSIZE (one byte below the
 * datagram's IP size: only an upper bound, JS lowers no confirmed size for it);
 * udpTakeMtuReports hands them to JS, which checks them against what
 * it actually sent (src/protocol/path-mtu.ts). The kernel has already matched them to this
 * socket's port; nothing else is trusted here.
 *
 * Address slots are 16 bytes; an IPv4 socket uses the first 4 bytes of each slot.
 *
 *   udpOpen(family, bindAddr16, port, slab, offsets, lengths, remoteAddrs, remotePorts,
 *           localAddrs, counters, maxBatch, slotSize, headroom, rcvBuf, sndBuf, cb
 *           [, ifindexes (Uint32Array), hopLimits (Uint8Array)])
 *       -> [handle, boundPort]
 *   udpSetReading(handle, on)
 *   udpSend(handle, buf, offsets, lengths, count, dstAddrs, dstPorts, srcAddrs|null
 *           [, ifindexes|null]) -> sent
 *   udpSetMark(handle, mark)
 *       SO_MARK on the socket (needs CAP_NET_ADMIN): the full tunnel's policy routing sends
 *       marked datagrams past the routes into the TUN (src/io/tunnel-routes.ts).
 *   udpTakeMtuReports(handle, out) -> count   (MTU_REPORT_LEN bytes each, layout below)
 *   udpOffloads(handle) -> bit mask: 1 UDP GSO in use (UDP_SEGMENT), 2 UDP GRO in use (UDP_GRO),
 *       4 GSO was turned off after the kernel refused a segmented send, 8 GSO/GRO turned off by
 *       MIP6_OFFLOAD_OFF. The errno of that refusal is in the bits above 8 (mask >> 8).
 *   udpClose(handle)
 *
 * Offloads (issue #16):
 * - GSO on send: a run of datagrams of one batch to the same destination, source and
 *   interface, all of one size (the last may be shorter), at most GSO_MAX_SEGS of them and
 *   GSO_MAX_BYTES in all, leaves as ONE message with a UDP_SEGMENT cmsg (segment size = the
 *   datagram size); the kernel (or the NIC) cuts it into the same datagrams, each with Don't
 *   Fragment. A segmented message the kernel refuses is sent again one datagram per message
 *   (which is where EMSGSIZE and the MTU report for an over-sized datagram come from, as
 *   before: the kernel says EINVAL, not EMSGSIZE, for a segment over the interface MTU). EIO /
 *   ENOPROTOOPT / EOPNOTSUPP, or EINVAL for a run whose datagrams then all go out one by one,
 *   mean the kernel or device cannot segment: GSO stays off for this socket (udpOffloads bit 4).
 * - GRO on receive: UDP_GRO lets the kernel hand over a train of same-size datagrams of one
 *   flow as one read (the UDP_GRO cmsg gives the segment size). Such reads land in a private
 *   buffer and are cut back into datagrams, one slab slot each, with the same addresses, so
 *   JS sees the same batches as without GRO. Datagrams that do not fit this batch wait for the
 *   next (mip6_poller.backlog keeps the poller draining). A coalesced read is never longer
 *   than 64 KiB, BIG TCP limits on the device or not: the kernel coalesces no UDP past 64 KiB
 *   (GRO stops any train but TCP below GRO_LEGACY_MAX_SIZE), a local UDP GSO send over a
 *   16-bit UDP length is refused (EMSGSIZE) and UDP has no jumbograms, so the longest read is
 *   65507 (IPv4) or 65527 (IPv6) bytes and GRO_BUF holds it (test/native/big-tcp.test.ts).
 *   Should one be longer all the same, it is counted as rxTruncated, never cut.
 * - MIP6_OFFLOAD_OFF (environment, read at open): a comma list of udp-gso, udp-gro, tun or
 *   all turns those offloads off (the fallback paths, for tests and for a misbehaving kernel).
 */
#define _GNU_SOURCE
#include "mip6.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/udp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UDP_KIND "udp"
#define ADDR_SLOT 16
#define SEND_CHUNK 64
#define CTRL_LEN 128 /* pktinfo + hop limit, with room to spare */
#define ON_LINK_HOPS 255
#define ERRQUEUE_MAX 64
/* An MTU report: dst address (16) | dst port (2, BE) | quoted payload length (2, BE) |
 * MTU (4, BE) | first QUOTE_LEN bytes of the quoted UDP payload (zero-padded) | origin (1:
 * MTU_FROM_ICMP, the network said so; MTU_FROM_SEND, our send was refused: the MTU is only an
 * upper bound) | 7 bytes zero. */
#define MTU_REPORTS_MAX 16
#define QUOTE_LEN 16
#define MTU_REPORT_LEN 48
#define MTU_FROM_ICMP 1
#define MTU_FROM_SEND 2
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
/* One segmented send: at most this many datagrams, and this many payload bytes (IP payload
 * length is 16 bits: 65535 less the UDP header and an IPv6 header's worth of slack). */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES (65535 - 8 - 40)
/* GRO receive: reads of up to GRO_BUF bytes (the longest UDP payload, 65527, fits), GRO_MSGS
 * per recvmmsg. */
#define GRO_MSGS 16
#define GRO_BUF 65536
enum { OFF_UDP_GSO = 1, OFF_UDP_GRO = 2, OFF_GSO_REFUSED = 4, OFF_BY_ENV = 8 };

/* Float64Array counters, in this order (src/io/udp.ts reads the same layout). */
enum { C_RX_DATAGRAMS, C_RX_BYTES, C_RX_BATCHES, C_RX_ERRORS, C_TX_DATAGRAMS, C_TX_BYTES, C_TX_DROPS,
       C_TX_ERRORS, C_POLL_ERRORS, C_ICMP_ERRORS, C_RX_TRUNCATED, C_TX_TOO_BIG, C_MTU_REPORTS,
       /* offloads: segmented sends and the datagrams in them; coalesced reads and theirs */
       C_TX_GSO_SENDS, C_TX_GSO_DATAGRAMS, C_RX_GRO_READS, C_RX_GRO_DATAGRAMS,
       /* datagrams whose chosen source address the kernel refused, sent with its choice */
       C_TX_SOURCE_FALLBACKS, C_COUNT };
/* Callers built before the path MTU counters pass C_TX_TOO_BIG of them: still accepted. */
#define C_COUNT_MIN C_TX_TOO_BIG
/* Adds to a counter the caller's array may lack (one of the later ones). */
#define COUNTER_OR0(p, idx) ((p)->ncounters > (size_t)(idx) ? (p)->counters[idx] : 0)
#define COUNT_IF(p, idx, n)                                                                        \
  do {                                                                                             \
    if ((p)->ncounters > (size_t)(idx)) (p)->counters[idx] += (n);                                 \
  } while (0)

typedef struct {
  int family;
  uint8_t *raddr;
  uint16_t *rport;
  uint8_t *laddr;
  uint32_t *rifindex; /* per slot, may be NULL */
  uint8_t *rhops;     /* per slot, may be NULL */
  struct mmsghdr *rx;
  struct iovec *rx_iov;
  struct sockaddr_storage *rx_name;
  uint8_t (*rx_ctrl)[CTRL_LEN];
  struct mmsghdr tx[SEND_CHUNK];
  struct iovec tx_iov[SEND_CHUNK];
  struct sockaddr_in6 tx_name[SEND_CHUNK]; /* large enough for sockaddr_in too */
  uint8_t tx_ctrl[SEND_CHUNK][CTRL_LEN];
  uint32_t tx_first[SEND_CHUNK]; /* message j covers datagrams tx_first[j] .. + tx_nseg[j] */
  uint32_t tx_nseg[SEND_CHUNK];
  uint8_t tx_src[SEND_CHUNK]; /* message j: 1 sent from its chosen source, 2 that source dropped */
  uint8_t mtu_reports[MTU_REPORTS_MAX][MTU_REPORT_LEN];
  uint32_t n_mtu_reports;
  uint32_t offloads; /* OFF_* bits, and the errno that turned GSO off << 8 */
  /* GRO receive state: gro_n reads in gro_buf, the next datagram at gro_msg / gro_off. */
  uint8_t *gro_buf;
  struct mmsghdr gro_rx[GRO_MSGS];
  struct iovec gro_iov[GRO_MSGS];
  struct sockaddr_storage gro_name[GRO_MSGS];
  uint8_t gro_ctrl[GRO_MSGS][CTRL_LEN];
  uint32_t gro_size[GRO_MSGS];
  uint32_t gro_n, gro_msg, gro_off;
} udp_data;

static void udp_free(mip6_poller *p) {
  udp_data *u = p->kind_data;
  if (!u) return;
  free(u->rx);
  free(u->rx_iov);
  free(u->rx_name);
  free(u->rx_ctrl);
  free(u->gro_buf);
  free(u);
  p->kind_data = NULL;
}

static void put16(uint8_t *o, uint32_t v) {
  o[0] = (uint8_t)(v >> 8);
  o[1] = (uint8_t)v;
}

/* Keeps a report for udpTakeMtuReports (the oldest dropped when full). `name` is the
 * sockaddr of the datagram's destination, `data` its first bytes (quoted of them). */
static void push_mtu_report(mip6_poller *p, const void *name, uint32_t quoted, uint32_t mtu,
                            const uint8_t *data, uint8_t origin) {
  udp_data *u = p->kind_data;
  if (u->n_mtu_reports == MTU_REPORTS_MAX) {
    memmove(u->mtu_reports[0], u->mtu_reports[1], (MTU_REPORTS_MAX - 1) * MTU_REPORT_LEN);
    u->n_mtu_reports--;
  }
  uint8_t *r = u->mtu_reports[u->n_mtu_reports++];
  memset(r, 0, MTU_REPORT_LEN);
  if (u->family == 4) {
    const struct sockaddr_in *sin = name;
    memcpy(r, &sin->sin_addr, 4);
    put16(r + 16, ntohs(sin->sin_port));
  } else {
    const struct sockaddr_in6 *sin6 = name;
    memcpy(r, &sin6->sin6_addr, 16);
    put16(r + 16, ntohs(sin6->sin6_port));
  }
  put16(r + 18, quoted > 0xffff ? 0xffff : quoted);
  put16(r + 20, mtu >> 16);
  put16(r + 22, mtu & 0xffff);
  memcpy(r + 24, data, quoted < QUOTE_LEN ? quoted : QUOTE_LEN);
  r[40] = origin;
  COUNT_IF(p, C_MTU_REPORTS, 1);
}

/* An ICMP Fragmentation Needed (RFC 1191) / Packet Too Big (RFC 4443 §3.2) from the error
 * queue. */
static void keep_mtu_report(mip6_poller *p, struct msghdr *m, ssize_t quoted, const uint8_t *data) {
  struct sock_extended_err *ee = NULL;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
        (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR))
      ee = (struct sock_extended_err *)CMSG_DATA(c);
  }
  if (!ee) return;
  int too_big = (ee->ee_origin == SO_EE_ORIGIN_ICMP && ee->ee_type == 3 && ee->ee_code == 4) ||
                (ee->ee_origin == SO_EE_ORIGIN_ICMP6 && ee->ee_type == 2);
  if (!too_big) return;
  push_mtu_report(p, m->msg_name, quoted < 0 ? 0 : (uint32_t)quoted, ee->ee_info, data, MTU_FROM_ICMP);
}

static void udp_on_error(mip6_poller *p) {
  int err = 0;
  socklen_t len = sizeof err;
  p->counters[C_POLL_ERRORS] += 1;
  getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len); /* reading clears it */
  for (int i = 0; i < ERRQUEUE_MAX; i++) {
    uint8_t data[64], ctrl[256];
    struct sockaddr_storage from;
    struct iovec iov = {data, sizeof data};
    struct msghdr m = {0};
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof ctrl;
    ssize_t got = recvmsg(p->fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (got < 0) break;
    p->counters[C_ICMP_ERRORS] += 1;
    keep_mtu_report(p, &m, got, data);
  }
}

static void read_pktinfo(udp_data *u, struct msghdr *m, uint32_t k) {
  uint8_t *out = u->laddr + (size_t)k * ADDR_SLOT;
  uint32_t ifindex = 0;
  int hops = 0;
  memset(out, 0, ADDR_SLOT);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (u->family == 4 && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      memcpy(out, &pi.ipi_addr, 4);
      ifindex = (uint32_t)pi.ipi_ifindex;
    } else if (u->family == 6 && c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      memcpy(out, &pi.ipi6_addr, 16);
      ifindex = pi.ipi6_ifindex;
    } else if (u->family == 6 && c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) {
      memcpy(&hops, CMSG_DATA(c), sizeof hops);
    }
  }
  if (u->rifindex) u->rifindex[k] = ifindex;
  if (u->rhops) u->rhops[k] = hops > 0 && hops <= 255 ? (uint8_t)hops : 0;
}

/* Remote address/port and pktinfo of the datagram in slot k. */
static void fill_addresses(udp_data *u, struct msghdr *m, uint32_t k) {
  uint8_t *ra = u->raddr + (size_t)k * ADDR_SLOT;
  memset(ra, 0, ADDR_SLOT);
  if (u->family == 4) {
    struct sockaddr_in *sin = m->msg_name;
    memcpy(ra, &sin->sin_addr, 4);
    u->rport[k] = ntohs(sin->sin_port);
  } else {
    struct sockaddr_in6 *sin6 = m->msg_name;
    memcpy(ra, &sin6->sin6_addr, 16);
    u->rport[k] = ntohs(sin6->sin6_port);
  }
  read_pktinfo(u, m, k);
}

/* One receive message: `len` bytes at `base`, the sender's address and the cmsgs. */
static void rx_message(struct mmsghdr *mm, struct iovec *iov, uint8_t *base, size_t len,
                       struct sockaddr_storage *name, uint8_t *ctrl) {
  iov->iov_base = base;
  iov->iov_len = len;
  struct msghdr *m = &mm->msg_hdr;
  m->msg_name = name;
  m->msg_namelen = sizeof *name;
  m->msg_iov = iov;
  m->msg_iovlen = 1;
  m->msg_control = ctrl;
  m->msg_controllen = CTRL_LEN;
  m->msg_flags = 0;
}

/* recvmmsg of up to n messages; 0 when there is nothing (or an error, counted). */
static int recv_batch(mip6_poller *p, struct mmsghdr *msgs, unsigned n) {
  for (int tries = 0; tries < 4; tries++) {
    int r = recvmmsg(p->fd, msgs, n, MSG_DONTWAIT, NULL);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    /* A pending ICMP error is reported (and cleared) by the next receive: count, retry. */
    if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH || errno == EMSGSIZE) {
      p->counters[C_ICMP_ERRORS] += 1;
      continue;
    }
    p->counters[C_RX_ERRORS] += 1;
    return 0;
  }
  return 0;
}

static uint32_t udp_drain(mip6_poller *p) {
  udp_data *u = p->kind_data;
  uint32_t room = p->slot_size - p->headroom;
  for (uint32_t i = 0; i < p->max_batch; i++)
    rx_message(&u->rx[i], &u->rx_iov[i], p->slab + (size_t)i * p->slot_size + p->headroom, room, &u->rx_name[i],
               u->rx_ctrl[i]);
  int r = recv_batch(p, u->rx, p->max_batch);
  if (r <= 0) return 0;
  uint32_t k = 0;
  for (int i = 0; i < r; i++) {
    struct msghdr *m = &u->rx[i].msg_hdr;
    if (m->msg_flags & MSG_TRUNC) {
      p->counters[C_RX_TRUNCATED] += 1;
      continue;
    }
    p->offsets[k] = (uint32_t)(i * p->slot_size + p->headroom);
    p->lengths[k] = u->rx[i].msg_len;
    p->counters[C_RX_BYTES] += u->rx[i].msg_len;
    fill_addresses(u, m, k);
    k++;
  }
  if (k) {
    p->counters[C_RX_DATAGRAMS] += k;
    p->counters[C_RX_BATCHES] += 1;
  }
  return k;
}

/* The segment size of a coalesced read (UDP_GRO cmsg), 0 when it holds one datagram. */
static uint32_t gro_segment_size(struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v > 0 ? (uint32_t)v : 0;
    }
  }
  return 0;
}

/* Receive with UDP_GRO: reads (each one datagram or a train of same-size ones) go into
 * gro_buf; each datagram is copied into its own slab slot with the read's addresses. What
 * does not fit this batch stays for the next call (p->backlog). */
static uint32_t udp_drain_gro(mip6_poller *p) {
  udp_data *u = p->kind_data;
  uint32_t room = p->slot_size - p->headroom;
  uint32_t k = 0;
  int reads = 0, last_full = 1;
  while (k < p->max_batch) {
    if (u->gro_msg >= u->gro_n) {
      /* Nothing left from the last reads: read again while the socket seemed to have more
       * (the last read filled every message), a bounded number of times per call. */
      if (!last_full || reads == 8) break;
      reads++;
      u->gro_n = u->gro_msg = u->gro_off = 0;
      for (uint32_t i = 0; i < GRO_MSGS; i++)
        rx_message(&u->gro_rx[i], &u->gro_iov[i], u->gro_buf + (size_t)i * GRO_BUF, GRO_BUF, &u->gro_name[i],
                   u->gro_ctrl[i]);
      int r = recv_batch(p, u->gro_rx, GRO_MSGS);
      if (r <= 0) break;
      last_full = r == GRO_MSGS;
      u->gro_n = (uint32_t)r;
      for (int i = 0; i < r; i++) u->gro_size[i] = gro_segment_size(&u->gro_rx[i].msg_hdr);
      continue;
    }
    struct mmsghdr *mm = &u->gro_rx[u->gro_msg];
    uint32_t len = mm->msg_len, seg = u->gro_size[u->gro_msg];
    if (mm->msg_hdr.msg_flags & MSG_TRUNC) { /* a whole train lost: counted once */
      p->counters[C_RX_TRUNCATED] += 1;
      u->gro_msg++, u->gro_off = 0;
      continue;
    }
    /* An empty datagram is delivered as one, as without GRO. */
    if (seg == 0 || seg > len) seg = len;
    if (u->gro_off == 0 && seg < len) COUNT_IF(p, C_RX_GRO_READS, 1);
    uint32_t n = len - u->gro_off < seg ? len - u->gro_off : seg;
    const uint8_t *src = u->gro_buf + (size_t)u->gro_msg * GRO_BUF + u->gro_off;
    if (seg < len) COUNT_IF(p, C_RX_GRO_DATAGRAMS, 1);
    u->gro_off += n;
    if (u->gro_off >= len) u->gro_msg++, u->gro_off = 0; /* also ends an empty one */
    if (n > room) {
      p->counters[C_RX_TRUNCATED] += 1;
      continue;
    }
    uint32_t off = k * p->slot_size + p->headroom;
    memcpy(p->slab + off, src, n);
    p->offsets[k] = off;
    p->lengths[k] = n;
    p->counters[C_RX_BYTES] += n;
    fill_addresses(u, &mm->msg_hdr, k);
    k++;
  }
  p->backlog = u->gro_msg < u->gro_n;
  if (k) {
    p->counters[C_RX_DATAGRAMS] += k;
    p->counters[C_RX_BATCHES] += 1;
  }
  return k;
}

uint32_t mip6_udp_mtu_reports(mip6_poller *p) {
  return ((udp_data *)p->kind_data)->n_mtu_reports;
}

int mip6_udp_family(mip6_poller *p) {
  return ((udp_data *)p->kind_data)->family;
}

void mip6_udp_peer(mip6_poller *p, uint32_t k, const uint8_t **addr, uint16_t *port, const uint8_t **local) {
  udp_data *u = p->kind_data;
  *addr = u->raddr + (size_t)k * ADDR_SLOT;
  *port = u->rport[k];
  *local = u->laddr + (size_t)k * ADDR_SLOT;
}

/* The express lane took datagrams [0, from): the rest move down with their addresses. */
static void udp_compact(mip6_poller *p, uint32_t from, uint32_t n) {
  udp_data *u = p->kind_data;
  size_t m = n - from;
  memmove(u->raddr, u->raddr + (size_t)from * ADDR_SLOT, m * ADDR_SLOT);
  memmove(u->laddr, u->laddr + (size_t)from * ADDR_SLOT, m * ADDR_SLOT);
  memmove(u->rport, u->rport + from, m * sizeof *u->rport);
  if (u->rifindex) memmove(u->rifindex, u->rifindex + from, m * sizeof *u->rifindex);
  if (u->rhops) memmove(u->rhops, u->rhops + from, m * sizeof *u->rhops);
}

static int setopt_int(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value);
}

/* `addr` (4 or 16 bytes) and `port` as a socket address of `family`; returns its length. */
static socklen_t make_sockaddr(int family, const uint8_t *addr, uint16_t port,
                               struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (family == 4) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr, addr, 4);
    return sizeof *sin;
  }
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  memcpy(&sin6->sin6_addr, addr, 16);
  return sizeof *sin6;
}

static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 18;
  napi_value argv[18], result, h, port_v;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 16) {
    mip6_throw_type(env, "udpOpen needs 16 arguments (18 with ifindexes and hopLimits)");
    return NULL;
  }
  uint32_t family, port, max_batch, slot, headroom, rcvbuf, sndbuf;
  void *bind_addr, *slab, *offsets, *lengths, *raddr, *rport, *laddr, *counters;
  size_t bind_len, slab_len, off_len, len_len, raddr_len, rport_len, laddr_len, cnt_len;
  if (mip6_arg_u32(env, argv[0], "family", &family) || mip6_arg_u32(env, argv[2], "port", &port) ||
      mip6_arg_u32(env, argv[10], "maxBatch", &max_batch) || mip6_arg_u32(env, argv[11], "slotSize", &slot) ||
      mip6_arg_u32(env, argv[12], "headroom", &headroom) || mip6_arg_u32(env, argv[13], "rcvBuf", &rcvbuf) ||
      mip6_arg_u32(env, argv[14], "sndBuf", &sndbuf) ||
      mip6_arg_typed(env, argv[1], napi_uint8_array, "bindAddr", &bind_addr, &bind_len, NULL) ||
      mip6_arg_typed(env, argv[3], napi_uint8_array, "slab", &slab, &slab_len, NULL) ||
      mip6_arg_typed(env, argv[4], napi_uint32_array, "offsets", &offsets, &off_len, NULL) ||
      mip6_arg_typed(env, argv[5], napi_uint32_array, "lengths", &lengths, &len_len, NULL) ||
      mip6_arg_typed(env, argv[6], napi_uint8_array, "remoteAddrs", &raddr, &raddr_len, NULL) ||
      mip6_arg_typed(env, argv[7], napi_uint16_array, "remotePorts", &rport, &rport_len, NULL) ||
      mip6_arg_typed(env, argv[8], napi_uint8_array, "localAddrs", &laddr, &laddr_len, NULL) ||
      mip6_arg_typed(env, argv[9], napi_float64_array, "counters", &counters, &cnt_len, NULL))
    return NULL;
  /* Optional: per-slot arrival interface and hop limit (both or neither). */
  void *rifindex = NULL, *rhops = NULL;
  size_t rifindex_len = 0, rhops_len = 0;
  if (argc >= 18 &&
      (mip6_arg_typed(env, argv[16], napi_uint32_array, "ifindexes", &rifindex, &rifindex_len, NULL) ||
       mip6_arg_typed(env, argv[17], napi_uint8_array, "hopLimits", &rhops, &rhops_len, NULL)))
    return NULL;
  napi_valuetype cbt;
  napi_typeof(env, argv[15], &cbt);
  if (cbt != napi_function) {
    mip6_throw_type(env, "callback must be a function");
    return NULL;
  }
  if ((family != 4 && family != 6) || port > 65535 || bind_len < ADDR_SLOT) {
    mip6_throw_range(env, "family must be 4 or 6, port < 65536, bindAddr 16 bytes");
    return NULL;
  }
  /* 64-bit sum: headroom near 2^32 must not wrap below slot (issue #13), as in tun_linux.c. */
  if (max_batch == 0 || max_batch > 1024 || (uint64_t)headroom + 64 > slot ||
      (uint64_t)max_batch * slot > slab_len || off_len < max_batch || len_len < max_batch || rport_len < max_batch ||
      raddr_len < (size_t)max_batch * ADDR_SLOT || laddr_len < (size_t)max_batch * ADDR_SLOT || cnt_len < C_COUNT_MIN ||
      (rifindex && (rifindex_len < max_batch || rhops_len < max_batch))) {
    mip6_throw_range(env, "receive arrays too small for maxBatch x slotSize (maxBatch <= 1024)");
    return NULL;
  }

  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    mip6_throw_errno(env, errno, "socket", family == 4 ? "AF_INET" : "AF_INET6");
    return NULL;
  }
  int bad = 0;
  const char *what = NULL;
  if (family == 4) {
    if (setopt_int(fd, IPPROTO_IP, IP_PKTINFO, 1)) bad = errno, what = "setsockopt(IP_PKTINFO)";
    else if (setopt_int(fd, IPPROTO_IP, IP_RECVERR, 1)) bad = errno, what = "setsockopt(IP_RECVERR)";
    else if (setopt_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE))
      bad = errno, what = "setsockopt(IP_MTU_DISCOVER)";
  } else {
    if (setopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) bad = errno, what = "setsockopt(IPV6_V6ONLY)";
    else if (setopt_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)) bad = errno, what = "setsockopt(IPV6_RECVPKTINFO)";
    else if (setopt_int(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)) bad = errno, what = "setsockopt(IPV6_RECVHOPLIMIT)";
    else if (setopt_int(fd, IPPROTO_IPV6, IPV6_RECVERR, 1)) bad = errno, what = "setsockopt(IPV6_RECVERR)";
    else if (setopt_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE))
      bad = errno, what = "setsockopt(IPV6_MTU_DISCOVER)";
    else if (setopt_int(fd, IPPROTO_IPV6, IPV6_DONTFRAG, 1)) bad = errno, what = "setsockopt(IPV6_DONTFRAG)";
  }
  /* Buffer sizes are best effort: the privileged FORCE variant first, then the capped one. */
  if (!bad && rcvbuf && setopt_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, (int)rcvbuf))
    setopt_int(fd, SOL_SOCKET, SO_RCVBUF, (int)rcvbuf);
  if (!bad && sndbuf && setopt_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, (int)sndbuf))
    setopt_int(fd, SOL_SOCKET, SO_SNDBUF, (int)sndbuf);
  if (!bad) {
    struct sockaddr_storage ss;
    socklen_t sl = make_sockaddr(family, bind_addr, (uint16_t)port, &ss);
    if (bind(fd, (struct sockaddr *)&ss, sl)) bad = errno, what = "bind";
    else {
      sl = sizeof ss;
      if (getsockname(fd, (struct sockaddr *)&ss, &sl)) bad = errno, what = "getsockname";
      else port = ntohs(family == 4 ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
    }
  }
  if (bad) {
    close(fd);
    mip6_throw_errno(env, bad, what, NULL);
    return NULL;
  }

  mip6_poller *p = calloc(1, sizeof *p);
  udp_data *u = calloc(1, sizeof *u);
  if (p) p->kind_data = u;
  if (u) {
    u->rx = calloc(max_batch, sizeof *u->rx);
    u->rx_iov = calloc(max_batch, sizeof *u->rx_iov);
    u->rx_name = calloc(max_batch, sizeof *u->rx_name);
    u->rx_ctrl = calloc(max_batch, sizeof *u->rx_ctrl);
  }
  if (!p || !u || !u->rx || !u->rx_iov || !u->rx_name || !u->rx_ctrl) {
    if (p) udp_free(p);
    else free(u);
    free(p);
    close(fd);
    mip6_throw_errno(env, ENOMEM, "calloc", NULL);
    return NULL;
  }
  /* Offloads: GSO when the kernel knows UDP_SEGMENT; GRO when it accepts UDP_GRO (and the
   * private buffer its coalesced reads need could be had). */
  int seg = 0;
  socklen_t seglen = sizeof seg;
  if (mip6_offload_off("udp-gso") || mip6_offload_off("udp-gro")) u->offloads |= OFF_BY_ENV;
  if (!mip6_offload_off("udp-gso") && getsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, &seglen) == 0)
    u->offloads |= OFF_UDP_GSO;
  if (!mip6_offload_off("udp-gro") && (u->gro_buf = malloc((size_t)GRO_MSGS * GRO_BUF)) != NULL) {
    if (setopt_int(fd, SOL_UDP, UDP_GRO, 1) == 0) u->offloads |= OFF_UDP_GRO;
    else {
      free(u->gro_buf);
      u->gro_buf = NULL;
    }
  }
  u->family = (int)family;
  u->raddr = raddr;
  u->rport = rport;
  u->laddr = laddr;
  u->rifindex = rifindex;
  u->rhops = rhops;
  p->kind = UDP_KIND;
  p->fd = fd;
  p->slab = slab;
  p->slab_len = slab_len;
  p->offsets = offsets;
  p->lengths = lengths;
  p->counters = counters;
  p->ncounters = cnt_len;
  p->max_batch = max_batch;
  p->slot_size = slot;
  p->headroom = headroom;
  p->drain = (u->offloads & OFF_UDP_GRO) ? udp_drain_gro : udp_drain;
  p->on_error = udp_on_error;
  p->free_kind = udp_free;
  p->compact = udp_compact;
  /* refs[0..2] = slab, offsets, lengths (passed back to the callback), then the rest. */
  int keep[] = {3, 4, 5, 6, 7, 8, 9, 16, 17};
  size_t nkeep = sizeof keep / sizeof keep[0] - (rifindex ? 0 : 2);
  for (size_t i = 0; i < nkeep; i++) {
    napi_ref r;
    napi_create_reference(env, argv[keep[i]], 1, &r);
    mip6_poller_keep(p, r);
  }
  h = mip6_poller_attach(env, p, argv[15]);
  if (!h) return NULL;
  napi_create_uint32(env, port, &port_v);
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, h);
  napi_set_element(env, result, 1, port_v);
  return result;
}

static napi_value udp_set_reading(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *h;
  int on;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || mip6_arg_handle(env, argv[0], UDP_KIND, &h) || mip6_arg_bool(env, argv[1], "on", &on)) return NULL;
  mip6_poller_set_reading(h, on);
  return NULL;
}

static int is_zero(const uint8_t *a, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i]) return 0;
  return 1;
}

/* Whether a send refused with `err` for a message with the chosen source `src` failed because
 * that address is no longer this host's. EINVAL (IPv6 pktinfo) and EADDRNOTAVAIL come only
 * from the source check. ENETUNREACH is what IPv4 says for a source that is not local, but
 * also what a pending error left by an ICMP "net unreachable" says (IP_RECVERR: anybody can
 * forge one naming our port), and a policy rule may refuse that source's route: then the
 * source is gone only if this host cannot bind it. Otherwise the datagram is lost as an
 * error, and the call's other datagrams keep their source. */
static int source_gone(int family, const uint8_t *src, int err) {
  if (err == EINVAL || err == EADDRNOTAVAIL) return 1;
  if (err != ENETUNREACH) return 0;
  /* A link-local source cannot be checked without its interface: kept. */
  if (family == 6 && src[0] == 0xfe && (src[1] & 0xc0) == 0x80) return 0;
  struct sockaddr_storage ss;
  socklen_t len = make_sockaddr(family, src, 0, &ss);
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int gone = bind(fd, (struct sockaddr *)&ss, len) < 0 && errno == EADDRNOTAVAIL;
  close(fd);
  return gone;
}

/* GSO off for this socket: the kernel refused a segmented send with `err` (said once by the
 * JS side, which reads udpOffloads). */
static void gso_refused(udp_data *u, int err) {
  if (!(u->offloads & OFF_UDP_GSO)) return;
  u->offloads = (u->offloads & ~(uint32_t)OFF_UDP_GSO & 0xff) | OFF_GSO_REFUSED | ((uint32_t)err << 8);
}

/* Appends one cmsg to a message's control buffer (CTRL_LEN bytes, zeroed by the caller). */
static void add_cmsg(struct msghdr *m, int level, int type, const void *data, size_t len) {
  struct cmsghdr *c = (struct cmsghdr *)((uint8_t *)m->msg_control + m->msg_controllen);
  c->cmsg_level = level;
  c->cmsg_type = type;
  c->cmsg_len = CMSG_LEN(len);
  memcpy(CMSG_DATA(c), data, len);
  m->msg_controllen += CMSG_SPACE(len);
}

/* Message j of the next sendmmsg: datagrams k .. k+n-1 (n > 1: one segmented send, they share
 * destination, source and interface), their iovecs from iov slot `iv` on. With `drop_src` the
 * chosen source is left out (the kernel picks one; tx_src[j] says so). */
static void fill_message(udp_data *u, uint32_t j, uint32_t iv, uint32_t k, uint32_t n, void *buf,
                         const uint32_t *o, const uint32_t *l, const uint8_t *da, const uint16_t *dp,
                         const uint8_t *sa, const uint32_t *ix, int drop_src) {
  struct msghdr *m = &u->tx[j].msg_hdr;
  memset(m, 0, sizeof *m);
  for (uint32_t q = 0; q < n; q++) {
    u->tx_iov[iv + q].iov_base = (uint8_t *)buf + o[k + q];
    u->tx_iov[iv + q].iov_len = l[k + q];
  }
  u->tx_first[j] = k;
  u->tx_nseg[j] = n;
  m->msg_iov = &u->tx_iov[iv];
  m->msg_iovlen = n;
  memset(&u->tx_name[j], 0, sizeof u->tx_name[j]);
  if (u->family == 4) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&u->tx_name[j];
    sin->sin_family = AF_INET;
    sin->sin_port = htons(dp[k]);
    memcpy(&sin->sin_addr, da + (size_t)k * ADDR_SLOT, 4);
    m->msg_namelen = sizeof *sin;
  } else {
    u->tx_name[j].sin6_family = AF_INET6;
    u->tx_name[j].sin6_port = htons(dp[k]);
    memcpy(&u->tx_name[j].sin6_addr, da + (size_t)k * ADDR_SLOT, 16);
    m->msg_namelen = sizeof u->tx_name[j];
  }
  m->msg_name = &u->tx_name[j];
  memset(u->tx_ctrl[j], 0, CTRL_LEN);
  m->msg_control = u->tx_ctrl[j];
  m->msg_controllen = 0;
  const uint8_t *src = sa ? sa + (size_t)k * ADDR_SLOT : NULL;
  if (src && is_zero(src, u->family == 4 ? 4 : 16)) src = NULL;
  u->tx_src[j] = src ? (drop_src ? 2 : 1) : 0;
  if (drop_src) src = NULL;
  uint32_t oif = u->family == 6 && ix ? ix[k] : 0;
  if (oif) {
    /* On-link: out of this interface (pktinfo, scope of a link-local / multicast
     * destination) with hop limit 255, so the receiver can tell it was never routed. */
    u->tx_name[j].sin6_scope_id = oif;
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    if (src) memcpy(&pi.ipi6_addr, src, 16);
    pi.ipi6_ifindex = oif;
    add_cmsg(m, IPPROTO_IPV6, IPV6_PKTINFO, &pi, sizeof pi);
    int hops = ON_LINK_HOPS;
    add_cmsg(m, IPPROTO_IPV6, IPV6_HOPLIMIT, &hops, sizeof hops);
  } else if (src) {
    if (u->family == 4) {
      struct in_pktinfo pi;
      memset(&pi, 0, sizeof pi);
      memcpy(&pi.ipi_spec_dst, src, 4);
      add_cmsg(m, IPPROTO_IP, IP_PKTINFO, &pi, sizeof pi);
    } else {
      struct in6_pktinfo pi;
      memset(&pi, 0, sizeof pi);
      memcpy(&pi.ipi6_addr, src, 16);
      add_cmsg(m, IPPROTO_IPV6, IPV6_PKTINFO, &pi, sizeof pi);
    }
  }
  if (n > 1) {
    uint16_t size = (uint16_t)l[k];
    add_cmsg(m, SOL_UDP, UDP_SEGMENT, &size, sizeof size);
  }
  if (m->msg_controllen == 0) m->msg_control = NULL;
}

/* Sends datagrams [0, count) of buf (checked by the caller) with sendmmsg chunks: GSO runs, a
 * pending ICMP error cleared and the message tried once more, a gone source address replaced by
 * the kernel's choice, EMSGSIZE kept as an MTU report, GSO turned off when the kernel refuses
 * it; counted. Returns the datagrams the kernel accepted. */
static uint32_t send_datagrams(mip6_poller *p, void *buf, const uint32_t *o, const uint32_t *l, uint32_t count,
                               const uint8_t *da, const uint16_t *dp, const uint8_t *sa, const uint32_t *ix) {
  udp_data *u = p->kind_data;
  size_t alen = u->family == 4 ? 4 : 16;
  /* Datagrams before single_until go one per message (a segmented send of them failed). */
  uint32_t sent = 0, i = 0, retry_at = UINT32_MAX, single_until = 0;
  /* A segmented send refused with EINVAL: if its datagrams then all go out one by one, the
   * kernel cannot segment here (not an over-sized datagram); GSO goes off. */
  uint32_t einval_end = 0;
  double einval_errors = 0;
  /* A message refused for its chosen source goes once more without it (nosrc_at = its first
   * datagram); when that passes, the source is bad_src for the rest of this call. */
  uint32_t nosrc_at = UINT32_MAX;
  uint8_t bad_src[ADDR_SLOT];
  int have_bad_src = 0;
  while (i < count) {
    if (einval_end && i >= einval_end) {
      if (p->counters[C_TX_ERRORS] + COUNTER_OR0(p, C_TX_TOO_BIG) == einval_errors) gso_refused(u, EINVAL);
      einval_end = 0;
    }
    /* Up to SEND_CHUNK datagrams, grouped into messages (runs for GSO). */
    uint32_t nmsg = 0, ndg = 0;
    while (i + ndg < count && ndg < SEND_CHUNK) {
      uint32_t k = i + ndg, n = 1;
      if ((u->offloads & OFF_UDP_GSO) && k >= single_until) {
        uint32_t total = l[k];
        while (k + n < count && ndg + n < SEND_CHUNK && n < GSO_MAX_SEGS && l[k] > 0) {
          uint32_t q = k + n;
          if (l[q] > l[k] || l[q] == 0 || total + l[q] > GSO_MAX_BYTES || l[k + n - 1] != l[k] ||
              dp[q] != dp[k] || memcmp(da + (size_t)q * ADDR_SLOT, da + (size_t)k * ADDR_SLOT, alen) ||
              (ix && ix[q] != ix[k]) ||
              (sa && memcmp(sa + (size_t)q * ADDR_SLOT, sa + (size_t)k * ADDR_SLOT, alen)))
            break;
          total += l[q];
          n++;
        }
      }
      int drop_src = sa && (k == nosrc_at || (have_bad_src && !memcmp(sa + (size_t)k * ADDR_SLOT, bad_src, alen)));
      fill_message(u, nmsg, ndg, k, n, buf, o, l, da, dp, sa, ix, drop_src);
      nmsg++;
      ndg += n;
    }
    int r = sendmmsg(p->fd, u->tx, nmsg, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        p->counters[C_TX_DROPS] += count - i; /* socket buffer full: drop the rest */
        break;
      }
      /* The first message failed. A pending ICMP error of an earlier send (IP_RECVERR) is
       * reported, and cleared, by whichever send comes next, so clear it (SO_ERROR) and try
       * the message once more before counting it as failed (EMSGSIZE, unreachable, bad
       * source address...). Anybody can make such an error pending: a forged ICMP error only
       * has to name our port. */
      if (retry_at != i) {
        int pending = 0;
        socklen_t plen = sizeof pending;
        getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &pending, &plen);
        retry_at = i;
        continue;
      }
      /* The chosen source is not an address of this host (any more): it went away, so the
       * member's reply path is gone anyway; the kernel's choice is the best left. The kernel
       * says EINVAL (IPv6) or EADDRNOTAVAIL / ENETUNREACH (IPv4) for it (ENETUNREACH only
       * when the address cannot be bound: source_gone); then once more without the source,
       * and only a send that then passes counts as a fallback. */
      int send_err = errno;
      if (u->tx_src[0] == 1 && source_gone(u->family, sa + (size_t)i * ADDR_SLOT, send_err)) {
        nosrc_at = i;
        continue;
      }
      errno = send_err;
      if (nosrc_at == i) nosrc_at = UINT32_MAX; /* not the source: the message keeps it */
      if (u->tx_nseg[0] > 1) {
        /* A segmented send refused: its datagrams again, one per message. */
        int e = errno;
        if (e == EIO || e == ENOPROTOOPT || e == EOPNOTSUPP) gso_refused(u, e);
        else if (e == EINVAL && !einval_end) {
          einval_end = i + u->tx_nseg[0];
          einval_errors = p->counters[C_TX_ERRORS] + COUNTER_OR0(p, C_TX_TOO_BIG);
        }
        single_until = i + u->tx_nseg[0];
        retry_at = UINT32_MAX;
        continue;
      }
      /* Larger than the interface allows (DF, never fragmented here): the path MTU search
       * and the inner Packet Too Big keep this rare; counted apart from other failures. */
      if (errno == EMSGSIZE && p->ncounters > C_TX_TOO_BIG) p->counters[C_TX_TOO_BIG] += 1;
      else p->counters[C_TX_ERRORS] += 1;
      /* Kept as an MTU report too: this host's interface does not carry this size (one byte
       * less than the IP datagram it would have made), quoting the datagram itself. Only an
       * upper bound (MTU_FROM_SEND): a forged ICMP error can still be what failed the send
       * (one arriving between the two tries), and the kernel's route MTU is no better, since
       * forged Fragmentation Needed lower it too. */
      if (errno == EMSGSIZE) {
        uint32_t size = l[i] + (u->family == 4 ? 28 : 48);
        push_mtu_report(p, &u->tx_name[0], l[i], size - 1, (uint8_t *)buf + o[i], MTU_FROM_SEND);
      }
      i++;
      continue;
    }
    for (int j = 0; j < r; j++) {
      if (u->tx_src[j] == 2) {
        COUNT_IF(p, C_TX_SOURCE_FALLBACKS, u->tx_nseg[j]);
        if (u->tx_first[j] == nosrc_at) {
          memcpy(bad_src, sa + (size_t)nosrc_at * ADDR_SLOT, alen);
          have_bad_src = 1;
          nosrc_at = UINT32_MAX;
        }
      }
      p->counters[C_TX_BYTES] += u->tx[j].msg_len;
      sent += u->tx_nseg[j];
      i += u->tx_nseg[j];
      if (u->tx_nseg[j] > 1) {
        COUNT_IF(p, C_TX_GSO_SENDS, 1);
        COUNT_IF(p, C_TX_GSO_DATAGRAMS, u->tx_nseg[j]);
      }
    }
  }
  if (einval_end && i >= einval_end &&
      p->counters[C_TX_ERRORS] + COUNTER_OR0(p, C_TX_TOO_BIG) == einval_errors)
    gso_refused(u, EINVAL);
  p->counters[C_TX_DATAGRAMS] += sent;
  return sent;
}

uint32_t mip6_udp_send1(mip6_poller *p, uint8_t *msg, uint32_t len, const uint8_t *dst, uint16_t port,
                        const uint8_t *src) {
  if (p->closed || p->fd < 0) return 0;
  uint32_t o = 0, l = len;
  return send_datagrams(p, msg, &o, &l, 1, dst, &port, src, NULL);
}

static napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9], out;
  void *h, *buf, *offsets, *lengths, *daddr, *dport, *saddr = NULL, *ifx = NULL;
  size_t buf_len, off_len, len_len, daddr_len, dport_len, saddr_len = 0, ifx_len = 0;
  uint32_t count;
  napi_valuetype st;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 8 || mip6_arg_handle(env, argv[0], UDP_KIND, &h) ||
      mip6_arg_typed(env, argv[1], napi_uint8_array, "buf", &buf, &buf_len, NULL) ||
      mip6_arg_typed(env, argv[2], napi_uint32_array, "offsets", &offsets, &off_len, NULL) ||
      mip6_arg_typed(env, argv[3], napi_uint32_array, "lengths", &lengths, &len_len, NULL) ||
      mip6_arg_u32(env, argv[4], "count", &count) ||
      mip6_arg_typed(env, argv[5], napi_uint8_array, "dstAddrs", &daddr, &daddr_len, NULL) ||
      mip6_arg_typed(env, argv[6], napi_uint16_array, "dstPorts", &dport, &dport_len, NULL))
    return NULL;
  napi_typeof(env, argv[7], &st);
  if (st != napi_null && st != napi_undefined &&
      mip6_arg_typed(env, argv[7], napi_uint8_array, "srcAddrs", &saddr, &saddr_len, NULL))
    return NULL;
  if (argc >= 9) {
    napi_typeof(env, argv[8], &st);
    if (st != napi_null && st != napi_undefined &&
        mip6_arg_typed(env, argv[8], napi_uint32_array, "ifindexes", &ifx, &ifx_len, NULL))
      return NULL;
  }
  mip6_poller *p = h;
  if (count > off_len || count > len_len || count > dport_len || (size_t)count * ADDR_SLOT > daddr_len ||
      (saddr && (size_t)count * ADDR_SLOT > saddr_len) || (ifx && count > ifx_len)) {
    mip6_throw_range(env, "count exceeds offsets/lengths/dstAddrs/dstPorts/srcAddrs/ifindexes");
    return NULL;
  }
  const uint32_t *o = offsets, *l = lengths;
  for (uint32_t i = 0; i < count; i++) {
    if ((uint64_t)o[i] + l[i] > buf_len) {
      mip6_throw_range(env, "datagram outside buf");
      return NULL;
    }
  }
  if (p->closed) {
    mip6_throw_errno(env, EBADF, "sendmmsg", "UDP endpoint is closed");
    return NULL;
  }
  uint32_t sent = send_datagrams(p, buf, o, l, count, daddr, dport, saddr, ifx);
  napi_create_uint32(env, sent, &out);
  return out;
}

static napi_value udp_set_mark(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *h;
  uint32_t mark;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || mip6_arg_handle(env, argv[0], UDP_KIND, &h) || mip6_arg_u32(env, argv[1], "mark", &mark))
    return NULL;
  mip6_poller *p = h;
  if (p->closed) {
    mip6_throw_errno(env, EBADF, "setsockopt(SO_MARK)", "UDP endpoint is closed");
    return NULL;
  }
  if (setsockopt(p->fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark)) {
    mip6_throw_errno(env, errno, "setsockopt(SO_MARK)", NULL);
    return NULL;
  }
  return NULL;
}

static napi_value udp_take_mtu_reports(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  void *h, *dst;
  size_t dst_len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || mip6_arg_handle(env, argv[0], UDP_KIND, &h) ||
      mip6_arg_typed(env, argv[1], napi_uint8_array, "out", &dst, &dst_len, NULL))
    return NULL;
  mip6_poller *p = h;
  udp_data *u = p->kind_data;
  uint32_t n = 0;
  if (!p->closed && u) {
    uint32_t room = (uint32_t)(dst_len / MTU_REPORT_LEN);
    n = u->n_mtu_reports < room ? u->n_mtu_reports : room;
    memcpy(dst, u->mtu_reports, (size_t)n * MTU_REPORT_LEN);
    memmove(u->mtu_reports[0], u->mtu_reports[n], (size_t)(u->n_mtu_reports - n) * MTU_REPORT_LEN);
    u->n_mtu_reports -= n;
  }
  napi_create_uint32(env, n, &out);
  return out;
}

static napi_value udp_offloads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  void *h;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || mip6_arg_handle(env, argv[0], UDP_KIND, &h)) return NULL;
  mip6_poller *p = h;
  udp_data *u = p->kind_data;
  napi_create_uint32(env, p->closed || !u ? 0 : u->offloads, &out);
  return out;
}

static napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *h;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || mip6_arg_handle(env, argv[0], UDP_KIND, &h)) return NULL;
  mip6_poller_close(h);
  return NULL;
}

void mip6_udp_init(napi_env env, napi_value exports) {
  mip6_export(env, exports, "udpOpen", udp_open);
  mip6_export(env, exports, "udpSetReading", udp_set_reading);
  mip6_export(env, exports, "udpSend", udp_send);
  mip6_export(env, exports, "udpSetMark", udp_set_mark);
  mip6_export(env, exports, "udpTakeMtuReports", udp_take_mtu_reports);
  mip6_export(env, exports, "udpOffloads", udp_offloads);
  mip6_export(env, exports, "udpClose", udp_close);
}
