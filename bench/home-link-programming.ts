/**
 * Home-link programming (issue #17): how fast the home agent installs and removes the per-binding
 * kernel state of a real home link (a /128 host route into the TUN and a proxy-ND entry on the
 * link), through rtnetlink (the addon's rtnlBatch) and through the `ip -batch` fallback, both
 * driven by the HA's own HomeLinkProgrammer (src/io/home-link-programmer.ts: batches of up to
 * 1024 ops). Not a test; needs root (a network namespace).
 *
 *   sudo node --import tsx bench/home-link-programming.ts [--n 10000,100000] [--runs 1]
 *     [--limit-s 300] [--write]
 *
 * For each N, run and way (rtnetlink / ip-batch), from scratch:
 *   1. A namespace of its own (unique name, deleted at the end even on failure) with a veth
 *      home link (its peer up, proxy_ndp on) and a TUN, like the HA's.
 *   2. A child process inside it queues all N ops of one phase at once (a registration storm)
 *      and waits for every one to be acknowledged: route add (replace), proxy add, route delete,
 *      proxy delete, in that order; each phase is timed. After the adds the parent counts the
 *      namespace's routes and proxy entries (`ip -6 route`, `ip -6 neigh show proxy`): exactly N
 *      each, or the run is reported as wrong.
 *   3. rtnetlink only: the time each rtnlBatch call spent on its thread (what a synchronous call
 *      would have blocked the event loop for) and the event loop's own delay during the phase.
 *   4. rtnetlink only, the replacement for proxy entries: the addon's ND proxy (src/io/ndproxy.ts)
 *      opened on the link, N addresses put into its set and taken out again in calls of 1024
 *      (phases ndproxy-add, ndproxy-delete): synchronous, on the event loop.
 * --phases picks phases (e.g. `--phases ndproxy-add,ndproxy-delete --ways rtnetlink` for the
 * responder alone at 100 000, without minutes of kernel proxy entries); --ways picks ways.
 * Bounded: a phase that takes longer than --limit-s ends the run (its child is killed).
 * Prints one JSON line per run; --write also writes bench/results/home-link-programming-<date>.json.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadAddon, type NativeAddon } from '../src/io/addon.js';
import {
  HomeLinkProgrammer,
  ipBatchRunner,
  rtnetlinkRunner,
  type HomeLinkOp,
  type HomeLinkOpKind,
} from '../src/io/home-link-programmer.js';
import { NdProxy } from '../src/io/ndproxy.js';
import { median, quantile } from './lib/stats.js';

const TUN = 'hlptun';
const LINK = 'hlplink';
const KERNEL_PHASES: HomeLinkOpKind[] = [
  'route-replace',
  'proxy-add',
  'route-delete',
  'proxy-delete',
];
const RESPONDER_PHASES = ['ndproxy-add', 'ndproxy-delete'] as const;
type Phase = HomeLinkOpKind | (typeof RESPONDER_PHASES)[number];
const ALL_PHASES: Phase[] = [...KERNEL_PHASES, ...RESPONDER_PHASES];
/** Addresses per ndproxyAdd / ndproxyDelete call, like one programmer batch. */
const RESPONDER_CALL = 1024;

/** fd17:17::/64 host <i> (i < 2^32) as RFC 5952 text. */
function address(i: number): string {
  const hi = Math.floor(i / 65536);
  const lo = (i % 65536).toString(16);
  return hi === 0 ? `fd17:17::${lo}` : `fd17:17::${hi.toString(16)}:${lo}`;
}

interface PhaseResult {
  kind: Phase;
  seconds: number;
  opsPerSecond: number;
  failed: Record<string, number>;
  batches: number;
  /** rtnetlink: thread time per rtnlBatch call (ms). */
  batchMs?: { median: number; p99: number; max: number };
  /** The event loop's delay during the phase (ms). */
  loopDelayMs: { p99: number; max: number };
  /**
   * CPU per 1000 ops (ms): this process (its rtnlBatch threads' kernel time included) plus its
   * finished children (the `ip` processes).
   */
  cpuMsPer1000: { self: number; children: number };
}

/** utime + stime of this process's waited-for children, ms (/proc/self/stat cutime, cstime). */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of proc(5) are at 13 and 14 once pid and comm are cut off.
  return ((Number(f[13]) + Number(f[14])) * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** In the namespace: runs the four phases for N ops each, prints one JSON line per phase. */
async function child(
  via: 'rtnetlink' | 'ip-batch',
  n: number,
  limitS: number,
  phases: readonly Phase[],
): Promise<void> {
  const batchUs: number[] = [];
  const addon = loadAddon();
  const timed: Pick<NativeAddon, 'rtnlBatch'> = {
    rtnlBatch: (ops, count, results) =>
      addon.rtnlBatch!(ops, count, results).then((us) => {
        batchUs.push(us);
        return us;
      }),
  };
  const runner =
    via === 'ip-batch' ? ipBatchRunner(TUN, LINK) : await rtnetlinkRunner(timed, TUN, LINK);
  if (typeof runner === 'string') throw new Error(runner);
  for (const kind of KERNEL_PHASES.filter((k) => phases.includes(k))) {
    if (kind === 'route-delete') {
      process.stdout.write('{"added":true}\n');
      await new Promise((r) => process.stdin.once('data', r)); // the parent has counted
    }
    const p = new HomeLinkProgrammer(via, runner);
    batchUs.length = 0;
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const cpu0 = process.cpuUsage();
    const children0 = childrenCpuMs();
    const t0 = performance.now();
    const ops: HomeLinkOp[] = Array.from({ length: n }, (_, i) => ({ kind, address: address(i) }));
    const limit = setTimeout(() => {
      process.stderr.write(`phase ${kind} over ${limitS} s\n`);
      process.exit(3);
    }, limitS * 1000);
    await Promise.allSettled(ops.map((op) => p.run(op)));
    clearTimeout(limit);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const childrenMs = childrenCpuMs() - children0;
    loop.disable();
    const st = p.status();
    const ms = batchUs.map((u) => u / 1000);
    const out: PhaseResult = {
      kind,
      seconds: round(seconds),
      opsPerSecond: Math.round(n / seconds),
      failed: st.failed,
      batches: st.batches,
      ...(ms.length > 0
        ? {
            batchMs: {
              median: round(median(ms)),
              p99: round(quantile(ms, 0.99)),
              max: round(Math.max(...ms)),
            },
          }
        : {}),
      loopDelayMs: { p99: round(loop.percentile(99) / 1e6), max: round(loop.max / 1e6) },
      cpuMsPer1000: {
        self: round((cpu.user + cpu.system) / n),
        children: round((childrenMs * 1000) / n),
      },
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  }
  if (via === 'rtnetlink' && RESPONDER_PHASES.some((k) => phases.includes(k))) {
    await responderPhases(n, phases);
  }
}

/** The addon's ND proxy set: N addresses in, then out, in calls of RESPONDER_CALL. */
async function responderPhases(n: number, phases: readonly Phase[]): Promise<void> {
  const proxy = NdProxy.open(loadAddon(), LINK);
  if (typeof proxy === 'string') throw new Error(proxy);
  const addresses = Array.from({ length: n }, (_, i) => address(i));
  for (const kind of RESPONDER_PHASES) {
    if (!phases.includes(kind)) continue;
    const callMs: number[] = [];
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let changed = 0;
    for (let i = 0; i < n; i += RESPONDER_CALL) {
      const chunk = addresses.slice(i, i + RESPONDER_CALL);
      const c0 = performance.now();
      changed += kind === 'ndproxy-add' ? proxy.add(chunk) : proxy.delete(chunk);
      callMs.push(performance.now() - c0);
      // Let the loop turn between calls, as the daemon's bursts do.
      await new Promise((r) => setImmediate(r));
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const out: PhaseResult = {
      kind,
      seconds: round(seconds),
      opsPerSecond: Math.round(n / seconds),
      failed: changed === n ? {} : { wrongCount: n - changed },
      batches: callMs.length,
      batchMs: {
        median: round(median(callMs)),
        p99: round(quantile(callMs, 0.99)),
        max: round(Math.max(...callMs)),
      },
      loopDelayMs: { p99: round(quantile(callMs, 0.99)), max: round(Math.max(...callMs)) },
      cpuMsPer1000: { self: round((cpu.user + cpu.system) / n), children: 0 },
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  }
  proxy.close();
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { maxBuffer: 512 << 20 }).toString();
}

/** One run: a fresh namespace, the child through all phases, the tables counted after the adds. */
async function oneRun(
  via: 'rtnetlink' | 'ip-batch',
  n: number,
  limitS: number,
  wanted: readonly Phase[],
): Promise<Record<string, unknown>> {
  const ns = `mip6hlp${process.pid % 10000}${randomBytes(2).toString('hex')}`;
  const out: Record<string, unknown> = { via, n, loadBefore: loadavg()[0] };
  try {
    ip(['netns', 'add', ns]);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    ip(['-n', ns, 'link', 'add', LINK, 'type', 'veth', 'peer', 'name', `${LINK}p`]);
    ip(['-n', ns, 'tuntap', 'add', TUN, 'mode', 'tun']);
    for (const dev of [LINK, `${LINK}p`, TUN]) ip(['-n', ns, 'link', 'set', dev, 'up']);
    /** argv of `ip netns exec <ns> ...command` */
    const inNs = (...command: string[]): string[] => ['netns', 'exec', ns, ...command];
    execFileSync('ip', inNs('sysctl', '-q', '-w', `net.ipv6.conf.${LINK}.proxy_ndp=1`));
    const script = fileURLToPath(import.meta.url);
    const childArgs = [
      ...['--child', via, '--n', String(n), '--limit-s', String(limitS)],
      ...['--phases', wanted.join(',')],
    ];
    const proc = spawn('ip', inNs(process.execPath, '--import', 'tsx', script, ...childArgs), {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const phases: PhaseResult[] = [];
    let buffered = '';
    const done = new Promise<number | null>((resolve) => proc.on('close', resolve));
    proc.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
        buffered = buffered.slice(nl + 1);
        if (line.added === true) {
          out.routes = ip(['-n', ns, '-6', 'route', 'show', 'dev', TUN])
            .split('\n')
            .filter((l) => l.startsWith('fd17:17:')).length;
          out.proxies = ip(['-n', ns, '-6', 'neigh', 'show', 'proxy'])
            .split('\n')
            .filter((l) => l.startsWith('fd17:17:')).length;
          proc.stdin.write('\n');
        } else {
          phases.push(line as unknown as PhaseResult);
        }
      }
    });
    const code = await done;
    out.phases = phases;
    if (code !== 0) out.error = `child exited ${code}`;
    else if (wanted.includes('proxy-add') && (out.routes !== n || out.proxies !== n)) {
      out.error = 'wrong number of entries';
    }
    const left = ip(['-n', ns, '-6', 'route', 'show', 'dev', TUN])
      .split('\n')
      .filter((l) => l.startsWith('fd17:17:')).length;
    if (left !== 0 && out.error === undefined) out.error = `${left} routes left after the deletes`;
  } catch (err) {
    out.error = err instanceof Error ? err.message : String(err);
  } finally {
    try {
      ip(['netns', 'del', ns]);
    } catch {
      // already gone
    }
    out.loadAfter = loadavg()[0];
  }
  return out;
}

const { values: a } = parseArgs({
  options: {
    n: { type: 'string', default: '10000,100000' },
    runs: { type: 'string', default: '1' },
    'limit-s': { type: 'string', default: '300' },
    child: { type: 'string' },
    phases: { type: 'string', default: ALL_PHASES.join(',') },
    ways: { type: 'string', default: 'rtnetlink,ip-batch' },
    write: { type: 'boolean', default: false },
  },
});
const limitS = Number(a['limit-s']);
const phases = a.phases.split(',').filter((p): p is Phase => (ALL_PHASES as string[]).includes(p));
const ways = (['rtnetlink', 'ip-batch'] as const).filter((w) => a.ways.split(',').includes(w));
if (a.child !== undefined) {
  await child(a.child === 'ip-batch' ? 'ip-batch' : 'rtnetlink', Number(a.n), limitS, phases);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error('needs root (network namespaces)');
  process.exit(2);
}
const records: Record<string, unknown>[] = [];
const commit = execFileSync('git', ['rev-parse', 'HEAD']).toString().trim();
for (const n of a.n.split(',').map(Number)) {
  for (let run = 0; run < Number(a.runs); run++) {
    for (const via of ways) {
      const r = { ...(await oneRun(via, n, limitS, phases)), run, commit };
      console.log(JSON.stringify(r));
      records.push(r);
    }
  }
}
if (a.write) {
  const file = fileURLToPath(
    new URL(
      `./results/home-link-programming-${new Date().toISOString().slice(0, 10)}.json`,
      import.meta.url,
    ),
  );
  writeFileSync(file, JSON.stringify(records, null, 1) + '\n');
  console.error(`wrote ${file}`);
}
