/*
 * The ND proxy's MLDv2 listener (RFC 3810) for the solicited-node groups of the addresses it
 * defends (native/mld.c). No socket and no clock of its own: the caller (ndproxy_linux.c) says
 * what changed and when (`now`, milliseconds on a monotonic clock), hands it the queries it reads,
 * and calls mld_run() at mld_next() to get the report frames to send.
 */
#ifndef MIP6_MLD_H
#define MIP6_MLD_H

#include <stddef.h>
#include <stdint.h>

/* The IPv6 header (RFC 8200 §3), for mld.c and ndproxy_linux.c. */
#define IP6_PLEN_OFF 4
#define IP6_NH_OFF 6
#define IP6_HLIM_OFF 7
#define IP6_SRC_OFF 8
#define IP6_DST_OFF 24
#define IP6_HDR_LEN 40

/* Counters, in the order ndproxyCounters writes them after the ND proxy's own. */
enum {
  MLD_C_GROUPS,            /* solicited-node groups we listen to now */
  MLD_C_REPORTS_SENT,      /* Report frames (type 143) sent */
  MLD_C_RECORDS_SENT,      /* multicast address records in them */
  MLD_C_REPORT_SEND_ERRORS, /* frames that failed for good (not sent again) */
  MLD_C_REPORT_RETRIES,     /* frames the link refused for want of room, sent again later */
  MLD_C_QUERIES,           /* valid queries read */
  MLD_C_QUERIES_ANSWERED,  /* responses sent for queries (one may answer several queries) */
  MLD_C_QUERIES_COALESCED, /* valid queries folded into a response already pending */
  MLD_C_QUERY_NOT_OURS,    /* a valid address-specific query for a group we are not in */
  MLD_C_BAD_QUERY_LENGTH,  /* not 24 and not >= 28 + 16 x sources, or a cut header */
  MLD_C_BAD_QUERY_HOP_LIMIT,
  MLD_C_BAD_QUERY_SOURCE,  /* not link-local (RFC 3810 §5.1.14) */
  MLD_C_NO_ROUTER_ALERT,   /* no Hop-by-Hop Router Alert option (RFC 3810 §6.2) */
  MLD_C_BAD_QUERY_CHECKSUM,
  MLD_C_BAD_QUERY_HEADER,  /* a malformed Hop-by-Hop header */
  MLD_C_BAD_QUERY_GROUP,   /* Multicast Address neither :: nor multicast */
  MLD_C_V1_QUERIER,        /* times an MLDv1 Query switched us to MLDv1 (RFC 3810 §8.2.1) */
  MLD_COUNTERS
};

typedef struct {
  uint32_t key;  /* the group's low 24 bits (ff02::1:ffXX:XXXX) */
  uint32_t refs; /* defended addresses in it */
  uint8_t used;
  uint8_t left;  /* State Change Report transmissions still due (RFC 3810 §6.1) */
  uint8_t lists; /* MLD_IN_* bits: which pending list holds the key */
} mld_group;

/* Keys of groups with a record to send. A round (a burst of records due at one time) is
 * [head, end), sent a run budget at a time; keys added meanwhile wait after it. */
typedef struct {
  uint32_t *keys;
  uint32_t len, cap;
  uint32_t head, end; /* head == end: no round in progress */
} mld_keylist;

typedef struct {
  mld_group *groups; /* open addressing, linear probing, backward-shift deletion */
  uint32_t cap, size;
  uint32_t joined; /* groups with a defended address (refs > 0) */
  uint64_t seed, rng;
  mld_keylist changed;  /* first transmission of a State Change Report, due at changed_due */
  mld_keylist repeat;   /* its retransmissions, due at repeat_due */
  mld_keylist queried;  /* answers to address-specific queries, due at specific_due */
  mld_keylist general;  /* a General Query's answer: the groups we were in when it started */
  uint64_t changed_due, repeat_due, general_due, specific_due; /* 0: nothing pending */
  uint64_t general_deadline; /* the pending or current general answer ends by then ... */
  uint64_t general_next;     /* ... and the current one sends its next frames then */
  uint64_t general_last, specific_last; /* when the last response started (0: never) */
  uint64_t hold_until; /* nothing is sent before: pacing, or the link refused frames */
  uint32_t retry_ms;   /* the wait after a refusal (doubles while the link refuses) */
  uint64_t v1_until;   /* MLDv1 compatibility mode until then (§8.2.1; 0: never entered) */
  int v1;              /* in it as of the last run or query */
  uint32_t max_records; /* records per frame for the link's MTU */
  double counters[MLD_COUNTERS];
} mld;

/* Frames out: count frames of lens[i] bytes (IPv6 packets to ff02::16); returns how many the
 * link took, in order. When fewer, *busy = 1 says the next was refused for want of room
 * (EAGAIN, ENOBUFS: mld.c sends it and the rest again later), 0 that it failed for good
 * (counted, not sent again; the rest go in the next call). */
typedef uint32_t (*mld_send_fn)(void *ctx, uint8_t *const *frames, const uint32_t *lens,
                                uint32_t count, int *busy);

int mld_init(mld *m);                                    /* 0 or an errno */
void mld_set_mtu(mld *m, uint32_t mtu);                   /* records per frame to fit it */
void mld_free(mld *m);
int mld_join(mld *m, const uint8_t *addr, uint64_t now);  /* addr now defended: 0 or -errno */
void mld_leave(mld *m, const uint8_t *addr, uint64_t now); /* addr no longer defended */
/* A frame the filter let through as an MLD query (an IPv6 packet of n bytes): validated,
 * counted, and a response scheduled. */
void mld_query(mld *m, const uint8_t *pkt, size_t n, uint64_t now);
/* Sends what is due at now from source address src (16 bytes): at most MLD_RUN_FRAMES frames
 * (mld.c); the rest at mld_next. */
void mld_run(mld *m, uint64_t now, const uint8_t *src, mld_send_fn send, void *ctx);
/* The listener stops (the proxy closes): one leave (CHANGE_TO_INCLUDE_MODE, no sources) for
 * every group, those whose leave is still due included, so a snooping switch stops forwarding
 * them now, not when its timer runs out. */
void mld_leave_all(mld *m, const uint8_t *src, mld_send_fn send, void *ctx);
/* When mld_run is next needed (0: nothing pending). */
uint64_t mld_next(const mld *m);

/* A 64-bit finalizer (MurmurHash3's fmix64): hashing for the address and group tables. */
static inline uint64_t mip6_mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

/* The ICMPv6 checksum over the pseudo-header (RFC 8200 §8.1) and msg; 0 when msg's is right. */
uint16_t mip6_icmp6_checksum(const uint8_t *src, const uint8_t *dst, const uint8_t *msg,
                             uint32_t len);

#endif
