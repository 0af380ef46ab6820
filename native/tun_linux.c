/*
 * Linux TUN device (IFF_TUN | IFF_NO_PI: every read/write is one bare IP packet).
 *
 * JS surface (wrapped by src/io/tun.ts; a macOS utun file will export the same names):
 *   tunOpen(name, slab, offsets, lengths, counters, maxBatch, slotSize, headroom, tailroom, cb)
 *       -> [handle, actualName]. Packets are read into slot i at i*slotSize + headroom with at
 *       most slotSize - headroom - tailroom bytes, so headers and a tag can be added in place.
 *       cb(count, offsets, lengths) is called once per batch.
 *   tunSetReading(handle, on)   start / pause delivering batches (backpressure)
 *   tunWrite(handle, buf, offsets, lengths, count) -> packets written; EAGAIN counts a drop
 *   tunClose(handle)            idempotent
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
#include <unistd.h>

#define TUN_KIND "tun"

/* Float64Array counters, in this order (src/io/tun.ts reads the same layout). */
enum { C_RX_PACKETS, C_RX_BYTES, C_RX_BATCHES, C_RX_ERRORS, C_TX_PACKETS, C_TX_BYTES, C_TX_DROPS,
       C_TX_ERRORS, C_COUNT };

static uint32_t tun_drain(mip6_poller *p) {
  uint32_t n = 0;
  uint32_t room = p->slot_size - p->headroom - p->tailroom;
  while (n < p->max_batch) {
    uint32_t off = n * p->slot_size + p->headroom;
    ssize_t r = read(p->fd, p->slab + off, room);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) p->counters[C_RX_ERRORS] += 1;
      break;
    }
    if (r == 0) break;
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
      off_len < max_batch || len_len < max_batch || cnt_len < C_COUNT) {
    mip6_throw_range(env, "slab, offsets, lengths or counters too small for maxBatch x slotSize");
    return NULL;
  }

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    mip6_throw_errno(env, errno, "open", "/dev/net/tun");
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, strnlen(name, IFNAMSIZ - 1));
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    mip6_throw_errno(env, e, "ioctl(TUNSETIFF)", name[0] ? name : "kernel-chosen name");
    return NULL;
  }

  mip6_poller *p = calloc(1, sizeof *p);
  if (!p) {
    close(fd);
    mip6_throw_errno(env, ENOMEM, "calloc", NULL);
    return NULL;
  }
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
  p->drain = tun_drain;
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
  for (uint32_t i = 0; i < count; i++) {
    ssize_t r;
    do r = write(p->fd, (uint8_t *)buf + o[i], l[i]);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EAGAIN) p->counters[C_TX_DROPS] += 1;
      else p->counters[C_TX_ERRORS] += 1;
      continue;
    }
    written++;
    p->counters[C_TX_BYTES] += (double)r;
  }
  p->counters[C_TX_PACKETS] += written;
  napi_create_uint32(env, written, &out);
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
}
