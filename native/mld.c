/*
 * MLDv2 listener for the ND proxy's solicited-node groups (RFC 3810). A switch that snoops MLD
 * forwards a Neighbor Solicitation to a group only to the ports that reported it, so the home
 * agent reports the solicited-node group (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1) of every address
 * its ND proxy defends. State is per group (a refcount of defended addresses, not the
 * addresses), so thousands of home addresses cost a small table.
 *
 * Flow:
 *   mld_join / mld_leave: a group's first address in, or last out, is a change of its filter
 *   mode; its key joins the `changed` list, sent MLD_COALESCE_MS later so that a burst of
 *   registrations leaves in few frames (records of 20 bytes, as many as the MTU holds), then
 *   repeated once (Robustness Variable 2) at a random time within the Unsolicited Report
 *   Interval (1 s) from the `repeat` list (§6.1). A group whose last address left stays in the
 *   table until its CHANGE_TO_INCLUDE_MODE (a leave) has gone out both times.
 *   mld_query: a Query read on the link, checked as §5.1.14 and §6.2 ask (link-local source,
 *   hop limit 1, Router Alert in a Hop-by-Hop header, checksum, length; the rest dropped and
 *   counted by reason). A General Query schedules one Current State Report of all our groups
 *   (MODE_IS_EXCLUDE, no sources) at a random delay within its Maximum Response Delay (§6.2);
 *   an answer of more frames than one run sends is spread over that delay instead (its first
 *   run at a random time within delay / runs, the rest evenly to its end), from a copy of the
 *   groups taken when it starts. An address-specific one for a group of ours schedules a
 *   record for that group; a General answer that starts before it is due gives it instead, once
 *   that answer has gone out in full (a part held back by the budget or the link goes on after
 *   the pacing or back-off, not at the query's deadline). At most one general response is pending or under way at a time
 *   (a query meanwhile joins it) and two start at least MLD_GENERAL_GAP_MS apart, or
 *   MLD_GAP_PER_FRAME_MS per frame the answer takes when that is longer (and specific ones
 *   MLD_SPECIFIC_GAP_MS), so a flood of queries from a host on the link costs a bounded number
 *   of reports. Our delay is at most MLD_MAX_DELAY_MS whatever a query asks, and a query for a
 *   group already pending can only bring its answer sooner (§6.2).
 *   mld_run: sends what is due, by the caller's send function, in batches of SEND_BATCH frames
 *   and at most MLD_RUN_FRAMES frames a run (the caller runs it again at mld_next, MLD_PACE_MS
 *   later), so a big report never leaves in one burst. A list's records due at one time are a
 *   round, sent from a cursor; an entry is done only once the link took its frame. Frames the
 *   link refuses for want of room (a full socket buffer or qdisc: EAGAIN, ENOBUFS) stay
 *   pending and go again after MLD_RETRY_MIN_MS, doubling to MLD_RETRY_MAX_MS while it
 *   refuses every frame of a batch (counted mldReportRetries); only a frame that fails
 *   otherwise is counted lost.
 *   Repeats go before first transmissions, so the two of one change never share a frame.
 *
 * Deviations, on purpose: a Multicast Address and Source Specific Query is answered like an
 * address-specific one (MODE_IS_EXCLUDE, no sources: we want every source, which is true and is
 * what a router needs to keep forwarding). Entering MLDv1 compatibility mode cancels pending
 * query answers but not pending State Change Reports (§8.2.1 cancels both): they go on as
 * MLDv1 Reports and Dones, so an MLDv1 Query from any host on the link (it needs no key) just
 * after a burst of joins does not leave the switch without them until the next query.
 *
 * MLDv1 compatibility mode (§8.2.1): an MLDv1 Query (24 bytes) means an MLDv1 querier on the
 * link, which would ignore MLDv2 Reports. From it until MLD_V1_PRESENT_MS (§9.12) after the
 * last one, every record leaves as an MLDv1 message of its own (RFC 2710): a join or an answer
 * as a Report to the group, a leave as a Done to ff02::2, paced like the rest; entering the
 * mode cancels the pending query answers (not the State Change Reports: see Deviations). The
 * general-answer gap then counts their bytes (72 a group), not MTU-sized frames.
 */
#include "mld.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Wire (RFC 8200 §4.3; RFC 2711; RFC 3810 §5; the IPv6 header's offsets in mld.h). */
#define NEXT_HBH 0
#define NEXT_ICMP6 58
#define OPT_PAD1 0
#define OPT_ROUTER_ALERT 5 /* RFC 2711 §2.1; value 0: MLD */
#define HBH_LEN 8          /* next header, length, Router Alert (4), PadN (2) */
#define MLD_QUERY 130
#define MLD1_REPORT 131       /* RFC 2710 §3: Report and Done, 24 bytes, to the group / ff02::2 */
#define MLD1_DONE 132
#define MLD1_FRAME_LEN (IP6_HDR_LEN + HBH_LEN + MLD_V1_QUERY_LEN)
#define MLD2_REPORT 143       /* RFC 3810 §5.2 */
#define MLD_MRC_OFF 4         /* Maximum Response Code */
#define MLD_GROUP_OFF 8       /* Multicast Address */
#define MLD_NSRC_OFF 26       /* Number of Sources (MLDv2 Query) */
#define MLD_V1_QUERY_LEN 24   /* RFC 3810 §8.1 */
#define MLD_V2_QUERY_MIN 28
#define REPORT_HDR_LEN 8      /* type, code, checksum, reserved, Nr of Mcast Address Records */
#define RECORD_LEN 20         /* type, aux len 0, 0 sources, address (§5.2.4) */
#define REPORT_HEAD (IP6_HDR_LEN + HBH_LEN + REPORT_HDR_LEN)
#define REC_MODE_IS_EXCLUDE 2 /* §5.2.12 */
#define REC_CHANGE_TO_INCLUDE 3
#define REC_CHANGE_TO_EXCLUDE 4

/* Timing (RFC 3810 §9). */
#define MLD_ROBUSTNESS 2           /* §9.1 */
#define MLD_UNSOLICITED_MS 1000    /* §9.11 */
#define MLD_COALESCE_MS 10         /* our own: registrations of one burst share frames */
#define MLD_GENERAL_GAP_MS 1000    /* our own: general responses at least this far apart */
#define MLD_SPECIFIC_GAP_MS 100    /* ... and address-specific ones */
#define MLD_GAP_PER_FRAME_MS 10    /* a general response of F frames: at least F x this apart */
#define MLD_MAX_DELAY_MS 10000     /* our own cap on a response's delay (answering early is allowed) */
/* §9.12 Older Version Querier Present Timeout: Robustness Variable x Query Interval (125 s, an
 * MLDv1 Query has no QQIC) + Query Response Interval (10 s). */
#define MLD_V1_PRESENT_MS (MLD_ROBUSTNESS * 125000 + 10000)

#define MLD_RUN_FRAMES 32    /* our own: report frames per run of mld_run ... */
#define MLD_PACE_MS 2        /* ... and the next run this much later when there are more */
#define MLD_RETRY_MIN_MS 2   /* frames the link refused for want of room: sent again this much */
#define MLD_RETRY_MAX_MS 100 /* later, doubling while it refuses, up to this */

#define FRAME_MAX 1500
#define SEND_BATCH 16 /* frames per call of the send function */
#define MIN_CAP 256

#define MLD_IN_CHANGED 1
#define MLD_IN_REPEAT 2
#define MLD_IN_QUERIED 4
#define MLD_IN_COVERED 8 /* with MLD_IN_QUERIED: queried before the General answer under way */

static const uint8_t SOLICITED_PREFIX[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff};
static const uint8_t ALL_MLDV2_ROUTERS[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0,
                                              0, 0, 0, 0, 0, 0, 0, 0x16}; /* §5.2.14 */
static const uint8_t ALL_ROUTERS[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0, 0, 0, 0x02}; /* RFC 2710 §4: Done */

uint16_t mip6_icmp6_checksum(const uint8_t *src, const uint8_t *dst, const uint8_t *msg,
                             uint32_t len) {
  uint64_t sum = 0;
  for (int i = 0; i < 16; i += 2) sum += (uint32_t)(src[i] << 8 | src[i + 1]);
  for (int i = 0; i < 16; i += 2) sum += (uint32_t)(dst[i] << 8 | dst[i + 1]);
  sum += len;
  sum += NEXT_ICMP6;
  for (uint32_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)(msg[i] << 8 | msg[i + 1]);
  if (len & 1) sum += (uint32_t)msg[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* A delay in [0, max_ms] (RFC 3810 §6.1, §6.2: random, so listeners do not answer at once). */
static uint64_t random_delay(mld *m, uint64_t max_ms) {
  m->rng = mip6_mix64(m->rng + 0x9e3779b97f4a7c15ULL);
  return max_ms == 0 ? 0 : m->rng % (max_ms + 1);
}

static uint32_t key_of(const uint8_t *addr) {
  return (uint32_t)addr[13] << 16 | (uint32_t)addr[14] << 8 | addr[15];
}

/* ---- the group table ------------------------------------------------------------------- */

static uint32_t home_of(const mld *m, uint32_t key) {
  return (uint32_t)mip6_mix64(key ^ m->seed) & (m->cap - 1);
}

static mld_group *find(mld *m, uint32_t key) {
  for (uint32_t i = home_of(m, key);; i = (i + 1) & (m->cap - 1)) {
    if (!m->groups[i].used) return NULL;
    if (m->groups[i].key == key) return &m->groups[i];
  }
}

static void place(mld *m, const mld_group *g) {
  uint32_t i = home_of(m, g->key);
  while (m->groups[i].used) i = (i + 1) & (m->cap - 1);
  m->groups[i] = *g;
  m->size++;
}

static int resize(mld *m, uint32_t cap) {
  mld_group *groups = calloc(cap, sizeof *groups);
  if (groups == NULL) return ENOMEM;
  mld_group *old = m->groups;
  uint32_t old_cap = m->cap;
  m->groups = groups;
  m->cap = cap;
  m->size = 0;
  for (uint32_t i = 0; i < old_cap; i++)
    if (old[i].used) place(m, &old[i]);
  free(old);
  return 0;
}

static void remove_group(mld *m, mld_group *g) {
  uint32_t mask = m->cap - 1;
  uint32_t hole = (uint32_t)(g - m->groups);
  for (uint32_t j = (hole + 1) & mask; m->groups[j].used; j = (j + 1) & mask) {
    uint32_t home = home_of(m, m->groups[j].key);
    int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    m->groups[hole] = m->groups[j];
    hole = j;
  }
  memset(&m->groups[hole], 0, sizeof m->groups[hole]);
  m->size--;
  while (m->size * 8 < m->cap && m->cap > MIN_CAP)
    if (resize(m, m->cap / 2) != 0) break;
}

static int push(mld_keylist *l, uint32_t key) {
  if (l->len == l->cap) {
    uint32_t cap = l->cap ? l->cap * 2 : 64;
    uint32_t *keys = realloc(l->keys, (size_t)cap * sizeof *keys);
    if (keys == NULL) return ENOMEM;
    l->keys = keys;
    l->cap = cap;
  }
  l->keys[l->len++] = key;
  return 0;
}

void mld_set_mtu(mld *m, uint32_t mtu) {
  if (mtu > FRAME_MAX) mtu = FRAME_MAX; /* our frame buffers */
  m->max_records = mtu > REPORT_HEAD + RECORD_LEN ? (mtu - REPORT_HEAD) / RECORD_LEN : 1;
}

int mld_init(mld *m) {
  memset(m, 0, sizeof *m);
  uint64_t seed[2];
  if (getrandom(seed, sizeof seed, 0) != (ssize_t)sizeof seed) return errno ? errno : EIO;
  m->seed = seed[0];
  m->rng = seed[1];
  mld_set_mtu(m, 1280); /* until the caller knows the link's (RFC 8200 §5 minimum) */
  m->retry_ms = MLD_RETRY_MIN_MS;
  return resize(m, MIN_CAP);
}

void mld_free(mld *m) {
  free(m->groups);
  free(m->changed.keys);
  free(m->repeat.keys);
  free(m->queried.keys);
  free(m->general.keys);
  memset(m, 0, sizeof *m);
}

/* The group's filter mode changed: a State Change Report, sent MLD_COALESCE_MS from now.
 * ENOMEM leaves the group as it was. */
static int changed(mld *m, mld_group *g, uint64_t now) {
  if (!(g->lists & MLD_IN_CHANGED)) {
    if (push(&m->changed, g->key) != 0) return ENOMEM;
    g->lists |= MLD_IN_CHANGED;
  }
  g->left = MLD_ROBUSTNESS;
  if (m->changed_due == 0) m->changed_due = now + MLD_COALESCE_MS;
  return 0;
}

/* A group nobody is in, with nothing left to send, leaves the table. */
static void forget_if_idle(mld *m, mld_group *g) {
  if (g->refs == 0 && g->left == 0 && g->lists == 0) remove_group(m, g);
}

int mld_join(mld *m, const uint8_t *addr, uint64_t now) {
  uint32_t key = key_of(addr);
  mld_group *g = find(m, key);
  if (g == NULL) {
    if ((uint64_t)(m->size + 1) * 2 > m->cap) {
      if (m->cap >= (1u << 25)) return -ENOMEM; /* 2^24 groups at most */
      int err = resize(m, m->cap * 2);
      if (err) return -err;
    }
    mld_group fresh = {.key = key, .used = 1};
    place(m, &fresh);
    g = find(m, key);
  }
  if (g->refs > 0) {
    g->refs++;
    return 0;
  }
  if (changed(m, g, now) != 0) {
    forget_if_idle(m, g); /* a group placed just now goes again: the caller drops the address */
    return -ENOMEM;
  }
  g->refs = 1;
  m->joined++;
  m->counters[MLD_C_GROUPS] = m->joined;
  return 0;
}

void mld_leave(mld *m, const uint8_t *addr, uint64_t now) {
  mld_group *g = find(m, key_of(addr));
  if (g == NULL || g->refs == 0) return;
  if (--g->refs > 0) return;
  m->joined--;
  m->counters[MLD_C_GROUPS] = m->joined;
  if (changed(m, g, now) != 0) remove_group(m, g); /* no memory for the leave: gone anyway */
}

/* ---- reports ----------------------------------------------------------------------------- */

/* What a list entry sends: the four sources of records, in the order mld_run serves them. */
enum { SRC_REPEAT, SRC_CHANGED, SRC_GENERAL, SRC_QUERIED };

typedef struct {
  const uint8_t *src;
  mld_send_fn send;
  void *ctx;
  uint8_t frames[SEND_BATCH][FRAME_MAX];
  uint32_t lens[SEND_BATCH];
  uint32_t records[SEND_BATCH];
  uint32_t upto[SEND_BATCH]; /* the list index after the last entry the frame covers */
  uint32_t n;                /* frames begun */
} report_out;

static report_out out; /* 24 KB, for mld_run and mld_leave_all: node's loop is one thread */

/* Records per frame: as many as the MTU holds, or one in MLDv1 compatibility mode (a Report
 * or Done names one group). */
static uint32_t per_frame(const mld *m) { return m->v1 ? 1 : m->max_records; }

/* A frame from src, hop limit 1, a Hop-by-Hop header with the Router Alert option (value 0:
 * MLD) padded to 8 bytes: the Report of §5.2 to ff02::16, its records appended by out_record,
 * or (MLDv1 compatibility mode) room for one MLDv1 message that out_record writes with its
 * destination. The caller keeps n below SEND_BATCH. */
static void out_begin(report_out *o) {
  uint8_t *f = o->frames[o->n];
  memset(f, 0, REPORT_HEAD);
  f[0] = 0x60;
  f[IP6_NH_OFF] = NEXT_HBH;
  f[IP6_HLIM_OFF] = 1;
  memcpy(f + IP6_SRC_OFF, o->src, 16);
  memcpy(f + IP6_DST_OFF, ALL_MLDV2_ROUTERS, 16);
  uint8_t *hbh = f + IP6_HDR_LEN;
  hbh[0] = NEXT_ICMP6;
  hbh[1] = 0; /* (0 + 1) x 8 bytes */
  hbh[2] = OPT_ROUTER_ALERT;
  hbh[3] = 2;
  hbh[6] = 1; /* PadN, 0 bytes of padding */
  f[IP6_HDR_LEN + HBH_LEN] = MLD2_REPORT;
  o->records[o->n] = 0;
  o->n++;
}

/* Appends a record to the last frame begun (which has room). In MLDv1 compatibility mode the
 * frame becomes the MLDv1 message for it (§8.2.1): a leave is a Done to all routers, anything
 * else a Report to the group itself. */
static void out_record(const mld *m, report_out *o, uint8_t type, uint32_t key) {
  uint8_t *f = o->frames[o->n - 1];
  uint8_t group[16];
  memcpy(group, SOLICITED_PREFIX, 13);
  group[13] = (uint8_t)(key >> 16);
  group[14] = (uint8_t)(key >> 8);
  group[15] = (uint8_t)key;
  if (m->v1) {
    uint8_t *msg = f + IP6_HDR_LEN + HBH_LEN;
    memset(msg, 0, MLD_V1_QUERY_LEN);
    msg[0] = type == REC_CHANGE_TO_INCLUDE ? MLD1_DONE : MLD1_REPORT;
    memcpy(msg + MLD_GROUP_OFF, group, 16);
    memcpy(f + IP6_DST_OFF, msg[0] == MLD1_DONE ? ALL_ROUTERS : group, 16);
    o->records[o->n - 1] = 1;
    return;
  }
  uint8_t *r = f + REPORT_HEAD + o->records[o->n - 1] * RECORD_LEN;
  memset(r, 0, 4);
  r[0] = type;
  memcpy(r + 4, group, 16);
  o->records[o->n - 1]++;
}

/* Completes the frames begun (lengths, record counts, checksums), hands them to the send
 * function and counts what the link took; returns how many (in order), *busy as the send
 * function set it. */
static uint32_t out_send(mld *m, report_out *o, int *busy) {
  uint8_t *frames[SEND_BATCH];
  for (uint32_t i = 0; i < o->n; i++) {
    uint8_t *f = o->frames[i];
    uint8_t *icmp = f + IP6_HDR_LEN + HBH_LEN;
    int v2 = icmp[0] == MLD2_REPORT;
    uint32_t icmp_len = v2 ? REPORT_HDR_LEN + o->records[i] * RECORD_LEN : MLD_V1_QUERY_LEN;
    uint32_t plen = HBH_LEN + icmp_len;
    f[IP6_PLEN_OFF] = (uint8_t)(plen >> 8);
    f[IP6_PLEN_OFF + 1] = (uint8_t)plen;
    if (v2) {
      icmp[6] = (uint8_t)(o->records[i] >> 8);
      icmp[7] = (uint8_t)o->records[i];
    }
    icmp[2] = icmp[3] = 0;
    uint16_t c = mip6_icmp6_checksum(f + IP6_SRC_OFF, f + IP6_DST_OFF, icmp, icmp_len);
    icmp[2] = (uint8_t)(c >> 8);
    icmp[3] = (uint8_t)c;
    o->lens[i] = IP6_HDR_LEN + plen;
    frames[i] = f;
  }
  *busy = 0;
  uint32_t sent = o->n ? o->send(o->ctx, frames, o->lens, o->n, busy) : 0;
  if (sent > o->n) sent = o->n;
  m->counters[MLD_C_REPORTS_SENT] += sent;
  for (uint32_t i = 0; i < sent; i++) m->counters[MLD_C_RECORDS_SENT] += o->records[i];
  return sent;
}

/* The list bit of a source's entries (none for a General Query's answer: a copy of its own). */
static uint8_t bit_of(int source) {
  return source == SRC_REPEAT ? MLD_IN_REPEAT
         : source == SRC_CHANGED ? MLD_IN_CHANGED
         : source == SRC_QUERIED ? MLD_IN_QUERIED
                                 : 0;
}

/* The record a list entry sends now, or 0 when it sends none (its group gone or its work done
 * elsewhere). A repeat whose group changed again since is left to that change's first
 * transmission, which schedules its own repeat, so the two never leave together. */
static uint8_t record_of(mld *m, int source, uint32_t key) {
  const mld_group *g = find(m, key);
  uint8_t bit = bit_of(source);
  if (g == NULL || (bit && !(g->lists & bit))) return 0;
  switch (source) {
  case SRC_REPEAT:
    if (g->lists & MLD_IN_CHANGED) return 0;
    /* fall through */
  case SRC_CHANGED:
    if (g->left == 0) return 0;
    return g->refs ? REC_CHANGE_TO_EXCLUDE : REC_CHANGE_TO_INCLUDE;
  default: /* a Current State Report: we listen to every source (§5.2.12) */
    return g->refs ? REC_MODE_IS_EXCLUDE : 0;
  }
}

/* A list entry is done: its record went out (or was lost for good), or it had none. A State
 * Change Report still due again joins the next round of repeats; a group with nothing left
 * goes. */
static void entry_done(mld *m, int source, uint32_t key, uint64_t now) {
  mld_group *g = find(m, key);
  uint8_t bit = bit_of(source);
  if (g == NULL || !bit || !(g->lists & bit)) return;
  int change = source != SRC_QUERIED && record_of(m, source, key) != 0;
  g->lists &= (uint8_t)~(source == SRC_QUERIED ? MLD_IN_QUERIED | MLD_IN_COVERED : bit);
  if (change && --g->left > 0 && !(g->lists & MLD_IN_REPEAT)) {
    if (push(&m->repeat, g->key) != 0) {
      g->left = 0; /* no memory for the repeat: sent once */
    } else {
      g->lists |= MLD_IN_REPEAT;
      if (m->repeat_due == 0) m->repeat_due = now + 1 + random_delay(m, MLD_UNSOLICITED_MS);
    }
  }
  forget_if_idle(m, g);
}

/* Sends the round in progress of a list (entries [head, end)) in batches of frames, at most
 * *budget frames; the entries of a frame are done only once the link took it. Returns 0 when
 * the round is over, 1 when it stopped: the budget spent (the rest MLD_PACE_MS later) or the
 * link out of room (the rest after a back-off). */
static int send_round(mld *m, int source, mld_keylist *l, uint32_t *budget, uint64_t now) {
  report_out *o = &out;
  while (l->head < l->end) {
    if (*budget == 0) {
      m->hold_until = now + MLD_PACE_MS;
      return 1;
    }
    uint32_t most = *budget < SEND_BATCH ? *budget : SEND_BATCH;
    uint32_t i = l->head;
    o->n = 0;
    for (; i < l->end; i++) {
      uint8_t type = record_of(m, source, l->keys[i]);
      if (type == 0) continue;
      if (o->n == 0 || o->records[o->n - 1] == per_frame(m)) {
        if (o->n == most) break;
        if (o->n > 0) o->upto[o->n - 1] = i;
        out_begin(o);
      }
      out_record(m, o, type, l->keys[i]);
    }
    if (o->n > 0) o->upto[o->n - 1] = i;
    int busy;
    uint32_t sent = out_send(m, o, &busy);
    uint32_t done = o->n == 0 ? i : sent > 0 ? o->upto[sent - 1] : l->head;
    uint32_t lost = sent < o->n && !busy;
    if (lost) {
      m->counters[MLD_C_REPORT_SEND_ERRORS]++; /* failed for good: the repeat covers a change */
      done = o->upto[sent];
    }
    for (uint32_t j = l->head; j < done; j++) entry_done(m, source, l->keys[j], now);
    l->head = done;
    *budget -= sent + lost < *budget ? sent + lost : *budget;
    if (busy && sent < o->n) {
      /* The link refused the rest for want of room (EAGAIN, ENOBUFS): they stay pending. */
      m->counters[MLD_C_REPORT_RETRIES] += o->n - sent;
      if (sent > 0) m->retry_ms = MLD_RETRY_MIN_MS; /* it took some: room comes back soon */
      m->hold_until = now + m->retry_ms;
      m->retry_ms = m->retry_ms * 2 < MLD_RETRY_MAX_MS ? m->retry_ms * 2 : MLD_RETRY_MAX_MS;
      return 1;
    }
    if (sent > 0) m->retry_ms = MLD_RETRY_MIN_MS;
  }
  /* Over: entries pushed meanwhile (after `end`) move to the front for the next round. */
  if (l->len > l->end) /* (keys is NULL in a list never pushed to) */
    memmove(l->keys, l->keys + l->end, (size_t)(l->len - l->end) * sizeof *l->keys);
  l->len -= l->end;
  l->head = l->end = 0;
  return 0;
}

/* A list's rounds: the one in progress, then a new one if due (its entries then are its
 * round; those added while it is sent wait for the next). */
static void run_list(mld *m, int source, mld_keylist *l, uint64_t *due, uint32_t *budget,
                     uint64_t now) {
  for (int pass = 0; pass < 2; pass++) {
    if (l->head == l->end) {
      if (*due == 0 || now < *due) return;
      *due = 0;
      l->end = l->len;
      if (source == SRC_QUERIED) {
        m->specific_last = now;
        m->counters[MLD_C_QUERIES_ANSWERED]++;
      }
    }
    if (send_round(m, source, l, budget, now)) return;
  }
}

/* Frames for n records at the link's MTU (or in MLDv1 compatibility mode). */
static uint64_t frames_for(const mld *m, uint64_t n) {
  uint64_t per = per_frame(m) ? per_frame(m) : 1;
  return (n + per - 1) / per;
}

/* Run budgets a General Query's answer takes now: more than one and it is spread. */
static uint64_t general_chunks(const mld *m) {
  uint64_t chunks = (frames_for(m, m->joined) + MLD_RUN_FRAMES - 1) / MLD_RUN_FRAMES;
  return chunks ? chunks : 1;
}

/* A General Query's answer starts: a copy of the groups we are in (the table may change while
 * the answer is spread over its delay), sent by send_round like the lists. The address-specific
 * answers pending now are covered by it: each group's record in it goes after their query. */
static void general_start(mld *m, uint64_t now) {
  m->general_due = 0;
  m->general_last = now;
  m->general_next = now;
  m->counters[MLD_C_QUERIES_ANSWERED]++;
  mld_keylist *l = &m->general;
  l->len = l->head = 0;
  for (uint32_t i = 0; i < m->cap; i++)
    if (m->groups[i].used && m->groups[i].refs && push(l, m->groups[i].key) != 0)
      break; /* no memory for the rest: a partial answer */
  l->end = l->len;
  for (uint32_t i = m->queried.head; i < m->queried.len; i++) {
    mld_group *g = find(m, m->queried.keys[i]);
    if (g != NULL && (g->lists & MLD_IN_QUERIED)) g->lists |= MLD_IN_COVERED;
  }
}

/* The General answer has gone out in full: the address-specific answers it covered are given
 * (not before: a part of it held back by the run's budget or by the link would make them late,
 * RFC 3810 §6.2) and leave the list; those still due stay, in order. */
static void general_done(mld *m) {
  mld_keylist *l = &m->queried;
  uint32_t kept = l->head, end = l->end;
  for (uint32_t i = l->head; i < l->len; i++) {
    mld_group *g = find(m, l->keys[i]);
    if (g != NULL && (g->lists & MLD_IN_COVERED)) {
      g->lists &= (uint8_t)~(MLD_IN_QUERIED | MLD_IN_COVERED);
      forget_if_idle(m, g);
      if (i < l->end) end--;
      continue;
    }
    l->keys[kept++] = l->keys[i];
  }
  l->len = kept;
  l->end = end;
  if (l->len > l->head) return;
  l->len = l->head = l->end = 0;
  m->specific_due = 0;
}

/* The General Query's answer: in one go when it fits one run budget (MLD_RUN_FRAMES frames),
 * else a run budget at a time, the next so that the last goes by general_deadline (at least
 * MLD_PACE_MS apart). What the budget held back of an answer that fits goes on the next run, and
 * what the link refused after its back-off (send_round's hold_until): neither waits for the
 * deadline. */
static void run_general(mld *m, uint32_t *budget, uint64_t now) {
  mld_keylist *l = &m->general;
  if (l->head == l->end) {
    if (m->general_due == 0 || now < m->general_due) return;
    general_start(m, now);
  }
  if (now < m->general_next || *budget == 0) return;
  if (send_round(m, SRC_GENERAL, l, budget, now) == 0) {
    general_done(m);
    return;
  }
  if (*budget != 0 || frames_for(m, l->end) <= MLD_RUN_FRAMES) return;
  uint64_t chunks = (frames_for(m, l->end - l->head) + MLD_RUN_FRAMES - 1) / MLD_RUN_FRAMES;
  uint64_t gap = m->general_deadline > now ? (m->general_deadline - now) / (chunks ? chunks : 1) : 0;
  m->general_next = now + (gap > MLD_PACE_MS ? gap : MLD_PACE_MS);
}

void mld_run(mld *m, uint64_t now, const uint8_t *src, mld_send_fn send, void *ctx) {
  report_out *o = &out;
  m->v1 = now < m->v1_until; /* the Older Version Querier Present timer ran out: MLDv2 again */
  if (now < m->hold_until) return;
  o->src = src;
  o->send = send;
  o->ctx = ctx;
  uint32_t budget = MLD_RUN_FRAMES;
  /* Repeats first: a group whose first transmission goes now joins the next round of
   * repeats, not this one (both in one frame would make the repeat useless). */
  run_list(m, SRC_REPEAT, &m->repeat, &m->repeat_due, &budget, now);
  run_list(m, SRC_CHANGED, &m->changed, &m->changed_due, &budget, now);
  run_general(m, &budget, now);
  run_list(m, SRC_QUERIED, &m->queried, &m->specific_due, &budget, now);
  if (budget == 0 && m->hold_until <= now) m->hold_until = now + MLD_PACE_MS;
}

void mld_leave_all(mld *m, const uint8_t *src, mld_send_fn send, void *ctx) {
  report_out *o = &out;
  o->src = src;
  o->send = send;
  o->ctx = ctx;
  o->n = 0;
  int busy;
  for (uint32_t i = 0; i < m->cap; i++) {
    /* A group we are in, or one whose leave has not gone out both times yet. */
    if (!m->groups[i].used || (!m->groups[i].refs && !m->groups[i].left)) continue;
    if (o->n == 0 || o->records[o->n - 1] == per_frame(m)) {
      if (o->n == SEND_BATCH) { /* closing: what the link refuses is not sent again */
        m->counters[MLD_C_REPORT_SEND_ERRORS] += o->n - out_send(m, o, &busy);
        o->n = 0;
      }
      out_begin(o);
    }
    out_record(m, o, REC_CHANGE_TO_INCLUDE, m->groups[i].key);
  }
  m->counters[MLD_C_REPORT_SEND_ERRORS] += o->n - out_send(m, o, &busy);
}

/* A list's next time: its round in progress goes on when the pacing allows, else its due. */
static uint64_t list_next(const mld_keylist *l, uint64_t due) { return l->head < l->end ? 1 : due; }

uint64_t mld_next(const mld *m) {
  uint64_t next = 0;
  const uint64_t due[] = {
      list_next(&m->repeat, m->repeat_due),
      list_next(&m->changed, m->changed_due),
      list_next(&m->queried, m->specific_due),
      m->general.head < m->general.end ? m->general_next : m->general_due,
  };
  for (size_t i = 0; i < sizeof due / sizeof due[0]; i++)
    if (due[i] && (next == 0 || due[i] < next)) next = due[i];
  return next && next < m->hold_until ? m->hold_until : next;
}

/* ---- queries ----------------------------------------------------------------------------- */

/* The Maximum Response Delay in ms (RFC 3810 §5.1.3; MLDv1: the code is the delay). */
static uint64_t max_response_ms(const uint8_t *q, int v1) {
  uint32_t code = (uint32_t)q[MLD_MRC_OFF] << 8 | q[MLD_MRC_OFF + 1];
  if (v1 || code < 32768) return code;
  return (uint64_t)((code & 0x0fff) | 0x1000) << (((code >> 12) & 7) + 3);
}

/* The Hop-by-Hop header at hbh (len bytes left): 0 when well formed (its length in *hlen,
 * whether a Router Alert for MLD is there in *alert), else -1. */
static int parse_hbh(const uint8_t *hbh, uint32_t len, uint32_t *hlen, int *alert) {
  if (len < 8) return -1;
  *hlen = ((uint32_t)hbh[1] + 1) * 8;
  if (*hlen > len) return -1;
  *alert = 0;
  for (uint32_t at = 2; at < *hlen;) {
    if (hbh[at] == OPT_PAD1) {
      at++;
      continue;
    }
    if (*hlen - at < 2 || (uint32_t)hbh[at + 1] + 2 > *hlen - at) return -1;
    if (hbh[at] == OPT_ROUTER_ALERT && hbh[at + 1] == 2 && hbh[at + 2] == 0 && hbh[at + 3] == 0)
      *alert = 1;
    at += (uint32_t)hbh[at + 1] + 2;
  }
  return 0;
}

/* An MLDv1 Query: the link has an MLDv1 querier, and until MLD_V1_PRESENT_MS after the last
 * such query we speak MLDv1 (§8.2.1). Entering the mode cancels the pending query answers; the
 * query that brought it is then answered in MLDv1. Pending State Change Reports stay, and leave
 * as MLDv1 Reports and Dones (a deviation, see the top of this file). */
static void mld1_mode(mld *m) {
  mld_keylist *l = &m->queried;
  for (uint32_t i = l->head; i < l->len; i++) {
    mld_group *g = find(m, l->keys[i]);
    if (g == NULL) continue;
    g->lists &= (uint8_t)~(MLD_IN_QUERIED | MLD_IN_COVERED);
    forget_if_idle(m, g);
  }
  l->len = l->head = l->end = 0;
  m->general.len = m->general.head = m->general.end = 0;
  m->general_due = m->specific_due = 0;
  m->counters[MLD_C_V1_QUERIER]++;
}

/* Two general responses at least this far apart: 1 s, or 10 ms per frame the answer takes, so
 * a forged General Query each second cannot make a home agent with 100 000 groups multicast
 * ~1 400 frames a second (review of 7b43a8a). */
static uint64_t general_gap_ms(const mld *m) {
  uint64_t gap = frames_for(m, m->joined) * MLD_GAP_PER_FRAME_MS;
  if (m->v1) gap = gap * MLD1_FRAME_LEN / FRAME_MAX; /* as many bytes a millisecond */
  return gap > MLD_GENERAL_GAP_MS ? gap : MLD_GENERAL_GAP_MS;
}

/* A General Query asking for an answer within max_ms (capped): the answer starts at a random
 * time within max_ms / (its run budgets) and its frames are spread to end by max_ms (§6.2
 * answers at a random time within the delay; a big answer spread over it), all of it later by
 * as much as the gap since the last answer asks. One answer at a time: a query while one is
 * pending or under way joins it, and can only bring its end sooner (§6.2). */
static void general_query(mld *m, uint64_t now, uint64_t max_ms) {
  uint64_t span = max_ms < MLD_MAX_DELAY_MS ? max_ms : MLD_MAX_DELAY_MS;
  uint64_t due = now + random_delay(m, span / general_chunks(m));
  uint64_t deadline = now + span;
  uint64_t earliest = m->general_last ? m->general_last + general_gap_ms(m) : 0;
  if (due < earliest) {
    deadline += earliest - due;
    due = earliest;
  }
  if (m->general_due || m->general.head < m->general.end) {
    m->counters[MLD_C_QUERIES_COALESCED]++;
    if (m->general_due && due < m->general_due) m->general_due = due; /* §6.2 rule 2 */
    if (deadline < m->general_deadline) m->general_deadline = deadline;
    return;
  }
  m->general_due = due;
  m->general_deadline = deadline;
}

static void specific_query(mld *m, const uint8_t *group, uint64_t due) {
  mld_group *g = memcmp(group, SOLICITED_PREFIX, 13) == 0 ? find(m, key_of(group)) : NULL;
  if (g == NULL || g->refs == 0) {
    m->counters[MLD_C_QUERY_NOT_OURS]++;
    return;
  }
  /* §6.2 rule 1: a general response due sooner answers this one (if it goes all at once). */
  if (m->general_due && m->general_due <= due && general_chunks(m) == 1) {
    m->counters[MLD_C_QUERIES_COALESCED]++;
    return;
  }
  if (g->lists & MLD_IN_QUERIED) {
    /* Already pending: §6.2 takes the sooner of the two (a forged query with a long delay must
     * not hold back the querier's), still gap-bounded. */
    m->counters[MLD_C_QUERIES_COALESCED]++;
    /* The General answer under way may have named the group before this query: not covered. */
    g->lists &= (uint8_t)~MLD_IN_COVERED;
    if (m->specific_last && due < m->specific_last + MLD_SPECIFIC_GAP_MS)
      due = m->specific_last + MLD_SPECIFIC_GAP_MS;
    if (due < m->specific_due) m->specific_due = due;
    return;
  }
  if (push(&m->queried, g->key) != 0) return;
  g->lists |= MLD_IN_QUERIED;
  if (m->specific_last && due < m->specific_last + MLD_SPECIFIC_GAP_MS)
    due = m->specific_last + MLD_SPECIFIC_GAP_MS;
  if (m->specific_due == 0 || due < m->specific_due) m->specific_due = due;
}

void mld_query(mld *m, const uint8_t *pkt, size_t n, uint64_t now) {
  if (n < IP6_HDR_LEN) {
    m->counters[MLD_C_BAD_QUERY_LENGTH]++;
    return;
  }
  uint32_t plen = (uint32_t)pkt[IP6_PLEN_OFF] << 8 | pkt[IP6_PLEN_OFF + 1];
  if (IP6_HDR_LEN + (size_t)plen > n) {
    m->counters[MLD_C_BAD_QUERY_LENGTH]++;
    return;
  }
  const uint8_t *body = pkt + IP6_HDR_LEN;
  uint32_t hlen = 0;
  int alert = 0;
  if (pkt[IP6_NH_OFF] == NEXT_HBH) {
    if (parse_hbh(body, plen, &hlen, &alert) != 0 || body[0] != NEXT_ICMP6) {
      m->counters[MLD_C_BAD_QUERY_HEADER]++;
      return;
    }
  }
  const uint8_t *q = body + hlen;
  uint32_t len = plen - hlen;
  uint32_t nsrc = len >= MLD_V2_QUERY_MIN ? (uint32_t)q[MLD_NSRC_OFF] << 8 | q[MLD_NSRC_OFF + 1] : 0;
  int v1 = len == MLD_V1_QUERY_LEN;
  if (!v1 && (len < MLD_V2_QUERY_MIN || len < MLD_V2_QUERY_MIN + 16 * nsrc)) {
    m->counters[MLD_C_BAD_QUERY_LENGTH]++; /* §8.1: ignored */
    return;
  }
  const uint8_t *src = pkt + IP6_SRC_OFF;
  if (mip6_icmp6_checksum(src, pkt + IP6_DST_OFF, q, len) != 0) {
    m->counters[MLD_C_BAD_QUERY_CHECKSUM]++;
    return;
  }
  if (pkt[IP6_HLIM_OFF] != 1) {
    m->counters[MLD_C_BAD_QUERY_HOP_LIMIT]++;
    return;
  }
  if (!(src[0] == 0xfe && (src[1] & 0xc0) == 0x80)) {
    m->counters[MLD_C_BAD_QUERY_SOURCE]++;
    return;
  }
  if (!alert) {
    m->counters[MLD_C_NO_ROUTER_ALERT]++;
    return;
  }
  static const uint8_t unspecified[16];
  const uint8_t *group = q + MLD_GROUP_OFF;
  int general = memcmp(group, unspecified, 16) == 0;
  if (!general && group[0] != 0xff) {
    m->counters[MLD_C_BAD_QUERY_GROUP]++;
    return;
  }
  m->counters[MLD_C_QUERIES]++;
  if (v1) {
    if (now >= m->v1_until) mld1_mode(m); /* §8.2.1 */
    m->v1_until = now + MLD_V1_PRESENT_MS;
  }
  m->v1 = now < m->v1_until;
  uint64_t max_ms = max_response_ms(q, v1);
  if (general) general_query(m, now, max_ms);
  else specific_query(m, group, now + random_delay(m, max_ms < MLD_MAX_DELAY_MS ? max_ms : MLD_MAX_DELAY_MS));
}
