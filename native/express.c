/*
 * The express lane (issue #16): an established channel's plain data, forwarded in C.
 *
 * TypeScript decides; this file only repeats, for the packets it is sure about, what the JS
 * data path has just done for the same channel. The roles arm a channel here at the end of a JS
 * callback in which that channel's data went through every check in JS (src/io/express.ts says
 * when), and clear every armed channel at the start of each JS callback that may change what
 * those checks depend on. Between the two, a batch read from the TUN or a UDP socket goes
 * through here first: the lane takes a prefix of the batch it can finish and JS gets the rest, in
 * order, as a batch of its own (mip6.c, pump). Anything unusual stops the lane for that batch.
 *
 * The cipher: each armed channel's two keys are set once into a seal and an open context of its
 * own (then a nonce per message, like most VPNs' data channels), and replaced by a zero key when
 * the lane is emptied; the contexts are freed with the lane (OpenSSL cleanses them).
 * State shared with JS, never copied: a channel's send counter and its replay window live in the
 * keypair's slot of JS's key pool (src/crypto/session.ts, KEYPAIR_SLOT_BYTES; the keys are read
 * from there when armed) and its window bitmap in the replay pool. Both paths seal with one
 * counter and open against one window, in one thread. Each use first checks that the slot still
 * holds these keys (the local SPI and the keypair's generation there), since a wiped keypair's slot is
 * zeroed and may be reused: keys JS wiped are never used, even while a context still has them.
 *
 * IPv4 inside (an RFC 5555 IPv4 home address): the same, with plain IPv4 (no options, not a
 * fragment) of TCP, UDP or ICMP Echo, and the IPv4 home addresses armed as ::ffff:a.b.c.d.
 * Such a mapped address matches IPv4 packets only: an IPv6 packet from ::ffff:a.b.c.d (home
 * agent) or to it goes to JS (which has no binding for that IPv6 address).
 * Receive (UDP -> TUN), a datagram is taken when:
 *   a data message (type 4, kind PAYLOAD) under the armed keys' SPI, from the armed locator (its
 *   address, port, and our local address it reached), keys younger than the armed limit and
 *   counter below it, not a replay, tag verified (decrypted into a scratch buffer, so the slab
 *   is untouched when JS must see it after all), and inside an IPv6 packet (exact payload
 *   length) of TCP, UDP or ICMPv6 Echo; at a home agent from one of the armed inner sources
 *   (the selector: home addresses bound to this channel), at a mobile node to its home address.
 *   Then the window is updated and the packet written to the TUN. A datagram under armed keys
 *   whose tag fails is dropped and counted (the lane's bad-tag count, per channel).
 * Send (TUN -> UDP), a packet is taken when: IPv6 (exact payload length) of UDP, ICMPv6 Echo or
 *   TCP other than a SYN (JS clamps their MSS), not multicast, to an armed destination (a home
 *   agent: a member's home address; a mobile node: any, through its home agent's channel), no
 *   larger than the armed path allows, keys younger than the armed limit and the counter below
 *   it. Sealed in place (the TUN slab has room for header and tag) and sent with sendmsg from
 *   the armed local address.
 * A send, seal or TUN write that fails loses that packet (counted, as JS would count it) and
 * suspends the lane until JS clears it: JS then meets the error itself (an EMSGSIZE becomes an
 * MTU report, a gone source address a fallback). An MTU report JS has not taken yet (an ICMP
 * error about the path) sends every packet to JS too.
 * The TUN and the UDP sockets stay the pollers' (mip6.c): this file holds references to their
 * handles and never uses one that has been closed.
 *
 *   expressOpen(mode, tun, udp4|null, udp6|null, capacity, homeAddress16|null) -> handle
 *       mode 1 = home agent, 2 = mobile node (homeAddress: what the receive side delivers to).
 *   expressArm(handle, spi, remoteSpi, keyChunk, keyBase, replayChunk, replayBase, replayWords,
 *              family, peer16, port, local16|null, rx, rxForMs, rxLimit, sources|null,
 *              tx, txForMs, txLimit, maxInner, destinations|null) -> slot index, or -1 when full
 *       The channel of local SPI `spi`; rx / tx (0/1) turn each direction on (a call with 0
 *       leaves that direction as it was, unless the locator changed: then it is off).
 *       sources: a home agent's inner sources (home addresses, IPv4 ones as ::ffff:a.b.c.d); a
 *       mobile node's IPv4 home address (its IPv6 one was given to expressOpen).
 *       destinations: a home agent's members' home addresses (IPv4 mapped the same way).
 *   expressClear(handle, out Float64Array) -> channels reported
 *       Forgets every armed channel; for each that did something since it was armed, 10
 *       numbers: spi, rxPackets, rxBytes, txPackets, txBytes, ms since last receive (-1: none),
 *       ms since last send (-1), bad tags, send errors, TUN write errors.
 *   expressHarvest(handle, out Float64Array) -> channels reported
 *       The same report, the channels staying armed (their numbers start again from zero).
 *   expressCounters(handle, out Float64Array)   lane totals (X_* below)
 *   expressClose(handle)
 */
#define _GNU_SOURCE
#include "mip6.h"

#include <openssl/evp.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vnet.h"

#define X_KIND "express"
#define HDR 16
#define TAG 16
#define IP6 40
#define IP4 20
#define KP_BYTES 88
#define KP_COUNTER_OFF 64
#define KP_LAST_OFF 72
#define KP_SPI_OFF 80
#define KP_LIVE_OFF 84
#define MAX_SOURCES 4
#define MAX_DESTS 4
#define KIND_PAYLOAD 0 /* DataKind.PAYLOAD (src/crypto/aead.ts) */
#define REPORT_LEN 10
#define SCRATCH (VNET_HDR_LEN + 65536)
/* Larger batches go to JS: a train of one flow (a TCP super-packet cut by vnet.c, a UDP GRO
 * read) leaves faster as JS's segmented send or coalesced TUN write than one call each here. */
#define X_MAX_BATCH 8

/* Lane totals (expressCounters): taken, handed to JS at the first packet it could not take,
 * dropped (bad tag), write / send errors, batches that ran through the lane. */
enum { X_RX_TAKEN, X_RX_TO_JS, X_RX_BAD_TAG, X_RX_TUN_ERRORS, X_TX_TAKEN, X_TX_TO_JS, X_TX_SEND_ERRORS,
       X_ARMED, X_CLEARS, X_COUNT };

typedef struct {
  uint32_t spi, remote_spi;
  uint32_t gen;     /* the keypair's generation in its slot when armed (KP_LIVE_OFF) */
  uint8_t *kp;      /* the keypair's slot in JS's key pool */
  uint32_t *window; /* its replay bitmap in JS's replay pool */
  uint32_t wmask;   /* words - 1 */
  int family;       /* of the locator */
  uint8_t peer[16], local[16];
  uint16_t port;
  int has_local;
  int rx, tx;
  uint64_t rx_until, tx_until; /* ms, this file's clock */
  double rx_limit, tx_limit;   /* counters must stay below */
  uint32_t max_inner;
  uint8_t src[MAX_SOURCES][16];
  uint32_t nsrc;
  /* since armed */
  double rx_packets, rx_bytes, tx_packets, tx_bytes, bad_tag, tx_errors, tun_errors;
  uint64_t last_rx, last_tx;
} xchan;

typedef struct {
  uint8_t addr[16];
  int32_t chan; /* -1: free */
} xdest;

typedef struct {
  int mode;
  napi_env env;
  mip6_poller *tun, *udp4, *udp6;
  napi_ref refs[3];
  int closed;
  xchan *chans;
  uint32_t cap, used;
  int32_t *by_spi; /* open addressing: chan index or -1; 2 * cap slots (a power of two) */
  uint32_t spi_mask;
  xdest *dests; /* open addressing by address; 2 * MAX_DESTS * cap slots */
  uint32_t dest_mask;
  int32_t mn_chan; /* mobile node: the home agent's channel, or -1 */
  uint8_t home[16];
  int has_home;
  int suspended; /* a send or TUN write failed: nothing more is taken until JS clears the lane */
  uint8_t *scratch;
  /* Per channel slot: a seal and an open context, keyed when armed, scrubbed when emptied. */
  EVP_CIPHER_CTX **sctx, **octx;
  double counters[X_COUNT];
} express;

static void set_first(express *x, uint32_t n);

static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000u;
}

static uint32_t rd32be(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static double rd_counter(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return (double)v;
}

static uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352d;
  x ^= x >> 15;
  x *= 0x846ca68b;
  x ^= x >> 16;
  return x;
}

static uint32_t hash_addr(const uint8_t *a) {
  uint32_t h = 0;
  for (int i = 0; i < 16; i += 4) h = hash32(h ^ rd32be(a + i));
  return h;
}

/* The keypair's slot still holds the keys this channel was armed with: its SPI and the
 * keypair's generation (never 0; a wiped slot is zeroed, and a keypair that takes the slot
 * later has another generation even with the same SPI). */
static int keys_live(const xchan *c) {
  uint32_t spi, gen;
  memcpy(&spi, c->kp + KP_SPI_OFF, 4);
  memcpy(&gen, c->kp + KP_LIVE_OFF, 4);
  return gen != 0 && gen == c->gen && spi == c->spi;
}

static double *counter_of(const xchan *c) {
  return (double *)(void *)(c->kp + KP_COUNTER_OFF);
}

static double *last_of(const xchan *c) {
  return (double *)(void *)(c->kp + KP_LAST_OFF);
}

/* The replay check of src/crypto/replay-window.ts (RFC 6479), on the shared window. */
static int window_ok(const xchan *c, double ctr) {
  double last = *last_of(c);
  double size = (double)c->wmask * 32;
  if (ctr > last) return 1;
  if (ctr + size <= last) return 0;
  uint64_t v = (uint64_t)ctr;
  return (c->window[(v / 32) & c->wmask] & (1u << (v % 32))) == 0;
}

static void window_update(xchan *c, double ctr) {
  double *lastp = last_of(c);
  double last = *lastp;
  uint64_t v = (uint64_t)ctr;
  int64_t block = (int64_t)(v / 32);
  if (ctr > last) {
    int64_t last_block = last < 0 ? -1 : (int64_t)((uint64_t)last / 32);
    int64_t diff = block - last_block;
    if (diff > (int64_t)c->wmask + 1) diff = (int64_t)c->wmask + 1;
    for (int64_t i = 1; i <= diff; i++) c->window[(uint64_t)(last_block + i) & c->wmask] = 0;
    *lastp = ctr;
  }
  c->window[(uint64_t)block & c->wmask] |= 1u << (v % 32);
}

static xchan *chan_by_spi(express *x, uint32_t spi) {
  for (uint32_t i = hash32(spi) & x->spi_mask, n = 0; n <= x->spi_mask; i = (i + 1) & x->spi_mask, n++) {
    int32_t k = x->by_spi[i];
    if (k < 0) return NULL;
    if (x->chans[k].spi == spi) return &x->chans[k];
  }
  return NULL;
}

static xchan *chan_by_dest(express *x, const uint8_t *addr) {
  if (x->mode == 2) return x->mn_chan >= 0 ? &x->chans[x->mn_chan] : NULL;
  for (uint32_t i = hash_addr(addr) & x->dest_mask, n = 0; n <= x->dest_mask; i = (i + 1) & x->dest_mask, n++) {
    xdest *d = &x->dests[i];
    if (d->chan < 0) return NULL;
    if (memcmp(d->addr, addr, 16) == 0) return &x->chans[d->chan];
  }
  return NULL;
}

/* Plain data the lane may carry: IPv6 with an exact payload length, TCP (a SYN only when
 * `syn_ok`), UDP or ICMPv6 Echo, to a unicast address. */
static int plain_ipv6(const uint8_t *pkt, uint32_t len, int syn_ok) {
  if (len < IP6 || (pkt[0] >> 4) != 6) return 0;
  if ((uint32_t)((pkt[4] << 8) | pkt[5]) + IP6 != len) return 0;
  if (pkt[24] == 0xff) return 0;
  switch (pkt[6]) {
  case 6:
    return len >= IP6 + 20 && (syn_ok || (pkt[IP6 + 13] & 0x02) == 0);
  case 17:
    return len >= IP6 + 8;
  case 58:
    return len >= IP6 + 8 && (pkt[IP6] == 128 || pkt[IP6] == 129);
  default:
    return 0;
  }
}

/* Plain IPv4 data (an RFC 5555 IPv4 home address): no options, exact total length, not a
 * fragment, TCP (a SYN only when `syn_ok`), UDP or ICMP Echo, to a unicast address. */
static int plain_ipv4(const uint8_t *pkt, uint32_t len, int syn_ok) {
  if (len < 20 || pkt[0] != 0x45) return 0;
  if ((uint32_t)((pkt[2] << 8) | pkt[3]) != len) return 0;
  if ((((pkt[6] << 8) | pkt[7]) & 0x3fff) != 0) return 0; /* MF or an offset: a fragment */
  if (pkt[16] >= 224) return 0;                           /* multicast, reserved, broadcast */
  switch (pkt[9]) {
  case 6:
    return len >= 40 && (syn_ok || (pkt[20 + 13] & 0x02) == 0);
  case 17:
    return len >= 28;
  case 1:
    return len >= 28 && (pkt[20] == 8 || pkt[20] == 0);
  default:
    return 0;
  }
}

/* An IPv4 address as the 16-byte slot the tables hold (IPv4-mapped, ::ffff:a.b.c.d). */
static void mapped(const uint8_t *a4, uint8_t out[16]) {
  memset(out, 0, 10);
  out[10] = out[11] = 0xff;
  memcpy(out + 12, a4, 4);
}

/* An IPv4-mapped address (::ffff:a.b.c.d): how the tables hold IPv4 home addresses, never an
 * IPv6 packet's own address (JS finds no binding for it). */
static int is_mapped(const uint8_t *a16) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(a16, prefix, 12) == 0;
}

static int in_list(const xchan *c, const uint8_t *a16) {
  for (uint32_t i = 0; i < c->nsrc; i++)
    if (memcmp(a16, c->src[i], 16) == 0) return 1;
  return 0;
}

/* ---- receive: UDP -> TUN ---------------------------------------------------------------- */

/* 1 taken (forwarded or dropped for a bad tag), 0 for JS. */
static int rx_one(express *x, mip6_poller *p, uint32_t k, uint64_t now) {
  const uint8_t *msg = p->slab + p->offsets[k];
  uint32_t len = p->lengths[k];
  /* The scratch holds any inner packet a datagram can carry (<= 65535 bytes): checked anyway.
   * The smallest inner packet is an IPv4 header (plain_ipv6 / plain_ipv4 check the rest). */
  if (len < HDR + IP4 + TAG || len > HDR + 65535 + TAG || msg[0] != 4 || msg[1] != KIND_PAYLOAD || msg[2] ||
      msg[3])
    return 0;
  xchan *c = chan_by_spi(x, rd32be(msg + 4));
  if (c == NULL || !c->rx || !keys_live(c) || now >= c->rx_until) return 0;
  const uint8_t *from, *local;
  uint16_t port;
  mip6_udp_peer(p, k, &from, &port, &local);
  int alen = c->family == 4 ? 4 : 16;
  if (mip6_udp_family(p) != c->family || port != c->port || memcmp(from, c->peer, alen) != 0) return 0;
  if (c->has_local && memcmp(local, c->local, alen) != 0) return 0;
  double ctr = rd_counter(msg + 8);
  if (ctr >= c->rx_limit || !window_ok(c, ctr)) return 0;
  uint8_t *inner = x->scratch + VNET_HDR_LEN;
  uint32_t n = len - HDR - TAG;
  int opened = mip6_aead_open_ctx(x->octx[c - x->chans], msg, len, inner);
  if (opened < 0) {
    /* OpenSSL failed on its own (not the tag): JS opens this one and the next ones. */
    x->suspended = 1;
    set_first(x, 0);
    return 0;
  }
  if (opened == 0) {
    c->bad_tag += 1;
    x->counters[X_RX_BAD_TAG] += 1;
    return 1;
  }
  /* The selector: at a home agent the inner source is one of the armed home addresses (an
   * IPv4 one as ::ffff:a.b.c.d); at a mobile node the destination is its home address, or the
   * IPv4 home address armed. */
  int ok = 0;
  if (n >= 1 && (inner[0] >> 4) == 6 && plain_ipv6(inner, n, 1)) {
    ok = x->mode == 1 ? !is_mapped(inner + 8) && in_list(c, inner + 8)
                      : x->has_home && memcmp(inner + 24, x->home, 16) == 0;
  } else if (n >= 1 && (inner[0] >> 4) == 4 && plain_ipv4(inner, n, 1)) {
    uint8_t a[16];
    mapped(inner + (x->mode == 1 ? 12 : 16), a);
    ok = in_list(c, a);
  }
  if (!ok) {
    memset(inner, 0, n); /* JS opens it again from the untouched slab */
    return 0;
  }
  window_update(c, ctr);
  c->rx_packets += 1;
  c->rx_bytes += n;
  c->last_rx = now;
  mip6_poller *t = x->tun;
  ssize_t r = -1;
  if (t != NULL && !t->closed && t->fd >= 0) {
    int vnet = mip6_tun_vnet(t);
    uint8_t *out = vnet ? x->scratch : inner;
    if (vnet) memset(x->scratch, 0, VNET_HDR_LEN);
    do r = write(t->fd, out, n + (vnet ? VNET_HDR_LEN : 0));
    while (r < 0 && errno == EINTR);
  }
  if (r < 0) {
    /* The packet is counted lost, as JS's write would count it; JS takes the next ones. */
    x->counters[X_RX_TUN_ERRORS] += 1;
    c->tun_errors += 1;
    x->suspended = 1;
    set_first(x, 0);
  }
  x->counters[X_RX_TAKEN] += 1;
  return 1;
}

static uint32_t express_rx(mip6_poller *p, uint32_t n, void *data) {
  express *x = data;
  if (x->closed || x->used == 0 || x->suspended || n > X_MAX_BATCH) return 0;
  uint64_t now = now_ms();
  uint32_t k = 0;
  while (k < n && rx_one(x, p, k, now)) k++;
  if (k < n) x->counters[X_RX_TO_JS] += 1;
  return k;
}

/* ---- send: TUN -> UDP ------------------------------------------------------------------- */

static mip6_poller *socket_of(express *x, const xchan *c) {
  mip6_poller *u = c->family == 4 ? x->udp4 : x->udp6;
  return u == NULL || u->closed || u->fd < 0 ? NULL : u;
}

/* Through udp.c's send (its retry after a pending ICMP error, source fallback, MTU report on
 * EMSGSIZE and counters), one datagram. */
static int send_one(express *x, xchan *c, uint8_t *msg, uint32_t mlen) {
  mip6_poller *u = socket_of(x, c);
  if (u == NULL) return 0;
  return mip6_udp_send1(u, msg, mlen, c->peer, c->port, c->has_local ? c->local : NULL) == 1;
}

/* 1 taken (sent, or sealed and refused by the socket: counted), 0 for JS. */
static int tx_one(express *x, mip6_poller *p, uint32_t k, uint64_t now) {
  uint8_t *pkt = p->slab + p->offsets[k];
  uint32_t len = p->lengths[k];
  xchan *c;
  if (len >= 1 && (pkt[0] >> 4) == 6 && plain_ipv6(pkt, len, 0)) {
    /* An IPv6 packet to ::ffff:a.b.c.d is not for a member's IPv4 home address (the tables'
     * form of it): JS finds no binding for it. */
    if (is_mapped(pkt + 24)) return 0;
    c = chan_by_dest(x, pkt + 24);
  } else if (len >= 1 && (pkt[0] >> 4) == 4 && plain_ipv4(pkt, len, 0)) {
    uint8_t a[16];
    mapped(pkt + 16, a);
    c = chan_by_dest(x, a);
  } else {
    return 0;
  }
  if (c == NULL || !c->tx || !keys_live(c) || now >= c->tx_until || len > c->max_inner) return 0;
  /* An ICMP error or refused send about the path waits for JS (the path MTU may have shrunk). */
  mip6_poller *u = socket_of(x, c);
  if (u == NULL || mip6_udp_mtu_reports(u) > 0) return 0;
  double *ctrp = counter_of(c);
  double ctr = *ctrp;
  if (!(ctr + 1 < c->tx_limit)) return 0;
  uint8_t *msg = pkt - HDR;
  uint64_t v = (uint64_t)ctr;
  msg[0] = 4;
  msg[1] = KIND_PAYLOAD;
  msg[2] = msg[3] = 0;
  msg[4] = (uint8_t)(c->remote_spi >> 24);
  msg[5] = (uint8_t)(c->remote_spi >> 16);
  msg[6] = (uint8_t)(c->remote_spi >> 8);
  msg[7] = (uint8_t)c->remote_spi;
  for (int i = 0; i < 8; i++) msg[8 + i] = (uint8_t)(v >> (8 * i));
  *ctrp = ctr + 1; /* the counter is spent whatever happens next */
  if (!mip6_aead_seal_ctx(x->sctx[c - x->chans], msg, len) || !send_one(x, c, msg, len + HDR + TAG)) {
    /* Lost and counted, as JS's send would count it ('udp-send'); JS sends the next ones and
     * learns why (an EMSGSIZE becomes an MTU report there, a gone source falls back). */
    c->tx_errors += 1;
    x->counters[X_TX_SEND_ERRORS] += 1;
    x->suspended = 1;
    set_first(x, 0);
  } else {
    c->tx_packets += 1;
    c->tx_bytes += len;
    c->last_tx = now;
  }
  x->counters[X_TX_TAKEN] += 1;
  return 1;
}

static uint32_t express_tx(mip6_poller *p, uint32_t n, void *data) {
  express *x = data;
  if (x->closed || x->used == 0 || x->suspended || n > X_MAX_BATCH || p->headroom < HDR || p->tailroom < TAG)
    return 0;
  uint64_t now = now_ms();
  uint32_t k = 0;
  while (k < n && tx_one(x, p, k, now)) k++;
  if (k < n) x->counters[X_TX_TO_JS] += 1;
  return k;
}

/* ---- JS surface ---------------------------------------------------------------------------- */

/* The TUN reads one packet first while the lane carries something (mip6.h, express_first): a
 * TUN read returns one packet, so a batch costs a read that finds the queue empty, which then
 * comes after the lone packet is out. Not the sockets: recvmmsg returns what is queued without
 * such a read. */
static void set_first(express *x, uint32_t n) {
  if (x->tun && x->tun->express_data == x) x->tun->express_first = n;
}

static void forget_all(express *x) {
  /* The keys leave the contexts (they stay allocated for the next arming). */
  for (uint32_t i = 0; i < x->used; i++) {
    mip6_aead_ctx_scrub(x->sctx[i], 1);
    mip6_aead_ctx_scrub(x->octx[i], 0);
  }
  for (uint32_t i = 0; i <= x->spi_mask; i++) x->by_spi[i] = -1;
  for (uint32_t i = 0; i <= x->dest_mask; i++) x->dests[i].chan = -1;
  memset(x->chans, 0, sizeof *x->chans * x->cap);
  x->used = 0;
  x->mn_chan = -1;
  x->suspended = 0;
  set_first(x, 0);
}

/* A poller is being freed (node's teardown may free it before this lane): forget it. */
static void unlink_poller(void *data, mip6_poller *p) {
  express *x = data;
  if (x->tun == p) x->tun = NULL;
  if (x->udp4 == p) x->udp4 = NULL;
  if (x->udp6 == p) x->udp6 = NULL;
}

static void detach(express *x) {
  if (x->closed) return;
  x->closed = 1;
  mip6_poller *ps[3] = {x->tun, x->udp4, x->udp6};
  for (int i = 0; i < 3; i++) {
    if (ps[i] && ps[i]->express_data == x) {
      ps[i]->express = NULL;
      ps[i]->express_data = NULL;
      ps[i]->express_unlink = NULL;
      ps[i]->express_first = 0;
    }
  }
  for (int i = 0; i < 3; i++) {
    if (x->refs[i]) napi_delete_reference(x->env, x->refs[i]);
    x->refs[i] = NULL;
  }
  x->tun = x->udp4 = x->udp6 = NULL;
  if (x->scratch) memset(x->scratch, 0, SCRATCH);
}

/* The handle starts with its kind, as the pollers' do, so a wrong external is refused. */
typedef struct {
  const char *kind;
  express x;
} express_box;

static void express_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  express_box *box = data;
  express *x = &box->x;
  detach(x);
  free(x->scratch);
  free(x->chans);
  free(x->by_spi);
  free(x->dests);
  for (uint32_t i = 0; x->sctx && i < x->cap; i++) EVP_CIPHER_CTX_free(x->sctx[i]);
  for (uint32_t i = 0; x->octx && i < x->cap; i++) EVP_CIPHER_CTX_free(x->octx[i]);
  free(x->sctx);
  free(x->octx);
  free(box);
}

static int arg_express(napi_env env, napi_value v, express **out) {
  napi_valuetype t;
  void *data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, &data) != napi_ok || data == NULL ||
      strcmp(*(const char **)data, X_KIND) != 0) {
    mip6_throw_type(env, "not an express handle");
    return -1;
  }
  *out = &((express_box *)data)->x;
  return 0;
}

static int is_null(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) != napi_ok || t == napi_null || t == napi_undefined;
}

static int arg_double(napi_env env, napi_value v, const char *what, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok || *out != *out) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    mip6_throw_type(env, msg);
    return -1;
  }
  return 0;
}

static napi_value express_open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], handle;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) {
    mip6_throw_type(env, "expressOpen needs 6 arguments");
    return NULL;
  }
  uint32_t mode, cap;
  if (mip6_arg_u32(env, argv[0], "mode", &mode) || mip6_arg_u32(env, argv[4], "capacity", &cap)) return NULL;
  if ((mode != 1 && mode != 2) || cap == 0 || cap > 65536) {
    mip6_throw_range(env, "mode must be 1 or 2 and capacity 1 .. 65536");
    return NULL;
  }
  mip6_poller *ps[3] = {NULL, NULL, NULL};
  for (int i = 0; i < 3; i++) {
    if (i > 0 && is_null(env, argv[1 + i])) continue;
    void *h;
    if (mip6_arg_handle(env, argv[1 + i], i == 0 ? "tun" : "udp", &h)) return NULL;
    ps[i] = h;
    if (ps[i]->express != NULL) {
      mip6_throw_range(env, "that TUN or socket has an express lane already");
      return NULL;
    }
  }
  uint8_t *home = NULL;
  if (!is_null(env, argv[5])) {
    void *a;
    size_t alen;
    if (mip6_arg_typed(env, argv[5], napi_uint8_array, "homeAddress", &a, &alen, NULL)) return NULL;
    if (alen != 16) {
      mip6_throw_range(env, "homeAddress must be 16 bytes");
      return NULL;
    }
    home = a;
  }
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < i; j++)
      if (ps[i] != NULL && ps[i] == ps[j]) {
        mip6_throw_range(env, "the TUN and the sockets must be different handles");
        return NULL;
      }
  express_box *box = calloc(1, sizeof *box);
  if (box == NULL) {
    mip6_throw_errno(env, ENOMEM, "calloc", NULL);
    return NULL;
  }
  box->kind = X_KIND;
  express *x = &box->x;
  x->mode = (int)mode;
  x->env = env;
  x->cap = cap;
  uint32_t spi_slots = 1, dest_slots = 1;
  while (spi_slots < 2 * cap) spi_slots <<= 1;
  while (dest_slots < 2 * MAX_DESTS * cap) dest_slots <<= 1;
  x->chans = calloc(cap, sizeof *x->chans);
  x->by_spi = malloc(spi_slots * sizeof *x->by_spi);
  x->dests = malloc(dest_slots * sizeof *x->dests);
  x->scratch = calloc(1, SCRATCH);
  x->sctx = calloc(cap, sizeof *x->sctx);
  x->octx = calloc(cap, sizeof *x->octx);
  x->spi_mask = spi_slots - 1;
  x->dest_mask = dest_slots - 1;
  if (!x->chans || !x->by_spi || !x->dests || !x->scratch || !x->sctx || !x->octx) {
    free(x->chans);
    free(x->by_spi);
    free(x->dests);
    free(x->scratch);
    free(x->sctx);
    free(x->octx);
    free(box);
    mip6_throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  forget_all(x);
  if (home) {
    memcpy(x->home, home, 16);
    x->has_home = 1;
  }
  if (napi_create_external(env, box, express_finalize, NULL, &handle) != napi_ok) {
    express_finalize(env, box, NULL);
    napi_throw_error(env, "ERR_NAPI", "internal N-API failure while creating a handle");
    return NULL;
  }
  x->tun = ps[0];
  x->udp4 = ps[1];
  x->udp6 = ps[2];
  for (int i = 0; i < 3; i++) {
    if (ps[i] == NULL) continue;
    napi_create_reference(env, argv[1 + i], 1, &x->refs[i]);
    ps[i]->express = i == 0 ? express_tx : express_rx;
    ps[i]->express_data = x;
    ps[i]->express_unlink = unlink_poller;
  }
  return handle;
}

static int addr_arg(napi_env env, napi_value v, const char *what, uint8_t **out, size_t *n) {
  void *a;
  size_t alen;
  if (mip6_arg_typed(env, v, napi_uint8_array, what, &a, &alen, NULL)) return -1;
  if (alen % 16 != 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must hold 16-byte addresses", what);
    mip6_throw_range(env, msg);
    return -1;
  }
  *out = a;
  *n = alen / 16;
  return 0;
}

static napi_value express_arm(napi_env env, napi_callback_info info) {
  size_t argc = 21;
  napi_value argv[21], result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 21) {
    mip6_throw_type(env, "expressArm needs 21 arguments");
    return NULL;
  }
  express *x;
  if (arg_express(env, argv[0], &x)) return NULL;
  uint32_t spi, rspi, kbase, rbase, rwords, family, port, rx, tx, max_inner;
  double rx_for, rx_limit, tx_for, tx_limit;
  void *kchunk, *rchunk;
  size_t klen, rlen;
  if (mip6_arg_u32(env, argv[1], "spi", &spi) || mip6_arg_u32(env, argv[2], "remoteSpi", &rspi) ||
      mip6_arg_typed(env, argv[3], napi_uint8_array, "keyChunk", &kchunk, &klen, NULL) ||
      mip6_arg_u32(env, argv[4], "keyBase", &kbase) ||
      mip6_arg_typed(env, argv[5], napi_uint32_array, "replayChunk", &rchunk, &rlen, NULL) ||
      mip6_arg_u32(env, argv[6], "replayBase", &rbase) || mip6_arg_u32(env, argv[7], "replayWords", &rwords) ||
      mip6_arg_u32(env, argv[8], "family", &family) || mip6_arg_u32(env, argv[10], "port", &port) ||
      mip6_arg_u32(env, argv[12], "rx", &rx) || arg_double(env, argv[13], "rxForMs", &rx_for) ||
      arg_double(env, argv[14], "rxLimit", &rx_limit) || mip6_arg_u32(env, argv[16], "tx", &tx) ||
      arg_double(env, argv[17], "txForMs", &tx_for) || arg_double(env, argv[18], "txLimit", &tx_limit) ||
      mip6_arg_u32(env, argv[19], "maxInner", &max_inner))
    return NULL;
  /* The key chunk and the replay chunk are JS's pools' (src/util/slot-pool.ts): never freed nor
   * moved, so no reference is kept; a wiped keypair's slot is zeroed (checked per use). */
  if ((uint64_t)kbase + KP_BYTES > klen || kbase % 8 != 0 || ((uintptr_t)kchunk % 8) != 0 || rwords < 2 ||
      (rwords & (rwords - 1)) != 0 || (uint64_t)rbase + rwords > rlen || (family != 4 && family != 6) ||
      port > 65535 || spi == 0) {
    mip6_throw_range(env, "keyBase, replay window, family, port or spi out of range");
    return NULL;
  }
  /* Times beyond a day and counters beyond 2^53 (where a double stops counting by one) are
   * clamped: the lane then leaves the message to JS earlier, never later. */
  if (!(rx_for >= 0)) rx_for = 0;
  if (!(tx_for >= 0)) tx_for = 0;
  if (rx_for > 86400000.0) rx_for = 86400000.0;
  if (tx_for > 86400000.0) tx_for = 86400000.0;
  if (!(rx_limit >= 0)) rx_limit = 0;
  if (!(tx_limit >= 0)) tx_limit = 0;
  if (rx_limit > 9007199254740992.0) rx_limit = 9007199254740992.0;
  if (tx_limit > 9007199254740992.0) tx_limit = 9007199254740992.0;
  uint8_t *peer, *local = NULL, *srcs = NULL, *dsts = NULL;
  size_t npeer, nlocal = 0, nsrc = 0, ndst = 0;
  if (addr_arg(env, argv[9], "peer", &peer, &npeer) ||
      (!is_null(env, argv[11]) && addr_arg(env, argv[11], "local", &local, &nlocal)) ||
      (!is_null(env, argv[15]) && addr_arg(env, argv[15], "sources", &srcs, &nsrc)) ||
      (!is_null(env, argv[20]) && addr_arg(env, argv[20], "destinations", &dsts, &ndst)))
    return NULL;
  if (npeer != 1 || nlocal > 1 || nsrc > MAX_SOURCES || ndst > MAX_DESTS) {
    mip6_throw_range(env, "one peer, at most one local address, 4 sources and 4 destinations");
    return NULL;
  }
  int32_t idx = -1;
  if (x->closed) idx = -1;
  else {
    xchan *c = chan_by_spi(x, spi);
    if (c == NULL && x->used < x->cap) {
      uint32_t k = x->used;
      if (x->sctx[k] == NULL) x->sctx[k] = mip6_aead_ctx_new();
      if (x->octx[k] == NULL) x->octx[k] = mip6_aead_ctx_new();
      if (x->sctx[k] == NULL || x->octx[k] == NULL) {
        napi_throw_error(env, "ERR_CRYPTO", "ChaCha20-Poly1305 is not available in this node's OpenSSL");
        return NULL;
      }
      idx = (int32_t)x->used++;
      c = &x->chans[idx];
      memset(c, 0, sizeof *c);
      c->spi = spi;
      for (uint32_t i = hash32(spi) & x->spi_mask;; i = (i + 1) & x->spi_mask) {
        if (x->by_spi[i] < 0) {
          x->by_spi[i] = idx;
          break;
        }
      }
      x->counters[X_ARMED] += 1;
    } else if (c != NULL) {
      idx = (int32_t)(c - x->chans);
    }
    if (c != NULL) {
      uint8_t *kp = (uint8_t *)kchunk + kbase;
      int alen = family == 4 ? 4 : 16;
      int same = c->kp == kp && c->family == (int)family && c->port == port && memcmp(c->peer, peer, alen) == 0 &&
                 c->has_local == (local != NULL) && (local == NULL || memcmp(c->local, local, alen) == 0);
      if (!same) c->rx = c->tx = 0;
      c->remote_spi = rspi;
      c->kp = kp;
      c->window = (uint32_t *)rchunk + rbase;
      c->wmask = rwords - 1;
      c->family = (int)family;
      memset(c->peer, 0, 16);
      memcpy(c->peer, peer, alen);
      c->port = (uint16_t)port;
      c->has_local = local != NULL;
      memset(c->local, 0, 16);
      if (local) memcpy(c->local, local, alen);
      uint32_t gen, slot_spi;
      memcpy(&gen, kp + KP_LIVE_OFF, 4);
      memcpy(&slot_spi, kp + KP_SPI_OFF, 4);
      c->gen = gen;
      if (gen == 0 || slot_spi != spi) rx = tx = 0; /* not these keys (any more): nothing armed */
      /* The keys into this channel's contexts (the same slot's keys again when re-armed). A
       * context OpenSSL refuses to key leaves the channel unarmed both ways. */
      if ((rx || tx) &&
          (!mip6_aead_ctx_key(x->sctx[idx], kp, 1) || !mip6_aead_ctx_key(x->octx[idx], kp + 32, 0))) {
        c->rx = c->tx = 0;
        rx = tx = 0;
      }
      uint64_t now = now_ms();
      if (rx) {
        c->rx = 1;
        c->rx_until = now + (uint64_t)rx_for;
        c->rx_limit = rx_limit;
        c->nsrc = (uint32_t)nsrc;
        if (nsrc) memcpy(c->src, srcs, nsrc * 16);
      }
      if (tx) {
        c->tx = 1;
        c->tx_until = now + (uint64_t)tx_for;
        c->tx_limit = tx_limit;
        c->max_inner = max_inner;
        if (x->mode == 2) x->mn_chan = idx;
        for (size_t d = 0; d < ndst; d++) {
          const uint8_t *a = dsts + d * 16;
          for (uint32_t i = hash_addr(a) & x->dest_mask, n = 0; n <= x->dest_mask; i = (i + 1) & x->dest_mask, n++) {
            xdest *e = &x->dests[i];
            if (e->chan < 0 || memcmp(e->addr, a, 16) == 0) {
              memcpy(e->addr, a, 16);
              e->chan = idx;
              break;
            }
          }
        }
      }
    }
  }
  /* The TUN's one-packet first read pays only when the lane may send what it reads. */
  if (idx >= 0 && !x->suspended && x->chans[idx].tx) set_first(x, 1);
  napi_create_int32(env, idx, &result);
  return result;
}

/* Reports what each channel carried since it was armed (or last harvested) into out and zeroes
 * those numbers; returns the channels reported. */
static uint32_t report(express *x, double *o, size_t olen) {
  uint32_t reported = 0;
  uint64_t now = now_ms();
  for (uint32_t i = 0; i < x->used; i++) {
    xchan *c = &x->chans[i];
    if (c->rx_packets == 0 && c->tx_packets == 0 && c->bad_tag == 0 && c->tx_errors == 0 && c->tun_errors == 0)
      continue;
    if ((size_t)(reported + 1) * REPORT_LEN > olen) break;
    double *r = o + (size_t)reported * REPORT_LEN;
    r[0] = c->spi;
    r[1] = c->rx_packets;
    r[2] = c->rx_bytes;
    r[3] = c->tx_packets;
    r[4] = c->tx_bytes;
    r[5] = c->rx_packets > 0 ? (double)(now - c->last_rx) : -1;
    r[6] = c->tx_packets > 0 ? (double)(now - c->last_tx) : -1;
    r[7] = c->bad_tag;
    r[8] = c->tx_errors;
    r[9] = c->tun_errors;
    c->rx_packets = c->rx_bytes = c->tx_packets = c->tx_bytes = 0;
    c->bad_tag = c->tx_errors = c->tun_errors = 0;
    reported++;
  }
  return reported;
}

/* expressClear (forget = 1) and expressHarvest (forget = 0: the channels stay armed). */
static napi_value clear_or_harvest(napi_env env, napi_callback_info info, int forget) {
  size_t argc = 2;
  napi_value argv[2], result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  express *x;
  void *out;
  size_t olen;
  if (argc < 2 || arg_express(env, argv[0], &x) ||
      mip6_arg_typed(env, argv[1], napi_float64_array, "out", &out, &olen, NULL))
    return NULL;
  uint32_t reported = report(x, out, olen);
  if (forget) {
    if (x->used > 0) x->counters[X_CLEARS] += 1;
    forget_all(x);
  }
  napi_create_uint32(env, reported, &result);
  return result;
}

static napi_value express_clear(napi_env env, napi_callback_info info) {
  return clear_or_harvest(env, info, 1);
}

static napi_value express_harvest(napi_env env, napi_callback_info info) {
  return clear_or_harvest(env, info, 0);
}

static napi_value express_counters(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  express *x;
  void *out;
  size_t olen;
  if (argc < 2 || arg_express(env, argv[0], &x) ||
      mip6_arg_typed(env, argv[1], napi_float64_array, "out", &out, &olen, NULL))
    return NULL;
  for (size_t i = 0; i < X_COUNT && i < olen; i++) ((double *)out)[i] = x->counters[i];
  return NULL;
}

static napi_value express_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  express *x;
  if (argc < 1 || arg_express(env, argv[0], &x)) return NULL;
  forget_all(x);
  detach(x);
  return NULL;
}

void mip6_express_init(napi_env env, napi_value exports) {
  mip6_export(env, exports, "expressOpen", express_open);
  mip6_export(env, exports, "expressArm", express_arm);
  mip6_export(env, exports, "expressClear", express_clear);
  mip6_export(env, exports, "expressHarvest", express_harvest);
  mip6_export(env, exports, "expressCounters", express_counters);
  mip6_export(env, exports, "expressClose", express_close);
}
