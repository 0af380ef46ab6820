/**
 * Where a ping's round trip goes, hop by hop, through mip6 and through OpenVPN (issue #16, not
 * a test): the kernel's own receive/transmit timestamps of the same packet at five points, so
 * each daemon's share (from the moment its input was queued to the moment its output hit the
 * next interface) is told apart from the network's and from ping's own.
 *
 *   node --import tsx bench/hop-latency.ts [--rounds 5] [--count 400] [--interval-ms 5]
 *        [--out bench/results/hop-latency-DATE]
 *
 * One netns lab (test/lab/lab.ts, the MN on "lte"), the real `mip6 ha` and `mip6 mn` daemons and
 * OpenVPN 2.6 (bench/lib/openvpn.ts) side by side on the same links; each system first gets 600
 * unmeasured pings. Per round and system (the order alternates), dumpcap captures at
 *   MN TUN -> MN uplink -> HA uplink -> HA TUN -> HA home link (and back)
 * while `--count` pings go from the system's inner address in the MN to the server on the home
 * link. Each echo request seen on the MN's TUN starts a round trip; the first packet of the
 * expected kind after it at each point is that round trip's (outer datagrams of at least 100
 * UDP bytes only, so keepalives do not count). Per hop: the median over the round trips, then
 * the median over rounds. Needs root, /dev/net/tun, openvpn, dumpcap and tshark.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLab, LAB_ADDR, type Lab, type LabNode } from '../test/lab/lab.js';
import { Provisioned } from '../test/lab/mip6-lab.js';
import { intOption, startMip6Pair, type Mip6Pair } from './lib/mip6-pair.js';
import { OPENVPN_DEV, startOpenVpn } from './lib/openvpn.js';
import { median, quantile } from './lib/stats.js';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    count: { type: 'string', default: '400' },
    'interval-ms': { type: 'string', default: '5' },
    out: { type: 'string' },
  },
});
const ROUNDS = intOption(opt.rounds, 1, 20, 'rounds');
const COUNT = intOption(opt.count, 50, 5_000, 'count');
const INTERVAL_MS = intOption(opt['interval-ms'], 2, 100, 'interval-ms');
const DATE = new Date().toISOString().slice(0, 10);
const OUT = opt.out ?? `bench/results/hop-latency-${DATE}`;
const WARMUP = 600;
const OVPN = { serverAddress: '2001:db8:201::1', prefix: 64, port: 1194, table: 201 };

type System = 'mip6' | 'openvpn';
const SYSTEMS: readonly System[] = ['mip6', 'openvpn'];

/** The capture points, in the order a round trip passes them (twice). */
const POINTS = [
  { id: 'mnTun', node: 'mn', dev: { mip6: 'mip6mn', openvpn: OPENVPN_DEV } },
  { id: 'mnUp', node: 'mn', dev: { mip6: 'lte', openvpn: 'lte' } },
  { id: 'haUp', node: 'ha', dev: { mip6: 'uplink', openvpn: 'uplink' } },
  { id: 'haTun', node: 'ha', dev: { mip6: 'mip6ha', openvpn: OPENVPN_DEV } },
  { id: 'haHome', node: 'ha', dev: { mip6: 'homebr', openvpn: 'homebr' } },
] as const;
type PointId = (typeof POINTS)[number]['id'];

/** One event label: a point and which way the packet goes (request / reply, up / down). */
type Label = `${PointId}:${'req' | 'rep' | 'up' | 'down'}`;
const PATH: readonly Label[] = [
  'mnTun:req',
  'mnUp:up',
  'haUp:up',
  'haTun:req',
  'haHome:req',
  'haHome:rep',
  'haTun:rep',
  'haUp:down',
  'mnUp:down',
  'mnTun:rep',
];
/** What each step between two labels is, for the report. */
const HOPS: readonly { from: Label; to: Label; what: string; daemon: boolean }[] = [
  { from: 'mnTun:req', to: 'mnUp:up', what: 'MN daemon: TUN -> sealed datagram out', daemon: true },
  { from: 'mnUp:up', to: 'haUp:up', what: 'network: MN -> router -> HA', daemon: false },
  { from: 'haUp:up', to: 'haTun:req', what: 'HA daemon: datagram -> opened, to TUN', daemon: true },
  {
    from: 'haTun:req',
    to: 'haHome:req',
    what: 'HA kernel: forwarded to the home link',
    daemon: false,
  },
  { from: 'haHome:req', to: 'haHome:rep', what: 'server answers', daemon: false },
  { from: 'haHome:rep', to: 'haTun:rep', what: 'HA kernel: forwarded into the TUN', daemon: false },
  {
    from: 'haTun:rep',
    to: 'haUp:down',
    what: 'HA daemon: TUN -> sealed datagram out',
    daemon: true,
  },
  { from: 'haUp:down', to: 'mnUp:down', what: 'network: HA -> router -> MN', daemon: false },
  {
    from: 'mnUp:down',
    to: 'mnTun:rep',
    what: 'MN daemon: datagram -> opened, to TUN',
    daemon: true,
  },
];

const log = (m: string): void => {
  process.stderr.write(`[hop-latency] ${m}\n`);
};

interface Sample {
  round: number;
  system: System;
  /** ping's own RTT median (us). */
  pingUs: number;
  /** Round trips complete at every point. */
  complete: number;
  /** Median per hop (us), in HOPS order. */
  hopsUs: number[];
  /** 99th percentile per hop (us), in HOPS order: where the slow round trips lose their time. */
  hopsP99Us: number[];
  /** Median of the first to the last point on the MN's TUN (us). */
  tunRttUs: number;
  tunRttP99Us: number;
  pingP99Us: number;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', reject);
    c.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim().slice(-400)}`));
    });
  });
}

/** Packets of one capture file: time (s), IPv4 source, IPv6 source, ICMPv6 type, UDP length. */
async function readCapture(file: string): Promise<string[][]> {
  const out = await run(
    'tshark',
    ['-r', file, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'ip.src', '-e', 'ipv6.src'].concat(
      ['-e', 'icmpv6.type', '-e', 'udp.length'],
    ),
    120_000,
  );
  return out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'));
}

function labelOf(point: PointId, f: string[], inner: string): Label | undefined {
  const [, v4src = '', v6src = '', icmp = '', udpLen = ''] = f;
  if (point === 'mnTun' || point === 'haTun' || point === 'haHome') {
    if (icmp === '128' && v6src === inner) return `${point}:req`;
    if (icmp === '129' && v6src === LAB_ADDR.server.v6) return `${point}:rep`;
    return undefined;
  }
  if (Number(udpLen) < 100) return undefined; // keepalives and handshakes, not a ping's
  if (v4src === LAB_ADDR.mn.lte) return `${point}:up`;
  if (v4src === LAB_ADDR.ha.v4) return `${point}:down`;
  return undefined;
}

/** Round trips from the merged, time-ordered events: each starts at an echo request on the MN TUN. */
function roundTrips(events: { t: number; label: Label }[]): Map<Label, number>[] {
  const trips: Map<Label, number>[] = [];
  let cur: Map<Label, number> | undefined;
  for (const e of events) {
    if (e.label === 'mnTun:req') {
      cur = new Map([[e.label, e.t]]);
      trips.push(cur);
    } else if (cur !== undefined && !cur.has(e.label)) {
      // Only in path order: a point's packet counts once the previous point saw this trip's.
      const at = PATH.indexOf(e.label);
      if (at > 0 && cur.has(PATH[at - 1]!)) cur.set(e.label, e.t);
    }
  }
  return trips.filter((m) => PATH.every((l) => m.has(l)));
}

async function measure(
  lab: Lab,
  system: System,
  inner: string,
  round: number,
  dir: string,
): Promise<Sample> {
  const files: Record<string, string> = {};
  const duration = Math.ceil((COUNT * INTERVAL_MS) / 1000) + 4;
  const captures = POINTS.map((p) => {
    const file = join(dir, `${system}-${round}-${p.id}.pcapng`);
    files[p.id] = file;
    const outer = system === 'openvpn' ? `udp port ${OVPN.port}` : `udp and not port ${OVPN.port}`;
    const filter = p.id === 'mnUp' || p.id === 'haUp' ? outer : 'icmp6';
    const args = ['-q', '-i', p.dev[system], '-s', '128', '-f', filter];
    return lab.spawn(
      p.node as LabNode,
      'dumpcap',
      [...args, '-a', `duration:${duration}`, '-w', file],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  });
  // Each dumpcap says "Capturing on '<dev>'" once its socket is attached: wait for exactly that.
  await Promise.all(
    captures.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          let said = '';
          const timer = setTimeout(
            () => reject(new Error(`dumpcap did not start: ${said}`)),
            10_000,
          );
          c.stderr?.on('data', (d: Buffer) => {
            said += d.toString();
            if (said.includes('Capturing on')) {
              clearTimeout(timer);
              resolve();
            }
          });
          c.once('exit', () => {
            clearTimeout(timer);
            reject(new Error(`dumpcap exited before capturing: ${said.trim()}`));
          });
        }),
    ),
  );
  const ping = await lab.exec(
    'mn',
    'ping',
    ['-6', '-c', String(COUNT), '-i', String(INTERVAL_MS / 1000), '-W', '1', '-I', inner].concat([
      LAB_ADDR.server.v6,
    ]),
    { check: false, timeoutMs: COUNT * INTERVAL_MS * 4 + 10_000 },
  );
  await Promise.all(
    captures.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null) resolve();
          else c.once('exit', () => resolve());
        }),
    ),
  );
  const pingTimes = [...ping.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  const events: { t: number; label: Label }[] = [];
  for (const p of POINTS) {
    for (const f of await readCapture(files[p.id]!)) {
      const label = labelOf(p.id, f, inner);
      if (label !== undefined) events.push({ t: Number(f[0]) * 1e6, label });
    }
  }
  events.sort((a, b) => a.t - b.t);
  const trips = roundTrips(events);
  const hop = (h: (typeof HOPS)[number]): number[] =>
    trips.map((m) => m.get(h.to)! - m.get(h.from)!);
  const tun = trips.map((m) => m.get('mnTun:rep')! - m.get('mnTun:req')!);
  const s: Sample = {
    round,
    system,
    pingUs: median(pingTimes),
    pingP99Us: quantile(pingTimes, 0.99),
    complete: trips.length,
    hopsUs: HOPS.map((h) => median(hop(h))),
    hopsP99Us: HOPS.map((h) => quantile(hop(h), 0.99)),
    tunRttUs: median(tun),
    tunRttP99Us: quantile(tun, 0.99),
  };
  log(
    `round ${round + 1} ${system}: ping ${s.pingUs.toFixed(0)} us, on the MN's TUN ` +
      `${s.tunRttUs.toFixed(0)} us, ${trips.length}/${COUNT} round trips seen at every point`,
  );
  return s;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/hop-latency.ts needs root (netns lab)');
  for (const tool of ['openvpn', 'dumpcap', 'tshark', 'ping', 'openssl']) {
    await run('sh', ['-c', `command -v ${tool}`], 5_000).catch(() => {
      throw new Error(`bench/hop-latency.ts needs ${tool} (not found on PATH)`);
    });
  }
  const loadBefore = loadavg();
  const lab = await createLab({ network: 'lte' });
  const prov = await Provisioned.create();
  const dir = mkdtempSync(join(tmpdir(), 'mip6-hops-'));
  const samples: Sample[] = [];
  let pair: Mip6Pair | undefined;
  try {
    pair = await startMip6Pair(lab, prov);
    const ovpn = await startOpenVpn(lab, dir, OVPN);
    const inner: Record<System, string> = { mip6: LAB_ADDR.mn.homeAddress, openvpn: ovpn.address };
    for (const system of SYSTEMS) {
      const warm = ['-6', '-c', String(WARMUP), '-i', '0.002', '-W', '1', '-I', inner[system]];
      await lab.exec('mn', 'ping', [...warm, LAB_ADDR.server.v6], { timeoutMs: 30_000 });
    }
    log(`lab up; ${WARMUP} pings through each system done`);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse();
      for (const system of order)
        samples.push(await measure(lab, system, inner[system], round, dir));
    }
  } finally {
    await pair?.stop();
    await lab.destroy();
    prov.remove();
    rmSync(dir, { recursive: true, force: true });
  }
  const loadAfter = loadavg();
  const of = (s: System): Sample[] => samples.filter((x) => x.system === s);
  const med = (s: System, f: (x: Sample) => number): number => median(of(s).map(f));
  const us = (x: number): string => x.toFixed(1);
  const sumDaemon = (x: Sample): number =>
    HOPS.reduce((a, h, i) => a + (h.daemon ? (x.hopsUs[i] ?? NaN) : 0), 0);
  const lines = [
    `# A ping's round trip hop by hop, mip6 and OpenVPN — ${DATE}`,
    '',
    '```',
    `node --import tsx bench/hop-latency.ts --rounds ${ROUNDS} --count ${COUNT} --interval-ms ${INTERVAL_MS}`,
    '```',
    '',
    `Host: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Linux ${release()}, load average ` +
      `${loadBefore.map((x) => x.toFixed(2)).join(' ')} before, ` +
      `${loadAfter.map((x) => x.toFixed(2)).join(' ')} after. One lab, both systems side by ` +
      `side, ${WARMUP} unmeasured pings each first; per round (order alternating) ${COUNT} ` +
      `pings every ${INTERVAL_MS} ms from the system's inner address in the MN to the server on ` +
      `the HA's home link. Times are the kernel's capture timestamps of the same packet at each ` +
      `point (dumpcap), medians (and 99th percentiles) over the round trips, then the median over ` +
      `${ROUNDS} rounds (microseconds).`,
    '',
    '| hop | mip6 | OpenVPN | mip6 - OpenVPN | p99 mip6 | p99 OpenVPN |',
    '|---|---|---|---|---|---|',
  ];
  const row = (name: string, f: (x: Sample) => number, p99: (x: Sample) => number): void => {
    const a = med('mip6', f);
    const b = med('openvpn', f);
    const c = `${us(med('mip6', p99))} | ${us(med('openvpn', p99))}`;
    lines.push(`| ${name} | ${us(a)} | ${us(b)} | ${us(a - b)} | ${c} |`);
  };
  HOPS.forEach((h, i) =>
    row(
      h.what,
      (x) => x.hopsUs[i]!,
      (x) => x.hopsP99Us[i]!,
    ),
  );
  row('**the four daemon hops** (sum of medians)', sumDaemon, () => NaN);
  row(
    "**round trip on the MN's TUN**",
    (x) => x.tunRttUs,
    (x) => x.tunRttP99Us,
  );
  row(
    "**ping's own RTT**",
    (x) => x.pingUs,
    (x) => x.pingP99Us,
  );
  lines.push('', '| round | system | ping RTT (us) | on the TUN (us) | round trips seen |');
  lines.push('|---|---|---|---|---|');
  for (const s of samples) {
    lines.push(
      `| ${s.round + 1} | ${s.system} | ${us(s.pingUs)} | ${us(s.tunRttUs)} | ${s.complete} / ${COUNT} |`,
    );
  }
  lines.push('');
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(`${OUT}.md`, lines.join('\n'));
  writeFileSync(
    `${OUT}.json`,
    JSON.stringify(
      { date: DATE, rounds: ROUNDS, count: COUNT, hops: HOPS, loadBefore, loadAfter, samples },
      null,
      1,
    ),
  );
  log(`written ${OUT}.md / .json`);
  process.stdout.write(lines.join('\n') + '\n');
}

await main();
