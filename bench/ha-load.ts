/**
 * Home-agent scale against the real `mip6 ha` daemon over UDP (issue 8, metric 7). Not a test:
 * bench/ha-scale.ts (and bench/compare.ts) run it next to the daemon, over loopback.
 *
 *   node --import tsx bench/ha-load.ts --authority-key CA/authority.key --authority-pub F
 *     --ha-pub F --ha-pid PID --n N [--rounds 3] [--window 64] [--agent 127.0.0.1] [--port 4191]
 *     [--bind ADDR --bind-count K] [--offset I] [--home-agent 2001:db8:100::1] [--timeout-s 120]
 *     [--cache DIR] [--over-cap M]
 *
 * Flow:
 *   1. N simulated mobile nodes, each with its own X25519 key, a certificate for its own home
 *      address (2001:db8:100::a:0 upwards) signed with the authority key, and a SecureEndpoint
 *      (the real Noise IK channel). With --cache the keys and certificates are kept in
 *      DIR/members-<authority>.bin and reused by later runs with the same authority (batch
 *      issuance in this process, never in the repository).
 *   2. Sources: K addresses (BIND, BIND+1, ...; the HA limits handshakes per source IP, like a
 *      real deployment where MNs come from many addresses); MN i sends from source i % K. One
 *      UDP socket of the addon (src/io/udp.ts) bound to the wildcard address carries them all:
 *      each datagram leaves from its MN's source (IP_PKTINFO), so the HA sees K locators
 *      (source:port), as it did with one socket per source, and what this process sends in one
 *      turn of the event loop goes out in one sendmmsg, what arrives comes in recvmmsg batches.
 *      Several MNs share a source and so a locator: the HA tells members apart by their
 *      channel (receiver SPI, then the certificate), never by the locator. Replies are handed to
 *      the MN that owns the receiver SPI (every SPI this process allocates is unique).
 *   3. Registration: at most --window MNs in flight; each does the handshake (answering a
 *      cookie reply when the HA is under load), then sends the Binding Update the real MN's
 *      HomeRegistration engine builds; the matching BA (same sequence) completes it. Each MN's
 *      BU packet is encoded once (encodeMobilityPacket); every later BU of it is that packet
 *      with the next sequence number and its Mobility Header checksum written again (checked
 *      against a fresh encoding at start), sealed on its own (the channel's next counter, the
 *      addon's AEAD as in the daemon) in place in the send batch. A BA is checked in place: an
 *      IPv6 packet carrying only a Mobility Header of type 6 with a valid checksum, whose
 *      sequence number is one of the MN's outstanding BU; anything else goes through
 *      decodePacket.
 *   4. Optionally --over-cap M more MNs register once the N are bound; each BA must carry status
 *      130 (insufficient resources) when the HA's binding cap is N: the cap holds.
 *   5. Refresh rounds: every MN sends a BU with the next sequence number, again at most
 *      --window outstanding; BA latency is the time from the send to the BA. An MN whose keys
 *      expired (REJECT_AFTER_TIME: a BU is signaling, it never rekeys by time, issue 17) starts
 *      a new handshake first, like the real MN; the handshakes during the rounds are reported
 *      (handshakesDuringRefresh: the MNs' and the HA's).
 *   6. The HA's RSS (/proc/PID/status VmRSS) and CPU time (/proc/PID/stat) before and after each
 *      phase, and this process's own CPU time; one JSON line on stdout.
 *   7. With --restart (issue 20; the HA keeps [home] state): once the refresh rounds are done, a
 *      line {"event":"ready-for-restart"} on stdout; the caller kills the HA with SIGKILL, starts
 *      it again and writes "restarted PID STARTED_AT_MS" on stdin. The MNs keep their locators
 *      (the HA's stored ones) and answer as the real MN does: the HA's initiation (found by
 *      its MAC1 among the MNs of the source address it came to) with a response, its Binding Refresh
 *      Request with a BU. Time from the restarted HA's start to each BA, and its CPU time.
 * An unanswered BU is resent with a new sequence number after 1 s, 2 s, 4 s ... (like the real
 * MN); everything stops at --timeout-s.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DATA_HEADER_LEN, DATA_OVERHEAD, DataKind, readSpi } from '../src/crypto/aead.js';
import {
  decodeCertificate,
  signCertificate,
  type MemberCertificate,
} from '../src/crypto/certificate.js';
import { SecureEndpoint, type OpenBatchOutput, type PeerSession } from '../src/crypto/endpoint.js';
import { OutgoingDatagramBatch } from '../src/io/batch.js';
import { createNativeBatchAead } from '../src/io/native-aead.js';
import type { DatagramBatch } from '../src/io/types.js';
import { openUdp } from '../src/io/udp.js';
import { internetChecksum, pseudoHeaderChecksum } from '../src/wire/checksum.js';
import { IPPROTO } from '../src/wire/types.js';
import { checkMac1, mac1Key } from '../src/crypto/handshake.js';
import { createInterface } from 'node:readline';
import {
  readAuthorityPrivate,
  readAuthorityPublic,
  readMemberPublic,
} from '../src/cli/key-files.js';
import { generateMember, type KeyPair } from '../src/crypto/keys.js';
import { initCrypto, lib } from '../src/crypto/sodium.js';
import { HomeRegistration } from '../src/protocol/mobile-node-registration.js';
import { parseIpv4, parseIpv6 } from '../src/wire/address.js';
import { decodePacket, encodeMobilityPacket } from '../src/wire/packet.js';
import {
  decodePathMtuMessage,
  encodeProbeAck,
  isPathMtuMessage,
} from '../src/protocol/path-mtu.js';
import type { BindingUpdate } from '../src/wire/types.js';
import { rankQuantile } from './lib/stats.js';

const { values: a } = parseArgs({
  options: {
    'authority-key': { type: 'string' },
    'authority-pub': { type: 'string' },
    'ha-pub': { type: 'string' },
    'ha-pid': { type: 'string' },
    n: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    window: { type: 'string', default: '64' },
    /** BUs in flight in the refresh rounds (default: --window). */
    'refresh-window': { type: 'string' },
    agent: { type: 'string', default: '127.0.0.1' },
    bind: { type: 'string' },
    'bind-count': { type: 'string', default: '1' },
    offset: { type: 'string', default: '0' },
    port: { type: 'string', default: '4191' },
    'home-agent': { type: 'string', default: '2001:db8:100::1' },
    'timeout-s': { type: 'string', default: '120' },
    cache: { type: 'string' },
    'over-cap': { type: 'string', default: '0' },
    restart: { type: 'boolean', default: false },
  },
});
/** Bounded: the home prefix holds far more, but every loop here must stay bounded. */
const MAX_MEMBERS = 200_000;
const N = Math.max(1, Math.min(MAX_MEMBERS, Number(a.n)));
/** First simulated MN's index (its HoA and name): later runs against the same HA use fresh ones. */
const OFFSET = Math.max(0, Math.min(MAX_MEMBERS, Number(a.offset)));
const OVER_CAP = Math.max(0, Math.min(1000, Number(a['over-cap'])));
const RESTART = a.restart === true;
const ROUNDS = Math.max(0, Math.min(20, Number(a.rounds)));
const WINDOW = Math.max(1, Math.min(4096, Number(a.window)));
/** In-flight limit of the refresh rounds: registrations wait ~1 s for DAD with a home link, so
 *  they need a larger window than refreshes, whose latency the window's queue sets. */
const REFRESH_WINDOW = Math.max(1, Math.min(4096, Number(a['refresh-window'] ?? a.window)));
const AGENT = a.agent ?? '127.0.0.1';
/** Local source (and care-of) address of every simulated MN; the HA refuses a loopback CoA. */
const BIND = a.bind ?? AGENT;
/** Sources BIND, BIND+1, ...; the caller makes them local (a `local` route + ip_nonlocal_bind). */
const BIND_COUNT = Math.max(1, Math.min(256, Number(a['bind-count'])));
/** Minimum time between two BUs of one MN: the HA drops a 4th BU within 1 s (RFC 6275 §11.8); margin for jitter. */
const MIN_BU_GAP_MS = 550;

function sourceOf(i: number): string {
  const base = BIND.split('.').map(Number);
  const n =
    (((base[0]! << 24) >>> 0) +
      (base[1]! << 16) +
      (base[2]! << 8) +
      base[3]! +
      (i % BIND_COUNT)) >>>
    0;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
const PORT = Number(a.port);
const HA_HOME = a['home-agent'] ?? '2001:db8:100::1';
const DEADLINE = performance.now() + Math.max(5, Number(a['timeout-s'])) * 1000;
/** First BA wait, doubled per retransmission like the real MN (RFC 6275 §11.8). */
const RESEND_MS = 1000;
/** Unix ms advancing with the monotonic clock: the channel checks certificates against it. */
const EPOCH_OFFSET_MS = Date.now() - performance.now();
function clock(): number {
  return performance.now() + EPOCH_OFFSET_MS;
}
const LIFETIME_S = 600;
/** Certificates in the cache are valid this long; the cache is rebuilt when half is gone. */
const CERT_VALIDITY_S = 30 * 86_400;

function need(v: string | undefined, name: string): string {
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

/** CPU seconds (user + system) of a process, from /proc/<pid>/stat (clock ticks of 10 ms). */
function cpuSeconds(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Threads of a process now (/proc/<pid>/task); NaN once it is gone. */
function threadCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return NaN;
  }
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

/** Home address of simulated MN `i`: 2001:db8:100::a:0 upwards (two 16-bit groups). */
function hoaOf(i: number): string {
  const v = 0xa_0000 + i;
  return `2001:db8:100::${(v >>> 16).toString(16)}:${(v & 0xffff).toString(16)}`;
}

// ---- member keys and certificates (cached) -------------------------------------------------

interface Member {
  staticKey: KeyPair;
  certificate: MemberCertificate;
}

/**
 * Keys and certificates for members [0, count): from the cache file when it holds them (same
 * authority, still valid), the rest issued here and appended. Record: u16 certificate length,
 * 32-byte X25519 private key, certificate bytes. Header: "M6SC", u32 notAfter.
 */
function members(count: number, authority: { secretKey: Uint8Array; publicKey: Uint8Array }) {
  const out: Member[] = [];
  const nowS = Math.floor(Date.now() / 1000);
  const id = Buffer.from(authority.publicKey).toString('hex').slice(0, 16);
  const file = a.cache === undefined ? undefined : join(a.cache, `members-${id}.bin`);
  let cached = 0;
  if (file !== undefined && existsSync(file)) {
    const buf = readFileSync(file);
    const notAfter = buf.length >= 8 ? buf.readUInt32BE(4) : 0;
    if (buf.subarray(0, 4).toString() === 'M6SC' && notAfter - nowS > CERT_VALIDITY_S / 2) {
      let o = 8;
      while (o + 34 <= buf.length && out.length < count) {
        const len = buf.readUInt16BE(o);
        const priv = new Uint8Array(buf.subarray(o + 2, o + 34));
        const certificate = decodeCertificate(new Uint8Array(buf.subarray(o + 34, o + 34 + len)));
        // The certificate carries the public key: no scalar multiplication per cached member.
        out.push({
          staticKey: { privateKey: priv, publicKey: certificate.publicKey },
          certificate,
        });
        o += 34 + len;
      }
      cached = out.length;
    }
  }
  const chunks: Buffer[] = [];
  const notAfter = nowS + CERT_VALIDITY_S;
  for (let i = out.length; i < count; i++) {
    const staticKey = generateMember();
    const certificate = signCertificate(
      {
        name: `sim${i}`,
        role: 'mn',
        publicKey: staticKey.publicKey,
        addresses: [{ address: parseIpv6(hoaOf(i)), prefixLength: 128 }],
        notBefore: nowS - 300,
        notAfter,
      },
      authority.secretKey,
    );
    out.push({ staticKey, certificate });
    const rec = Buffer.alloc(34 + certificate.raw.length);
    rec.writeUInt16BE(certificate.raw.length, 0);
    rec.set(staticKey.privateKey, 2);
    rec.set(certificate.raw, 34);
    chunks.push(rec);
  }
  if (file !== undefined && chunks.length > 0) {
    mkdirSync(a.cache!, { recursive: true, mode: 0o700 });
    let head: Buffer;
    if (cached === 0) {
      head = Buffer.alloc(8);
      head.write('M6SC', 0);
      head.writeUInt32BE(notAfter, 4);
    } else {
      head = readFileSync(file);
    }
    writeFileSync(file, Buffer.concat([head, ...chunks]), { mode: 0o600 });
  }
  return { members: out, cached };
}

// ---- BUs and BAs on the wire -----------------------------------------------------------------

/** IPv6 header fields and the Mobility Header right after it (no extension header). */
const IP6_NEXT_HEADER_OFF = 6;
const IP6_PAYLOAD_LEN_OFF = 4;
const IP6_SRC_OFF = 8;
const IP6_DST_OFF = 24;
const MH_OFF = 40;
/** Mobility Header: Header Len (units of 8 octets, not counting the first 8), MH Type, Checksum
 *  (RFC 6275 §6.1.1); a BU's Sequence # and a BA's Status and Sequence # (§6.1.7, §6.1.8). */
const MH_LEN_OFF = MH_OFF + 1;
const MH_TYPE_OFF = MH_OFF + 2;
const MH_CHECKSUM_OFF = MH_OFF + 4;
const BU_SEQUENCE_OFF = MH_OFF + 6;
const BA_STATUS_OFF = MH_OFF + 6;
const BA_SEQUENCE_OFF = MH_OFF + 8;
const MH_TYPE_BA = 6;
/** A BA's fixed part: the 6-byte MH header, Status, flags, Sequence #, Lifetime. */
const BA_MIN_LEN = 12;

/** The Mobility Header checksum of `packet` (an IPv6 header, then the MH), over the RFC 8200
 *  §8.1 pseudo-header; the checksum field must be zero. */
function mhChecksum(packet: Uint8Array, off: number, mhLen: number): number {
  const acc = pseudoHeaderChecksum(
    packet,
    packet,
    mhLen,
    IPPROTO.MH,
    off + IP6_SRC_OFF,
    off + IP6_DST_OFF,
  );
  return internetChecksum(packet, off + MH_OFF, mhLen, acc);
}

/**
 * Rewrites the BU packet made by encodeMobilityPacket (an IPv6 header and the MH, nothing
 * between) for sequence number `seq`: the Sequence # field and the MH checksum.
 */
function setBuSequence(bu: Uint8Array, seq: number): void {
  bu[BU_SEQUENCE_OFF] = seq >>> 8;
  bu[BU_SEQUENCE_OFF + 1] = seq & 0xff;
  bu[MH_CHECKSUM_OFF] = 0;
  bu[MH_CHECKSUM_OFF + 1] = 0;
  const c = mhChecksum(bu, 0, bu.length - MH_OFF);
  bu[MH_CHECKSUM_OFF] = c >>> 8;
  bu[MH_CHECKSUM_OFF + 1] = c & 0xff;
}

/**
 * The Status of the BA at buf[off, off + len) when it is one: an IPv6 packet whose only
 * content is a Mobility Header (Next Header 135) of type 6 that fits the packet, is long enough
 * for a BA and whose checksum holds; -1 for anything else (decodePacket looks at that).
 */
function bindingAckStatus(buf: Uint8Array, off: number, len: number): number {
  if (len < MH_OFF + BA_MIN_LEN || buf[off]! >> 4 !== 6) return -1;
  if (buf[off + IP6_NEXT_HEADER_OFF] !== IPPROTO.MH || buf[off + MH_TYPE_OFF] !== MH_TYPE_BA) {
    return -1;
  }
  const payload = (buf[off + IP6_PAYLOAD_LEN_OFF]! << 8) | buf[off + IP6_PAYLOAD_LEN_OFF + 1]!;
  const mhLen = (buf[off + MH_LEN_OFF]! + 1) * 8;
  if (MH_OFF + payload > len || mhLen > payload || mhLen < BA_MIN_LEN) return -1;
  if (mhChecksum(buf, off, mhLen) !== 0) return -1;
  return buf[off + BA_STATUS_OFF]!;
}

/** The Sequence # of the BA bindingAckStatus accepted. */
function bindingAckSequence(buf: Uint8Array, off: number): number {
  return (buf[off + BA_SEQUENCE_OFF]! << 8) | buf[off + BA_SEQUENCE_OFF + 1]!;
}

/**
 * At start: a BU rewritten by setBuSequence is byte for byte the one encodeMobilityPacket makes
 * for that sequence number (else the bench stops: it would send something else than the MN).
 */
function checkBuRewrite(template: BindingUpdate): void {
  const make = (sequence: number): Uint8Array =>
    encodeMobilityPacket({
      source: hoaOf(0),
      destination: HA_HOME,
      message: { ...template, sequence },
    });
  const bu = make(1);
  if (bu[IP6_NEXT_HEADER_OFF] !== IPPROTO.MH) throw new Error('BU with extension headers');
  for (const seq of [2, 0x1234, 0xffff, 0]) {
    setBuSequence(bu, seq);
    if (Buffer.compare(bu, make(seq)) !== 0) throw new Error(`BU rewrite differs at seq ${seq}`);
  }
}

// ---- the simulated MNs -----------------------------------------------------------------------

interface Sim {
  index: number;
  hoa: string;
  endpoint: SecureEndpoint;
  /** Its source address (index into the K sources). */
  source: number;
  session: PeerSession | undefined;
  template: BindingUpdate;
  /** Its BU packet (encoded at its first BU; setBuSequence before each send). */
  bu: Uint8Array | undefined;
  sequence: number;
  /** Sequence awaiting its BA, and when it was (last) sent. */
  outstanding:
    | {
        firstSequence: number;
        sequence: number;
        sentAt: number;
        firstSentAt: number;
        tries: number;
      }
    | undefined;
  /** When this MN last sent a BU (for the HA's per-member rate limit). */
  outstandingLastSentAt: number | undefined;
  /** BA status of the last completed BU. */
  lastStatus: number;
  /** When its endpoint next has timer work (handshake retransmission, rekey). */
  wakeAt: number;
  onDone: (() => void) | undefined;
  /** --restart: its BU after the restarted HA's BRR was acknowledged. */
  restored: boolean;
  /** MAC1 key of its public key: finds the MN an initiation from the HA is for. */
  mac1: Uint8Array;
}

const stats = {
  handshakeCookies: 0,
  rekeys: 0,
  resends: 0,
  rejected: 0,
  drops: 0,
  /** The HA's path MTU probes, acknowledged like the real MN does. */
  pmtuProbesAnswered: 0,
  bindingAcks: 0,
  otherSignaling: 0,
  unknownSpi: 0,
  /** Handshake initiations from the HA (a responder-side rekey): not answered here. */
  haInitiations: 0,
  /** Handshakes started over after the endpoint gave up (REKEY_ATTEMPT_TIME). */
  reconnects: 0,
  /** --restart: handshakes the restarted HA initiated and we completed; its BRRs. */
  restartHandshakes: 0,
  refreshRequests: 0,
};

async function main(): Promise<void> {
  await initCrypto();
  const authority = readAuthorityPrivate(need(a['authority-key'], 'authority-key'));
  const authorityPub = readAuthorityPublic(need(a['authority-pub'], 'authority-pub'));
  const haPub = readMemberPublic(need(a['ha-pub'], 'ha-pub'));
  const haPid = Number(need(a['ha-pid'], 'ha-pid'));

  const latenciesRegister: number[] = [];
  const latenciesRefresh: number[] = [];
  /** --restart: wall-clock ms from the restarted HA's start to each MN's BA. */
  const latenciesRestart: number[] = [];
  let restartedAt = Infinity;
  let restored = 0;
  let phase: 'register' | 'over-cap' | 'refresh' | 'restart' = 'register';

  // ---- sending: one socket, every datagram from its MN's source, one sendmmsg per turn ----
  const SOURCES = Math.min(BIND_COUNT, N + OVER_CAP);
  const udp = openUdp({ family: 4, address: '0.0.0.0', port: 0, maxBatch: 256 });
  const agentSlot = new Uint8Array(16);
  agentSlot.set(parseIpv4(AGENT));
  const sourceSlots: Uint8Array[] = [];
  /** Source k by its address (u32): where an initiation from the restarted HA came to. */
  const sourceIndex = new Map<number, number>();
  for (let k = 0; k < SOURCES; k++) {
    const slot = new Uint8Array(16);
    slot.set(parseIpv4(sourceOf(k)));
    sourceSlots.push(slot);
    sourceIndex.set(((slot[0]! << 24) | (slot[1]! << 16) | (slot[2]! << 8) | slot[3]!) >>> 0, k);
  }
  /** Room for a handshake initiation (certificate included) in every slot. */
  const SEND_SLOT = 1024;
  const SEND_BATCH = 512;
  const out = new OutgoingDatagramBatch(4, SEND_BATCH, SEND_SLOT);
  let flushQueued = false;
  const flush = (): void => {
    flushQueued = false;
    if (out.count === 0) return;
    const n = out.count;
    stats.drops += n - udp.sendDatagrams(out);
    out.clear();
  };
  /** The byte offset of the next datagram's slot in out.buf (sent at the end of this turn). */
  const nextSlot = (): number => {
    if (out.count === SEND_BATCH) flush();
    if (!flushQueued) {
      flushQueued = true;
      queueMicrotask(flush);
    }
    return out.offsets[out.count]!;
  };
  /** The datagram written at nextSlot() is `length` bytes, from source `k`. */
  const commit = (k: number, length: number): void => {
    const i = out.count++;
    out.lengths[i] = length;
    out.dstAddrs.set(agentSlot, i * 16);
    out.dstPorts[i] = PORT;
    out.srcAddrs.set(sourceSlots[k]!, i * 16);
  };
  const send = (sim: Sim, data: Uint8Array): void => {
    if (data.length > SEND_SLOT) throw new Error(`datagram of ${data.length} bytes`);
    out.buf.set(data, nextSlot());
    commit(sim.source, data.length);
  };
  const sealOffset = new Uint32Array(1);
  const sealLength = new Uint32Array(1);

  /** Sends the next BU (a retransmission too takes a new sequence number, RFC 6275 §11.8). */
  const sendBu = (sim: Sim, now: number, resend = false): boolean => {
    if (sim.session === undefined) return false;
    sim.sequence = (sim.sequence + 1) & 0xffff;
    let bu = sim.bu;
    if (bu === undefined) {
      bu = sim.bu = encodeMobilityPacket({
        source: sim.hoa,
        destination: HA_HOME,
        message: { ...sim.template, sequence: sim.sequence },
      });
    } else {
      setBuSequence(bu, sim.sequence);
    }
    // Sealed in place in the send batch: header, ciphertext and tag around the BU.
    const at = nextSlot();
    out.buf.set(bu, at + DATA_HEADER_LEN);
    sealOffset[0] = at;
    sealLength[0] = bu.length;
    const sealed = sim.endpoint.sealBatch(
      sim.session,
      out.buf,
      sealOffset,
      sealLength,
      1,
      now,
      DataKind.SIGNALING,
    );
    if (sealed !== 1) {
      // Keys expired while the MN was idle (REJECT_AFTER_TIME; nothing rekeys an idle channel,
      // issue 17): one handshake, as the real MN does; its 'established' sends the BU.
      if (sim.session.pending === null) {
        send(sim, sim.endpoint.connect(haPub, now));
        pollEndpoint(sim, now);
      }
      return false;
    }
    commit(sim.source, bu.length + DATA_OVERHEAD);
    sim.outstandingLastSentAt = now;
    const prev = resend ? sim.outstanding : undefined;
    sim.outstanding = {
      firstSequence: prev?.firstSequence ?? sim.sequence,
      sequence: sim.sequence,
      sentAt: now,
      firstSentAt: prev?.firstSentAt ?? now,
      tries: (prev?.tries ?? 0) + 1,
    };
    return true;
  };

  /**
   * Every MN keeps one timer, like the real one: its endpoint's next deadline (handshake
   * retransmission, REKEY_AFTER_TIME). The timers live in 100 ms buckets; a bucket is served
   * when its time comes, so only MNs with work due are looked at.
   */
  const BUCKET_MS = 100;
  const wheel = new Map<number, Sim[]>();
  let wheelAt = Math.floor(clock() / BUCKET_MS);
  const schedule = (sim: Sim, at: number): void => {
    if (at === sim.wakeAt) return;
    sim.wakeAt = at;
    if (at === Infinity) return;
    const b = Math.max(wheelAt, Math.floor(at / BUCKET_MS));
    const list = wheel.get(b);
    if (list === undefined) wheel.set(b, [sim]);
    else list.push(sim);
  };
  /** Handshake (re)transmissions and rekeys the MN's endpoint asks for; re-arms its timer. */
  const pollEndpoint = (sim: Sim, now: number): number => {
    const p = sim.endpoint.poll(now);
    for (const s of p.send) send(sim, s.data);
    schedule(sim, p.nextDeadline);
    return p.send.length;
  };
  const serveWheel = (now: number): void => {
    const until = Math.floor(now / BUCKET_MS);
    for (; wheelAt <= until; wheelAt++) {
      const list = wheel.get(wheelAt);
      if (list === undefined) continue;
      wheel.delete(wheelAt);
      for (const sim of list) {
        if (sim.wakeAt > now) continue; // re-armed later: it sits in that bucket too
        sim.wakeAt = NaN; // force the re-arm below
        pollEndpoint(sim, now);
      }
    }
    wheelAt = until;
  };

  /** A handshake message for `sim` (a copy: the endpoint may keep it). */
  const onMessage = (sim: Sim, bytes: Uint8Array, now: number): void => {
    const r = sim.endpoint.receive(bytes, now, false, `${AGENT}:${PORT}`);
    switch (r.kind) {
      case 'established':
        if (r.reply) send(sim, r.reply); // we were the responder (the restarted HA's)
        if (phase === 'restart' && r.reply) stats.restartHandshakes++;
        else if (sim.session !== undefined) stats.rekeys++;
        sim.session = r.session;
        pollEndpoint(sim, now); // re-arm: the rekey time of the new keys
        if (sim.onDone !== undefined && sim.outstanding === undefined) sendBu(sim, now);
        break;
      case 'cookie': {
        stats.handshakeCookies++;
        pollEndpoint(sim, now); // the retransmission with MAC2 goes at once
        break;
      }
      case 'data':
        onInner(sim, bytes, r.offset, r.length, now);
        break;
      case 'reply':
        send(sim, r.data);
        break;
      case 'drop':
        stats.drops++;
        break;
    }
  };

  /** The decrypted inner packet at buf[off, off + len) of a data message to `sim`. */
  const onInner = (sim: Sim, buf: Uint8Array, off: number, len: number, now: number): void => {
    if (isPathMtuMessage(buf, off)) {
      // The HA's path MTU probe (issue 21): acknowledged as the real MN's TunnelMtu does
      // (id and received size, sealed as our signaling); unanswered, the HA would keep
      // searching with ~15 probes per member.
      const m = decodePathMtuMessage(buf, off, len);
      if (m?.type !== 'probe' || sim.session === undefined) {
        stats.drops++;
        return;
      }
      const ack = sim.endpoint.seal(
        sim.session,
        encodeProbeAck(m.id, m.size),
        now,
        DataKind.SIGNALING,
      );
      if (ack !== null) send(sim, ack);
      stats.pmtuProbesAnswered++;
      return;
    }
    let status = bindingAckStatus(buf, off, len);
    let sequence = status < 0 ? 0 : bindingAckSequence(buf, off);
    if (status < 0) {
      let mh;
      try {
        mh = decodePacket(buf.subarray(off, off + len)).mobility;
      } catch {
        stats.drops++;
        return;
      }
      if (mh?.kind === 'bindingRefreshRequest' && phase === 'restart') {
        // The restarted HA asks for a BU on its new channel: answered at once, once.
        stats.refreshRequests++;
        if (sim.outstanding === undefined && sim.onDone === undefined && !sim.restored) {
          sim.onDone = () => {
            active.delete(sim);
            sim.restored = true;
            restored++;
            latenciesRestart.push(Date.now() - restartedAt);
          };
          active.add(sim);
          sendBu(sim, now);
        }
        return;
      }
      if (mh?.kind !== 'bindingAcknowledgement' || mh.checksumValid === false) {
        stats.otherSignaling++;
        return;
      }
      status = mh.status;
      sequence = mh.sequence;
    }
    stats.bindingAcks++;
    const o = sim.outstanding;
    // The BA of any BU of this attempt (a late BA of a retransmitted one counts).
    if (
      o === undefined ||
      ((sequence - o.firstSequence) & 0xffff) > ((o.sequence - o.firstSequence) & 0xffff)
    )
      return;
    sim.lastStatus = status;
    if (phase !== 'over-cap' && phase !== 'restart') {
      if (status >= 128) stats.rejected++;
      (phase === 'register' ? latenciesRegister : latenciesRefresh).push(now - o.firstSentAt);
    }
    sim.outstanding = undefined;
    const done = sim.onDone;
    sim.onDone = undefined;
    done?.();
  };

  // ---- keys, certificates, sources, MNs ----
  const t0 = clock();
  const issued = members(OFFSET + N + OVER_CAP, authority);
  const issueMs = clock() - t0;

  /** Every SPI of every MN here, to hand each reply to its MN. */
  const spiOwner = new Map<number, Sim>();
  /** The MNs of each source (--restart: whose MAC1 an initiation from the HA carries). */
  const bySource: Sim[][] = [];
  const templates: BindingUpdate[] = [];
  const opened: OpenBatchOutput = { results: new Uint8Array(1), sessions: [] };
  const openOffset = new Uint32Array(1);
  const openLength = new Uint32Array(1);
  udp.onDatagrams((batch: DatagramBatch) => {
    const now = clock();
    const buf = batch.buf;
    for (let i = 0; i < batch.count; i++) {
      const off = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      if (len < 12) {
        stats.drops++;
        continue;
      }
      const type = buf[off]!;
      if (type === 4) {
        // Data (BAs, the HA's probes): opened in place, by the MN of the receiver SPI.
        const sim = spiOwner.get(readSpi(buf, off));
        if (sim === undefined) {
          stats.unknownSpi++;
          continue;
        }
        openOffset[0] = off;
        openLength[0] = len;
        if (sim.endpoint.openBatch(buf, openOffset, openLength, 1, now, opened) !== 1) {
          stats.drops++;
          continue;
        }
        onInner(sim, buf, off + DATA_HEADER_LEN, len - DATA_OVERHEAD, now);
        continue;
      }
      const bytes = buf.slice(off, off + len);
      if (type === 1) {
        stats.haInitiations++;
        if (!RESTART) continue; // a responder-side rekey: not answered here
        const at = i * 16;
        const local = batch.localAddrs;
        const k = sourceIndex.get(
          ((local[at]! << 24) | (local[at + 1]! << 16) | (local[at + 2]! << 8) | local[at + 3]!) >>>
            0,
        );
        const owner =
          k === undefined ? undefined : bySource[k]?.find((x) => checkMac1(bytes, x.mac1));
        if (owner === undefined) stats.unknownSpi++;
        else onMessage(owner, bytes, now);
        continue;
      }
      // Receiver SPI: bytes 8-11 of a response (type 2), 4-7 of a cookie reply.
      const spi = type === 2 ? readSpi(bytes, 4) : readSpi(bytes, 0);
      const sim = spiOwner.get(spi);
      if (sim === undefined) stats.unknownSpi++;
      else onMessage(sim, bytes, now);
    }
  });
  for (let k = 0; k < SOURCES; k++) {
    bySource.push([]);
    // The BU of an MN at this source: what the real MN's registration engine sends first.
    const reg = new HomeRegistration(
      { homeAddress: hoaOf(0), homeAgentAddress: HA_HOME, lifetimeSeconds: LIFETIME_S },
      t0,
    );
    const first = reg
      .setCareOf({ family: 4, localAddress: sourceOf(k) }, t0)
      .find((x) => x.kind === 'sendBindingUpdate');
    if (first?.kind !== 'sendBindingUpdate') throw new Error('no BU from HomeRegistration');
    templates.push(first.message);
  }
  checkBuRewrite(templates[0]!);
  const aead = createNativeBatchAead(); // the daemon's data-path AEAD, for all MNs of this process
  const makeSim = (i: number, k: number): Sim => {
    const member = issued.members[OFFSET + i]!;
    // Filled in below; the SPI hook needs the object.
    const sim = {} as Sim;
    const endpoint = new SecureEndpoint({
      staticKey: member.staticKey,
      certificate: member.certificate,
      authorityPublicKey: authorityPub,
      allowedPeerRoles: ['ha'],
      aead,
      spi: () => {
        for (;;) {
          const spi = lib().randombytes_random() >>> 0;
          if (spi !== 0 && !spiOwner.has(spi)) {
            spiOwner.set(spi, sim);
            return spi;
          }
        }
      },
    });
    Object.assign(sim, {
      index: i,
      hoa: hoaOf(OFFSET + i),
      endpoint,
      source: k % SOURCES,
      session: undefined,
      template: templates[k % SOURCES]!,
      bu: undefined,
      sequence: templates[k % SOURCES]!.sequence,
      outstanding: undefined,
      outstandingLastSentAt: undefined,
      lastStatus: -1,
      wakeAt: Infinity,
      onDone: undefined,
      restored: false,
      mac1: mac1Key(member.staticKey.publicKey),
    } satisfies Sim);
    bySource[k % SOURCES]!.push(sim);
    return sim;
  };
  const sims: Sim[] = [];
  for (let i = 0; i < N; i++) sims.push(makeSim(i, i));
  const extra: Sim[] = [];
  for (let j = 0; j < OVER_CAP; j++) extra.push(makeSim(N + j, N + j));
  const setupMs = clock() - t0;

  /** MNs with unfinished work: the resend timer looks at these only. */
  const active = new Set<Sim>();

  // Timers: the MNs' endpoints (handshake retransmissions, rekeys) and lost BUs.
  const timer = setInterval(() => {
    const now = clock();
    serveWheel(now);
    for (const sim of active) {
      const s = sim.endpoint.allSessions()[0];
      if (s === undefined || (!s.established && s.pending === null)) {
        // Never started, or given up after REKEY_ATTEMPT_TIME: start over, like the real MN.
        stats.reconnects++;
        send(sim, sim.endpoint.connect(haPub, now));
        pollEndpoint(sim, now);
        continue;
      }
      if (
        sim.session !== undefined &&
        sim.outstanding !== undefined &&
        now - sim.outstanding.sentAt > RESEND_MS * 2 ** Math.min(5, sim.outstanding.tries - 1)
      ) {
        stats.resends++;
        sendBu(sim, now, true);
      }
    }
  }, 100);

  interface PhaseRun {
    ms: number;
    finished: number;
    timedOut: boolean;
  }
  let timedOut = false;
  /**
   * Runs `start(sim)` for every sim with at most WINDOW unfinished; resolves when all finished,
   * or at --timeout-s with what finished by then (the JSON line says so).
   */
  const windowed = (
    list: Sim[],
    start: (sim: Sim) => void,
    limit: number = WINDOW,
  ): Promise<PhaseRun> =>
    new Promise((resolve) => {
      let next = 0;
      let finished = 0;
      const began = clock();
      let lastReport = clock();
      const guard = setInterval(() => {
        if (clock() - lastReport >= 10_000) {
          lastReport = clock();
          const stuck = [...active].slice(0, 3).map((x) => ({
            i: x.index,
            session: x.session !== undefined,
            keys: x.session?.established ?? false,
            pending: x.session !== undefined && x.session.pending !== null,
            outstanding: x.outstanding?.tries ?? 0,
            wakeIn: Math.round(x.wakeAt - clock()),
          }));
          process.stderr.write(
            `ha-load: ${phase} ${finished}/${list.length} active ${active.size} ${JSON.stringify(stats)} ${JSON.stringify(stuck)}\n`,
          );
        }
        if (performance.now() > DEADLINE) {
          clearInterval(guard);
          timedOut = true;
          for (const sim of active) sim.onDone = undefined;
          active.clear();
          resolve({ ms: clock() - began, finished, timedOut: true });
        }
      }, 200);
      const launch = (): void => {
        while (!timedOut && next < list.length && next - finished < limit) {
          const sim = list[next++]!;
          active.add(sim);
          sim.onDone = () => {
            active.delete(sim);
            finished++;
            if (finished === list.length) {
              clearInterval(guard);
              resolve({ ms: clock() - began, finished, timedOut: false });
            } else {
              launch();
            }
          };
          start(sim);
        }
      };
      launch();
    });

  const register = (sim: Sim): void => {
    const now = clock();
    send(sim, sim.endpoint.connect(haPub, now));
    pollEndpoint(sim, now); // arms its retransmission timer
  };
  const rss0 = rssKiB(haPid);
  const cpu0 = cpuSeconds(haPid);
  const own0 = cpuSeconds('self');
  // The HA's threads while members register (issue 17: one per DAD probe before the ND proxy ran
  // DAD), sampled every 100 ms.
  const threads0 = threadCount(haPid);
  let threadsPeak = threads0;
  const threadSampler = setInterval(
    () => (threadsPeak = Math.max(threadsPeak, threadCount(haPid))),
    100,
  );
  const registration = await windowed(sims, register);
  clearInterval(threadSampler);
  const registerMs = registration.ms;
  const registerRekeys = stats.rekeys;
  const rss1 = rssKiB(haPid);
  const cpu1 = cpuSeconds(haPid);
  const own1 = cpuSeconds('self');

  // Beyond the cap: every BA must say 130 (insufficient resources).
  phase = 'over-cap';
  let overCapStatus: Record<string, number> = {};
  if (OVER_CAP > 0 && !timedOut) {
    await windowed(extra, register);
    overCapStatus = {};
    for (const s of extra) overCapStatus[s.lastStatus] = (overCapStatus[s.lastStatus] ?? 0) + 1;
  }

  phase = 'refresh';
  const rekeysBefore = stats.rekeys;
  const haInitiationsBefore = stats.haInitiations;
  let refreshMs = 0;
  const perRound: { ms: number; p50: number; p99: number }[] = [];
  const cpuR0 = cpuSeconds(haPid);
  const ownR0 = cpuSeconds('self');
  /** The refresh rounds on the monotonic clock (us; a --cpu-prof profile's clock): profiles of
   *  the daemon and of this process are cut to them (bench/lib/profile-window.mjs). */
  const refreshMonoUs = [Number(process.hrtime.bigint() / 1000n), 0];
  let refreshed = 0;
  for (let r = 0; r < ROUNDS && !timedOut; r++) {
    const from = latenciesRefresh.length;
    const round = await windowed(
      sims,
      (sim) => {
        const go = (): void => {
          const now = clock();
          // Timer work due (retransmissions, keys to wipe) first, as the MN's timer would have
          // run it; an endpoint with none is not polled (a poll makes a set and arrays).
          if (sim.wakeAt <= now || sim.endpoint.pollWanted) pollEndpoint(sim, now);
          sendBu(sim, now); // false: keys expired; the handshake it started sends it
        };
        const wait = (sim.outstandingLastSentAt ?? -Infinity) + MIN_BU_GAP_MS - clock();
        if (wait <= 0) go();
        else setTimeout(go, wait);
      },
      REFRESH_WINDOW,
    );
    refreshMs += round.ms;
    refreshed += round.finished;
    const lat = latenciesRefresh.slice(from);
    perRound.push({ ms: round.ms, p50: rankQuantile(lat, 0.5), p99: rankQuantile(lat, 0.99) });
  }
  const rss2 = rssKiB(haPid);
  const cpu2 = cpuSeconds(haPid);
  const own2 = cpuSeconds('self');
  refreshMonoUs[1] = Number(process.hrtime.bigint() / 1000n);

  // --restart: the HA is killed and started again; its stored bindings come back to us.
  let restart: Record<string, unknown> | undefined;
  if (RESTART && !timedOut) {
    phase = 'restart';
    process.stdout.write(`${JSON.stringify({ event: 'ready-for-restart' })}\n`);
    const lines = createInterface({ input: process.stdin });
    const told = await new Promise<string>((resolve) => lines.once('line', resolve));
    lines.close();
    const [, pidText, atText] = told.split(' ');
    const newPid = Number(pidText);
    restartedAt = Number(atText);
    const haCpu0 = cpuSeconds(newPid);
    const own3 = cpuSeconds('self');
    while (restored < N && performance.now() < DEADLINE) {
      await new Promise((r) => setTimeout(r, 50));
    }
    restart = {
      restored,
      allMs: restored === N ? Math.max(...latenciesRestart) : null,
      p50Ms: rankQuantile(latenciesRestart, 0.5),
      p99Ms: rankQuantile(latenciesRestart, 0.99),
      haCpuMsAfterStart: (cpuSeconds(newPid) - haCpu0) * 1000,
      clientCpuMs: (cpuSeconds('self') - own3) * 1000,
      rssKiB: rssKiB(newPid),
    };
  }
  clearInterval(timer);
  flush();
  udp.close();

  process.stdout.write(
    `${JSON.stringify({
      n: N,
      rounds: ROUNDS,
      window: WINDOW,
      refreshWindow: REFRESH_WINDOW,
      sources: SOURCES,
      certificatesCached: Math.min(issued.cached, OFFSET + N + OVER_CAP),
      issueMs,
      setupMs,
      timedOut,
      registered: registration.finished,
      registerMs,
      registrationsPerS: (registration.finished / registerMs) * 1000,
      registerRekeys,
      registerLatencyP50Ms: rankQuantile(latenciesRegister, 0.5),
      registerLatencyP99Ms: rankQuantile(latenciesRegister, 0.99),
      refreshed,
      refreshBuPerS: refreshed > 0 ? (refreshed / refreshMs) * 1000 : NaN,
      baLatencyP50Ms: rankQuantile(latenciesRefresh, 0.5),
      baLatencyP99Ms: rankQuantile(latenciesRefresh, 0.99),
      refreshRounds: perRound,
      refreshMonoUs,
      refreshRekeys: stats.rekeys - rekeysBefore,
      /** Issue 17: handshakes during the refresh rounds, by the MNs (rekeys) and by the HA. */
      handshakesDuringRefresh:
        stats.rekeys - rekeysBefore + (stats.haInitiations - haInitiationsBefore),
      haInitiationsDuringRefresh: stats.haInitiations - haInitiationsBefore,
      haCpuMsPerRegistration: ((cpu1 - cpu0) * 1000) / registration.finished,
      haThreadsBeforeRegister: threads0,
      haThreadsPeakRegister: threadsPeak,
      haCpuMsPerRefresh: refreshed > 0 ? ((cpu2 - cpuR0) * 1000) / refreshed : NaN,
      clientCpuMsPerRegistration: ((own1 - own0) * 1000) / registration.finished,
      clientCpuMsPerRefresh: refreshed > 0 ? ((own2 - ownR0) * 1000) / refreshed : NaN,
      overCap: OVER_CAP,
      overCapStatus,
      rssBeforeKiB: rss0,
      rssAfterRegisterKiB: rss1,
      rssAfterRefreshKiB: rss2,
      rssPerBindingBytes: ((rss2 - rss0) * 1024) / registration.finished,
      ...(restart !== undefined ? { restart } : {}),
      ...stats,
    })}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`ha-load: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
