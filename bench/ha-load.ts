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
 *   2. Sockets: one per source address (BIND, BIND+1, ... K of them; the HA limits handshakes per
 *      source IP, like a real deployment where MNs come from many addresses); MN i uses socket
 *      i % K. Several MNs share a socket and so a locator: the HA tells members apart by their
 *      channel (receiver SPI, then the certificate), never by the locator. Replies are handed to
 *      the MN that owns the receiver SPI (every SPI this process allocates is unique).
 *   3. Registration: at most --window MNs in flight; each does the handshake (answering a
 *      cookie reply when the HA is under load), then sends the Binding Update the real MN's
 *      HomeRegistration engine builds; the matching BA (same sequence) completes it.
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
 *      it again and writes "restarted PID STARTED_AT_MS" on stdin. The MNs keep their sockets
 *      (the HA's stored locators) and answer as the real MN does: the HA's initiation (found by
 *      its MAC1 among the MNs of the socket it came to) with a response, its Binding Refresh
 *      Request with a BU. Time from the restarted HA's start to each BA, and its CPU time.
 * An unanswered BU is resent with a new sequence number after 1 s, 2 s, 4 s ... (like the real
 * MN); everything stops at --timeout-s.
 */
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DataKind, SodiumBatchAead } from '../src/crypto/aead.js';
import {
  decodeCertificate,
  signCertificate,
  type MemberCertificate,
} from '../src/crypto/certificate.js';
import { SecureEndpoint, type PeerSession } from '../src/crypto/endpoint.js';
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
import { parseIpv6 } from '../src/wire/address.js';
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

// ---- the simulated MNs -----------------------------------------------------------------------

interface Sim {
  index: number;
  hoa: string;
  endpoint: SecureEndpoint;
  socket: Socket;
  session: PeerSession | undefined;
  template: BindingUpdate;
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

  /** Sends the next BU (a retransmission too takes a new sequence number, RFC 6275 §11.8). */
  const sendBu = (sim: Sim, now: number, resend = false): boolean => {
    if (sim.session === undefined) return false;
    sim.sequence = (sim.sequence + 1) & 0xffff;
    const packet = encodeMobilityPacket({
      source: sim.hoa,
      destination: HA_HOME,
      message: { ...sim.template, sequence: sim.sequence },
    });
    const sealed = sim.endpoint.seal(sim.session, packet, now, DataKind.SIGNALING);
    if (sealed === null) {
      // Keys expired while the MN was idle (REJECT_AFTER_TIME; nothing rekeys an idle channel,
      // issue 17): one handshake, as the real MN does; its 'established' sends the BU.
      if (sim.session.pending === null) {
        sim.socket.send(sim.endpoint.connect(haPub, now));
        pollEndpoint(sim, now);
      }
      return false;
    }
    sim.outstandingLastSentAt = now;
    const prev = resend ? sim.outstanding : undefined;
    sim.outstanding = {
      firstSequence: prev?.firstSequence ?? sim.sequence,
      sequence: sim.sequence,
      sentAt: now,
      firstSentAt: prev?.firstSentAt ?? now,
      tries: (prev?.tries ?? 0) + 1,
    };
    sim.socket.send(sealed);
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
    for (const s of p.send) sim.socket.send(s.data);
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

  const onMessage = (sim: Sim, msg: Buffer): void => {
    const now = clock();
    const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
    const r = sim.endpoint.receive(bytes, now, false, `${AGENT}:${PORT}`);
    switch (r.kind) {
      case 'established':
        if (r.reply) sim.socket.send(r.reply); // we were the responder (the restarted HA's)
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
      case 'data': {
        if (isPathMtuMessage(bytes, r.offset)) {
          // The HA's path MTU probe (issue 21): acknowledged as the real MN's TunnelMtu does
          // (id and received size, sealed as our signaling); unanswered, the HA would keep
          // searching with ~15 probes per member.
          const m = decodePathMtuMessage(bytes, r.offset, r.length);
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
          if (ack !== null) sim.socket.send(ack);
          stats.pmtuProbesAnswered++;
          return;
        }
        let ba;
        try {
          ba = decodePacket(bytes.subarray(r.offset, r.offset + r.length)).mobility;
        } catch {
          stats.drops++;
          return;
        }
        if (ba?.kind === 'bindingRefreshRequest' && phase === 'restart') {
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
        if (ba?.kind !== 'bindingAcknowledgement') {
          stats.otherSignaling++;
          return;
        }
        stats.bindingAcks++;
        const out = sim.outstanding;
        // The BA of any BU of this attempt (a late BA of a retransmitted one counts).
        if (
          out === undefined ||
          ((ba.sequence - out.firstSequence) & 0xffff) >
            ((out.sequence - out.firstSequence) & 0xffff)
        )
          return;
        sim.lastStatus = ba.status;
        if (phase !== 'over-cap' && phase !== 'restart') {
          if (ba.status >= 128) stats.rejected++;
          (phase === 'register' ? latenciesRegister : latenciesRefresh).push(now - out.firstSentAt);
        }
        sim.outstanding = undefined;
        const done = sim.onDone;
        sim.onDone = undefined;
        done?.();
        break;
      }
      case 'reply':
        sim.socket.send(r.data);
        break;
      case 'drop':
        stats.drops++;
        break;
    }
  };

  // ---- keys, certificates, sockets, MNs ----
  const t0 = clock();
  const issued = members(OFFSET + N + OVER_CAP, authority);
  const issueMs = clock() - t0;

  /** Every SPI of every MN here, to hand each reply to its MN. */
  const spiOwner = new Map<number, Sim>();
  const sockets: Socket[] = [];
  /** The MNs of each socket (--restart: whose MAC1 an initiation from the HA carries). */
  const bySocket: Sim[][] = [];
  const templates: BindingUpdate[] = [];
  for (let k = 0; k < Math.min(BIND_COUNT, N + OVER_CAP); k++) {
    const socket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, sourceOf(k), () => {
        // Connected: sends skip the per-datagram address lookup of dgram.
        socket.connect(PORT, AGENT, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    });
    socket.on('message', (m) => {
      if (m.length < 12) {
        stats.drops++;
        return;
      }
      if (m[0] === 1) {
        stats.haInitiations++;
        if (!RESTART) return; // a responder-side rekey: not answered here
        const bytes = new Uint8Array(m.buffer, m.byteOffset, m.byteLength);
        const owner = bySocket[k]?.find((x) => checkMac1(bytes, x.mac1));
        if (owner === undefined) stats.unknownSpi++;
        else onMessage(owner, m);
        return;
      }
      // Receiver SPI: bytes 8-11 of a response (type 2), 4-7 of a cookie reply or data.
      const spi = m[0] === 2 ? m.readUInt32BE(8) : m.readUInt32BE(4);
      const sim = spiOwner.get(spi);
      if (sim === undefined) stats.unknownSpi++;
      else onMessage(sim, m);
    });
    socket.on('error', () => stats.drops++);
    sockets.push(socket);
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
  const aead = new SodiumBatchAead(); // one data-path scratch for all MNs of this process
  for (let k = 0; k < sockets.length; k++) bySocket.push([]);
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
      socket: sockets[k % sockets.length]!,
      session: undefined,
      template: templates[k % templates.length]!,
      sequence: templates[k % templates.length]!.sequence,
      outstanding: undefined,
      outstandingLastSentAt: undefined,
      lastStatus: -1,
      wakeAt: Infinity,
      onDone: undefined,
      restored: false,
      mac1: mac1Key(member.staticKey.publicKey),
    } satisfies Sim);
    bySocket[k % sockets.length]!.push(sim);
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
        sim.socket.send(sim.endpoint.connect(haPub, now));
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
    sim.socket.send(sim.endpoint.connect(haPub, now));
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
  let refreshed = 0;
  for (let r = 0; r < ROUNDS && !timedOut; r++) {
    const from = latenciesRefresh.length;
    const round = await windowed(
      sims,
      (sim) => {
        const go = (): void => {
          const now = clock();
          pollEndpoint(sim, now); // timer work due (retransmissions)
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
  for (const s of sockets) s.close();

  process.stdout.write(
    `${JSON.stringify({
      n: N,
      rounds: ROUNDS,
      window: WINDOW,
      refreshWindow: REFRESH_WINDOW,
      sources: sockets.length,
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
