/*
 * Linux TUN device (IFF_TUN | IFF_NO_PI: every read/write is one bare IP packet, after a
 * virtio-net header when the offloads are on).
 *
 * JS surface (wrapped by src/io/tun.ts; a macOS utun file will export the same names):
 *   tunOpen(name, slab, offsets, lengths, counters, maxBatch, slotSize, headroom, tailroom, cb)
 *       -> [handle, actualName]. Packets are read into slot i at i*slotSize + headroom with at
 *       most slotSize - headroom - tailroom bytes, so headers and a tag can be added in place.
 *       cb(count, offsets, lengths) is called once per batch.
 *   tunSetReading(handle, on)   start / pause delivering batches (backpressure)
 *   tunWrite(handle, buf, offsets, lengths, count) -> packets written; EAGAIN counts a drop
 *   tunClose(handle)            idempotent
 *   tunOffloads(handle) -> bits: 1 virtio-net header (IFF_VNET_HDR), 2 TUN_F_CSUM, 4 TSO4,
 *       8 TSO6, 16 USO4, 32 USO6, 64 turned off by MIP6_OFFLOAD_OFF=tun, 128 TCP (and, with
 *       USO, UDP) runs written as super-packets, 256 that stopped when the kernel refused one,
 *       512 UDP runs stopped when the kernel refused one (errno << 16 for either), 1024 UDP
 *       runs turned off by MIP6_OFFLOAD_OFF=tun-gro-udp (TCP runs go on; for benches)
 *
 * Offloads (issue #16): the device is opened with IFF_VNET_HDR and TUNSETOFFLOAD(CSUM | TSO4 |
 * TSO6 | USO4 | USO6, then without USO, then nothing, whichever the kernel accepts). The kernel
 * then hands over TCP (and UDP) super-packets of up to 64 KiB, read in one system call, and
 * leaves transport checksums to us; vnet.c cuts them into MTU-sized packets and completes the
 * checksums, so JS still gets one ordinary packet per slot. A super-packet whose pieces do not
 * all fit this batch continues in the next (mip6_poller.backlog). Malformed headers are dropped
 * and counted by reason. No read is longer than 64 KiB on Linux up to at least 6.18, BIG TCP
 * or not (tun_drain_vnet says why); reads up to VNET_MAX_LEN (a BIG TCP super-packet, IPv4
 * total length 0 or IPv6 payload length 0 with or without a jumbo option) are taken and cut
 * all the same, a longer one is dropped as rxTruncated, and rxMaxRead keeps the longest read.
 * Writes carry a zero header, except that a run of packets of one TCP
 * flow (or, with USO, one UDP flow) in a write batch goes as one super-packet (vnet_coalesce;
 * MIP6_OFFLOAD_OFF=tun-gro keeps every packet apart, tun-gro-udp only UDP datagrams); if the
 * kernel refuses one, that kind of run stops for the device.
 * MIP6_OFFLOAD_OFF=tun (or all) opens the device without IFF_VNET_HDR, as before.
 * Addresses, MTU, routes and link state are configured from TypeScript with `ip`.
 */
#include "mip6.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vnet.h"

#define TUN_KIND "tun"
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif
/* Bytes a read may put after the virtio-net header: one more than the longest super-packet
 * we take, so that a read that fills them all is known to be cut short (the kernel copies
 * what fits and says nothing: tun_put_user). */
#define READ_CAP (VNET_MAX_LEN + 1)

/* Float64Array counters, in this order (src/io/tun.ts reads the same layout). */
enum { C_RX_PACKETS, C_RX_BYTES, C_RX_BATCHES, C_RX_ERRORS, C_TX_PACKETS, C_TX_BYTES, C_TX_DROPS,
       C_TX_ERRORS,
       /* offloads: super-packets read and the packets cut from them; then drops by reason,
        * in vnet.h's order (VNET_BAD_TYPE first) */
       C_RX_GSO_PACKETS, C_RX_GSO_SEGMENTS, C_DROP_FIRST, C_DROP_LAST = C_DROP_FIRST + VNET_REASONS - 2,
       /* writes: super-packets made of runs of one TCP flow, and the packets in them */
       C_TX_GSO_PACKETS, C_TX_GSO_SEGMENTS,
       /* reads longer than READ_CAP - 1 (cut short by the kernel: dropped), and the longest
        * read so far (after the header; a gauge, not a sum) */
       C_RX_TRUNCATED, C_RX_MAX_READ, C_COUNT };
#define C_COUNT_MIN C_RX_GSO_PACKETS
#define COUNT_IF(p, idx, n)                                                                        \
  do {                                                                                             \
    if ((p)->ncounters > (size_t)(idx)) (p)->counters[idx] += (n);                                 \
  } while (0)
enum { OFF_VNET = 1, OFF_CSUM = 2, OFF_TSO4 = 4, OFF_TSO6 = 8, OFF_USO4 = 16, OFF_USO6 = 32, OFF_BY_ENV = 64,
       OFF_TX_GSO = 128, OFF_TX_GSO_REFUSED = 256, OFF_TX_USO_REFUSED = 512,
       OFF_TX_USO_BY_ENV = 1024 };

/* The run kinds tunWrite may merge (vnet_coalesce families): TCP while the kernel takes TCP
 * super-packets, UDP while it also takes UDP ones (USO accepted, never refused). */
static uint32_t write_families(uint32_t off) {
  if (!(off & OFF_TX_GSO)) return 0;
  uint32_t f = ((off & OFF_TSO4) ? 1 : 0) | ((off & OFF_TSO6) ? 2 : 0);
  if (!(off & (OFF_TX_USO_REFUSED | OFF_TX_USO_BY_ENV))) f |= ((off & OFF_USO4) ? 4 : 0) | ((off & OFF_USO6) ? 8 : 0);
  return f;
}

typedef struct {
  uint32_t offloads;
  uint8_t hdr[VNET_HDR_LEN];
  uint8_t *big;  /* READ_CAP bytes: a packet longer than a slot, made contiguous; a super-packet
                  * being cut */
  vnet_gso gso;  /* the super-packet being cut (gso.next < gso.nseg) */
} tun_data;

static void tun_free(mip6_poller *p) {
  tun_data *t = p->kind_data;
  if (!t) return;
  free(t->big);
  free(t);
  p->kind_data = NULL;
}

/* Reads with a virtio-net header: plain packets straight into their slot; super-packets
 * (and the rare packet longer than a slot) into `big`, then cut into slots.
 * How long a read can be (issue #16): the kernel hands the TUN no GSO packet of its
 * gso_max_size or more (gso_features_check segments longer ones before the driver; TCP sizes
 * its own below it), and a TUN's gso_max_size cannot be set above its tso_max_size, 65536 (the
 * driver raises it nowhere, up to at least 6.18). So a read is at most 65535 bytes after the
 * header today, a BIG TCP one (gso_max_size above 64 KiB) only on a kernel that would let the
 * TUN's limit go higher; READ_CAP covers the most any kernel builds (GSO_MAX_SIZE) and vnet.c
 * cuts such a packet too. A read that still fills READ_CAP was cut short by the kernel: it is
 * dropped and counted (rxTruncated), never cut into pieces it does not hold. */
static uint32_t tun_drain_vnet(mip6_poller *p) {
  tun_data *t = p->kind_data;
  uint32_t n = 0;
  uint32_t room = p->slot_size - p->headroom - p->tailroom;
  while (n < p->max_batch) {
    uint32_t off = n * p->slot_size + p->headroom;
    uint8_t *slot = p->slab + off;
    if (t->gso.next < t->gso.nseg) {
      uint32_t len = vnet_segment(&t->gso, slot);
      p->offsets[n] = off;
      p->lengths[n] = len;
      p->counters[C_RX_BYTES] += len;
      COUNT_IF(p, C_RX_GSO_SEGMENTS, 1);
      n++;
      continue;
    }
    /* The part of a packet beyond the slot lands after as many bytes of `big`: READ_CAP in
     * all, whatever the slot size. */
    uint32_t in_slot = room < READ_CAP ? room : READ_CAP;
    struct iovec iov[3] = {{t->hdr, VNET_HDR_LEN}, {slot, in_slot}, {t->big + in_slot, READ_CAP - in_slot}};
    ssize_t r = readv(p->fd, iov, 3);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) p->counters[C_RX_ERRORS] += 1;
      break;
    }
    if (r == 0) break;
    if (r < VNET_HDR_LEN) {
      COUNT_IF(p, C_DROP_FIRST + VNET_BAD_HEADERS - 1, 1);
      continue;
    }
    uint32_t len = (uint32_t)r - VNET_HDR_LEN;
    if (len >= READ_CAP) {
      COUNT_IF(p, C_RX_TRUNCATED, 1);
      continue;
    }
    if (p->ncounters > C_RX_MAX_READ && len > p->counters[C_RX_MAX_READ]) p->counters[C_RX_MAX_READ] = len;
    uint8_t *pkt = slot;
    if (len > in_slot) {
      memcpy(t->big, slot, in_slot);
      pkt = t->big;
    }
    int reason = vnet_prepare(t->hdr, pkt, len, room, &t->gso);
    if (reason != VNET_OK) {
      memset(&t->gso, 0, sizeof t->gso);
      COUNT_IF(p, C_DROP_FIRST + reason - 1, 1);
      continue;
    }
    if (t->gso.nseg == 0) {
      p->offsets[n] = off;
      p->lengths[n] = len;
      p->counters[C_RX_BYTES] += len;
      n++;
      continue;
    }
    /* A super-packet: cut from `big` (the pieces overwrite this slot and the next ones). */
    if (pkt == slot) {
      memcpy(t->big, slot, len);
      t->gso.pkt = t->big;
    }
    COUNT_IF(p, C_RX_GSO_PACKETS, 1);
  }
  p->backlog = t->gso.next < t->gso.nseg;
  if (n) {
    p->counters[C_RX_PACKETS] += n;
    p->counters[C_RX_BATCHES] += 1;
  }
  return n;
}

int mip6_tun_vnet(mip6_poller *p) {
  tun_data *t = p->kind_data;
  return t != NULL && (t->offloads & OFF_VNET) != 0;
}

/* Reads without a virtio-net header, one packet into each slot. A packet longer than the slot
 * (the MTU was raised after open) fills the slot and the spare byte after it: dropped and
 * counted as with the header (rxDropTooBig), not handed on cut short. */
static uint32_t tun_drain(mip6_poller *p) {
  uint32_t n = 0;
  uint32_t room = p->slot_size - p->headroom - p->tailroom;
  uint8_t spare;
  while (n < p->max_batch) {
    uint32_t off = n * p->slot_size + p->headroom;
    struct iovec iov[2] = {{p->slab + off, room}, {&spare, 1}};
    ssize_t r = readv(p->fd, iov, 2);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) p->counters[C_RX_ERRORS] += 1;
      break;
    }
    if (r == 0) break;
    if ((uint32_t)r > room) {
      COUNT_IF(p, C_DROP_FIRST + VNET_TOO_BIG - 1, 1);
      continue;
    }
    p->offsets[n] = off;
    p->lengths[n] = (uint32_t)r;
    p->counters[C_RX_BYTES] += (double)r;
    n++;
  }
  if (n) {
    p->counters[C_RX_PACKETS] += n;
    p->counters[C_RX_BATCHES] += 1;
  }
  return n;
}

static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10], result, h, nm;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 10) {
    mip6_throw_type(env, "tunOpen needs 10 arguments");
    return NULL;
  }
  char name[IFNAMSIZ] = {0};
  size_t nlen = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok) {
    mip6_throw_type(env, "name must be a string");
    return NULL;
  }
  if (nlen >= IFNAMSIZ - 1 && nlen > 0) {
    char probe[64];
    size_t full = 0;
    napi_get_value_string_utf8(env, argv[0], probe, sizeof probe, &full);
    if (full >= IFNAMSIZ) {
      mip6_throw_range(env, "interface name longer than 15 bytes");
      return NULL;
    }
  }
  void *slab, *offsets, *lengths, *counters;
  size_t slab_len, off_len, len_len, cnt_len;
  uint32_t max_batch, slot, headroom, tailroom;
  napi_ref r_slab = NULL, r_off = NULL, r_len = NULL, r_cnt = NULL;
  if (mip6_arg_u32(env, argv[5], "maxBatch", &max_batch) || mip6_arg_u32(env, argv[6], "slotSize", &slot) ||
      mip6_arg_u32(env, argv[7], "headroom", &headroom) || mip6_arg_u32(env, argv[8], "tailroom", &tailroom))
    return NULL;
  napi_valuetype cbt;
  napi_typeof(env, argv[9], &cbt);
  if (cbt != napi_function) {
    mip6_throw_type(env, "callback must be a function");
    return NULL;
  }
  if (mip6_arg_typed(env, argv[1], napi_uint8_array, "slab", &slab, &slab_len, NULL) ||
      mip6_arg_typed(env, argv[2], napi_uint32_array, "offsets", &offsets, &off_len, NULL) ||
      mip6_arg_typed(env, argv[3], napi_uint32_array, "lengths", &lengths, &len_len, NULL) ||
      mip6_arg_typed(env, argv[4], napi_float64_array, "counters", &counters, &cnt_len, NULL))
    return NULL;
  if (max_batch == 0 || (uint64_t)headroom + tailroom + 20 > slot || (uint64_t)max_batch * slot > slab_len ||
      off_len < max_batch || len_len < max_batch || cnt_len < C_COUNT_MIN) {
    mip6_throw_range(env, "slab, offsets, lengths or counters too small for maxBatch x slotSize");
    return NULL;
  }

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    mip6_throw_errno(env, errno, "open", "/dev/net/tun");
    return NULL;
  }
  tun_data *t = calloc(1, sizeof *t);
  int vnet = !mip6_offload_off("tun");
  if (t && vnet) t->big = malloc(READ_CAP);
  mip6_poller *p = calloc(1, sizeof *p);
  if (!p || !t || (vnet && !t->big)) {
    if (t) free(t->big);
    free(t);
    free(p);
    close(fd);
    mip6_throw_errno(env, ENOMEM, "calloc", NULL);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, strnlen(name, IFNAMSIZ - 1));
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    free(t->big);
    free(t);
    free(p);
    mip6_throw_errno(env, e, "ioctl(TUNSETIFF)", name[0] ? name : "kernel-chosen name");
    return NULL;
  }
  if (vnet) {
    int hsz = VNET_HDR_LEN;
    t->offloads = OFF_VNET;
    /* The most the kernel accepts: with UDP segmentation (6.2+), without, or none at all
     * (then the header still comes, always GSO_NONE without a pending checksum). */
    static const unsigned sets[] = {TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
                                    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, TUN_F_CSUM};
    if (ioctl(fd, TUNSETVNETHDRSZ, &hsz) == 0) {
      for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        if (ioctl(fd, TUNSETOFFLOAD, sets[i]) != 0) continue;
        unsigned f = sets[i];
        t->offloads |= (f & TUN_F_CSUM ? OFF_CSUM : 0) | (f & TUN_F_TSO4 ? OFF_TSO4 : 0) |
                       (f & TUN_F_TSO6 ? OFF_TSO6 : 0) | (f & TUN_F_USO4 ? OFF_USO4 : 0) |
                       (f & TUN_F_USO6 ? OFF_USO6 : 0);
        if ((f & TUN_F_TSO4) && !mip6_offload_off("tun-gro")) t->offloads |= OFF_TX_GSO;
        if (mip6_offload_off("tun-gro-udp")) t->offloads |= OFF_TX_USO_BY_ENV;
        break;
      }
    }
  } else {
    t->offloads = OFF_BY_ENV;
  }
  p->kind_data = t;
  p->free_kind = tun_free;
  p->kind = TUN_KIND;
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
  p->tailroom = tailroom;
  p->drain = vnet ? tun_drain_vnet : tun_drain;
  /* refs[0..2] = slab, offsets, lengths (passed back to the callback), then counters. */
  napi_create_reference(env, argv[1], 1, &r_slab);
  napi_create_reference(env, argv[2], 1, &r_off);
  napi_create_reference(env, argv[3], 1, &r_len);
  napi_create_reference(env, argv[4], 1, &r_cnt);
  mip6_poller_keep(p, r_slab);
  mip6_poller_keep(p, r_off);
  mip6_poller_keep(p, r_len);
  mip6_poller_keep(p, r_cnt);
  h = mip6_poller_attach(env, p, argv[9]);
  if (!h) return NULL;
  char actual[IFNAMSIZ + 1] = {0};
  memcpy(actual, ifr.ifr_name, IFNAMSIZ);
  napi_create_string_utf8(env, actual, NAPI_AUTO_LENGTH, &nm);
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, h);
  napi_set_element(env, result, 1, nm);
  return result;
}

static napi_value tun_set_reading(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *h;
  int on;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || mip6_arg_handle(env, argv[0], TUN_KIND, &h) || mip6_arg_bool(env, argv[1], "on", &on)) return NULL;
  mip6_poller_set_reading(h, on);
  return NULL;
}

/* Packets i.. of a write batch: when they start a TCP or UDP run (vnet_coalesce), writes the run as
 * one super-packet and returns how many packets it held (counted as written, or as dropped
 * on EAGAIN; after another error than EINVAL they are written one by one, each counted).
 * 0: write packet i alone (no run, or the kernel refused the super-packet with EINVAL,
 * which turns that kind of run off for the device). */
/* Returns how many packets the run consumed (0: none, write them one by one); *sent says how
 * many of those reached the kernel (0 when the queue was full and the run was dropped). */
/* Writes one packet (behind a zero virtio-net header when `hdr`: GSO_NONE, checksum
 * complete). Returns 1 when the kernel took it; else counts it as dropped (EAGAIN: the
 * queue is full) or as an error, and returns 0. */
static uint32_t write_one(mip6_poller *p, int hdr, const uint8_t *pkt, uint32_t len) {
  static const uint8_t zero_hdr[VNET_HDR_LEN];
  struct iovec iov[2] = {{(void *)zero_hdr, VNET_HDR_LEN}, {(void *)pkt, len}};
  ssize_t r;
  do r = hdr ? writev(p->fd, iov, 2) : write(p->fd, pkt, len);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN) p->counters[C_TX_DROPS] += 1;
    else p->counters[C_TX_ERRORS] += 1;
    return 0;
  }
  if (hdr) r = r >= VNET_HDR_LEN ? r - VNET_HDR_LEN : 0;
  p->counters[C_TX_BYTES] += (double)r;
  return 1;
}

static uint32_t tun_write_run(mip6_poller *p, tun_data *t, void *buf, const uint32_t *o, const uint32_t *l, uint32_t i,
                              uint32_t count, uint32_t families, uint32_t *sent) {
  *sent = 0;
  const uint8_t *pkts[VNET_COALESCE_MAX];
  uint32_t lens[VNET_COALESCE_MAX];
  uint32_t m = count - i < VNET_COALESCE_MAX ? count - i : VNET_COALESCE_MAX;
  for (uint32_t j = 0; j < m; j++) {
    pkts[j] = (uint8_t *)buf + o[i + j];
    lens[j] = l[i + j];
  }
  uint8_t head[128], vhdr[VNET_HDR_LEN];
  uint32_t hl = 0;
  uint32_t k = vnet_coalesce(pkts, lens, m, families, head, &hl, vhdr);
  if (k < 2) return 0;
  struct iovec iov[2 + VNET_COALESCE_MAX];
  iov[0].iov_base = vhdr;
  iov[0].iov_len = VNET_HDR_LEN;
  iov[1].iov_base = head;
  iov[1].iov_len = hl;
  double bytes = 0;
  for (uint32_t j = 0; j < k; j++) {
    iov[2 + j].iov_base = (uint8_t *)pkts[j] + hl;
    iov[2 + j].iov_len = lens[j] - hl;
    bytes += lens[j];
  }
  ssize_t r;
  do r = writev(p->fd, iov, (int)(2 + k));
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno == EAGAIN) {
    p->counters[C_TX_DROPS] += k; /* dropped, like single packets on a full queue */
    return k;
  }
  if (r < 0 && errno != EINVAL) {
    /* Transient (ENOMEM, EIO while the link is down...): the run's packets go one by one,
     * each counted, and the batch goes on after the run. */
    for (uint32_t j = 0; j < k; j++) *sent += write_one(p, 1, pkts[j], lens[j]);
    return k;
  }
  if (r < 0) {
    /* EINVAL: the kernel refuses this kind of super-packet. A refused UDP run stops only UDP
     * runs (USO reads may work where USO writes do not). */
    if (vhdr[1] == VNET_GSO_UDP_L4)
      t->offloads = (t->offloads & 0xffff) | OFF_TX_USO_REFUSED | ((uint32_t)errno << 16);
    else
      t->offloads = (t->offloads & ~(uint32_t)OFF_TX_GSO & 0xffff) | OFF_TX_GSO_REFUSED | ((uint32_t)errno << 16);
    return 0;
  }
  p->counters[C_TX_BYTES] += bytes;
  COUNT_IF(p, C_TX_GSO_PACKETS, 1);
  COUNT_IF(p, C_TX_GSO_SEGMENTS, k);
  *sent = k;
  return k;
}

static napi_value tun_write(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], out;
  void *h, *buf, *offsets, *lengths;
  size_t buf_len, off_len, len_len;
  uint32_t count;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5 || mip6_arg_handle(env, argv[0], TUN_KIND, &h) ||
      mip6_arg_typed(env, argv[1], napi_uint8_array, "buf", &buf, &buf_len, NULL) ||
      mip6_arg_typed(env, argv[2], napi_uint32_array, "offsets", &offsets, &off_len, NULL) ||
      mip6_arg_typed(env, argv[3], napi_uint32_array, "lengths", &lengths, &len_len, NULL) ||
      mip6_arg_u32(env, argv[4], "count", &count))
    return NULL;
  mip6_poller *p = h;
  if (count > off_len || count > len_len) {
    mip6_throw_range(env, "count exceeds offsets/lengths");
    return NULL;
  }
  const uint32_t *o = offsets, *l = lengths;
  for (uint32_t i = 0; i < count; i++) {
    if ((uint64_t)o[i] + l[i] > buf_len) {
      mip6_throw_range(env, "packet outside buf");
      return NULL;
    }
  }
  if (p->closed) {
    mip6_throw_errno(env, EBADF, "write", "TUN device is closed");
    return NULL;
  }
  uint32_t written = 0;
  tun_data *t = p->kind_data;
  int hdr = t && (t->offloads & OFF_VNET);
  uint32_t families = t ? write_families(t->offloads) : 0;
  for (uint32_t i = 0; i < count;) {
    if (families && count - i >= 2) {
      uint32_t sent;
      uint32_t k = tun_write_run(p, t, buf, o, l, i, count, families, &sent);
      if (k) {
        written += sent;
        i += k;
        continue;
      }
      families = write_families(t->offloads);
    }
    written += write_one(p, hdr, (uint8_t *)buf + o[i], l[i]);
    i++;
  }
  p->counters[C_TX_PACKETS] += written;
  napi_create_uint32(env, written, &out);
  return out;
}

static napi_value tun_offloads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  void *h;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || mip6_arg_handle(env, argv[0], TUN_KIND, &h)) return NULL;
  mip6_poller *p = h;
  tun_data *t = p->kind_data;
  napi_create_uint32(env, p->closed || !t ? 0 : t->offloads, &out);
  return out;
}

static napi_value tun_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *h;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || mip6_arg_handle(env, argv[0], TUN_KIND, &h)) return NULL;
  mip6_poller_close(h);
  return NULL;
}

void mip6_tun_init(napi_env env, napi_value exports) {
  mip6_export(env, exports, "tunOpen", tun_open);
  mip6_export(env, exports, "tunSetReading", tun_set_reading);
  mip6_export(env, exports, "tunWrite", tun_write);
  mip6_export(env, exports, "tunClose", tun_close);
  mip6_export(env, exports, "tunOffloads", tun_offloads);
  mip6_vnet_init(env, exports);
}
