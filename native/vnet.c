/*
 * The virtio-net header of a TUN opened with IFF_VNET_HDR (issue #16, TUN offloads), and the
 * work it asks of us: with TUNSETOFFLOAD (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 [| USO4/6])
 * the kernel hands over
 *   - packets whose transport checksum is left for us (flags NEEDS_CSUM: the checksum field
 *     at csum_start + csum_offset holds the pseudo-header sum; we sum from csum_start to the
 *     end and store the complement), and
 *   - GSO super-packets (gso_type TCPV4 / TCPV6 / UDP_L4, up to 64 KiB): one IP header, one
 *     TCP or UDP header, then a payload we cut into gso_size pieces, each its own packet with
 *     its own IP length (IPv4: identification + i and a new header checksum), TCP sequence
 *     number (seq + i * gso_size; FIN and PSH only on the last piece, CWR only on the first)
 *     or UDP length, and a full transport checksum.
 *   - BIG TCP super-packets (longer than 64 KiB, up to VNET_MAX_LEN; only where the device's
 *     gso_max_size allows, which a TUN's does not up to at least 6.18): the IP length field
 *     cannot hold the length, so IPv4 has total length 0 (Linux 6.3+) and IPv6 payload length
 *     0, either bare (6.18+) or with a Hop-by-Hop header holding nothing but a Jumbo Payload
 *     option (RFC 2675, Linux 5.19 - 6.17). Either way we cut by the read length; the jumbo
 *     header is left out of every piece (each fits a 16-bit length again, and RFC 2675 §3
 *     forbids the option on such packets), its next header moved into the IPv6 header.
 * The JS side then sees ordinary packets of at most the TUN MTU, as without offloads.
 *
 * Nothing in the header is trusted: the type must be one we asked for and match the IP
 * version and protocol, the checksum position and the headers must lie inside the packet, the
 * transport header must start right after the IP header (IPv6: no extension header but BIG
 * TCP's jumbo one), every piece must fit the caller's room and there may be at most
 * VNET_MAX_SEGS of them. Anything else is dropped with a reason (VNET_BAD_*), and no byte
 * outside the packet is read.
 * hdr_len is not used (we find the headers ourselves).
 *
 * Writes (GRO towards the TUN): a run of packets of one TCP flow in a write batch (same
 * addresses, ports, IP and TCP header but for lengths / ids / checksums, consecutive sequence
 * numbers, ACK only with PSH allowed on the last, equal payload sizes but for a shorter last,
 * at most 64 KiB) goes to the kernel as one super-packet: the first packet's headers with the
 * lengths of the whole and the pseudo-header sum in the checksum field, a GSO header
 * (TCPV4/TCPV6, gso_size = the payload size, NEEDS_CSUM) and the payloads after it. A run of
 * one UDP flow (same headers but for lengths / ids / checksums, every checksum present and
 * right, equal payload sizes but for a shorter last) likewise goes as one UDP_L4 super-packet
 * when the kernel accepted USO: each datagram stays the datagram it was (USO cuts at
 * gso_size), but the batch costs one write instead of one per datagram.
 *
 *   vnetSplit(input, out, slotSize, offsets, lengths) -> count, or -reason
 *       Test surface over the same code: `input` is a virtio_net_hdr + packet; each output
 *       packet goes to out[i * slotSize]; offsets/lengths are filled; at most offsets.length.
 */
#include "vnet.h"

#include <string.h>

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_TCP_ 6
#define JUMBO_OPT 0xc2 /* RFC 2675 §2 */
#define IPPROTO_UDP_ 17
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void wr16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void wr32(uint8_t *p, uint32_t v) {
  wr16(p, v >> 16);
  wr16(p + 2, v & 0xffff);
}

/* Ones' complement sum of big-endian 16-bit words (an odd last byte padded with zero). */
uint64_t vnet_sum(const uint8_t *p, size_t n, uint64_t acc) {
  while (n >= 8) {
    acc += (uint64_t)rd16(p) + rd16(p + 2) + rd16(p + 4) + rd16(p + 6);
    p += 8;
    n -= 8;
  }
  while (n >= 2) {
    acc += rd16(p);
    p += 2;
    n -= 2;
  }
  if (n) acc += (uint64_t)p[0] << 8;
  return acc;
}

uint16_t vnet_fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)acc;
}

/* The pseudo-header sum (RFC 768 / 793 / 8200 §8.1) for a transport segment of `len` bytes. */
static uint64_t pseudo_sum(const uint8_t *ip, int v6, uint8_t proto, uint32_t len) {
  uint64_t acc = v6 ? vnet_sum(ip + 8, 32, 0) : vnet_sum(ip + 12, 8, 0);
  return acc + proto + len;
}

int vnet_prepare(const uint8_t *hdr, uint8_t *pkt, uint32_t len, uint32_t room, vnet_gso *g) {
  struct {
    uint8_t flags, gso_type;
    uint16_t hdr_len, gso_size, csum_start, csum_offset;
  } h;
  /* Host byte order (a legacy virtio header, TUNSETVNETLE not used). */
  h.flags = hdr[0];
  h.gso_type = hdr[1];
  memcpy(&h.hdr_len, hdr + 2, 2);
  memcpy(&h.gso_size, hdr + 4, 2);
  memcpy(&h.csum_start, hdr + 6, 2);
  memcpy(&h.csum_offset, hdr + 8, 2);
  memset(g, 0, sizeof *g);
  if (len < 20) return VNET_BAD_HEADERS;
  uint8_t type = h.gso_type & (uint8_t)~VNET_GSO_ECN;
  if (type == VNET_GSO_NONE) {
    if (len > room) return VNET_TOO_BIG;
    if (!(h.flags & VNET_F_NEEDS_CSUM)) return VNET_OK;
    /* Complete the checksum the kernel left to us. */
    if ((uint32_t)h.csum_start + h.csum_offset + 2 > len) return VNET_BAD_CSUM;
    uint16_t c = (uint16_t)~vnet_fold(vnet_sum(pkt + h.csum_start, len - h.csum_start, 0));
    /* UDP sends 0 as all ones (0 means "no checksum" on IPv4 and is invalid on IPv6). */
    if (c == 0 && h.csum_offset == 6) c = 0xffff;
    wr16(pkt + h.csum_start + h.csum_offset, c);
    return VNET_OK;
  }
  if (type != VNET_GSO_TCPV4 && type != VNET_GSO_TCPV6 && type != VNET_GSO_UDP_L4) return VNET_BAD_TYPE;
  int v6 = (pkt[0] >> 4) == 6;
  if ((pkt[0] >> 4) != (v6 ? 6 : 4) || (type == VNET_GSO_TCPV4 && v6) || (type == VNET_GSO_TCPV6 && !v6))
    return VNET_BAD_TYPE;
  uint32_t iphlen, iplen, jumbo = 0;
  uint8_t proto;
  if (v6) {
    if (len < 40) return VNET_BAD_HEADERS;
    iphlen = 40;
    proto = pkt[6];
    iplen = 40 + (uint32_t)rd16(pkt + 4);
    if (proto == IPPROTO_HOPOPTS_) {
      /* Only BIG TCP's jumbo header (RFC 2675 §2): payload length 0, an 8-byte Hop-by-Hop
       * header whose one option is Jumbo Payload (type 0xC2, 4 bytes: the length after the
       * IPv6 header, which must be this packet's and above 65535). */
      if (type != VNET_GSO_TCPV6 || len < 48 || rd16(pkt + 4) != 0 || pkt[41] != 0 || pkt[42] != JUMBO_OPT ||
          pkt[43] != 4 || rd32(pkt + 44) != len - 40 || len - 40 <= 0xffff)
        return VNET_BAD_HEADERS;
      proto = pkt[40];
      jumbo = 8;
      iphlen = 48;
    }
  } else {
    iphlen = (uint32_t)(pkt[0] & 0x0f) * 4;
    proto = pkt[9];
    iplen = rd16(pkt + 2);
    /* A fragment cannot be a GSO packet. */
    if (iphlen < 20 || (rd16(pkt + 6) & 0x3fff)) return VNET_BAD_HEADERS;
  }
  int udp = type == VNET_GSO_UDP_L4;
  if (proto != (udp ? IPPROTO_UDP_ : IPPROTO_TCP_)) return VNET_BAD_TYPE;
  /* The IP length field of a super-packet may be 0 or stale (over 64 KiB); the read length is
   * what we cut, so only require the IP header and transport header inside it. */
  (void)iplen;
  /* Every piece gets a full checksum of its own, so a super-packet need not leave it to us
   * (a checksum already verified, DATA_VALID); when it does, the position must be the one of
   * the type's header. */
  int partial = (h.flags & VNET_F_NEEDS_CSUM) != 0;
  if (partial && h.csum_start != iphlen) return VNET_BAD_CSUM;
  if (iphlen + (udp ? 8u : 20u) > len) return VNET_BAD_HEADERS;
  uint32_t l4hlen = udp ? 8 : (uint32_t)(pkt[iphlen + 12] >> 4) * 4;
  if (l4hlen < (udp ? 8u : 20u) || iphlen + l4hlen > len) return VNET_BAD_HEADERS;
  if (partial && h.csum_offset != (udp ? 6 : 16)) return VNET_BAD_CSUM;
  uint32_t payload = len - iphlen - l4hlen;
  if (h.gso_size == 0 || payload == 0 || iphlen - jumbo + l4hlen + h.gso_size > room) return VNET_BAD_GSO_SIZE;
  uint32_t nseg = (payload + h.gso_size - 1) / h.gso_size;
  if (nseg > VNET_MAX_SEGS) return VNET_BAD_GSO_SIZE;
  g->pkt = pkt;
  g->len = len;
  g->gso_size = h.gso_size;
  g->iphlen = iphlen;
  g->l4hlen = l4hlen;
  g->jumbo = jumbo;
  g->v6 = v6;
  g->udp = udp;
  g->nseg = nseg;
  g->next = 0;
  return VNET_OK;
}

uint32_t vnet_segment(vnet_gso *g, uint8_t *out) {
  uint32_t i = g->next++;
  uint32_t ip = g->iphlen - g->jumbo; /* the pieces' IP header: no jumbo header */
  uint32_t hl = ip + g->l4hlen;
  uint32_t start = g->iphlen + g->l4hlen + i * g->gso_size;
  uint32_t seg = g->len - start < g->gso_size ? g->len - start : g->gso_size;
  int first = i == 0, last = i + 1 == g->nseg;
  memcpy(out, g->pkt, ip);
  memcpy(out + ip, g->pkt + g->iphlen, g->l4hlen);
  memcpy(out + hl, g->pkt + start, seg);
  uint32_t l4len = g->l4hlen + seg;
  uint8_t *l4 = out + ip;
  if (g->v6) {
    if (g->jumbo) out[6] = g->pkt[40]; /* the jumbo header's next header */
    wr16(out + 4, l4len);
  } else {
    wr16(out + 2, hl + seg);
    wr16(out + 4, (uint32_t)rd16(g->pkt + 4) + i); /* identification + i */
    wr16(out + 10, 0);
    wr16(out + 10, (uint16_t)~vnet_fold(vnet_sum(out, ip, 0)));
  }
  uint8_t proto;
  if (g->udp) {
    proto = IPPROTO_UDP_;
    wr16(l4 + 4, l4len);
    wr16(l4 + 6, 0);
  } else {
    proto = IPPROTO_TCP_;
    wr32(l4 + 4, rd32(g->pkt + g->iphlen + 4) + i * g->gso_size);
    if (!last) l4[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (!first) l4[13] &= (uint8_t)~TCP_CWR;
    wr16(l4 + 16, 0);
  }
  uint16_t c = (uint16_t)~vnet_fold(vnet_sum(l4, l4len, pseudo_sum(out, g->v6, proto, l4len)));
  if (g->udp && c == 0) c = 0xffff;
  wr16(l4 + (g->udp ? 6 : 16), c);
  return hl + seg;
}

/* ---- test surface ---------------------------------------------------------------- */

static napi_value vnet_split(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], out_v;
  void *in, *out, *offsets, *lengths;
  size_t in_len, out_len, off_len, len_len;
  uint32_t slot;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5 || mip6_arg_typed(env, argv[0], napi_uint8_array, "input", &in, &in_len, NULL) ||
      mip6_arg_typed(env, argv[1], napi_uint8_array, "out", &out, &out_len, NULL) ||
      mip6_arg_u32(env, argv[2], "slotSize", &slot) ||
      mip6_arg_typed(env, argv[3], napi_uint32_array, "offsets", &offsets, &off_len, NULL) ||
      mip6_arg_typed(env, argv[4], napi_uint32_array, "lengths", &lengths, &len_len, NULL))
    return NULL;
  size_t max = off_len < len_len ? off_len : len_len;
  if (slot == 0 || (size_t)slot * max > out_len || in_len < VNET_HDR_LEN || in_len > VNET_MAX_LEN + VNET_HDR_LEN) {
    mip6_throw_range(env, "out too small for offsets.length x slotSize, or input not a vnet header + packet");
    return NULL;
  }
  /* A private copy: prepare() completes checksums in place, and must read nothing past it. */
  static uint8_t pkt[VNET_MAX_LEN];
  uint32_t len = (uint32_t)(in_len - VNET_HDR_LEN);
  memcpy(pkt, (uint8_t *)in + VNET_HDR_LEN, len);
  vnet_gso g;
  int reason = vnet_prepare(in, pkt, len, slot, &g);
  int32_t n = 0;
  uint32_t *o = offsets, *l = lengths;
  if (reason) n = -reason;
  else if (g.nseg == 0) {
    if (max > 0) {
      memcpy(out, pkt, len);
      o[0] = 0;
      l[0] = len;
      n = 1;
    }
  } else {
    while (g.next < g.nseg && (size_t)n < max) {
      o[n] = (uint32_t)n * slot;
      l[n] = vnet_segment(&g, (uint8_t *)out + (size_t)n * slot);
      n++;
    }
  }
  napi_create_int32(env, n, &out_v);
  return out_v;
}

/* vnetCoalesce(buf, offsets, lengths, count, families, out) -> k; for k >= 2, out gets the
 * GSO header (10 bytes) then the merged IP + TCP header. */
static napi_value vnet_coalesce_js(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], out_v;
  void *buf, *offsets, *lengths, *out;
  size_t buf_len, off_len, len_len, out_len;
  uint32_t count, families;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6 || mip6_arg_typed(env, argv[0], napi_uint8_array, "buf", &buf, &buf_len, NULL) ||
      mip6_arg_typed(env, argv[1], napi_uint32_array, "offsets", &offsets, &off_len, NULL) ||
      mip6_arg_typed(env, argv[2], napi_uint32_array, "lengths", &lengths, &len_len, NULL) ||
      mip6_arg_u32(env, argv[3], "count", &count) || mip6_arg_u32(env, argv[4], "families", &families) ||
      mip6_arg_typed(env, argv[5], napi_uint8_array, "out", &out, &out_len, NULL))
    return NULL;
  const uint32_t *o = offsets, *l = lengths;
  if (count > off_len || count > len_len || count == 0 || out_len < VNET_HDR_LEN + 128) {
    mip6_throw_range(env, "count 0 or beyond offsets/lengths, or out shorter than 138 bytes");
    return NULL;
  }
  if (count > VNET_COALESCE_MAX) count = VNET_COALESCE_MAX; /* as tunWrite looks ahead */
  const uint8_t *pkts[VNET_COALESCE_MAX];
  for (uint32_t i = 0; i < count; i++) {
    if ((uint64_t)o[i] + l[i] > buf_len) {
      mip6_throw_range(env, "packet outside buf");
      return NULL;
    }
    pkts[i] = (uint8_t *)buf + o[i];
  }
  uint32_t hl = 0;
  uint32_t k = vnet_coalesce(pkts, l, count, families, (uint8_t *)out + VNET_HDR_LEN, &hl, out);
  napi_create_uint32(env, k, &out_v);
  return out_v;
}

void mip6_vnet_init(napi_env env, napi_value exports) {
  mip6_export(env, exports, "vnetSplit", vnet_split);
  mip6_export(env, exports, "vnetCoalesce", vnet_coalesce_js);
}

/* ---- coalescing for writes (GRO towards the TUN) ----------------------------------- */

/* Where the transport header of a plain `proto` packet starts, or 0 when it is not one we
 * merge: IPv4 (families & v4) without options, with DF set and not a fragment (the pieces of
 * a super-packet get new identifications, harmless only when nothing will reassemble them,
 * RFC 6864), with a right header checksum (a packet the kernel would drop alone must not pass
 * inside a run, whose header is made anew); or IPv6 (families & v6) without extension headers.
 * The IP length must be the packet's length. */
static uint32_t plain_ip(const uint8_t *p, uint32_t len, uint32_t families, uint32_t v4, uint32_t v6, uint8_t proto) {
  if ((p[0] >> 4) == 4) {
    if (!(families & v4) || len < 20 || p[0] != 0x45 || p[9] != proto || (rd16(p + 6) & 0x7fff) != 0x4000 ||
        rd16(p + 2) != len || vnet_fold(vnet_sum(p, 20, 0)) != 0xffff)
      return 0;
    return 20;
  }
  if ((p[0] >> 4) == 6) {
    if (!(families & v6) || len < 40 || p[6] != proto || 40u + rd16(p + 4) != len) return 0;
    return 40;
  }
  return 0;
}

/* Where the TCP header of a TCP packet we may merge starts (plain_ip), or 0. */
static uint32_t tcp_offset(const uint8_t *p, uint32_t len, uint32_t families) {
  if (len < 40) return 0;
  uint32_t ip = plain_ip(p, len, families, 1, 2, IPPROTO_TCP_);
  return ip && len >= ip + 20 ? ip : 0;
}

/* Whether q has f's IP header but for lengths, ids and checksums (one flow's packets). */
static int same_ip_header(const uint8_t *q, const uint8_t *f, uint32_t ip) {
  if (ip == 20) return q[1] == f[1] && q[6] == f[6] && q[8] == f[8] && !memcmp(q + 12, f + 12, 8);
  return !memcmp(q, f, 4) && q[7] == f[7] && !memcmp(q + 8, f + 8, 32);
}

/* The merged super-packet's header: f's first hl bytes with the IP length of the whole
 * (`total` bytes; IPv4 header checksum redone), the transport checksum field at `csum`
 * holding the pseudo-header sum (the kernel completes it: NEEDS_CSUM), and the GSO header. */
static void merged_header(const uint8_t *f, uint32_t hl, uint32_t ip, uint32_t total, uint8_t proto, uint32_t csum,
                          uint32_t gso, uint8_t *hdr_out, uint8_t vhdr[VNET_HDR_LEN]) {
  memcpy(hdr_out, f, hl);
  uint32_t l4len = total - ip;
  if (ip == 20) {
    wr16(hdr_out + 2, total);
    wr16(hdr_out + 10, 0);
    wr16(hdr_out + 10, (uint16_t)~vnet_fold(vnet_sum(hdr_out, 20, 0)));
  } else {
    wr16(hdr_out + 4, l4len);
  }
  if (proto == IPPROTO_UDP_) wr16(hdr_out + ip + 4, l4len);
  wr16(hdr_out + ip + csum, vnet_fold(pseudo_sum(hdr_out, ip == 40, proto, l4len)));
  uint16_t v[4] = {(uint16_t)hl, (uint16_t)gso, (uint16_t)ip, (uint16_t)csum};
  vhdr[0] = VNET_F_NEEDS_CSUM;
  vhdr[1] = proto == IPPROTO_UDP_ ? VNET_GSO_UDP_L4 : ip == 20 ? VNET_GSO_TCPV4 : VNET_GSO_TCPV6;
  memcpy(vhdr + 2, v, sizeof v); /* host order, as read */
}

/* Where the UDP header of a UDP packet we may merge starts (plain_ip; families 4 = USO4
 * accepted, 8 = USO6), when its UDP length matches the IP length and its checksum is
 * present and right; else 0. A packet with a wrong or absent checksum is written alone: the
 * kernel computes fresh checksums for the pieces of a super-packet, which would make such a
 * packet valid where its receiver must drop it (an absent one is invalid on IPv6). */
static uint32_t udp_offset(const uint8_t *p, uint32_t len, uint32_t families) {
  if (len < 28) return 0;
  uint32_t ip = plain_ip(p, len, families, 4, 8, IPPROTO_UDP_);
  if (!ip || len < ip + 8) return 0;
  if (rd16(p + ip + 4) != len - ip || rd16(p + ip + 6) == 0) return 0;
  if (vnet_fold(pseudo_sum(p, ip == 40, IPPROTO_UDP_, len - ip) + vnet_sum(p + ip, len - ip, 0)) != 0xffff) return 0;
  return ip;
}

/* A run of one UDP flow (same addresses, ports and IP header but for lengths / ids /
 * checksums; equal payload sizes but for a shorter last; at most 64 KiB) as one UDP_L4
 * super-packet: the kernel cuts it back into the same datagrams (USO). */
static uint32_t udp_coalesce(const uint8_t *const *pkts, const uint32_t *lens, uint32_t n, uint32_t families,
                             uint32_t ip, uint8_t *hdr_out, uint32_t *hdr_len, uint8_t vhdr[VNET_HDR_LEN]) {
  const uint8_t *f = pkts[0];
  uint32_t hl = ip + 8, gso = lens[0] - hl;
  if (gso == 0) return 1;
  uint32_t k = 1, total = lens[0];
  while (k < n && k < VNET_COALESCE_MAX) {
    const uint8_t *q = pkts[k];
    uint32_t ql = lens[k];
    if (ql <= hl || ql - hl > gso || total + (ql - hl) > 65535) break;
    if (!same_ip_header(q, f, ip) || memcmp(q + ip, f + ip, 4) || udp_offset(q, ql, families) != ip) break;
    k++;
    total += ql - hl;
    if (ql - hl < gso) break; /* a short piece ends the run */
  }
  if (k < 2) return 1;
  merged_header(f, hl, ip, total, IPPROTO_UDP_, 6, gso, hdr_out, vhdr);
  *hdr_len = hl;
  return k;
}

uint32_t vnet_coalesce(const uint8_t *const *pkts, const uint32_t *lens, uint32_t n, uint32_t families,
                       uint8_t *hdr_out, uint32_t *hdr_len, uint8_t vhdr[VNET_HDR_LEN]) {
  const uint8_t *f = pkts[0];
  uint32_t ip = tcp_offset(f, lens[0], families);
  if (!ip) {
    uint32_t uip = n >= 2 ? udp_offset(f, lens[0], families) : 0;
    return uip ? udp_coalesce(pkts, lens, n, families, uip, hdr_out, hdr_len, vhdr) : 1;
  }
  uint32_t th = (uint32_t)(f[ip + 12] >> 4) * 4;
  if (th < 20 || ip + th >= lens[0]) return 1; /* no payload: a pure ACK stays alone */
  uint32_t hl = ip + th, gso = lens[0] - hl;
  uint8_t flags = f[ip + 13];
  if (flags != 0x10) return 1; /* only ACK; ACK|PSH would have to be the last */
  uint32_t k = 1, total = lens[0], seq = rd32(f + ip + 4) + gso;
  while (k < n && k < VNET_COALESCE_MAX) {
    const uint8_t *q = pkts[k];
    uint32_t ql = lens[k];
    if (ql <= hl || ql - hl > gso || total + (ql - hl) > 65535) break;
    if (tcp_offset(q, ql, families) != ip || (q[ip + 12] >> 4) * 4u != th) break;
    /* Same flow and the same header but for lengths, ids and checksums. */
    if (!same_ip_header(q, f, ip)) break;
    if (memcmp(q + ip, f + ip, 4) || rd32(q + ip + 4) != seq || memcmp(q + ip + 8, f + ip + 8, 4) ||
        q[ip + 12] != f[ip + 12] || memcmp(q + ip + 14, f + ip + 14, 2) || memcmp(q + ip + 20, f + ip + 20, th - 20))
      break;
    uint8_t qf = q[ip + 13];
    if (qf != 0x10 && qf != 0x18) break;
    k++;
    total += ql - hl;
    seq += ql - hl;
    if (qf == 0x18 || ql - hl < gso) break; /* PSH or a short piece ends the run */
  }
  if (k < 2) return 1;
  /* The merged header, with the flags (PSH) of the last. */
  merged_header(f, hl, ip, total, IPPROTO_TCP_, 16, gso, hdr_out, vhdr);
  hdr_out[ip + 13] = pkts[k - 1][ip + 13];
  *hdr_len = hl;
  return k;
}
