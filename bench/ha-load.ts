/**
 * Home-agent scale against the real `mip6 ha` daemon over UDP (issue 8, metric 7). Not a test:
 * bench/compare.ts runs it inside the lab's HA namespace, talking to the daemon over loopback.
 *
 *   node --import tsx bench/ha-load.ts --authority-key CA/authority.key --authority-pub F
 *     --ha-pub F --ha-pid PID --n N [--rounds 3] [--window 64] [--agent 127.0.0.1] [--port 4191]
 *     [--bind ADDR --bind-count K] [--offset I] [--home-agent 2001:db8:100::1] [--timeout-s 120]
 *
 * Flow:
 *   1. N simulated mobile nodes, each with its own X25519 key, a certificate for its own home
 *      address (2001:db8:100::a:0 upwards) signed here with the lab's authority key, a
 *      SecureEndpoint (the real Noise IK channel) and its own UDP socket (the HA binds cookies
 *      and locators to the source address and port).
 *   2. Registration: at most --window MNs in flight; each does the handshake (answering a
 *      cookie reply when the HA is under load), then sends the Binding Update the real MN's
 *      HomeRegistration engine builds; the matching BA (same sequence, status < 128) completes it.
 *   3. Refresh rounds: every MN sends a BU with the next sequence number, again at most
 *      --window outstanding; BA latency is the time from the send to the BA.
 *   4. The HA's RSS (/proc/PID/status VmRSS) and CPU time (/proc/PID/stat) before and after each
 *      phase; one JSON line on stdout.
 * An unanswered BU is resent with a new sequence number after 1 s, 2 s, 4 s ... (like the real
 * MN); everything stops at --timeout-s.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SecureEndpoint, type PeerSession } from '../src/crypto/endpoint.js';
import { signCertificate } from '../src/crypto/certificate.js';
import {
  readAuthorityPrivate,
  readAuthorityPublic,
  readMemberPublic,
} from '../src/crypto/key-files.js';
import { generateMember } from '../src/crypto/keys.js';
import { initCrypto } from '../src/crypto/sodium.js';
import { HomeRegistration } from '../src/protocol/mobile-node-registration.js';
import { parseIpv6 } from '../src/wire/address.js';
import { decodePacket, encodeMobilityPacket } from '../src/wire/packet.js';
import type { BindingUpdate } from '../src/wire/types.js';

const { values: a } = parseArgs({
  options: {
    'authority-key': { type: 'string' },
    'authority-pub': { type: 'string' },
    'ha-pub': { type: 'string' },
    'ha-pid': { type: 'string' },
    n: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    window: { type: 'string', default: '64' },
    agent: { type: 'string', default: '127.0.0.1' },
    bind: { type: 'string' },
    'bind-count': { type: 'string', default: '1' },
    offset: { type: 'string', default: '0' },
    port: { type: 'string', default: '4191' },
    'home-agent': { type: 'string', default: '2001:db8:100::1' },
    'timeout-s': { type: 'string', default: '120' },
  },
});
const N = Math.max(1, Math.min(15_000, Number(a.n)));
/** First simulated MN's index (its HoA and name): later runs against the same HA use fresh ones. */
const OFFSET = Math.max(0, Math.min(40_000, Number(a.offset)));
const ROUNDS = Math.max(0, Math.min(20, Number(a.rounds)));
const WINDOW = Math.max(1, Math.min(4096, Number(a.window)));
const AGENT = a.agent ?? '127.0.0.1';
/** Local source (and care-of) address of every simulated MN; the HA refuses a loopback CoA. */
const BIND = a.bind ?? AGENT;
/**
 * Sources BIND, BIND+1, ... (the HA limits handshakes per source IP, like a real deployment where
 * MNs come from many addresses); the caller makes them local (a `local` route + ip_nonlocal_bind).
 */
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

function need(v: string | undefined, name: string): string {
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

/** CPU seconds (user + system) of a process, from /proc/<pid>/stat (clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

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
  onDone: (() => void) | undefined;
}

const stats = {
  handshakeCookies: 0,
  resends: 0,
  rejected: 0,
  drops: 0,
  bindingAcks: 0,
  otherSignaling: 0,
};

function hoaOf(i: number): string {
  return `2001:db8:100::a:${i.toString(16)}`;
}

async function main(): Promise<void> {
  await initCrypto();
  const authority = readAuthorityPrivate(need(a['authority-key'], 'authority-key'));
  const authorityPub = readAuthorityPublic(need(a['authority-pub'], 'authority-pub'));
  const haPub = readMemberPublic(need(a['ha-pub'], 'ha-pub'));
  const haPid = Number(need(a['ha-pid'], 'ha-pid'));
  const nowS = Math.floor(Date.now() / 1000);

  const latenciesRegister: number[] = [];
  const latenciesRefresh: number[] = [];
  let phase: 'register' | 'refresh' = 'register';

  /** Sends the next BU (a retransmission too takes a new sequence number, RFC 6275 §11.8). */
  const sendBu = (sim: Sim, now: number, resend = false): void => {
    if (sim.session === undefined) return;
    sim.sequence = (sim.sequence + 1) & 0xffff;
    const packet = encodeMobilityPacket({
      source: sim.hoa,
      destination: HA_HOME,
      message: { ...sim.template, sequence: sim.sequence },
    });
    const sealed = sim.endpoint.seal(sim.session, packet, now);
    if (sealed === null) return;
    sim.outstandingLastSentAt = now;
    const prev = resend ? sim.outstanding : undefined;
    sim.outstanding = {
      firstSequence: prev?.firstSequence ?? sim.sequence,
      sequence: sim.sequence,
      sentAt: now,
      firstSentAt: prev?.firstSentAt ?? now,
      tries: (prev?.tries ?? 0) + 1,
    };
    sim.socket.send(sealed, PORT, AGENT);
  };

  const onMessage = (sim: Sim, msg: Buffer): void => {
    const now = clock();
    const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
    const r = sim.endpoint.receive(bytes, now, false, `${AGENT}:${PORT}`);
    switch (r.kind) {
      case 'established':
        sim.session = r.session;
        sendBu(sim, now);
        break;
      case 'cookie': {
        stats.handshakeCookies++;
        for (const s of sim.endpoint.poll(now).send) sim.socket.send(s.data, PORT, AGENT);
        break;
      }
      case 'data': {
        let ba;
        try {
          ba = decodePacket(bytes.subarray(r.offset, r.offset + r.length)).mobility;
        } catch {
          stats.drops++;
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
        if (ba.status >= 128) stats.rejected++;
        (phase === 'register' ? latenciesRegister : latenciesRefresh).push(now - out.firstSentAt);
        sim.outstanding = undefined;
        const done = sim.onDone;
        sim.onDone = undefined;
        done?.();
        break;
      }
      case 'reply':
        sim.socket.send(r.data, PORT, AGENT);
        break;
      case 'drop':
        stats.drops++;
        break;
    }
  };

  // ---- set up the simulated MNs ----
  const t0 = clock();
  const sims: Sim[] = [];
  for (let i = 0; i < N; i++) {
    const hoa = hoaOf(OFFSET + i);
    const staticKey = generateMember();
    const certificate = signCertificate(
      {
        name: `sim${OFFSET + i}`,
        role: 'mn',
        publicKey: staticKey.publicKey,
        addresses: [{ address: parseIpv6(hoa), prefixLength: 128 }],
        notBefore: nowS - 300,
        notAfter: nowS + 3600,
      },
      authority.secretKey,
    );
    const endpoint = new SecureEndpoint({
      staticKey,
      certificate,
      authorityPublicKey: authorityPub,
      allowedPeerRoles: ['ha'],
    });
    const reg = new HomeRegistration(
      { homeAddress: hoa, homeAgentAddress: HA_HOME, lifetimeSeconds: LIFETIME_S },
      t0,
    );
    const first = reg
      .setCareOf({ family: 4, localAddress: sourceOf(i) }, t0)
      .find((x) => x.kind === 'sendBindingUpdate');
    if (first?.kind !== 'sendBindingUpdate') throw new Error('no BU from HomeRegistration');
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, sourceOf(i), () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const sim: Sim = {
      index: i,
      hoa,
      endpoint,
      socket,
      session: undefined,
      template: first.message,
      sequence: first.message.sequence,
      outstanding: undefined,
      outstandingLastSentAt: undefined,
      onDone: undefined,
    };
    socket.on('message', (m) => onMessage(sim, m));
    socket.on('error', () => stats.drops++);
    sims.push(sim);
  }
  const setupMs = clock() - t0;

  // Resend timer: handshake retransmissions (endpoint.poll) and lost BUs.
  const timer = setInterval(() => {
    const now = clock();
    for (const sim of sims) {
      if (sim.onDone === undefined) continue;
      if (sim.session === undefined) {
        for (const s of sim.endpoint.poll(now).send) sim.socket.send(s.data, PORT, AGENT);
      } else if (
        sim.outstanding !== undefined &&
        now - sim.outstanding.sentAt > RESEND_MS * 2 ** Math.min(5, sim.outstanding.tries - 1)
      ) {
        stats.resends++;
        sendBu(sim, now, true);
      }
    }
  }, 100);

  /** Runs `start(sim)` for every sim with at most WINDOW unfinished; resolves when all finished. */
  const windowed = (start: (sim: Sim) => void): Promise<number> =>
    new Promise((resolve, reject) => {
      let next = 0;
      let finished = 0;
      const began = clock();
      const guard = setInterval(() => {
        if (performance.now() > DEADLINE) {
          clearInterval(guard);
          reject(new Error(`timed out: ${finished} of ${sims.length} finished`));
        }
      }, 200);
      const launch = (): void => {
        while (next < sims.length && next - finished < WINDOW) {
          const sim = sims[next++]!;
          sim.onDone = () => {
            finished++;
            if (finished === sims.length) {
              clearInterval(guard);
              resolve(clock() - began);
            } else {
              launch();
            }
          };
          start(sim);
        }
      };
      launch();
    });

  const q = (xs: number[], p: number): number => {
    const s = [...xs].sort((x, y) => x - y);
    return s.length === 0 ? NaN : (s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN);
  };
  const rss0 = rssKiB(haPid);
  const cpu0 = cpuSeconds(haPid);
  const registerMs = await windowed((sim) => {
    const init = sim.endpoint.connect(haPub, clock());
    sim.socket.send(init, PORT, AGENT);
  });
  const rss1 = rssKiB(haPid);
  const cpu1 = cpuSeconds(haPid);
  phase = 'refresh';
  let refreshMs = 0;
  const perRound: { ms: number; p50: number; p99: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const from = latenciesRefresh.length;
    const ms = await windowed((sim) => {
      const wait = (sim.outstandingLastSentAt ?? -Infinity) + MIN_BU_GAP_MS - clock();
      if (wait <= 0) sendBu(sim, clock());
      else setTimeout(() => sendBu(sim, clock()), wait);
    });
    refreshMs += ms;
    const lat = latenciesRefresh.slice(from);
    perRound.push({ ms, p50: q(lat, 0.5), p99: q(lat, 0.99) });
  }
  const rss2 = rssKiB(haPid);
  const cpu2 = cpuSeconds(haPid);
  clearInterval(timer);
  for (const s of sims) s.socket.close();

  process.stdout.write(
    `${JSON.stringify({
      n: N,
      rounds: ROUNDS,
      window: WINDOW,
      setupMs,
      registerMs,
      registrationsPerS: (N / registerMs) * 1000,
      registerLatencyP50Ms: q(latenciesRegister, 0.5),
      registerLatencyP99Ms: q(latenciesRegister, 0.99),
      refreshBuPerS: ROUNDS > 0 ? ((N * ROUNDS) / refreshMs) * 1000 : NaN,
      baLatencyP50Ms: q(latenciesRefresh, 0.5),
      baLatencyP99Ms: q(latenciesRefresh, 0.99),
      refreshRounds: perRound,
      haCpuMsPerRegistration: ((cpu1 - cpu0) * 1000) / N,
      haCpuMsPerRefresh: ROUNDS > 0 ? ((cpu2 - cpu1) * 1000) / (N * ROUNDS) : NaN,
      rssBeforeKiB: rss0,
      rssAfterRegisterKiB: rss1,
      rssAfterRefreshKiB: rss2,
      rssPerBindingBytes: ((rss2 - rss0) * 1024) / N,
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
