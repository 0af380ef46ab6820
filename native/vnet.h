/*
 * virtio-net header handling for the TUN's offloads (vnet.c): checksum completion and GSO
 * splitting, shared by tun_linux.c and the vnetSplit test surface.
 */
#ifndef MIP6_VNET_H
#define MIP6_VNET_H

#include "mip6.h"

#define VNET_HDR_LEN 10 /* sizeof(struct virtio_net_hdr) */
#define VNET_F_NEEDS_CSUM 1
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define VNET_GSO_TCPV6 4
#define VNET_GSO_UDP_L4 5
#define VNET_GSO_ECN 0x80
/* Longest super-packet we take (after the virtio-net header): Linux builds none longer than
 * GSO_MAX_SIZE (8 x 65535 bytes on 64-bit kernels; BIG TCP, a device's gso_max_size above
 * 64 KiB), jumbo Hop-by-Hop header included. A TUN's own gso_max_size cannot go above its
 * tso_max_size (65536 up to at least 6.18), so today's TUN reads stay below 64 KiB; this is
 * the bound for a kernel that lets it. */
#define VNET_MAX_LEN (512 * 1024)
/* Most pieces one super-packet may be cut into (512 KiB of 256-byte pieces). */
#define VNET_MAX_SEGS (VNET_MAX_LEN / 256)

/* Why a packet was dropped (0 = kept). The order is the TUN counters' order (tun.ts). */
enum {
  VNET_OK = 0,
  VNET_BAD_TYPE,     /* unknown gso_type, or not matching the IP version / protocol */
  VNET_BAD_CSUM,     /* checksum position outside the packet or not where the type says */
  VNET_BAD_HEADERS,  /* IP / TCP / UDP header missing, truncated, or a fragment; an IPv6
                      * Hop-by-Hop header that is not one right jumbo option (RFC 2675) */
  VNET_BAD_GSO_SIZE, /* gso_size 0, a piece larger than the room, or too many pieces */
  VNET_TOO_BIG,      /* a plain packet larger than the room */
  VNET_REASONS
};

/* A super-packet being cut: segment `next` of `nseg` comes next. */
/* iphlen is where the transport header starts in pkt; jumbo is 8 when an IPv6 jumbo Hop-by-Hop
 * header (BIG TCP) sits between the IPv6 header and it, left out of every piece. */
typedef struct {
  const uint8_t *pkt;
  uint32_t len, gso_size, iphlen, l4hlen, nseg, next, jumbo;
  int v6, udp;
} vnet_gso;

/* Checks the header of the packet `pkt` (`len` bytes, writable), completes a pending checksum
 * in place, and for a super-packet fills `g` (g->nseg > 0). Returns VNET_OK or a reason. */
int vnet_prepare(const uint8_t *hdr, uint8_t *pkt, uint32_t len, uint32_t room, vnet_gso *g);
/* Writes the next piece of `g` to `out` (room bytes); returns its length. */
uint32_t vnet_segment(vnet_gso *g, uint8_t *out);
/* Most packets one written super-packet may hold. */
#define VNET_COALESCE_MAX 64
/* How many of pkts[0..n) form one TCP or UDP run that may be written as a super-packet (1: write
 * pkts[0] alone). For k >= 2: hdr_out (>= 120 bytes) gets the merged IP + TCP header
 * (*hdr_len bytes), vhdr the GSO header; the payloads follow the header of each packet.
 * families: 1 = IPv4 TCP (TSO4 accepted), 2 = IPv6 TCP (TSO6), 4 = IPv4 UDP (USO4), 8 = IPv6 UDP
 * (USO6): a UDP run is merged the same way into a UDP_L4 super-packet. */
uint32_t vnet_coalesce(const uint8_t *const *pkts, const uint32_t *lens, uint32_t n, uint32_t families,
                       uint8_t *hdr_out, uint32_t *hdr_len, uint8_t vhdr[VNET_HDR_LEN]);
uint64_t vnet_sum(const uint8_t *p, size_t n, uint64_t acc);
uint16_t vnet_fold(uint64_t acc);
void mip6_vnet_init(napi_env env, napi_value exports);

#endif
