/**
 * Markdown report of bench/compare.ts: one table per metric (median, min, max over the runs, and
 * the ratio mip6 / peer with a plain verdict: "mip6 behind" whenever it is), then handover per
 * move and direction, home-agent scale, and the run's conditions (commit, load, versions, MTUs).
 */
import { writeFileSync } from 'node:fs';
import type { BenchJson } from './compare.js';
import { median } from './lib/stats.js';

type Sys = 'mip6' | 'wireguard' | 'openvpn' | 'raw';
const SYSTEMS: readonly Sys[] = ['mip6', 'wireguard', 'openvpn', 'raw'];
const NAME: Record<Sys, string> = {
  mip6: 'mip6',
  wireguard: 'WireGuard (wireguard-go)',
  openvpn: 'OpenVPN 2.6 (UDP, AES-256-GCM)',
  raw: 'raw underlay, no tunnel',
};

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summarize(xs: readonly number[]): Summary {
  const f = xs.filter(Number.isFinite);
  return {
    median: median(f),
    min: f.length > 0 ? Math.min(...f) : NaN,
    max: f.length > 0 ? Math.max(...f) : NaN,
    n: f.length,
  };
}

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

/** "mip6 behind" / "mip6 ahead" / "about even" (within 5%) from the ratio and the direction. */
function verdict(ratio: number, higherIsBetter: boolean, peer: Sys): string {
  if (!Number.isFinite(ratio)) return 'n/a';
  if (peer === 'raw')
    return higherIsBetter
      ? `tunnel keeps ${fmt(ratio * 100, 0)}% of raw`
      : `tunnel costs x${fmt(ratio, 2)} of raw`;
  if (Math.abs(ratio - 1) < 0.05) return 'about even';
  const better = higherIsBetter ? ratio > 1 : ratio < 1;
  return better ? 'mip6 ahead' : '**mip6 behind**';
}

interface MetricDef {
  title: string;
  unit: string;
  digits: number;
  higherIsBetter: boolean;
  values: (s: Sys) => number[];
  note?: string;
}

function metricTable(m: MetricDef): string[] {
  const sums = new Map(SYSTEMS.map((s) => [s, summarize(m.values(s))]));
  const mip6 = sums.get('mip6')?.median ?? NaN;
  const lines = [
    `### ${m.title}`,
    '',
    ...(m.note !== undefined ? [m.note, ''] : []),
    `| system | median (${m.unit}) | min | max | runs | mip6 / this | |`,
    '|---|---|---|---|---|---|---|',
  ];
  for (const s of SYSTEMS) {
    const v = sums.get(s);
    if (v === undefined || v.n === 0) {
      lines.push(`| ${NAME[s]} | not measured | | | 0 | | |`);
      continue;
    }
    const ratio = s === 'mip6' ? NaN : mip6 / v.median;
    lines.push(
      `| ${NAME[s]} | ${fmt(v.median, m.digits)} | ${fmt(v.min, m.digits)} | ${fmt(v.max, m.digits)} | ${v.n} | ${s === 'mip6' ? '' : fmt(ratio, 2)} | ${s === 'mip6' ? '' : verdict(ratio, m.higherIsBetter, s)} |`,
    );
  }
  lines.push('');
  return lines;
}

/** Small MTU, fragments dropped (issue #21): TCP each way per system. */
function smallMtuSection(j: BenchJson): string[] {
  const recs = j.smallMtu ?? [];
  if (recs.length === 0) return [];
  const note =
    "The router <-> HA link narrowed to 1400 bytes (PPPoE / LTE / hotel uplinks) and IP fragments dropped on the way (test/lab/narrow-path.ts); first with the routers' ICMP Fragmentation Needed / Packet Too Big allowed, then dropped too (only a tunnel that probes the path itself can know it). iperf3 TCP, 1 stream, after every other measurement (the path stays narrow). A run that failed or timed out counts as 0 Gbit/s: the tunnel black-holed full-size packets.";
  const lines: string[] = [];
  for (const icmp of [true, false]) {
    for (const [dir, title] of [
      ['upGbps', 'MN -> server'],
      ['downGbps', 'server -> MN'],
    ] as const) {
      lines.push(
        ...metricTable({
          title: `Small MTU, fragments dropped${icmp ? '' : ', ICMP dropped'}: TCP ${title}`,
          unit: 'Gbit/s',
          digits: 3,
          higherIsBetter: true,
          values: (s) =>
            recs.filter((r) => r.system === s && (r.icmp ?? true) === icmp).map((r) => r[dir]),
          ...(icmp && dir === 'upGbps' ? { note } : {}),
        }),
      );
    }
  }
  const failed = recs.filter((r) => r.error !== undefined);
  if (failed.length > 0) {
    lines.push('Small-MTU runs that failed (counted as 0):', '');
    for (const r of failed) {
      lines.push(
        `- round ${r.round + 1} ${r.system}${r.icmp ? '' : ' (ICMP dropped)'}: ${r.error ?? ''}`,
      );
    }
    lines.push('');
  }
  return lines;
}

function roSection(j: BenchJson): string[] {
  if (j.ro.length === 0) return ['Not measured in this run.', ''];
  const modes = [
    ['ro', 'route optimized (direct, after return routability)'],
    ['ha', 'through the home agent (reverse tunnel both ways)'],
    ['raw', 'raw underlay MN -> CN (IPv4, no tunnel)'],
  ] as const;
  const ok = j.ro.filter((r) => r.error === undefined);
  const sum = (mode: string, k: 'rttMedianMs' | 'rttP99Ms' | 'tcpGbps'): Summary =>
    summarize(ok.filter((r) => r.mode === mode).map((r) => r[k]));
  const lines = [
    "A `mip6 cn` in the lab's CN namespace (its own home address 2001:db8:100::20, registered at the HA); the MN is restarted alternately without and with the CN as a `[[correspondent]]` (route_optimization = true; measured after its `route-optimized` event). MN home address -> CN home address.",
    '',
    '| path | RTT median (ms) | min | max | RTT p99 median (ms) | TCP 1 stream median (Gbit/s) | min | max | runs |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [m, name] of modes) {
    const r = sum(m, 'rttMedianMs');
    const p = sum(m, 'rttP99Ms');
    const t = sum(m, 'tcpGbps');
    lines.push(
      `| ${name} | ${fmt(r.median, 3)} | ${fmt(r.min, 3)} | ${fmt(r.max, 3)} | ${fmt(p.median, 3)} | ${fmt(t.median, 3)} | ${fmt(t.min, 3)} | ${fmt(t.max, 3)} | ${t.n} |`,
    );
  }
  const rttRatio = sum('ro', 'rttMedianMs').median / sum('ha', 'rttMedianMs').median;
  const tcpRatio = sum('ro', 'tcpGbps').median / sum('ha', 'tcpGbps').median;
  lines.push(
    '',
    `Route optimized / through the HA: RTT x${fmt(rttRatio, 2)} (${rttRatio < 1 ? 'RO faster' : '**RO slower**'}), TCP throughput x${fmt(tcpRatio, 2)} (${tcpRatio >= 1 ? 'RO faster' : '**RO slower**'}). ` +
      'In the lab the HA is one veth hop away, so RO can only save the detour through the HA process, not real-world distance.',
    '',
  );
  for (const r of j.ro.filter((x) => x.error !== undefined))
    lines.push(`- round ${r.round + 1} ${r.mode} failed: ${r.error ?? ''}`);
  return lines;
}

const MOVE_NAMES: Record<string, string> = {
  hotel: 'LTE -> hotel NAT44',
  v6only: 'hotel -> IPv6-only',
  lte: 'IPv6-only -> LTE',
};

/** Every metric where mip6's median is more than 5% worse than a peer's, in plain words. */
function behindList(j: BenchJson, metrics: MetricDef[]): string[] {
  const out: string[] = [];
  for (const m of metrics) {
    const mine = summarize(m.values('mip6')).median;
    for (const peer of ['wireguard', 'openvpn'] as const) {
      const theirs = summarize(m.values(peer)).median;
      if (!Number.isFinite(mine) || !Number.isFinite(theirs)) continue;
      const worse = m.higherIsBetter ? mine < theirs * 0.95 : mine > theirs * 1.05;
      if (worse)
        out.push(
          `- ${m.title}: mip6 ${fmt(mine, m.digits)} vs ${NAME[peer]} ${fmt(theirs, m.digits)} ${m.unit}`,
        );
    }
  }
  const moves = ['hotel', 'v6only', 'lte'];
  for (const v of ['wireguard', 'wireguard-keepalive', 'openvpn']) {
    for (const move of moves) {
      for (const dir of ['downMs', 'upMs'] as const) {
        const get = (variant: string): number =>
          summarize(
            j.handover
              .filter((h) => h.variant === variant)
              .flatMap((h) => h.moves.filter((x) => x.move === move).map((x) => x[dir])),
          ).median;
        const mine = get('mip6');
        const theirs = get(v);
        if (
          Number.isFinite(mine) &&
          Number.isFinite(theirs) &&
          mine > theirs * 1.05 &&
          mine - theirs > 5
        )
          out.push(
            `- handover ${MOVE_NAMES[move] ?? move} (${dir === 'downMs' ? 'server -> MN' : 'MN -> server'}): mip6 ${fmt(mine, 0)} ms vs ${v} ${fmt(theirs, 0)} ms`,
          );
      }
    }
  }
  return out.length === 0
    ? ['mip6 is not behind either peer on any median in this run.', '']
    : ['Where mip6 is behind a peer (median more than 5% worse):', '', ...out, ''];
}

type Where = 'home' | 'beyond';
/** The server positions this run measured, home first. */
function WHERES(j: BenchJson): Where[] {
  return (['home', 'beyond'] as const).filter((w) => j.runs.some((r) => whereOf(r) === w));
}
const WHERE_TITLE: Record<Where, string> = {
  home: "server on the HA's home link",
  beyond: 'server beyond the HA (routed through its uplink)',
};

/** Where a run's server sat: records from before issue #16 have no field (the home link). */
function whereOf(r: BenchJson['runs'][number]): Where {
  return r.where ?? 'home';
}

/** The runs of the data rounds of one system with the server at `where`, without failures. */
function runsAt(j: BenchJson, s: Sys, where: Where): BenchJson['runs'] {
  return j.runs.filter((r) => r.system === s && r.error === undefined && whereOf(r) === where);
}

/** CPU seconds per GB of one run: every TCP run of the record (both ends' processes). */
function cpuPerGb(r: BenchJson['runs'][number]): number {
  const tcp = [r.tcp1, r.tcp1r, r.tcp4].filter((x) => x !== undefined);
  if (tcp.length === 0) return NaN;
  const cpu = tcp.reduce((a, x) => a + x.cpuSeconds, 0);
  const gb = tcp.reduce((a, x) => a + x.bytes, 0) / 1e9;
  return cpu / gb;
}

function dataMetrics(j: BenchJson, where: Where): MetricDef[] {
  const runs = (s: Sys): BenchJson['runs'] => runsAt(j, s, where);
  const at = ` (${WHERE_TITLE[where]})`;
  return [
    {
      title: 'TCP throughput MN -> server, 1 stream (iperf3, IPv6 inside)' + at,
      unit: 'Gbit/s',
      digits: 3,
      higherIsBetter: true,
      values: (s) => runs(s).map((r) => r.tcp1?.gbps ?? NaN),
    },
    {
      title: 'TCP throughput server -> MN, 1 stream (iperf3 -R)' + at,
      unit: 'Gbit/s',
      digits: 3,
      higherIsBetter: true,
      values: (s) => runs(s).map((r) => r.tcp1r?.gbps ?? NaN),
    },
    {
      title: 'TCP throughput MN -> server, 4 streams' + at,
      unit: 'Gbit/s',
      digits: 3,
      higherIsBetter: true,
      values: (s) => runs(s).map((r) => r.tcp4?.gbps ?? NaN),
    },
    {
      title: 'RTT MN -> server, median (ping every 5 ms)' + at,
      unit: 'ms',
      digits: 3,
      higherIsBetter: false,
      values: (s) => runs(s).map((r) => r.rtt?.median ?? NaN),
      note: 'Each system first gets unmeasured pings (every 2 ms; settings.pingWarmup in the JSON): the steady state of a running tunnel, not the first packets after a start. bench/lone-packet.ts measures how mip6 warms up.',
    },
    {
      title: 'CPU of both tunnel processes per ping round trip (ping every 5 ms)' + at,
      unit: 'us',
      digits: 0,
      higherIsBetter: false,
      values: (s) => (s === 'raw' ? [] : runs(s).map((r) => r.rtt?.cpuUsPerPing ?? NaN)),
      note: 'Time on CPU of every thread of the two tunnel processes (/proc/<pid>/task/*/schedstat, nanoseconds) over the ping run, divided by the pings answered: what a lone packet costs each system, kernel work done in the processes included.',
    },
    {
      title: 'RTT MN -> server, 99th percentile' + at,
      unit: 'ms',
      digits: 3,
      higherIsBetter: false,
      values: (s) => runs(s).map((r) => r.rtt?.p99 ?? NaN),
    },
    {
      title: '64-byte UDP MN -> server: highest offered rate with < 1% loss' + at,
      unit: 'packets/s',
      digits: 0,
      higherIsBetter: true,
      values: (s) => runs(s).map((r) => r.udp?.bestPps ?? NaN),
      note: `Rate ladder ${JSON.stringify((j.settings as { udpLadder?: number[] }).udpLadder)} packets/s, ${String((j.settings as { udpSeconds?: number }).udpSeconds)} s per rung, stopped at the first rung with >= 1% loss; 0 means even the first rung lost >= 1%. Loss is counted by the iperf3 server; the single iperf3 sender itself tops out near the raw row's figure on this machine.`,
    },
    {
      title:
        `64-byte UDP: packets/s delivered when ${overloadText((j.settings as { udpOverloadPps?: number }).udpOverloadPps)} are offered` +
        at,
      unit: 'packets/s',
      digits: 0,
      higherIsBetter: true,
      values: (s) => runs(s).map((r) => r.udp?.deliveredPps ?? NaN),
    },
    {
      title: 'CPU seconds per GB through the tunnel (both tunnel processes, every TCP run)' + at,
      unit: 's/GB',
      digits: 2,
      higherIsBetter: false,
      values: (s) => (s === 'raw' ? [] : runs(s).map(cpuPerGb)),
      note: 'utime + stime of the HA-side and MN-side processes from /proc/<pid>/stat over each iperf3 run, divided by the bytes iperf3 delivered. Kernel work done outside the process context (softirq on other threads) is not counted for any system.',
    },
  ];
}

export function buildReport(j: BenchJson): string {
  const metrics = WHERES(j).flatMap((w) => dataMetrics(j, w));

  const lines: string[] = [
    `# mip6 vs WireGuard and OpenVPN, ${j.date.slice(0, 10)}${j.quick ? ' (quick smoke run: 1 short run, not a measurement)' : ''}`,
    '',
    `Generated by \`npm run bench\` (bench/compare.ts${j.quick ? ' --quick' : ''}) at ${j.date} in ${fmt(j.durationS, 0)} s, on mip6 commit \`${j.commit}\`` +
      (j.dirty.length > 0
        ? ` with uncommitted changes by other engineers in ${j.dirty.length} file(s) under src/ or native/ (the daemons ran from that working tree).`
        : '.') +
      ` The daemons ran from the ${j.mip6Run}.`,
    '',
    `Machine: ${j.machine.cpus} x ${j.machine.model}, Linux ${j.machine.kernel}, Node ${j.machine.node}. ` +
      `Load average (1, 5, 15 min) before: ${j.load.before.map((x) => x.toFixed(2)).join(' ')}; after the data rounds: ${j.load.afterData.map((x) => x.toFixed(2)).join(' ')}; at the end: ${j.load.after.map((x) => x.toFixed(2)).join(' ')}. ` +
      'A load above 2 means the bench shared the 2 cores with other work and every system was slowed; interleaving spreads that over all of them alike.',
    '',
    `Peers: wireguard-go ${j.versions['wireguard-go']}, OpenVPN ${j.versions.openvpn}, iperf3 ${j.versions.iperf3}. ` +
      (j.offloads !== undefined
        ? `Offloads the kernel accepted for mip6 (TUN: TSO / USO / checksum; UDP: GSO / GRO): HA ${j.offloads.ha}; MN ${j.offloads.mn}. `
        : '') +
      `Tunnel MTUs in the MN: ${Object.entries(j.mtu)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}.`,
    '',
    '## Summary',
    '',
    buildSummary(j),
    ...behindList(j, metrics),
    '## Setup',
    '',
    'The lab of test/lab/lab.ts: the MN reaches a router over "lte" (plain IPv4), "hotel" (NAT44) or "v6only"; the router reaches the HA; a server sits on the HA\'s home link (2001:db8:100::5). ' +
      'mip6 is the real `mip6 ha` + `mip6 mn` daemons (traffic from the home address 2001:db8:100::10). wireguard-go and OpenVPN run between the same two namespaces at the same time, each with its own inner prefix ' +
      '(2001:db8:200::/64, 2001:db8:201::/64) selected by source-address rules in the MN. Every measurement is between the MN (on "lte") and a server through the tunnel, the server either on the home link or beyond the HA: the CN namespace, which the HA reaches through its uplink and the router (routed, as for a server on the Internet; the router sends the tunnels\' inner prefixes back to the HA). TCP runs both ways (iperf3 and iperf3 -R). "raw" is the underlay without a tunnel: MN -> HA for the home-link server, MN -> router -> CN for the server beyond (IPv4). ' +
      `Peer settings: WireGuard: ${String((j.settings as { peerSettings?: { wireguard?: string } }).peerSettings?.wireguard ?? 'defaults')}. OpenVPN: ${String((j.settings as { peerSettings?: { openvpn?: string } }).peerSettings?.openvpn ?? 'defaults')}. ` +
      `Each round measures every system in turn, the order reversed every other round. ${String((j.settings as { runs?: number }).runs)} rounds planned, ${String((j.settings as { seconds?: number }).seconds)} s per iperf3 TCP run.`,
    '',
  ];
  for (const w of WHERES(j)) {
    lines.push(`## Data path, ${WHERE_TITLE[w]}`, '');
    for (const m of dataMetrics(j, w)) lines.push(...metricTable(m));
  }

  lines.push(...smallMtuSection(j));

  const failed = j.runs.filter((r) => r.error !== undefined);
  if (failed.length > 0) {
    lines.push('Failed runs (not in the tables):', '');
    for (const r of failed) lines.push(`- round ${r.round + 1} ${r.system}: ${r.error ?? ''}`);
    lines.push('');
  }

  lines.push(
    '## Handover',
    '',
    'One TCP connection between the server and the MN through each system, 1 MB/s each way, every byte verified (test/lab/traffic.ts); the MN moves LTE -> hotel NAT44 -> IPv6-only -> LTE. ' +
      'The interruption is the longest time without received data in each direction after the move started (resolution 2 ms). ' +
      "mip6 notices the move itself and sends a Binding Update. WireGuard has a single endpoint: the bench points it at the HA's address of the new network's family right after the link is up (what a network-manager hook would do; without one WireGuard never reaches the HA from the IPv6-only network). " +
      "OpenVPN's client lists both HA addresses and moves to the other family only after ping-restart (4 s without a packet).",
    '',
    '| system | move | server -> MN median (ms) | min | max | MN -> server median (ms) | min | max | rounds | mip6 / this (down, up) |',
    '|---|---|---|---|---|---|---|---|---|---|',
  );
  const variants = [...new Set(j.handover.map((h) => h.variant))];
  const moveNames: Record<string, string> = {
    hotel: 'LTE -> hotel NAT44',
    v6only: 'hotel -> IPv6-only',
    lte: 'IPv6-only -> LTE',
  };
  const hv = (variant: string, move: string, dir: 'downMs' | 'upMs'): number[] =>
    j.handover
      .filter((h) => h.variant === variant)
      .flatMap((h) => h.moves.filter((m) => m.move === move).map((m) => m[dir]));
  const notRecovered = (variant: string, move: string): number =>
    j.handover
      .filter((h) => h.variant === variant)
      .flatMap((h) => h.moves.filter((m) => m.move === move && !m.recovered)).length;
  for (const v of variants) {
    for (const move of ['hotel', 'v6only', 'lte']) {
      const d = summarize(hv(v, move, 'downMs'));
      const u = summarize(hv(v, move, 'upMs'));
      const md = summarize(hv('mip6', move, 'downMs')).median;
      const mu = summarize(hv('mip6', move, 'upMs')).median;
      const nr = notRecovered(v, move);
      const ratio =
        v === 'mip6'
          ? ''
          : `${fmt(md / d.median, 2)}, ${fmt(mu / u.median, 2)} ${verdict(Math.max(md / d.median, mu / u.median), false, 'wireguard')}`;
      lines.push(
        `| ${v} | ${moveNames[move] ?? move}${nr > 0 ? ` (${nr} not recovered within the wait: a lower bound)` : ''} | ${fmt(d.median, 0)} | ${fmt(d.min, 0)} | ${fmt(d.max, 0)} | ${fmt(u.median, 0)} | ${fmt(u.min, 0)} | ${fmt(u.max, 0)} | ${d.n} | ${ratio} |`,
      );
    }
  }
  const hFailed = j.handover.filter((h) => h.error !== undefined);
  lines.push('');
  if (hFailed.length > 0) {
    lines.push('Failed handover rounds:', '');
    for (const h of hFailed) lines.push(`- round ${h.round + 1} ${h.variant}: ${h.error ?? ''}`);
    lines.push('');
  }

  lines.push(
    '## Route optimization (MN <-> CN, mip6 only)',
    '',
    ...roSection(j),
    '## Home-agent scale',
    '',
    '### The real `mip6 ha` daemon over UDP',
    '',
    "bench/ha-load.ts in the HA's namespace: N simulated MNs, each with its own key, a certificate for its own home address (signed by the lab's authority), the real Noise IK channel (SecureEndpoint) and its own UDP socket, " +
      "sources spread over 128 local addresses (the HA limits handshakes per source IP). Registration: handshake + the BU the real MN's HomeRegistration builds, at most 64 MNs in flight; then refresh rounds (every MN one BU per round, at most 64 outstanding, no MN above the HA's 3 BUs/s limit). " +
      'BA latency = BU sent -> matching BA received, retransmissions included (1 s, 2 s, ... like the real MN). The daemon also installs a host route and a proxy-ND entry per new binding (its home link is real), which is part of the registration cost. ' +
      'HA CPU = utime + stime of the daemon over the phase / operations. RSS per binding = (RSS after - RSS before) / N: includes heap growth the GC has not returned, so it is an upper bound.',
    '',
    '| N | registrations/s | registration p50 / p99 (ms) | refresh BU/s | BA latency p50 / p99 (ms) | HA CPU per registration / refresh (ms) | RSS per binding (KiB) | BUs resent | rejected |',
    '|---|---|---|---|---|---|---|---|---|',
    ...(j.haUdp.length === 0
      ? ['| not measured | | | | | | | | |']
      : j.haUdp.map(
          (r) =>
            `| ${r.n} | ${fmt(r.registrationsPerS, 1)} | ${fmt(r.registerLatencyP50Ms, 1)} / ${fmt(r.registerLatencyP99Ms, 1)} | ${fmt(r.refreshBuPerS, 0)} | ${fmt(r.baLatencyP50Ms, 1)} / ${fmt(r.baLatencyP99Ms, 1)} | ${fmt(r.haCpuMsPerRegistration, 2)} / ${fmt(r.haCpuMsPerRefresh, 2)} | ${fmt(r.rssPerBindingBytes / 1024, 1)} | ${r.resends} | ${r.rejected} |`,
        )),
    '',
    ...j.haUdp.map(
      (r) =>
        `N = ${r.n}, each refresh round: ` +
        (r.refreshRounds ?? [])
          .map(
            (x, i) =>
              `${i + 1}: ${fmt((r.n / x.ms) * 1000, 0)} BU/s, BA p50 ${fmt(x.p50, 1)} / p99 ${fmt(x.p99, 1)} ms`,
          )
          .join('; ') +
        '.',
    ),
    '',
    '### The registration engine alone',
    '',
    'bench/ha-registration-rate.ts: processHomeBindingUpdate on a BindingCache in one process (no sockets, no crypto, no kernel routes): N bindings created, then 5 refresh rounds; heap growth per binding after a forced GC. ' +
      'The gap between this and the daemon is the cost of the channel crypto (libsodium in WebAssembly), the event loop, the log lines and the per-binding routes.',
    '',
    '| N | create (BU/s) | refresh (BU/s) | heap per binding (bytes) |',
    '|---|---|---|---|',
    ...j.haScale.map(
      (s) =>
        `| ${s.n} | ${fmt(s.createBuPerS, 0)} | ${fmt(s.refreshBuPerS, 0)} | ${fmt(s.heapBytesPerBinding, 0)} |`,
    ),
    '',
  );
  if (j.notes.length > 0) lines.push('## Notes', '', ...j.notes.map((n) => `- ${n}`), '');
  lines.push(
    'Charts: throughput and handover PNGs next to this file (bench/plot.py, matplotlib). Raw data: the .json next to this file.',
    '',
  );
  return lines.join('\n');
}

/**
 * A short table of the headline medians per server position (for the README's Performance
 * section), with mip6 against the best peer of each row (issue #16's targets: >= 2x on
 * throughput and small packets, <= OpenVPN on latency, <= half the best peer's CPU per GB).
 */
export function buildSummary(j: BenchJson): string {
  const ho = (v: string, dir: 'downMs' | 'upMs'): number =>
    summarize(j.handover.filter((h) => h.variant === v).flatMap((h) => h.moves.map((m) => m[dir])))
      .median;
  const sys3: Sys[] = ['mip6', 'wireguard', 'openvpn'];
  const out: string[] = [];
  for (const w of WHERES(j)) {
    const med = (s: Sys, f: (r: BenchJson['runs'][number]) => number | undefined): number =>
      summarize(runsAt(j, s, w).map((r) => f(r) ?? NaN)).median;
    const row = (
      name: string,
      f: (r: BenchJson['runs'][number]) => number | undefined,
      digits: number,
      higherIsBetter: boolean,
    ): string => {
      const v = sys3.map((s) => med(s, f));
      const peers = v.slice(1).filter(Number.isFinite);
      const best =
        peers.length === 0 ? NaN : higherIsBetter ? Math.max(...peers) : Math.min(...peers);
      return `| ${name} | ${v.map((x) => fmt(x, digits)).join(' | ')} | ${fmt(v[0]! / best, 2)} |`;
    };
    out.push(
      `${WHERE_TITLE[w][0]!.toUpperCase()}${WHERE_TITLE[w].slice(1)}:`,
      '',
      '| median of the runs | mip6 | WireGuard (wireguard-go) | OpenVPN | mip6 / best peer |',
      '|---|---|---|---|---|',
      row('TCP MN -> server, 1 stream (Gbit/s)', (r) => r.tcp1?.gbps, 3, true),
      row('TCP server -> MN, 1 stream (Gbit/s)', (r) => r.tcp1r?.gbps, 3, true),
      row('TCP MN -> server, 4 streams (Gbit/s)', (r) => r.tcp4?.gbps, 3, true),
      row('RTT median (ms)', (r) => r.rtt?.median, 3, false),
      row('RTT p99 (ms)', (r) => r.rtt?.p99, 2, false),
      row('64-byte UDP delivered under overload (packets/s)', (r) => r.udp?.deliveredPps, 0, true),
      row('CPU per GB, both ends (s)', cpuPerGb, 2, false),
      '',
    );
  }
  const hoRow = sys3
    .map((s) => `${fmt(ho(s, 'downMs'), 0)} / ${fmt(ho(s, 'upMs'), 0)}`)
    .join(' | ');
  out.push(
    '| handover, median over the 3 moves, down / up (ms) | mip6 | WireGuard (wireguard-go) | OpenVPN |',
    '|---|---|---|---|',
    `| | ${hoRow} |`,
    '',
  );
  return out.join('\n');
}

export function writeReport(j: BenchJson, outBase: string): void {
  writeFileSync(`${outBase}.md`, buildReport(j));
}

/** The overload rung's offered rate in words (0: iperf3 -b 0, as fast as it sends). */
function overloadText(pps: number | undefined): string {
  return pps === 0
    ? 'as many packets as one iperf3 sender makes (-b 0)'
    : `${String(pps)} packets/s`;
}
