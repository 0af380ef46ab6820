/*
 * The home agent's Neighbor Discovery proxy on a real home link (Linux): answers Neighbor
 * Solicitations for the home addresses it defends (RFC 6275 §10.4.1) in C, on node's own loop,
 * with no call into JS per solicitation. It replaces the kernel's proxy entries, whose table is
 * a 16-bucket hash (each insert and lookup O(n): ~2.3 ms per entry at 100 000 members).
 *
 * Flow of one solicitation:
 *   frame on the link -> AF_PACKET socket (SOCK_DGRAM, ETH_P_IPV6; the link's all-multicast mode
 *   through PACKET_MR_ALLMULTI so solicited-node groups arrive, undone by the kernel when the
 *   socket closes) -> classic BPF keeps only ICMPv6 types 135 and 136 (NS, and the NAs DAD
 *   listens for, below) right after the IPv6 header
 *   -> uv_poll readiness -> drain(): up to DRAIN_MAX frames, each checked as RFC 4861 §7.1.1
 *   says (hop limit 255, checksum, code 0, length >= 24, target not multicast, options of
 *   non-zero length inside the message, source :: only to a solicited-node group and without a
 *   Source Link-Layer Address option) -> target looked up in the set -> a Neighbor
 *   Advertisement built here and sent on the same socket to the solicitor's link-layer address
 *   (its option, else the frame's source) or, for DAD (source ::), to ff02::1 / 33:33:0:0:0:1.
 *   Sending at layer 2 leaves no kernel neighbour entry per solicitor: a flood of solicitations
 *   from forged sources costs a lookup and, for a defended target, one NA each.
 *
 * The Advertisement (RFC 4861 §4.4, §7.2.4, §7.2.8): source = the HA's link-local address on
 * the link (an address of the sending interface), hop limit 255, R=0 (a home address is a
 * host's), S=1 (0 for DAD), O=0: a proxy's answer must not override the node's own
 * (§7.2.8), so a mobile node back on the link wins before it deregisters; the takeover itself is
 * announced by the unsolicited NAs with O=1 (src/io/ndisc.ts). Target Link-Layer Address = the
 * link's MAC.
 *
 * Duplicate Address Detection for new bindings (RFC 6275 §10.3.1) runs on the same socket, so
 * thousands of probes cost no thread, socket or timer each (src/io/dad.ts keeps one timer per
 * 10 ms bucket of them):
 *   ndproxyProbeStart: each address joins a second set, "under DAD", and its probe leaves by
 *   sendmmsg batches: NS from ::, to the target's solicited-node group and MAC, hop limit 255,
 *   no Source Link-Layer Address option (RFC 4862 §5.4.2), a Nonce option (RFC 7527; a fresh
 *   random one every 100 ms). Once the link's queue is full, the rest are not sent but
 *   reported deferred, and src/io/dad.ts sends them again 10 ms later (their window starts
 *   then). An address we already defend for another binding is a duplicate at once.
 *   While it is there, the reader above marks it duplicate on a valid NA for it (RFC 4862
 *   §5.4.4; §7.1.2 checks: hop limit 255, checksum, code 0, S clear when sent to a multicast
 *   group) or on another node's DAD probe for it (§5.4.3; one for it carrying one of our
 *   recent nonces is our own, looped back: ignored, RFC 7527 §4.2; a nonce never stops an
 *   answer for an address we defend). Our own frames never reach the reader
 *   (PACKET_IGNORE_OUTGOING, else sll_pkttype), so neither our probe nor our proxy's answers
 *   can make an address look taken.
 *   ndproxyProbeEnd: reads what is queued on the socket, then takes the addresses out and
 *   reports each one's flags (duplicate seen, send failed).
 * The link is in all-multicast mode, so another node's probe to any solicited-node group
 * arrives without joining each group; the NAs that answer a probe go to ff02::1.
 *
 * Switches that snoop MLD forward a solicitation to a solicited-node group only to the ports
 * that reported the group, so the proxy is also an MLDv2 listener (RFC 3810, native/mld.c) for
 * the solicited-node groups of the defended set and of the addresses under DAD (RFC 4862
 * §5.4.2): ndproxyAdd/Delete and ndproxyProbeStart/End count each address on its group; a group's first address sends a State Change Report (CHANGE_TO_EXCLUDE_MODE), its last
 * a leave (CHANGE_TO_INCLUDE_MODE), each repeated once within 1 s, many groups per frame, a
 * burst in few frames. The filter also keeps MLD Queries (after a Hop-by-Hop header, where
 * their Router Alert is, or without one, to count it missing); mld.c checks them and schedules
 * the answer; the poller's timer (mip6_poller_wake) brings drain() back when reports are due
 * (32 frames a run at most, the next run 2 ms later; frames the link refuses for want of
 * room go again after a back-off), and they leave by sendmmsg from the link-local address to
 * ff02::16 / 33:33:0:0:0:16.
 *
 * The sets: open addressing with linear probing over 16-byte keys (a one-byte value each),
 * hashed with a random per-set seed (a home link's hosts cannot aim solicitations at one long
 * probe run), grown at 1/2 load, deletion by backward shift (no tombstones).
 *
 * JS surface (src/io/addon.ts):
 *   ndproxyOpen(ifname) -> handle              throws (code = errno name) when it cannot
 *   ndproxyAdd(h, addrs, count) -> added        addrs: count x 16 bytes; already present: not added
 *   ndproxyDelete(h, addrs, count) -> removed
 *   ndproxyProbeStart(h, addrs, count, out) -> send errors     out[i] = 0 sent, 1 failed, 2 deferred
 *   ndproxyProbeEnd(h, addrs, count, out) -> duplicates        out[i] = PROBE_* flags
 *   ndproxyCounters(h, out: Float64Array)       NDPROXY_COUNTERS values, order below, then
 *                                               native/mld.h's MLD_COUNTERS
 *   ndproxyClose(h)                              leaves every MLD group first (mld_leave_all)
 */
#define _GNU_SOURCE /* sendmmsg */
#include "mip6.h"
#include "mld.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define KIND "ndproxy"
#define DRAIN_MAX 256 /* frames per readiness event; level-triggered poll brings us back */
#define FRAME_MAX 1500

/* Wire offsets (RFC 4861 §4.3/§4.4; the IPv6 header's in mld.h). */
#define ICMP6_TYPE_OFF 0
#define ICMP6_CODE_OFF 1
#define ICMP6_CSUM_OFF 2
#define ND_FLAGS_OFF 4
#define ND_TARGET_OFF 8
#define ND_MIN_LEN 24    /* RFC 4861 §7.1.1 */
#define ND_OPT_SLLA 1    /* RFC 4861 §4.6.1 */
#define ND_OPT_TLLA 2
#define ND_OPT_NONCE 14  /* RFC 3971 §5.3.2, used for DAD by RFC 7527 */
#define NS_DAD_LEN 32    /* 24 + Nonce option (6 bytes) */
#define PROBE_OPEN 1      /* probing-set values */
#define PROBE_DUPLICATE 2
#define PROBE_SEND_FAILED 4
#define OUT_SENT 0     /* ndproxyProbeStart's out[i] */
#define OUT_FAILED 1   /* the send failed for good (the address is flagged PROBE_SEND_FAILED) */
#define OUT_DEFERRED 2 /* the link's queue was full: not sent, call ndproxyProbeStart again */
#define OUT_SKIP 3     /* internal: no probe needed (already a duplicate); reported as OUT_SENT */
#define NONCE_EPOCH_MS 100
#define NONCE_EPOCHS 16
#define SEND_BATCH 64     /* probes per sendmmsg */
#define SET_MIN_CAP 1024
#define RCVBUF_BYTES (4 << 20) /* DAD answers for thousands of probes arrive in a burst */
#define NA_LEN 32        /* 24 + TLLA option for a 6-byte address */
#define NA_FLAG_S 0x40   /* RFC 4861 §4.4 */
#define ICMP6_NS 135
#define ICMP6_NA 136
#define NEXT_ICMP6 58
#define ND_HOP_LIMIT 255 /* RFC 4861 §7.1.1 */
#define NEXT_HBH 0       /* RFC 8200 §4.3 */
#define MLD_QUERY 130    /* RFC 3810 §5.1 */
#define MLD_BATCH 16     /* report frames per sendmmsg (native/mld.c hands over at most 16) */

/* Counters, in the order ndproxyCounters writes them (src/io/addon.ts names them). */
enum {
  C_FRAMES,       /* frames read (passed the filter) */
  C_NS,           /* valid solicitations */
  C_ANSWERED,     /* NAs sent */
  C_DAD_ANSWERED, /* ... of which to ff02::1 for a DAD probe */
  C_NOT_OURS,     /* valid, target not in the set */
  C_BAD_LENGTH,   /* shorter than an IPv6 header + 24, or payload length beyond the frame */
  C_BAD_HOP_LIMIT,
  C_BAD_CODE,
  C_BAD_CHECKSUM,
  C_BAD_OPTION,     /* an option of length 0 or running past the message */
  C_MULTICAST_TARGET,
  C_BAD_DAD,        /* source :: to a non-solicited-node group, or with an SLLA option */
  C_NOT_NS,         /* something the filter let through that is not an NS (never expected) */
  C_SEND_ERRORS,
  C_BAD_SOURCE,     /* a multicast source address (RFC 4291 §2.7: never a source) */
  C_SET_SIZE,       /* addresses in the set now */
  C_ADVERTS,        /* valid Neighbor Advertisements read (DAD answers among them) */
  C_BAD_ADVERT,     /* an NA to a multicast destination with S set (RFC 4861 §7.1.2) */
  C_PROBES_SENT,    /* DAD probes (NS from ::) sent */
  C_PROBE_SEND_ERRORS,
  C_DUPLICATE_BY_NA,  /* an NA for an address under DAD (RFC 4862 §5.4.4) */
  C_DUPLICATE_BY_NS,  /* another node's DAD probe for it (RFC 4862 §5.4.3) */
  C_OWN_PROBE,        /* our own probe looped back (our nonce): ignored */
  C_PROBING,          /* addresses under DAD now */
  C_RX_DROPPED,       /* frames the kernel dropped before we read them (PACKET_STATISTICS) */
  C_PROBES_DEFERRED,  /* probes not sent yet because the link's queue was full (sent again) */
  C_DUPLICATE_DEFENDED, /* probed while we defend it already (another binding holds it) */
  NDPROXY_COUNTERS
};

/* A set of 16-byte addresses, each with a one-byte value (0 in `used` means an empty slot). */
typedef struct {
  uint8_t (*keys)[16];
  uint8_t *used;
  uint32_t cap; /* power of two */
  uint32_t size;
  uint64_t seed[2];
} addrset;

typedef struct {
  addrset defended; /* the addresses we answer for */
  addrset probing;  /* the addresses under DAD: value PROBE_OPEN, | PROBE_DUPLICATE once seen */
  /* RFC 7527 Nonces of our DAD probes, a fresh one every NONCE_EPOCH_MS, the last
   * NONCE_EPOCHS kept: a probe of ours looped back by the link is not another node's. */
  uint8_t nonces[NONCE_EPOCHS][6];
  uint64_t nonce_epochs[NONCE_EPOCHS]; /* the epoch (>= 1) each slot's nonce was made in */
  uint8_t mac[6];
  uint8_t linklocal[16];
  int ifindex;
  int fd;
  double counters[NDPROXY_COUNTERS];
  mld mld; /* the MLDv2 listener for the defended addresses' solicited-node groups */
} ndproxy;

/* ---- the set ------------------------------------------------------------------------- */

static uint32_t slot_of(const addrset *d, const uint8_t *key) {
  uint64_t a, b;
  memcpy(&a, key, 8);
  memcpy(&b, key + 8, 8);
  uint64_t h = mip6_mix64(a ^ d->seed[0]) ^ mip6_mix64(b ^ d->seed[1] ^ 0x9e3779b97f4a7c15ULL);
  return (uint32_t)h & (d->cap - 1);
}

/* The slot holding key, or -1. */
static int64_t set_find(const addrset *d, const uint8_t *key) {
  if (d->size == 0) return -1;
  uint32_t mask = d->cap - 1;
  for (uint32_t i = slot_of(d, key);; i = (i + 1) & mask) {
    if (!d->used[i]) return -1;
    if (memcmp(d->keys[i], key, 16) == 0) return i;
  }
}

static void set_place(addrset *d, const uint8_t *key, uint8_t value) {
  uint32_t mask = d->cap - 1;
  uint32_t i = slot_of(d, key);
  while (d->used[i]) i = (i + 1) & mask;
  memcpy(d->keys[i], key, 16);
  d->used[i] = value;
  d->size++;
}

static int set_resize(addrset *d, uint32_t cap) {
  uint8_t(*keys)[16] = malloc((size_t)cap * 16);
  uint8_t *used = calloc(cap, 1);
  if (keys == NULL || used == NULL) {
    free(keys);
    free(used);
    return ENOMEM;
  }
  uint8_t(*old_keys)[16] = d->keys;
  uint8_t *old_used = d->used;
  uint32_t old_cap = d->cap;
  d->keys = keys;
  d->used = used;
  d->cap = cap;
  d->size = 0;
  for (uint32_t i = 0; i < old_cap; i++)
    if (old_used[i]) set_place(d, old_keys[i], old_used[i]);
  free(old_keys);
  free(old_used);
  return 0;
}

static void set_free(addrset *d) {
  free(d->keys);
  free(d->used);
  d->keys = NULL;
  d->used = NULL;
}

/* 1 added (with value, non-zero), 0 already there (value unchanged), or -errno. */
static int set_add(addrset *d, const uint8_t *key, uint8_t value) {
  if (set_find(d, key) >= 0) return 0;
  if ((uint64_t)(d->size + 1) * 2 > d->cap) {
    if (d->cap >= (1u << 30)) return -ENOMEM;
    int err = set_resize(d, d->cap * 2);
    if (err) return -err;
  }
  set_place(d, key, value);
  return 1;
}

/* Backward-shift deletion: later entries of the run move up so lookups never stop early.
 * Returns the deleted entry's value, 0 when key was not there. */
static uint8_t set_delete(addrset *d, const uint8_t *key) {
  int64_t found = set_find(d, key);
  if (found < 0) return 0;
  uint8_t value = d->used[found];
  uint32_t mask = d->cap - 1;
  uint32_t hole = (uint32_t)found;
  for (uint32_t j = (hole + 1) & mask; d->used[j]; j = (j + 1) & mask) {
    uint32_t home = slot_of(d, d->keys[j]);
    /* j's entry may fill the hole unless its home lies cyclically in (hole, j]. */
    int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    memcpy(d->keys[hole], d->keys[j], 16);
    d->used[hole] = d->used[j];
    hole = j;
  }
  d->used[hole] = 0;
  d->size--;
  return value;
}

/* After deletions: halve a mostly empty table (best effort). */
static void set_shrink(addrset *d) {
  while (d->size * 8 < d->cap && d->cap > SET_MIN_CAP)
    if (set_resize(d, d->cap / 2) != 0) return;
}

static int set_init(addrset *d) {
  if (getrandom(d->seed, sizeof d->seed, 0) != (ssize_t)sizeof d->seed) return errno ? errno : EIO;
  return set_resize(d, SET_MIN_CAP);
}

/* ---- the wire -------------------------------------------------------------------------- */

static int is_unspecified(const uint8_t *a) {
  static const uint8_t zero[16];
  return memcmp(a, zero, 16) == 0;
}

/* ff02::1:ffXX:XXXX (RFC 4291 §2.7.1). */
static int is_solicited_node(const uint8_t *a) {
  static const uint8_t prefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
  return memcmp(a, prefix, 13) == 0;
}

static void answer(ndproxy *d, int fd, const uint8_t *target, const uint8_t *solicitor,
                   const uint8_t *solicitor_mac, int dad) {
  uint8_t pkt[IP6_HDR_LEN + NA_LEN];
  memset(pkt, 0, sizeof pkt);
  pkt[0] = 0x60;
  pkt[IP6_PLEN_OFF + 1] = NA_LEN;
  pkt[IP6_NH_OFF] = NEXT_ICMP6;
  pkt[IP6_HLIM_OFF] = ND_HOP_LIMIT;
  memcpy(pkt + IP6_SRC_OFF, d->linklocal, 16);
  uint8_t *dst = pkt + IP6_DST_OFF;
  static const uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  memcpy(dst, dad ? all_nodes : solicitor, 16);
  uint8_t *na = pkt + IP6_HDR_LEN;
  na[ICMP6_TYPE_OFF] = ICMP6_NA;
  na[ND_FLAGS_OFF] = dad ? 0 : NA_FLAG_S; /* R=0, O=0: see the file comment */
  memcpy(na + ND_TARGET_OFF, target, 16);
  na[ND_MIN_LEN] = ND_OPT_TLLA;
  na[ND_MIN_LEN + 1] = 1;
  memcpy(na + ND_MIN_LEN + 2, d->mac, 6);
  uint16_t c = mip6_icmp6_checksum(pkt + IP6_SRC_OFF, dst, na, NA_LEN);
  na[ICMP6_CSUM_OFF] = c >> 8;
  na[ICMP6_CSUM_OFF + 1] = c & 0xff;

  struct sockaddr_ll to;
  memset(&to, 0, sizeof to);
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_IPV6);
  to.sll_ifindex = d->ifindex;
  to.sll_halen = 6;
  static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1}; /* RFC 2464 §7 */
  memcpy(to.sll_addr, dad ? all_nodes_mac : solicitor_mac, 6);
  if (sendto(fd, pkt, sizeof pkt, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to) < 0) {
    d->counters[C_SEND_ERRORS]++;
    return;
  }
  d->counters[C_ANSWERED]++;
  if (dad) d->counters[C_DAD_ANSWERED]++;
}

/* A Neighbor Advertisement or a DAD probe from another node for an address under DAD
 * (RFC 4862 §5.4.3, §5.4.4): the address is not unique. */
static void probe_hit(ndproxy *d, const uint8_t *target, int counter) {
  int64_t at = set_find(&d->probing, target);
  if (at < 0) return;
  d->probing.used[at] |= PROBE_DUPLICATE;
  d->counters[counter]++;
}

static uint64_t nonce_epoch_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) / NONCE_EPOCH_MS + 1;
}

/* The nonce for probes sent now: the current epoch's, made on first use. */
static const uint8_t *current_nonce(ndproxy *d) {
  uint64_t e = nonce_epoch_now();
  uint32_t slot = (uint32_t)(e % NONCE_EPOCHS);
  if (d->nonce_epochs[slot] != e) {
    if (getrandom(d->nonces[slot], 6, GRND_NONBLOCK) != 6) {
      /* No entropy right now (never seen after boot): still unlike the last ones. */
      uint64_t x = mip6_mix64(e ^ d->probing.seed[0]) ^ d->probing.seed[1];
      memcpy(d->nonces[slot], &x, 6);
    }
    d->nonce_epochs[slot] = e;
  }
  return d->nonces[slot];
}

/* Whether nonce is one of ours from the last NONCE_EPOCHS epochs. */
static int own_nonce(const ndproxy *d, const uint8_t *nonce) {
  uint64_t now = nonce_epoch_now();
  for (uint32_t i = 0; i < NONCE_EPOCHS; i++) {
    uint64_t e = d->nonce_epochs[i];
    if (e != 0 && e + NONCE_EPOCHS > now && memcmp(d->nonces[i], nonce, 6) == 0) return 1;
  }
  return 0;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* native/mld.c's frames out, each to its IPv6 destination's MAC (RFC 2464 §7: 33:33 and the
 * address's last 4 bytes; ff02::16 for an MLDv2 Report, the group or ff02::2 for MLDv1), by one
 * sendmmsg. Returns how many the link took; *busy when it refused the next for want of room. */
static uint32_t mld_send(void *ctx, uint8_t *const *frames, const uint32_t *lens, uint32_t count,
                         int *busy) {
  ndproxy *d = ctx;
  struct sockaddr_ll to[MLD_BATCH];
  struct iovec iov[MLD_BATCH];
  struct mmsghdr msgs[MLD_BATCH];
  if (count > MLD_BATCH) count = MLD_BATCH;
  memset(msgs, 0, sizeof msgs[0] * count);
  memset(to, 0, sizeof to[0] * count);
  for (uint32_t i = 0; i < count; i++) {
    to[i].sll_family = AF_PACKET;
    to[i].sll_protocol = htons(ETH_P_IPV6);
    to[i].sll_ifindex = d->ifindex;
    to[i].sll_halen = 6;
    to[i].sll_addr[0] = to[i].sll_addr[1] = 0x33;
    memcpy(to[i].sll_addr + 2, frames[i] + IP6_DST_OFF + 12, 4);
    iov[i].iov_base = frames[i];
    iov[i].iov_len = lens[i];
    msgs[i].msg_hdr.msg_name = &to[i];
    msgs[i].msg_hdr.msg_namelen = sizeof to[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint32_t sent = 0;
  while (sent < count) {
    int r = sendmmsg(d->fd, msgs + sent, count - sent, MSG_DONTWAIT);
    if (r > 0) sent += (uint32_t)r;
    else if (!(r < 0 && errno == EINTR)) break;
  }
  /* A full socket buffer or a qdisc's queue: mld.c sends the rest again later. */
  *busy = sent < count && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS);
  return sent;
}

/* Sends the MLD reports that are due and arms the poller's timer for the next ones. */
static void mld_tick(mip6_poller *p) {
  ndproxy *d = p->kind_data;
  if (p->closed || d == NULL) return;
  uint64_t now = now_ms();
  mld_run(&d->mld, now, d->linklocal, mld_send, d);
  uint64_t next = mld_next(&d->mld);
  if (next != 0) mip6_poller_wake(p, next > now ? next - now : 0);
}

/* One frame (the IPv6 packet; the link header is gone on a SOCK_DGRAM packet socket): the
 * checks RFC 4861 §7.1.1 (NS) and §7.1.2 (NA) ask for, then an answer (NS for a defended
 * address) and the DAD bookkeeping (either, for an address under DAD). */
static void handle(ndproxy *d, int fd, const uint8_t *pkt, size_t n, const uint8_t *frame_src) {
  d->counters[C_FRAMES]++;
  if (n < IP6_HDR_LEN + ND_MIN_LEN || (pkt[0] >> 4) != 6) {
    d->counters[C_BAD_LENGTH]++;
    return;
  }
  uint32_t plen = (uint32_t)pkt[IP6_PLEN_OFF] << 8 | pkt[IP6_PLEN_OFF + 1];
  if (plen < ND_MIN_LEN || IP6_HDR_LEN + (size_t)plen > n) {
    d->counters[C_BAD_LENGTH]++;
    return;
  }
  const uint8_t *ns = pkt + IP6_HDR_LEN;
  int type = ns[ICMP6_TYPE_OFF];
  if (pkt[IP6_NH_OFF] == NEXT_HBH || (pkt[IP6_NH_OFF] == NEXT_ICMP6 && type == MLD_QUERY)) {
    mld_query(&d->mld, pkt, n, now_ms()); /* the filter let only MLD Queries through */
    return;
  }
  if (pkt[IP6_NH_OFF] != NEXT_ICMP6 || (type != ICMP6_NS && type != ICMP6_NA)) {
    d->counters[C_NOT_NS]++;
    return;
  }
  if (pkt[IP6_HLIM_OFF] != ND_HOP_LIMIT) {
    d->counters[C_BAD_HOP_LIMIT]++;
    return;
  }
  if (ns[ICMP6_CODE_OFF] != 0) {
    d->counters[C_BAD_CODE]++;
    return;
  }
  const uint8_t *src = pkt + IP6_SRC_OFF;
  const uint8_t *dst = pkt + IP6_DST_OFF;
  if (mip6_icmp6_checksum(src, dst, ns, plen) != 0) {
    d->counters[C_BAD_CHECKSUM]++;
    return;
  }
  if (src[0] == 0xff) {
    d->counters[C_BAD_SOURCE]++;
    return;
  }
  const uint8_t *target = ns + ND_TARGET_OFF;
  if (target[0] == 0xff) {
    d->counters[C_MULTICAST_TARGET]++;
    return;
  }
  const uint8_t *slla = NULL;
  const uint8_t *nonce = NULL;
  int any_slla = 0; /* of any length: a DAD probe must carry none (RFC 4861 §7.1.1) */
  for (uint32_t at = ND_MIN_LEN; at < plen;) {
    if (plen - at < 2 || ns[at + 1] == 0 || (uint32_t)ns[at + 1] * 8 > plen - at) {
      d->counters[C_BAD_OPTION]++;
      return;
    }
    if (ns[at] == ND_OPT_SLLA) any_slla = 1;
    if (ns[at] == ND_OPT_SLLA && ns[at + 1] == 1) slla = ns + at + 2;
    if (ns[at] == ND_OPT_NONCE && ns[at + 1] == 1) nonce = ns + at + 2;
    at += (uint32_t)ns[at + 1] * 8;
  }
  if (type == ICMP6_NA) {
    /* §7.1.2: an NA to a multicast destination must have S clear. */
    if (dst[0] == 0xff && (ns[ND_FLAGS_OFF] & NA_FLAG_S)) {
      d->counters[C_BAD_ADVERT]++;
      return;
    }
    d->counters[C_ADVERTS]++;
    probe_hit(d, target, C_DUPLICATE_BY_NA);
    return;
  }
  int dad = is_unspecified(src);
  if (dad && (!is_solicited_node(dst) || any_slla)) {
    d->counters[C_BAD_DAD]++;
    return;
  }
  d->counters[C_NS]++;
  if (dad && nonce != NULL && set_find(&d->probing, target) >= 0 && own_nonce(d, nonce)) {
    /* RFC 7527 §4.2: a probe carrying one of our recent nonces for an address we are probing
     * is ours, looped back by the link: not a duplicate. Only then: the nonce went out in
     * the clear, and an address we defend is answered whatever nonce a probe for it carries
     * (else a host on the link could take it by copying our nonce). */
    d->counters[C_OWN_PROBE]++;
    return;
  }
  if (dad) probe_hit(d, target, C_DUPLICATE_BY_NS);
  if (set_find(&d->defended, target) < 0) {
    d->counters[C_NOT_OURS]++;
    return;
  }
  answer(d, fd, target, src, slla != NULL ? slla : frame_src, dad);
}

static uint32_t ndproxy_drain(mip6_poller *p) {
  ndproxy *d = p->kind_data;
  uint8_t buf[FRAME_MAX];
  for (int i = 0; i < DRAIN_MAX && !p->closed; i++) {
    struct sockaddr_ll from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(p->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&from,
                         &fromlen);
    if (n < 0) break; /* EAGAIN: drained */
    if (from.sll_pkttype == PACKET_OUTGOING) continue;
    if ((size_t)n > sizeof buf) { /* truncated: not an NS we would answer */
      d->counters[C_FRAMES]++;
      d->counters[C_BAD_LENGTH]++;
      continue;
    }
    static const uint8_t none[6];
    handle(d, p->fd, buf, (size_t)n, from.sll_halen == 6 ? from.sll_addr : none);
  }
  mld_tick(p); /* also how the poller's timer brings us here when reports are due */
  return 0; /* everything was answered here: no batch for JS */
}

static void ndproxy_on_error(mip6_poller *p) {
  int err;
  socklen_t len = sizeof err;
  getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
}

static void ndproxy_free(mip6_poller *p) {
  ndproxy *d = p->kind_data;
  if (d) {
    set_free(&d->defended);
    set_free(&d->probing);
    mld_free(&d->mld);
    free(d);
  }
  p->kind_data = NULL;
}

/* ---- JS surface ---------------------------------------------------------------------- */

static int link_local_of(int ifindex, const char *ifname, uint8_t out[16]) {
  struct ifaddrs *list, *it;
  if (getifaddrs(&list) < 0) return errno;
  int found = EADDRNOTAVAIL;
  for (it = list; it; it = it->ifa_next) {
    if (!it->ifa_addr || it->ifa_addr->sa_family != AF_INET6 || strcmp(it->ifa_name, ifname) != 0)
      continue;
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)it->ifa_addr;
    if (IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr) && (int)a->sin6_scope_id == ifindex) {
      memcpy(out, &a->sin6_addr, 16);
      found = 0;
      break;
    }
  }
  freeifaddrs(list);
  return found;
}

/* Keeps ICMPv6 types 135 and 136 (NA: the answers to our DAD probes) and MLD Queries (130)
 * right after the IPv6 header, and MLD Queries after a Hop-by-Hop header (where their Router
 * Alert is: RFC 3810 §5); drops the rest, other hosts' MLD Reports among them. */
static struct sock_filter ns_filter[] = {
    /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, IP6_NH_OFF),
    /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NEXT_ICMP6, 0, 4), /* else 6 */
    /* 2 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, IP6_HDR_LEN + ICMP6_TYPE_OFF),
    /* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP6_NS, 11, 0), /* 15: keep */
    /* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ICMP6_NA, 10, 0),
    /* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MLD_QUERY, 9, 10), /* 15 : 16 (drop) */
    /* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NEXT_HBH, 0, 9),
    /* 7 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, IP6_HDR_LEN), /* the Hop-by-Hop's next header */
    /* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NEXT_ICMP6, 0, 7),
    /* 9 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, IP6_HDR_LEN + 1), /* its length / 8, minus 1 */
    /* 10 */ BPF_STMT(BPF_ALU | BPF_ADD | BPF_K, 1),
    /* 11 */ BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 3),
    /* 12 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
    /* 13 */ BPF_STMT(BPF_LD | BPF_B | BPF_IND, IP6_HDR_LEN + ICMP6_TYPE_OFF),
    /* 14 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MLD_QUERY, 0, 1),
    /* 15 */ BPF_STMT(BPF_RET | BPF_K, 0xffff),
    /* 16 */ BPF_STMT(BPF_RET | BPF_K, 0),
};

static napi_value ndproxy_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char ifname[IF_NAMESIZE];
  size_t n = 0, full = 0;
  /* A longer name is refused, not cut short (it could name another interface). */
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], NULL, 0, &full) != napi_ok ||
      full == 0 || full >= IF_NAMESIZE ||
      napi_get_value_string_utf8(env, argv[0], ifname, sizeof ifname, &n) != napi_ok || n == 0) {
    mip6_throw_type(env, "ndproxyOpen(ifname, callback): ifname must be an interface name");
    return NULL;
  }
  int ifindex = (int)if_nametoindex(ifname);
  if (ifindex == 0) {
    mip6_throw_errno(env, errno, "if_nametoindex", ifname);
    return NULL;
  }
  ndproxy *d = calloc(1, sizeof *d);
  mip6_poller *p = calloc(1, sizeof *p);
  int err = 0;
  if (d == NULL || p == NULL || (err = set_init(&d->defended)) != 0 ||
      (err = set_init(&d->probing)) != 0 || (err = mld_init(&d->mld)) != 0) {
    if (d != NULL) {
      set_free(&d->defended);
      set_free(&d->probing);
      mld_free(&d->mld);
    }
    free(d);
    free(p);
    mip6_throw_errno(env, err ? err : ENOMEM, "ndproxy", "allocating its sets");
    return NULL;
  }
  d->ifindex = ifindex;
  const char *failed = NULL;
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_IPV6));
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, n);
  struct sock_fprog prog = {sizeof ns_filter / sizeof ns_filter[0], ns_filter};
  struct sockaddr_ll here;
  memset(&here, 0, sizeof here);
  here.sll_family = AF_PACKET;
  here.sll_protocol = htons(ETH_P_IPV6);
  here.sll_ifindex = ifindex;
  struct packet_mreq mr;
  memset(&mr, 0, sizeof mr);
  mr.mr_ifindex = ifindex;
  mr.mr_type = PACKET_MR_ALLMULTI;
  int one = 1;
  if (fd < 0) failed = "socket(AF_PACKET)";
  else if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) failed = "ioctl(SIOCGIFHWADDR)";
  else if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    failed = "an Ethernet link";
    errno = EAFNOSUPPORT;
  } else if ((err = link_local_of(ifindex, ifname, d->linklocal)) != 0) {
    failed = "a link-local address on the link";
    errno = err;
  } else if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0)
    failed = "setsockopt(SO_ATTACH_FILTER)";
  else if (bind(fd, (struct sockaddr *)&here, sizeof here) < 0) failed = "bind";
  else if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0)
    failed = "setsockopt(PACKET_ADD_MEMBERSHIP, ALLMULTI)";
  if (failed) {
    err = errno;
    if (fd >= 0) close(fd);
    set_free(&d->defended);
    set_free(&d->probing);
    mld_free(&d->mld);
    free(d);
    free(p);
    mip6_throw_errno(env, err, failed, ifname);
    return NULL;
  }
  /* Our own NAs are not ours to read (older kernels: sll_pkttype says so, checked in drain). */
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  /* Room for a burst of DAD answers (best effort: RCVBUFFORCE needs CAP_NET_ADMIN). */
  int rcvbuf = RCVBUF_BYTES;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  memcpy(d->mac, ifr.ifr_hwaddr.sa_data, 6);
  d->fd = fd;
  if (ioctl(fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0) mld_set_mtu(&d->mld, (uint32_t)ifr.ifr_mtu);
  /* Frames that arrived between socket() and the filter may be anything: drop them. */
  uint8_t junk[FRAME_MAX];
  while (recv(fd, junk, sizeof junk, MSG_DONTWAIT) >= 0) {
  }
  p->kind = KIND;
  p->fd = fd;
  p->kind_data = d;
  p->drain = ndproxy_drain;
  p->on_error = ndproxy_on_error;
  p->free_kind = ndproxy_free;
  napi_value handle = mip6_poller_attach(env, p, argv[1]);
  if (handle == NULL) return NULL;
  mip6_poller_set_reading(p, 1);
  return handle;
}

/* (h, addrs, count) with addrs holding count x 16 bytes; with `out`, a fourth argument: a
 * Uint8Array of at least count bytes. */
static int batch_args(napi_env env, napi_callback_info info, mip6_poller **p, uint8_t **addrs,
                      uint32_t *count, uint8_t **out) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t len, out_len = 0;
  if (argc < (out ? 4u : 3u)) {
    mip6_throw_type(env, out ? "expects (handle, addresses, count, out)"
                             : "expects (handle, addresses, count)");
    return -1;
  }
  if (mip6_arg_handle(env, argv[0], KIND, (void **)p) != 0) return -1;
  if (mip6_arg_typed(env, argv[1], napi_uint8_array, "addresses", (void **)addrs, &len, NULL) != 0)
    return -1;
  if (mip6_arg_u32(env, argv[2], "count", count) != 0) return -1;
  if ((uint64_t)*count * 16 > len) {
    mip6_throw_range(env, "addresses holds fewer than count x 16 bytes");
    return -1;
  }
  if (out != NULL &&
      mip6_arg_typed(env, argv[3], napi_uint8_array, "out", (void **)out, &out_len, NULL) != 0)
    return -1;
  if (out != NULL && out_len < *count) {
    mip6_throw_range(env, "out holds fewer than count bytes");
    return -1;
  }
  if ((*p)->closed || (*p)->kind_data == NULL) {
    mip6_throw_errno(env, EBADF, "ndproxy", "closed");
    return -1;
  }
  return 0;
}

/* ndproxyAdd / ndproxyDelete: returns how many addresses changed state. */
static napi_value set_batch(napi_env env, napi_callback_info info, int add) {
  mip6_poller *p;
  uint8_t *addrs;
  uint32_t count;
  if (batch_args(env, info, &p, &addrs, &count, NULL) != 0) return NULL;
  ndproxy *d = p->kind_data;
  uint32_t changed = 0;
  uint64_t now = now_ms();
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *a = addrs + (size_t)i * 16;
    int r = add ? set_add(&d->defended, a, 1) : set_delete(&d->defended, a) != 0;
    /* Each defended address is one reference on its solicited-node group (RFC 3810 report
     * on the group's first, leave on its last). */
    if (r > 0 && add && (r = mld_join(&d->mld, a, now)) == 0) r = 1;
    if (r > 0 && !add) mld_leave(&d->mld, a, now);
    if (r < 0) {
      if (add) set_delete(&d->defended, a);
      mip6_throw_errno(env, -r, "ndproxyAdd", "growing the set");
      return NULL;
    }
    changed += (uint32_t)r;
  }
  if (!add) set_shrink(&d->defended);
  mld_tick(p);
  napi_value out;
  napi_create_uint32(env, changed, &out);
  return out;
}

static napi_value ndproxy_add(napi_env env, napi_callback_info info) { return set_batch(env, info, 1); }
static napi_value ndproxy_delete(napi_env env, napi_callback_info info) { return set_batch(env, info, 0); }

/* ---- Duplicate Address Detection ----------------------------------------------------- */

/* ff02::1:ffXX:XXXX and 33:33:ff:XX:XX:XX for target (RFC 4291 §2.7.1, RFC 2464 §7). */
static void solicited_node(const uint8_t *target, uint8_t group[16], uint8_t mac[6]) {
  static const uint8_t prefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
  memcpy(group, prefix, 13);
  memcpy(group + 13, target + 13, 3);
  mac[0] = 0x33;
  mac[1] = 0x33;
  memcpy(mac + 2, group + 12, 4);
}

/* The DAD probe of RFC 4862 §5.4.2 for target: NS from ::, to the target's solicited-node
 * group, hop limit 255, no Source Link-Layer Address option, our Nonce option (RFC 7527). */
static void build_probe(const ndproxy *d, const uint8_t *target, const uint8_t *nonce, uint8_t *pkt,
                        struct sockaddr_ll *to) {
  memset(pkt, 0, IP6_HDR_LEN + NS_DAD_LEN);
  pkt[0] = 0x60;
  pkt[IP6_PLEN_OFF + 1] = NS_DAD_LEN;
  pkt[IP6_NH_OFF] = NEXT_ICMP6;
  pkt[IP6_HLIM_OFF] = ND_HOP_LIMIT;
  memset(to, 0, sizeof *to);
  solicited_node(target, pkt + IP6_DST_OFF, to->sll_addr);
  uint8_t *ns = pkt + IP6_HDR_LEN;
  ns[ICMP6_TYPE_OFF] = ICMP6_NS;
  memcpy(ns + ND_TARGET_OFF, target, 16);
  ns[ND_MIN_LEN] = ND_OPT_NONCE;
  ns[ND_MIN_LEN + 1] = 1;
  memcpy(ns + ND_MIN_LEN + 2, nonce, 6);
  uint16_t c = mip6_icmp6_checksum(pkt + IP6_SRC_OFF, pkt + IP6_DST_OFF, ns, NS_DAD_LEN);
  ns[ICMP6_CSUM_OFF] = c >> 8;
  ns[ICMP6_CSUM_OFF + 1] = c & 0xff;
  to->sll_family = AF_PACKET;
  to->sll_protocol = htons(ETH_P_IPV6);
  to->sll_ifindex = d->ifindex;
  to->sll_halen = 6;
}

/* Sends the probes for the addresses i of addrs[0..count) with out[i] == OUT_SENT (the
 * others are skipped) by sendmmsg batches. A send the kernel refuses for good sets out[i] =
 * OUT_FAILED; once the link's queue is full (ENOBUFS, EAGAIN, ENOMEM) nothing more is tried
 * in this call and every probe not sent gets OUT_DEFERRED (the caller sends them again
 * shortly: dropping them would skip DAD for them exactly in a registration burst). */
static uint32_t send_probes(ndproxy *d, int fd, const uint8_t *addrs, uint32_t count,
                            uint8_t *out) {
  uint8_t pkts[SEND_BATCH][IP6_HDR_LEN + NS_DAD_LEN];
  uint32_t index[SEND_BATCH];
  struct sockaddr_ll to[SEND_BATCH];
  struct iovec iov[SEND_BATCH];
  struct mmsghdr msgs[SEND_BATCH];
  uint32_t errors = 0, sent = 0;
  const uint8_t *nonce = current_nonce(d);
  for (uint32_t next = 0; next < count;) {
    uint32_t n = 0;
    for (; next < count && n < SEND_BATCH; next++)
      if (out[next] == OUT_SENT) index[n++] = next;
    if (n == 0) break;
    memset(msgs, 0, sizeof msgs[0] * n);
    for (uint32_t i = 0; i < n; i++) {
      build_probe(d, addrs + (size_t)index[i] * 16, nonce, pkts[i], &to[i]);
      iov[i].iov_base = pkts[i];
      iov[i].iov_len = sizeof pkts[i];
      msgs[i].msg_hdr.msg_name = &to[i];
      msgs[i].msg_hdr.msg_namelen = sizeof to[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    for (uint32_t at = 0; at < n;) {
      int r = sendmmsg(fd, msgs + at, n - at, MSG_DONTWAIT);
      if (r > 0) {
        at += (uint32_t)r;
        sent += (uint32_t)r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == ENOBUFS || errno == EAGAIN || errno == ENOMEM)) {
        /* The queue is full: the rest of this call waits for the next one. */
        uint32_t deferred = 0;
        for (uint32_t j = at; j < n; j++, deferred++) out[index[j]] = OUT_DEFERRED;
        for (; next < count; next++)
          if (out[next] == OUT_SENT) out[next] = OUT_DEFERRED, deferred++;
        d->counters[C_PROBES_DEFERRED] += deferred;
        d->counters[C_PROBES_SENT] += sent;
        d->counters[C_PROBE_SEND_ERRORS] += errors;
        return errors;
      }
      out[index[at]] = OUT_FAILED; /* refused for good (ENETDOWN, ENXIO, ...) */
      errors++;
      at++;
    }
  }
  d->counters[C_PROBES_SENT] += sent;
  d->counters[C_PROBE_SEND_ERRORS] += errors;
  return errors;
}

/* ndproxyProbeStart(h, addrs, count, out) -> send errors. Each address joins the set under DAD
 * (one already there keeps what was seen for it) and its probe is sent: out[i] = OUT_SENT,
 * OUT_FAILED (flagged PROBE_SEND_FAILED) or OUT_DEFERRED (not sent: the link's queue was full;
 * call again for it). An address we already defend (another binding holds it) is a duplicate
 * at once, without a probe: our own proxy would never answer our probe for it. */
static napi_value probe_start(napi_env env, napi_callback_info info) {
  mip6_poller *p;
  uint8_t *addrs, *out;
  uint32_t count;
  if (batch_args(env, info, &p, &addrs, &count, &out) != 0) return NULL;
  ndproxy *d = p->kind_data;
  uint64_t now = now_ms();
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *a = addrs + (size_t)i * 16;
    int r = set_add(&d->probing, a, PROBE_OPEN);
    /* RFC 4862 §5.4.2: a node probing an address listens to its solicited-node group first,
     * so another node's probe for it (sent there) reaches us behind an MLD-snooping switch:
     * one more reference on the group until ndproxyProbeEnd. */
    if (r > 0 && (r = mld_join(&d->mld, a, now)) < 0) set_delete(&d->probing, a);
    if (r < 0) {
      mld_tick(p);
      mip6_throw_errno(env, -r, "ndproxyProbeStart", "growing the set");
      return NULL;
    }
    out[i] = OUT_SENT;
    if (set_find(&d->defended, a) < 0) continue;
    int64_t at = set_find(&d->probing, a);
    if (!(d->probing.used[at] & PROBE_DUPLICATE)) {
      d->probing.used[at] |= PROBE_DUPLICATE;
      d->counters[C_DUPLICATE_DEFENDED]++;
    }
    out[i] = OUT_SKIP;
  }
  mld_tick(p); /* the joins' reports are due MLD_COALESCE_MS from now */
  uint32_t errors = send_probes(d, p->fd, addrs, count, out);
  for (uint32_t i = 0; i < count; i++) {
    if (out[i] == OUT_SKIP) out[i] = OUT_SENT;
    if (out[i] != OUT_FAILED) continue;
    int64_t at = set_find(&d->probing, addrs + (size_t)i * 16);
    if (at >= 0) d->probing.used[at] |= PROBE_SEND_FAILED;
  }
  napi_value result;
  napi_create_uint32(env, errors, &result);
  return result;
}

/* ndproxyProbeEnd(h, addrs, count, out) -> duplicates. Reads what has arrived, then takes each
 * address out of the set under DAD: out[i] = its flags (PROBE_OPEN | PROBE_DUPLICATE |
 * PROBE_SEND_FAILED), 0 when it was not under DAD. */
static napi_value probe_end(napi_env env, napi_callback_info info) {
  mip6_poller *p;
  uint8_t *addrs, *out;
  uint32_t count;
  if (batch_args(env, info, &p, &addrs, &count, &out) != 0) return NULL;
  ndproxy *d = p->kind_data;
  /* Answers that are queued on the socket but not yet read count: read them first. */
  for (int rounds = 0; rounds < 64 && !p->closed; rounds++) {
    double before = d->counters[C_FRAMES];
    ndproxy_drain(p);
    if (d->counters[C_FRAMES] - before < DRAIN_MAX) break;
  }
  uint32_t duplicates = 0;
  uint64_t now = now_ms();
  for (uint32_t i = 0; i < count; i++) {
    out[i] = set_delete(&d->probing, addrs + (size_t)i * 16);
    if (out[i] != 0) mld_leave(&d->mld, addrs + (size_t)i * 16, now); /* its probe's reference */
    if (out[i] & PROBE_DUPLICATE) duplicates++;
  }
  set_shrink(&d->probing);
  mld_tick(p);
  napi_value result;
  napi_create_uint32(env, duplicates, &result);
  return result;
}

static napi_value ndproxy_counters(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  mip6_poller *p;
  double *out;
  size_t len;
  if (argc < 2 || mip6_arg_handle(env, argv[0], KIND, (void **)&p) != 0) return NULL;
  if (mip6_arg_typed(env, argv[1], napi_float64_array, "out", (void **)&out, &len, NULL) != 0)
    return NULL;
  ndproxy *d = p->kind_data;
  if (d == NULL) return NULL;
  d->counters[C_SET_SIZE] = d->defended.size;
  d->counters[C_PROBING] = d->probing.size;
  struct tpacket_stats st;
  socklen_t stlen = sizeof st;
  if (!p->closed && getsockopt(p->fd, SOL_PACKET, PACKET_STATISTICS, &st, &stlen) == 0)
    d->counters[C_RX_DROPPED] += st.tp_drops; /* the kernel resets them on each read */
  memcpy(out, d->counters, (len < NDPROXY_COUNTERS ? len : NDPROXY_COUNTERS) * sizeof(double));
  if (len > NDPROXY_COUNTERS) /* then native/mld.c's */
    memcpy(out + NDPROXY_COUNTERS, d->mld.counters,
           (len - NDPROXY_COUNTERS < MLD_COUNTERS ? len - NDPROXY_COUNTERS : MLD_COUNTERS) *
               sizeof(double));
  return NULL;
}

static napi_value ndproxy_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  mip6_poller *p;
  if (argc < 1 || mip6_arg_handle(env, argv[0], KIND, (void **)&p) != 0) return NULL;
  ndproxy *d = p->kind_data;
  if (!p->closed && d != NULL) mld_leave_all(&d->mld, d->linklocal, mld_send, d);
  mip6_poller_close(p); /* kind_data stays until the handle is freed: counters still read */
  return NULL;
}

void mip6_ndproxy_init(napi_env env, napi_value exports) {
  mip6_export(env, exports, "ndproxyOpen", ndproxy_open);
  mip6_export(env, exports, "ndproxyAdd", ndproxy_add);
  mip6_export(env, exports, "ndproxyDelete", ndproxy_delete);
  mip6_export(env, exports, "ndproxyCounters", ndproxy_counters);
  mip6_export(env, exports, "ndproxyProbeStart", probe_start);
  mip6_export(env, exports, "ndproxyProbeEnd", probe_end);
  mip6_export(env, exports, "ndproxyClose", ndproxy_close);
}
