/**
 * Data path benchmark (not a test): `node --import tsx bench/datapath.ts [--runs 3] [--seconds 5]`.
 *
 * Builds two network namespaces joined by a veth pair (unique names, always deleted), runs
 * bench/p2p-tunnel.ts in each (TUN <-> batched ChaCha20-Poly1305 <-> batched UDP, fixed test
 * key, IPv4 underlay 198.51.100.0/24, inner IPv6 fd00:b::/64), then measures, side by side in
 * the same run, the raw veth and the tunnel:
 *   - TCP throughput: iperf3 (one stream) A -> B
 *   - small-packet rate: iperf3 UDP with 64-byte payloads at unlimited rate, packets received/s
 *   - RTT: ping at 10 ms intervals, median; "added RTT" = tunnel median - raw median
 * Reports medians of --runs runs and the ratios, checks the targets, and writes
 * bench/results/datapath-<date>.md. Needs root, /dev/net/tun, iperf3 and ping.
 *
 * --compare-offloads (issue #16): instead, two tunnel pairs side by side in the same
 * namespaces, one with the offloads (TUN TSO/USO/checksum, UDP GSO/GRO; whatever the kernel
 * accepts) and one without (MIP6_OFFLOAD_OFF=all), measured in interleaved rounds (the order
 * alternates): TCP A -> B and B -> A (iperf3 -R), each with the CPU time both tunnel
 * processes used during it (/proc/PID/stat), as Gbit/s and CPU seconds per GB carried.
 * Writes bench/results/offload-<date>.md with medians, every round and the offloads accepted.
 *   --baseline-off VALUE  the MIP6_OFFLOAD_OFF of the baseline pair (default all), e.g.
 *                         tun-gro-udp: everything on but UDP runs on TUN writes
 *   --udp                 each round also sends 64-byte UDP (iperf3, unlimited rate) A -> B
 *                         and reports packets delivered/s and tunnel CPU per packet delivered
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createNativeBatchAead } from '../src/io/native-aead.js';
import { median } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    mtu: { type: 'string', default: '1440' },
    txqueuelen: { type: 'string', default: '500' },
    'compare-offloads': { type: 'boolean', default: false },
    'baseline-off': { type: 'string', default: 'all' },
    udp: { type: 'boolean', default: false },
  },
});
const RUNS = Math.max(1, Math.min(9, Number(values.runs)));
const SECONDS = Math.max(1, Math.min(30, Number(values.seconds)));
const TUN_MTU = Number(values.mtu);

const TARGETS = { tcpGbps: 1.2, smallPps: 80_000, addedRttMs: 0.5 };

const tag = `${(process.pid % 46656).toString(36)}${randomBytes(2).toString('hex')}`;
const NS_A = `mip6b${tag}a`;
const NS_B = `mip6b${tag}b`;
const VETH_A = `vb${tag}a`;
const VETH_B = `vb${tag}b`;
const UNDER_A = '198.51.100.1';
const UNDER_B = '198.51.100.2';
const INNER_A = 'fd00:b::1';
const INNER_B = 'fd00:b::2';

const children: ChildProcess[] = [];
let cleaned = false;

function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) c.kill('SIGKILL');
  for (const ns of [NS_A, NS_B]) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // not created or already gone
    }
  }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

function sh(cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err)
        reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}\n${stdout}`));
      else resolve(stdout);
    });
  });
}

const inNs = (
  ns: string,
  cmd: string,
  args: readonly string[],
  timeoutMs?: number,
): Promise<string> => sh('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);

async function setup(): Promise<void> {
  await sh('ip', ['netns', 'add', NS_A]);
  await sh('ip', ['netns', 'add', NS_B]);
  await sh('ip', [
    'link',
    'add',
    VETH_A,
    'netns',
    NS_A,
    'type',
    'veth',
    'peer',
    'name',
    VETH_B,
    'netns',
    NS_B,
  ]);
  for (const [ns, dev, addr] of [
    [NS_A, VETH_A, UNDER_A],
    [NS_B, VETH_B, UNDER_B],
  ] as const) {
    await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev]);
    await sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  }
}

interface Tunnel {
  child: ChildProcess;
  stdout: () => string;
}

function startTunnel(
  ns: string,
  local: string,
  peer: string,
  inner: string,
  opts: { port?: number; tunName?: string; offloadOff?: string } = {},
): Promise<Tunnel> {
  const args = ['netns', 'exec', ns, process.execPath, '--import', 'tsx', 'bench/p2p-tunnel.ts'];
  args.push('--family', '4', '--local', local, '--peer', peer, '--tun-addr', `${inner}/64`);
  const port = String(opts.port ?? 4191);
  args.push('--port', port, '--peer-port', port);
  args.push(
    '--mtu',
    String(TUN_MTU),
    '--tun-name',
    opts.tunName ?? 'mip6bench',
    '--txqueuelen',
    String(values.txqueuelen),
  );
  const env = { ...process.env };
  if (opts.offloadOff !== undefined) env.MIP6_OFFLOAD_OFF = opts.offloadOff;
  else delete env.MIP6_OFFLOAD_OFF;
  const child = spawn('ip', args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`tunnel in ${ns} not ready after 60 s: ${err}`)),
      60_000,
    );
    const check = (): void => {
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve({ child, stdout: () => out });
      }
    };
    child.stdout.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tunnel in ${ns} exited with ${code}: ${err}`));
    });
  });
}

async function stopTunnel(t: Tunnel): Promise<unknown> {
  const done = new Promise<void>((r) => t.child.once('exit', () => r()));
  t.child.removeAllListeners('exit');
  t.child.kill('SIGTERM');
  await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
  const last = t.stdout().trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last);
  } catch {
    return undefined;
  }
}

interface IperfTcp {
  end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number } };
}
interface IperfUdp {
  end: { sum: { packets: number; lost_packets: number; seconds: number } };
}

async function tcp(addr: string): Promise<{ gbps: number; retransmits: number }> {
  const j = JSON.parse(
    await inNs(NS_A, 'iperf3', ['-c', addr, '-t', String(SECONDS), '-J'], (SECONDS + 20) * 1000),
  ) as IperfTcp;
  return {
    gbps: j.end.sum_received.bits_per_second / 1e9,
    retransmits: j.end.sum_sent.retransmits ?? 0,
  };
}

async function smallUdp(addr: string): Promise<{ pps: number; lossPct: number }> {
  const args = ['-c', addr, '-u', '-b', '0', '-l', '64', '-t', String(SECONDS), '-J'];
  const j = JSON.parse(await inNs(NS_A, 'iperf3', args, (SECONDS + 20) * 1000)) as IperfUdp;
  const s = j.end.sum;
  const received = s.packets - s.lost_packets;
  return {
    pps: received / s.seconds,
    lossPct: s.packets > 0 ? (100 * s.lost_packets) / s.packets : 0,
  };
}

async function rtt(addr: string, v6: boolean): Promise<number> {
  const args = [v6 ? '-6' : '-4', '-c', '100', '-i', '0.01', '-W', '1', addr];
  const out = await inNs(NS_A, 'ping', args, 30_000);
  const times = [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (times.length < 50) throw new Error(`ping ${addr}: only ${times.length} replies`);
  return median(times);
}

/** CPU microseconds per packet of sealBatch on 64-packet batches of `size` bytes. */
function cipherCostUs(size: number): number {
  const aead = createNativeBatchAead();
  const n = 64;
  const slot = size + 64;
  const buf = new Uint8Array(n * slot);
  const offsets = Uint32Array.from({ length: n }, (_, i) => i * slot);
  const lengths = new Uint32Array(n).fill(size);
  const key = new Uint8Array(32).fill(1);
  const rounds = Math.max(10, Math.round(1e8 / (size * n)));
  const t0 = process.cpuUsage();
  for (let r = 0; r < rounds; r++) aead.sealBatch(key, buf, offsets, lengths, n);
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / (rounds * n);
}

interface TunnelReport {
  tun: { rxPackets: number; rxBatches: number; txPackets: number; txDrops: number };
  udp: { rxDatagrams: number; rxBatches: number; txDatagrams: number; txDrops: number };
  badTag: number;
  cpuUserUs: number;
  cpuSystemUs: number;
}

function cpuPerPacket(r: TunnelReport | undefined): {
  user: number;
  system: number;
  total: number;
} {
  if (r === undefined) return { user: NaN, system: NaN, total: NaN };
  const packets = r.tun.rxPackets + r.udp.rxDatagrams;
  return {
    user: r.cpuUserUs / packets,
    system: r.cpuSystemUs / packets,
    total: (r.cpuUserUs + r.cpuSystemUs) / packets,
  };
}

const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/datapath.ts needs root (namespaces, TUN)');
  const loadBefore = loadavg();
  await setup();
  const tA = await startTunnel(NS_A, UNDER_A, UNDER_B, INNER_A);
  const tB = await startTunnel(NS_B, UNDER_B, UNDER_A, INNER_B);
  const server = spawn('ip', ['netns', 'exec', NS_B, 'iperf3', '-s'], { stdio: 'ignore' });
  children.push(server);
  // Wait until both the tunnel and the iperf3 server answer.
  for (let i = 0; i < 50; i++) {
    try {
      await inNs(NS_A, 'ping', ['-6', '-c', '1', '-W', '1', INNER_B], 5000);
      await inNs(NS_A, 'iperf3', ['-c', UNDER_B, '-t', '1', '-J'], 10_000);
      break;
    } catch (err) {
      if (i === 49) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const raw = {
    tcp: [] as number[],
    retr: [] as number[],
    pps: [] as number[],
    rtt: [] as number[],
  };
  const tun = {
    tcp: [] as number[],
    retr: [] as number[],
    pps: [] as number[],
    rtt: [] as number[],
  };
  const tunLoss: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const rt = await tcp(UNDER_B);
    raw.tcp.push(rt.gbps);
    raw.retr.push(rt.retransmits);
    const tt = await tcp(INNER_B);
    tun.tcp.push(tt.gbps);
    tun.retr.push(tt.retransmits);
    raw.pps.push((await smallUdp(UNDER_B)).pps);
    const tu = await smallUdp(INNER_B);
    tun.pps.push(tu.pps);
    tunLoss.push(tu.lossPct);
    raw.rtt.push(await rtt(UNDER_B, false));
    tun.rtt.push(await rtt(INNER_B, true));
    process.stderr.write(
      `run ${r + 1}/${RUNS}: TCP raw ${fmt(rt.gbps)} tunnel ${fmt(tt.gbps)} Gbit/s; ` +
        `64B raw ${fmt(raw.pps.at(-1) ?? NaN, 0)} tunnel ${fmt(tu.pps, 0)} pkt/s; ` +
        `RTT raw ${fmt(raw.rtt.at(-1) ?? NaN, 3)} tunnel ${fmt(tun.rtt.at(-1) ?? NaN, 3)} ms\n`,
    );
  }
  const countersA = (await stopTunnel(tA)) as TunnelReport | undefined;
  const countersB = (await stopTunnel(tB)) as TunnelReport | undefined;
  const cipherBig = cipherCostUs(TUN_MTU);
  const cipherSmall = cipherCostUs(112);
  const loadAfter = loadavg();
  cleanup();

  const m = {
    rawTcp: median(raw.tcp),
    tunTcp: median(tun.tcp),
    rawPps: median(raw.pps),
    tunPps: median(tun.pps),
    rawRtt: median(raw.rtt),
    tunRtt: median(tun.rtt),
  };
  const added = m.tunRtt - m.rawRtt;
  const met = {
    tcp: m.tunTcp >= TARGETS.tcpGbps,
    pps: m.tunPps >= TARGETS.smallPps,
    rtt: added < TARGETS.addedRttMs,
  };
  const yes = (b: boolean): string => (b ? 'met' : '**not met**');
  const date = new Date().toISOString();
  const cA = countersA;
  const cpuA = cpuPerPacket(countersA);
  const cpuB = cpuPerPacket(countersB);
  // One core per tunnel process, full-size packets, nothing else running: an upper bound.
  const projectedGbps = (TUN_MTU * 8) / Math.max(cpuA.total, cpuB.total) / 1000;
  const analysis: string[] = [];
  if (!met.tcp || !met.pps) {
    analysis.push(
      `- Where the time goes: the tunnel processes spent ${fmt(cpuA.total)} us (A) and ${fmt(cpuB.total)} us (B) of CPU per packet handled ` +
        `(user ${fmt(cpuA.user)} + system ${fmt(cpuA.system)} us in A). The cipher alone costs ${fmt(cipherBig, 2)} us per ${TUN_MTU}-byte packet and ` +
        `${fmt(cipherSmall, 2)} us per 112-byte packet (measured in this run), so most of the cost is the per-packet system calls ` +
        '(one read() and one write() per packet on the TUN; recvmmsg/sendmmsg batch the UDP calls but the kernel still does per-datagram work), ' +
        'and the kernel network stack work those calls run in our context.',
      `- Even with a core for each tunnel process and nothing else running, ${fmt(Math.max(cpuA.total, cpuB.total))} us per packet caps the tunnel near ` +
        `${fmt(projectedGbps)} Gbit/s of ${TUN_MTU}-byte packets; here both tunnel processes, both iperf3 ends and both TCP stacks share 2 cores` +
        `${Math.max(...loadBefore, ...loadAfter) > 2.5 ? ', and the load average shows other work competing for them during the run' : ''}.`,
      '- What would reach the targets: `IFF_VNET_HDR` with `TUNSETOFFLOAD` (TSO/USO) on the TUN so one read/write moves a GSO super-packet of up to 64 KiB ' +
        '(the kernel segments it), plus UDP GSO (`UDP_SEGMENT`) on send and UDP GRO on receive so one system call moves a train of datagrams: ' +
        'this divides the per-packet system-call count for bulk TCP by 10-40 (how wireguard-go reaches multi-Gbit/s). ' +
        'Small packets gain less from GSO; for them the per-packet read/write on the TUN is the limit, and io_uring could submit a whole batch of ' +
        'TUN reads and writes in one system call. Beyond that, a worker thread per direction in the addon would use both cores.',
    );
  }
  if (!met.pps && m.rawPps < TARGETS.smallPps) {
    analysis.push(
      `- The raw veth itself carried only ${fmt(m.rawPps / 1000, 1)} k/s of 64-byte payloads in this run: the single iperf3 UDP sender is the bottleneck ` +
        'on this machine, so the small-packet target cannot be judged from the absolute rate here; the tunnel / raw ratio is the comparable figure.',
    );
  }
  if (!met.rtt) {
    analysis.push(
      '- Added RTT: each direction crosses two extra processes (TUN read -> JS -> UDP and back); under CPU contention a tunnel process waits for a core, which dominates the added latency.',
    );
  }
  const batchTun = cA?.tun ? cA.tun.rxPackets / Math.max(1, cA.tun.rxBatches) : NaN;
  const batchUdp = cA?.udp ? cA.udp.rxDatagrams / Math.max(1, cA.udp.rxBatches) : NaN;

  const lines = [
    `# Data path benchmark, ${date.slice(0, 10)}`,
    '',
    `Generated by \`node --import tsx bench/datapath.ts --runs ${RUNS} --seconds ${SECONDS}\` at ${date}.`,
    `Two network namespaces joined by a veth pair (IPv4 underlay, MTU 1500); bench/p2p-tunnel.ts in each:`,
    `TUN (MTU ${TUN_MTU}, IFF_NO_PI, txqueuelen ${values.txqueuelen}) <-> ChaCha20-Poly1305 over whole batches in the addon <-> UDP with`,
    'recvmmsg/sendmmsg. The raw veth is measured in the same run, interleaved with the tunnel.',
    '',
    `Machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, Linux ${release()}, Node ${process.version}.`,
    `Load average before/after: ${loadBefore.map((x) => x.toFixed(1)).join(' ')} / ${loadAfter.map((x) => x.toFixed(1)).join(' ')}`,
    '(the machine is shared with other work; a load above 2 means the bench competed for the 2 cores).',
    '',
    `## Medians of ${RUNS} runs`,
    '',
    '| metric | raw veth | tunnel | tunnel / raw | target | |',
    '|---|---|---|---|---|---|',
    `| TCP throughput (iperf3, 1 stream, ${SECONDS} s) | ${fmt(m.rawTcp)} Gbit/s | ${fmt(m.tunTcp)} Gbit/s | ${fmt(m.tunTcp / m.rawTcp, 3)} | >= ${TARGETS.tcpGbps} Gbit/s | ${yes(met.tcp)} |`,
    `| 64-byte UDP payloads received | ${fmt(m.rawPps / 1000, 1)} k/s | ${fmt(m.tunPps / 1000, 1)} k/s | ${fmt(m.tunPps / m.rawPps, 3)} | >= ${TARGETS.smallPps / 1000} k/s | ${yes(met.pps)} |`,
    `| RTT (ping, median of 100) | ${fmt(m.rawRtt, 3)} ms | ${fmt(m.tunRtt, 3)} ms | added ${fmt(added, 3)} ms | < ${TARGETS.addedRttMs} ms added | ${yes(met.rtt)} |`,
    '',
    '## Every run',
    '',
    '| run | TCP raw | TCP tunnel (retransmits) | 64 B raw | 64 B tunnel (loss) | RTT raw | RTT tunnel |',
    '|---|---|---|---|---|---|---|',
    ...raw.tcp.map(
      (_, i) =>
        `| ${i + 1} | ${fmt(raw.tcp[i] ?? NaN)} | ${fmt(tun.tcp[i] ?? NaN)} (${tun.retr[i]}) | ${fmt((raw.pps[i] ?? NaN) / 1000, 1)} k | ${fmt((tun.pps[i] ?? NaN) / 1000, 1)} k (${fmt(tunLoss[i] ?? NaN, 1)}%) | ${fmt(raw.rtt[i] ?? NaN, 3)} | ${fmt(tun.rtt[i] ?? NaN, 3)} |`,
    ),
    '',
    `CPU per packet handled (user + system): tunnel A ${fmt(cpuA.total)} us, tunnel B ${fmt(cpuB.total)} us; ` +
      `cipher alone ${fmt(cipherBig)} us per ${TUN_MTU}-byte packet, ${fmt(cipherSmall)} us per 112-byte packet.`,
    '',
    `Mean batch sizes seen by tunnel A over the whole run: ${fmt(batchTun, 1)} packets per TUN read event, ${fmt(batchUdp, 1)} datagrams per recvmmsg batch.`,
    '',
    ...(analysis.length > 0
      ? ['## Targets not met: why, and what would reach them', '', ...analysis, '']
      : []),
    'Final counters of both tunnel processes:',
    '',
    '```json',
    JSON.stringify({ tunnelA: countersA, tunnelB: countersB }),
    '```',
    '',
  ];
  const outDir = `${ROOT}bench/results`;
  mkdirSync(outDir, { recursive: true });
  const file = `${outDir}/datapath-${date.slice(0, 10)}.md`;
  writeFileSync(file, `${lines.join('\n')}\n`);
  process.stdout.write(`${lines.join('\n')}\nwritten to ${file}\n`);
}

/** CPU seconds (user + system) process `pid` has used so far (/proc/PID/stat, CLK_TCK 100). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface OffloadRun {
  gbps: number;
  cpuPerGB: number;
  retransmits: number;
}

/** One iperf3 TCP run to `addr` (reverse: B sends to A), with both tunnels' CPU during it. */
async function tcpWithCpu(addr: string, reverse: boolean, pair: Tunnel[]): Promise<OffloadRun> {
  const before = pair.reduce((s, t) => s + cpuSeconds(t.child.pid), 0);
  const args = ['-c', addr, '-t', String(SECONDS), '-J', ...(reverse ? ['-R'] : [])];
  const j = JSON.parse(await inNs(NS_A, 'iperf3', args, (SECONDS + 20) * 1000)) as {
    end: {
      sum_received: { bits_per_second: number; bytes: number };
      sum_sent: { retransmits?: number };
    };
  };
  const cpu = pair.reduce((s, t) => s + cpuSeconds(t.child.pid), 0) - before;
  return {
    gbps: j.end.sum_received.bits_per_second / 1e9,
    cpuPerGB: cpu / (j.end.sum_received.bytes / 1e9),
    retransmits: j.end.sum_sent.retransmits ?? 0,
  };
}

interface UdpRun {
  pps: number;
  /** CPU microseconds of both tunnel processes per packet delivered. */
  cpuUsPerPacket: number;
  lossPct: number;
}

/** 64-byte UDP A -> B at unlimited rate, with both tunnels' CPU during it. */
async function udpWithCpu(addr: string, pair: Tunnel[]): Promise<UdpRun> {
  const before = pair.reduce((s, t) => s + cpuSeconds(t.child.pid), 0);
  const u = await smallUdp(addr);
  const cpu = pair.reduce((s, t) => s + cpuSeconds(t.child.pid), 0) - before;
  return { ...u, cpuUsPerPacket: (cpu * 1e6) / Math.max(1, u.pps * SECONDS) };
}

async function compareOffloads(): Promise<void> {
  const baselineOff = values['baseline-off'] ?? 'all';
  if (process.getuid?.() !== 0) throw new Error('bench/datapath.ts needs root (namespaces, TUN)');
  const loadBefore = loadavg();
  await setup();
  const configs = [
    {
      name: 'off',
      inner: ['fd00:b::1', 'fd00:b::2'],
      port: 4191,
      tun: 'mip6boff',
      off: baselineOff,
    },
    { name: 'on', inner: ['fd00:c::1', 'fd00:c::2'], port: 4192, tun: 'mip6bon', off: undefined },
  ] as const;
  const pairs: Record<string, Tunnel[]> = {};
  for (const c of configs) {
    const o = { port: c.port, tunName: c.tun, ...(c.off ? { offloadOff: c.off } : {}) };
    pairs[c.name] = [
      await startTunnel(NS_A, UNDER_A, UNDER_B, c.inner[0], o),
      await startTunnel(NS_B, UNDER_B, UNDER_A, c.inner[1], o),
    ];
  }
  const server = spawn('ip', ['netns', 'exec', NS_B, 'iperf3', '-s'], { stdio: 'ignore' });
  children.push(server);
  for (const c of configs) {
    for (let i = 0; i < 50; i++) {
      try {
        await inNs(NS_A, 'ping', ['-6', '-c', '1', '-W', '1', c.inner[1]], 5000);
        await inNs(NS_A, 'iperf3', ['-c', c.inner[1], '-t', '1', '-J'], 10_000);
        break;
      } catch (err) {
        if (i === 49) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }
  const runs: Record<string, { up: OffloadRun[]; down: OffloadRun[]; udp: UdpRun[] }> = {
    off: { up: [], down: [], udp: [] },
    on: { up: [], down: [], udp: [] },
  };
  for (let r = 0; r < RUNS; r++) {
    const order = r % 2 === 0 ? configs : [...configs].reverse();
    for (const c of order) {
      const pair = pairs[c.name]!;
      runs[c.name]!.up.push(await tcpWithCpu(c.inner[1], false, pair));
      runs[c.name]!.down.push(await tcpWithCpu(c.inner[1], true, pair));
      if (values.udp) runs[c.name]!.udp.push(await udpWithCpu(c.inner[1], pair));
      const u = runs[c.name]!.up.at(-1)!;
      const d = runs[c.name]!.down.at(-1)!;
      const s = runs[c.name]!.udp.at(-1);
      process.stderr.write(
        `round ${r + 1}/${RUNS} offloads ${c.name}: A->B ${fmt(u.gbps)} Gbit/s ${fmt(u.cpuPerGB)} CPU-s/GB; ` +
          `B->A ${fmt(d.gbps)} Gbit/s ${fmt(d.cpuPerGB)} CPU-s/GB` +
          (s
            ? `; UDP 64 B ${fmt(s.pps / 1000, 1)} k/s ${fmt(s.cpuUsPerPacket)} CPU-us/packet`
            : '') +
          '\n',
      );
    }
  }
  const reports: Record<string, unknown> = {};
  for (const c of configs) {
    reports[c.name] = {
      A: await stopTunnel(pairs[c.name]![0]!),
      B: await stopTunnel(pairs[c.name]![1]!),
    };
  }
  const loadAfter = loadavg();
  cleanup();
  const med = (name: string, dir: 'up' | 'down', k: keyof OffloadRun): number =>
    median(runs[name]![dir].map((x) => x[k]));
  const medUdp = (name: string, k: keyof UdpRun): number =>
    median(runs[name]!.udp.map((x) => x[k]));
  const udpRows = values.udp
    ? [
        `| 64-byte UDP A -> B delivered | ${fmt(medUdp('off', 'pps') / 1000, 1)} k/s | ${fmt(medUdp('on', 'pps') / 1000, 1)} k/s | ${fmt(medUdp('on', 'pps') / medUdp('off', 'pps'))} |`,
        `| 64-byte UDP CPU of both tunnel processes per packet delivered | ${fmt(medUdp('off', 'cpuUsPerPacket'))} us | ${fmt(medUdp('on', 'cpuUsPerPacket'))} us | ${fmt(medUdp('on', 'cpuUsPerPacket') / medUdp('off', 'cpuUsPerPacket'))} |`,
      ]
    : [];
  const cmd =
    `node --import tsx bench/datapath.ts --compare-offloads --runs ${RUNS} --seconds ${SECONDS}` +
    (baselineOff !== 'all' ? ` --baseline-off ${baselineOff}` : '') +
    (values.udp ? ' --udp' : '');
  const date = new Date().toISOString();
  const accepted = (reports.on as { A?: { offloads?: unknown } }).A?.offloads;
  const row = (label: string, dir: 'up' | 'down'): string[] => [
    `| ${label} throughput | ${fmt(med('off', dir, 'gbps'))} Gbit/s | ${fmt(med('on', dir, 'gbps'))} Gbit/s | ${fmt(med('on', dir, 'gbps') / med('off', dir, 'gbps'))} |`,
    `| ${label} CPU of both tunnel processes per GB | ${fmt(med('off', dir, 'cpuPerGB'))} s | ${fmt(med('on', dir, 'cpuPerGB'))} s | ${fmt(med('on', dir, 'cpuPerGB') / med('off', dir, 'cpuPerGB'))} |`,
  ];
  const lines = [
    `# Offloads on vs off, ${date.slice(0, 10)}`,
    '',
    `Generated by \`${cmd}\` at ${date}.`,
    'Two network namespaces joined by a veth pair (IPv4 underlay, MTU 1500), two bench/p2p-tunnel.ts pairs side by side in them',
    `(TUN MTU ${TUN_MTU}, ChaCha20-Poly1305 in the addon, IPv6 inside): one with MIP6_OFFLOAD_OFF=${baselineOff}` +
      (baselineOff === 'all'
        ? ' (as before issue #16: one packet per TUN read/write, recvmmsg/sendmmsg)'
        : '') +
      ',',
    'one with the offloads the kernel accepted ("on"; "off" below is the baseline). Each round measures both, in alternating order:',
    `iperf3 TCP, one stream, ${SECONDS} s, A -> B and B -> A (-R)` +
      (values.udp
        ? `, then iperf3 UDP with 64-byte payloads at unlimited rate A -> B, ${SECONDS} s`
        : '') +
      '. CPU = user + system time of both tunnel processes during the run',
    '(/proc/PID/stat; kernel work done in softirq context on behalf of the flow is not all in it).',
    '',
    `Machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, Linux ${release()}, Node ${process.version}. Shared with other sessions`,
    `and noisy: load average before/after ${loadBefore.map((x) => x.toFixed(1)).join(' ')} / ${loadAfter.map((x) => x.toFixed(1)).join(' ')}.`,
    '',
    `Offloads the kernel accepted (tunnel A, offloads on): \`${JSON.stringify(accepted)}\``,
    '',
    `## Medians of ${RUNS} interleaved rounds`,
    '',
    '| metric | offloads off | offloads on | on / off |',
    '|---|---|---|---|',
    ...row('TCP A -> B', 'up'),
    ...row('TCP B -> A', 'down'),
    ...udpRows,
    '',
    '## Every round',
    '',
    '| round | off A->B Gbit/s (CPU-s/GB, retr) | on A->B | off B->A | on B->A |',
    '|---|---|---|---|---|',
    ...runs.off!.up.map((_, i) => {
      const cell = (x: OffloadRun | undefined): string =>
        x === undefined ? 'n/a' : `${fmt(x.gbps)} (${fmt(x.cpuPerGB)}, ${x.retransmits})`;
      return `| ${i + 1} | ${cell(runs.off!.up[i])} | ${cell(runs.on!.up[i])} | ${cell(runs.off!.down[i])} | ${cell(runs.on!.down[i])} |`;
    }),
    ...(values.udp
      ? [
          '',
          '| round | off 64-byte UDP k/s (CPU-us/packet, loss %) | on |',
          '|---|---|---|',
          ...runs.off!.udp.map((_, i) => {
            const cell = (x: UdpRun | undefined): string =>
              x === undefined
                ? 'n/a'
                : `${fmt(x.pps / 1000, 1)} (${fmt(x.cpuUsPerPacket)}, ${fmt(x.lossPct, 1)})`;
            return `| ${i + 1} | ${cell(runs.off!.udp[i])} | ${cell(runs.on!.udp[i])} |`;
          }),
        ]
      : []),
    '',
    'Final counters of the four tunnel processes:',
    '',
    '```json',
    JSON.stringify(reports),
    '```',
    '',
  ];
  const outDir = `${ROOT}bench/results`;
  mkdirSync(outDir, { recursive: true });
  const suffix = baselineOff === 'all' ? '' : `-vs-${baselineOff}`;
  const file = `${outDir}/offload-${date.slice(0, 10)}${suffix}.md`;
  writeFileSync(file, `${lines.join('\n')}\n`);
  process.stdout.write(`${lines.join('\n')}\nwritten to ${file}\n`);
}

try {
  if (values['compare-offloads']) await compareOffloads();
  else await main();
} catch (err) {
  cleanup();
  process.stderr.write(`datapath bench failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
